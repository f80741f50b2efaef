import Foundation
import TarsAdminAPI
import TarsTestSupport
import Testing

/// A package released on one machine the way it is on a cluster: `tarsctl release` uploads it,
/// `up`'s image service builds and pushes the image to a real registry, and the local runtime
/// pulls that image and runs the server from it.
@Suite(
  "One-machine mode: releasing a package", .serialized,
  .enabled(if: TestRegistry.available, "needs docker-registry and htpasswd (scripts/setup installs them)"))
struct ReleaseTests {
  @Test func tarsctlReleaseRunsTheBuiltImageHere() throws {
    let registry = try TestRegistry()
    let m = try OneMachine(firstPodIP: "127.0.205.1")
    defer { m.dir.remove() }
    let auth = Data("\(registry.username):\(registry.password)".utf8).base64EncodedString()
    try #"{"auths": {"\#(registry.host)": {"auth": "\#(auth)"}}}"#.write(
      toFile: m.dir.path + "/docker.json", atomically: true, encoding: .utf8)
    try m.write("hello.yaml", helloServer(replicas: 1))
    try m.write(
      "framework.yaml",
      """
      apiVersion: k8s.tars.io/v1beta3
      kind: TFrameworkConfig
      metadata: {name: tars-framework, namespace: tars}
      imageUpload: {registry: \(registry.host)/tars, plainHTTP: true}
      imageBuild: {bases: {cpp: scratch}}
      """)
    try m.start(extra: ["--docker-config", m.dir.path + "/docker.json"])
    defer { #expect(m.stop() == 0, "up must stop cleanly on SIGINT: \(m.log)") }
    #expect(waitFor { try m.endpoints("Test.HelloServer.HelloObj") == (1, 0) }, "\(m.log)")
    let before = try #require(try m.pods("Test.HelloServer").first)

    // The package, as an operator ships it: the server's directory.
    let top = m.dir.path + "/pkg/HelloServer"
    try FileManager.default.createDirectory(atPath: top, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: Tool.path("HelloServer"), toPath: top + "/HelloServer")
    let tar = try Tool.run(
      "/usr/bin/tar", ["czf", m.dir.path + "/HelloServer.tgz", "-C", m.dir.path + "/pkg", "HelloServer"])
    #expect(tar.status == 0, "\(tar.stderr)")
    let release = try m.tarsctl([
      "release", "Test.HelloServer", m.dir.path + "/HelloServer.tgz", "--mark", "one machine",
    ])
    #expect(release.status == 0, "\(release.stdout)\(release.stderr)\n\(m.log)")

    // The pod is replaced by one running the image's server, pulled from the registry.
    let servers = try m.json(["servers"], as: [ServerRow].self)
    let image = try #require(servers.first { $0.id == "Test.HelloServer" }?.image)
    #expect(image.hasPrefix("\(registry.host)/tars/test.helloserver:") && image.contains("@sha256:"), "\(image)")
    #expect(
      waitFor(60) {
        guard let pod = try m.pods("Test.HelloServer").first else { return false }
        return pod.pid != before.pid && pod.active
      }, "the pod runs the release: \(m.log)")
    let pod = try #require(try m.pods("Test.HelloServer").first)
    let cmdline = try String(contentsOfFile: "/proc/\(pod.pid ?? 0)/cmdline", encoding: .utf8)
    let digest = String(image[image.index(after: image.firstIndex(of: "@")!)...].dropFirst("sha256:".count))
    #expect(cmdline.contains("/.tars/images/\(digest)/bin"), "tarsnode runs the image's server: \(cmdline)")
    let call = try Tool.run(
      "hello-client", ["--locator", "tars.tarsregistry.QueryObj@" + m.locator, "--count", "1", "image"])
    #expect(call.stdout.contains("ret=0 Bonjour image"), "\(call.stdout)\(call.stderr)")
    let releases = try m.json(["releases", "Test.HelloServer"], as: [ReleaseRow].self)
    #expect(releases.count == 1 && releases[0].current && releases[0].mark == "one machine", "\(releases)")
  }
}
