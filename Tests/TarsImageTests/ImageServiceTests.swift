import Dispatch
import Foundation
import Glibc
import NIOPosix
import Synchronization
import TarsAdmin
import TarsAdminAPI
import TarsAuth
import TarsEmbeddedStore
import TarsImage
import TarsImageService
import TarsKube
import TarsNIO
import TarsProtocol
import TarsStoreTestSupport
import TarsTestSupport
import Testing

/// The image service end to end: packages uploaded to the admin API, built, pushed to a real
/// docker-registry (with the credentials of a dockerconfigjson Secret), recorded in TImages and
/// released to TServers, on the embedded store.
@Suite(
  "The image service", .serialized,
  .enabled(if: TestRegistry.available, "needs docker-registry and htpasswd (scripts/setup installs them)"))
struct ImageServiceTests {
  /// A namespace with the framework's settings, the registry's Secret and a TServer, and an
  /// admin API serving the image routes.
  final class Fixture: @unchecked Sendable {
    let registry: TestRegistry
    let dir: TemporaryDirectory
    let store: EmbeddedStore
    let observed: ObservedStore
    let used = Recorded()
    var images: ImageService!
    var admin: AdminServer!
    var client: AdminClient!
    var informers: [Task<Void, Never>] = []
    let token = String(repeating: "t", count: 32)

    init(imageBuild: String = "{bases: {cpp: scratch}}", password: String? = nil, maxUpload: Int64 = 1 << 30)
      async throws
    {
      registry = try TestRegistry()
      dir = try TemporaryDirectory("tars-images")
      store = try EmbeddedStore(path: nil)
      observed = ObservedStore(store, recording: used)
      _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
      try await apply(
        """
        apiVersion: k8s.tars.io/v1beta3
        kind: TFrameworkConfig
        metadata: {name: tars-framework, namespace: tars}
        imageUpload: {registry: \(registry.host)/tars, secret: tars-image-registry, plainHTTP: true}
        imageBuild: \(imageBuild)
        """)
      let auth = Data("\(registry.username):\(password ?? registry.password)".utf8).base64EncodedString()
      let config = Data(#"{"auths": {"\#(registry.host)": {"auth": "\#(auth)"}}}"#.utf8).base64EncodedString()
      try await apply(
        """
        apiVersion: v1
        kind: Secret
        metadata: {name: tars-image-registry, namespace: tars}
        type: kubernetes.io/dockerconfigjson
        data: {.dockerconfigjson: \(config)}
        """)
      try await apply(
        """
        apiVersion: k8s.tars.io/v1beta3
        kind: TServer
        metadata: {name: test-helloserver, namespace: tars, annotations: {tars.io/ServerType: cpp}}
        spec:
          app: Test
          server: HelloServer
          subType: tars
          tars: {template: tars.default, servants: [{name: HelloObj, port: 10015}]}
          k8s: {replicas: 1}
          release: {id: old, image: example/old:1, nodeImage: example/node:1}
        """)
      var options = ImageService.Options(identity: "admin-0", workDirectory: dir.file("work"))
      // Short, but not so short that a loaded machine loses the lease mid-build.
      options.lease.retry = .milliseconds(250)
      options.lease.leaseDuration = .seconds(6)
      options.lease.renewDeadline = .seconds(4)
      images = ImageService(store: observed, namespace: "tars", options: options, log: { _ in })
      let tservers = Informer(store: store, resource: .tservers, namespace: "tars")
      let pods = Informer(store: store, resource: .pods, namespace: "tars", selector: .tarsServer)
      informers = [Task { await tservers.run() }, Task { await pods.run() }]
      var deps = AdminServer.Dependencies(
        store: store, namespace: "tars", tservers: tservers, pods: pods,
        nodeAuth: try NodeCallAuth(secret: Array(repeating: 7, count: 32)),
        nodeClient: TarsNIOClient(group: MultiThreadedEventLoopGroup.singleton))
      deps.images = images
      deps.maxUploadBytes = maxUpload
      admin = try await AdminServer.start(
        host: "127.0.0.1", port: 0, tokens: AdminTokens(admin: token), dependencies: deps, log: { _ in })
      client = AdminClient(baseURL: "http://127.0.0.1:\(admin.port)", token: token)
      for _ in 0..<200 where tservers.objects.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
    }

    func apply(_ yaml: String) async throws {
      for o in try ManifestApplier.parse(yaml, source: "test") {
        let resource = try #require(KubeResource.all.first { $0.kind == o.kind })
        _ = try await store.create(resource, o)
      }
    }

    func package(_ name: String = "HelloServer.tgz", binary: String = "#!/bin/sh\necho hello\n") throws -> String {
      try Archives.hello(dir.file(name), binary: binary)
      return dir.file(name)
    }

    /// Uploads and follows the build to its end.
    func release(_ package: String, query: String = "") async throws -> BuildRow {
      let started = try await client.upload(
        package, to: "/images/Test.HelloServer/builds" + (query.isEmpty ? "" : "?" + query), as: BuildRow.self)
      return try await finished(started.id)
    }

    func finished(_ id: String) async throws -> BuildRow {
      for _ in 0..<600 {
        let row = try await client.get("/images/builds/\(id)", as: BuildRow.self)
        if row.finished { return row }
        try await Task.sleep(for: .milliseconds(50))
      }
      throw ImageError("build \(id) did not finish in 30 s")
    }

    func tserver() async throws -> KubeObject {
      try await store.get(.tservers, namespace: "tars", name: "test-helloserver")
    }
    func timage() async throws -> KubeObject {
      try await store.get(.timages, namespace: "tars", name: "test-helloserver")
    }

    func stop() async {
      await admin.stop()
      for t in informers { t.cancel() }
      registry.stop()
      dir.remove()
    }
  }

  @Test func anUploadedPackageIsBuiltPushedRecordedAndReleased() async throws {
    let f = try await Fixture()
    let first = try await f.release(try f.package(), query: "mark=first")
    #expect(first.phase == "Done", "\(first.message)\n\(first.log.joined(separator: "\n"))")
    let image = first.image
    #expect(image.hasPrefix("\(f.registry.host)/tars/test.helloserver:\(first.id)@sha256:"), "\(image)")
    #expect(first.log.contains { $0.contains("pushed sha256:") }, "\(first.log)")

    // The registry has it (skopeo, the independent client), the TImage records it, the TServer runs it.
    let creds = "\(f.registry.username):\(f.registry.password)"
    let tagged = String(image[..<image.firstIndex(of: "@")!])
    let inspect = try Tool.run(
      "/usr/bin/skopeo", ["inspect", "--tls-verify=false", "--creds", creds, "docker://\(tagged)"])
    #expect(inspect.status == 0, "\(inspect.stderr)")
    #expect(inspect.stdout.contains(String(image[image.index(after: image.firstIndex(of: "@")!)...])))
    #expect(inspect.stdout.contains("\"io.tars.server\": \"Test.HelloServer\""), "\(inspect.stdout)")
    let t = try await f.tserver()
    #expect(t.spec?[path: ["release", "id"]]?.stringValue == first.id)
    #expect(t.spec?[path: ["release", "image"]]?.stringValue == image)
    #expect(t.spec?[path: ["release", "secret"]]?.stringValue == "tars-image-registry")
    #expect(t.spec?[path: ["release", "nodeImage"]]?.stringValue == "example/node:1", "the rest of the release stays")
    let ti = try await f.timage()
    #expect(ti.json["imageType"]?.stringValue == "server")
    #expect(ti.labels["tars.io/ServerName"] == "HelloServer")
    #expect(ti.json["releases"]?.arrayValue?.first?["mark"]?.stringValue == "first")
    #expect(ti.json["releases"]?.arrayValue?.first?["createPerson"]?.stringValue == "admin")
    #expect(ti.json[path: ["build", "last", "phase"]]?.stringValue == "Done")
    #expect(ti.json[path: ["build", "running"]] == nil)

    // A second release built without rolling out, then rolled out by id, then back.
    let second = try await f.release(try f.package("v2.tgz", binary: "#!/bin/sh\necho v2\n"), query: "release=false")
    #expect(second.phase == "Done", "\(second.message)")
    #expect(try await f.tserver().spec?[path: ["release", "id"]]?.stringValue == first.id)
    var releases = try await f.client.get("/images/Test.HelloServer/releases", as: [ReleaseRow].self)
    #expect(releases.map(\.id) == [second.id, first.id])
    #expect(releases.map(\.current) == [false, true])
    _ = try await f.client.post("/images/Test.HelloServer/release", ReleaseRequest(id: second.id), as: ApplyRow.self)
    #expect(try await f.tserver().spec?[path: ["release", "image"]]?.stringValue == second.image)
    let unknown = await #expect(throws: AdminClientError.self) {
      try await f.client.post("/images/Test.HelloServer/release", ReleaseRequest(id: "v1"), as: ApplyRow.self)
    }
    #expect(unknown?.status == 404 && unknown?.message.contains(second.id) == true, "\(unknown?.message ?? "")")
    for _ in 0..<100
    where try await f.client.get("/images/Test.HelloServer/releases", as: [ReleaseRow].self)
      .first?.current != true
    {
      try await Task.sleep(for: .milliseconds(10))
    }
    releases = try await f.client.get("/images/Test.HelloServer/releases", as: [ReleaseRow].self)
    #expect(releases.first?.current == true)

    // What the service asked of the API is what deploy/admin/images-rbac.yaml grants (with
    // the admin's own Role, which already lets it update TServers).
    let granted = try RoleGrants.granted("admin/images-rbac.yaml")
    let admin = try RoleGrants.granted("admin/rbac.yaml")
    let used = f.used.calls.withLock { $0 }
    #expect(used.subtracting(granted).subtracting(admin).isEmpty, "used, not granted: \(used.subtracting(granted))")
    #expect(granted.subtracting(used).isEmpty, "granted but unused: \(granted.subtracting(used))")
    await f.stop()
  }

  @Test func tarsctlReleaseFollowsTheBuildAndRollsBack() async throws {
    let f = try await Fixture()
    try f.token.write(toFile: f.dir.file("token"), atomically: true, encoding: .utf8)
    let admin = ["--admin", "http://127.0.0.1:\(f.admin.port)", "--token-file", f.dir.file("token")]
    // On a GCD thread: tarsctl's wait must not hold one of the threads the admin answers from.
    func tarsctl(_ arguments: [String]) async throws -> Tool.Output {
      try await withCheckedThrowingContinuation { c in
        DispatchQueue.global().async { c.resume(with: Result { try Tool.run("tarsctl", arguments + admin) }) }
      }
    }
    let package = try f.package()
    let out = try await tarsctl(["release", "Test.HelloServer", package, "--mark", "from tarsctl"])
    #expect(out.status == 0, "\(out.stderr)")
    #expect(out.stdout.contains("uploading \(package)") && out.stdout.contains("B/s"), "\(out.stdout)")
    #expect(out.stdout.contains("the TServer's spec.release is set"), "the build's log follows: \(out.stdout)")
    let first = try #require(try await f.tserver().spec?[path: ["release", "id"]]?.stringValue)
    #expect(first != "old")

    let quiet = try await tarsctl(["release", "Test.HelloServer", try f.package("b.tgz"), "--no-rollout", "-o", "json"])
    #expect(quiet.status == 0, "\(quiet.stderr)")
    let second = try JSONDecoder().decode(BuildRow.self, from: Data(quiet.stdout.utf8))
    #expect(second.phase == "Done" && !second.setRelease)
    #expect(try await f.tserver().spec?[path: ["release", "id"]]?.stringValue == first)
    let back = try await tarsctl(["release", "Test.HelloServer", "--to", second.id])
    #expect(back.status == 0 && back.stdout.contains("released \(second.id)"), "\(back.stdout)\(back.stderr)")
    let listed = try await tarsctl(["releases", "Test.HelloServer"])
    #expect(listed.stdout.contains(second.id) && listed.stdout.contains(first), "\(listed.stdout)")

    let refused = try await tarsctl(["release", "Test.HelloServer", package, "--type", "go"])
    #expect(refused.status == 1 && refused.stderr.contains("imageBuild.bases.go"), "\(refused.stderr)")
    await f.stop()
  }

  @Test func badRequestsAreRefusedWithWhatToChange() async throws {
    let f = try await Fixture(maxUpload: 4096)
    func refusal(_ route: String, _ file: String) async -> AdminClientError? {
      await #expect(throws: AdminClientError.self) { try await f.client.upload(file, to: route, as: BuildRow.self) }
    }
    let package = try f.package()
    let noBase = await refusal("/images/Test.HelloServer/builds?type=go", package)
    #expect(
      noBase?.status == 409 && noBase?.message.contains("imageBuild.bases.go") == true, "\(noBase?.message ?? "")")
    let badType = await refusal("/images/Test.HelloServer/builds?type=cobol", package)
    #expect(badType?.status == 400 && badType?.message.contains("java-jar") == true, "\(badType?.message ?? "")")
    let noType = await refusal("/images/Test.Other/builds", package)
    #expect(noType?.message.contains("type=cpp") == true, "\(noType?.message ?? "")")
    let badName = await refusal("/images/HelloServer/builds?type=cpp", package)
    #expect(badName?.message.contains("App.Server") == true, "\(badName?.message ?? "")")
    try Data(count: 5000).write(to: URL(fileURLWithPath: f.dir.file("big.tgz")))
    let big = await refusal("/images/Test.HelloServer/builds", f.dir.file("big.tgz"))
    #expect(big?.status == 413 && big?.message.contains("--max-upload-mib") == true, "\(big?.message ?? "")")
    _ = FileManager.default.createFile(atPath: f.dir.file("empty.tgz"), contents: Data())
    let empty = await refusal("/images/Test.HelloServer/builds", f.dir.file("empty.tgz"))
    #expect(empty?.status == 400, "\(empty?.message ?? "")")

    // A hostile package fails the build with the reason; nothing is released.
    try Archives.make(f.dir.file("evil.tgz"), [("HelloServer/../../etc/passwd", "file", "x")])
    let evil = try await f.release(f.dir.file("evil.tgz"))
    #expect(evil.phase == "Failed" && evil.message.contains(".."), "\(evil.message)")
    #expect(try await f.tserver().spec?[path: ["release", "id"]]?.stringValue == "old")
    #expect(try await f.timage().json[path: ["build", "last", "phase"]]?.stringValue == "Failed")
    // Uploads and build directories are gone.
    #expect((try? FileManager.default.contentsOfDirectory(atPath: f.dir.file("work/uploads")))?.isEmpty ?? true)
    #expect(try FileManager.default.contentsOfDirectory(atPath: f.dir.file("work")) == ["uploads"])

    // No settings at all: the first thing to set is named.
    try await f.store.delete(.tframeworkconfigs, namespace: "tars", name: "tars-framework")
    let unset = await refusal("/images/Test.HelloServer/builds", package)
    #expect(unset?.status == 409 && unset?.message.contains("imageUpload.registry") == true, "\(unset?.message ?? "")")
    await f.stop()
  }

  @Test func aWrongRegistryPasswordFailsTheBuildAndSaysSo() async throws {
    let f = try await Fixture(password: "not-the-password")
    let row = try await f.release(try f.package())
    #expect(row.phase == "Failed", "\(row.message)")
    #expect(row.message.contains("401") || row.message.lowercased().contains("credentials"), "\(row.message)")
    #expect(try await f.timage().json["releases"]?.arrayValue?.isEmpty ?? true)
    await f.stop()
  }

  @Test func buildsQueueTimeOutAndCancel() async throws {
    // The go base is a registry that accepts connections and never answers: its build hangs
    // until the deadline. One build at a time, so the next waits in line.
    let silent = try SilentListener()
    let f = try await Fixture(
      imageBuild: "{bases: {cpp: scratch, go: '127.0.0.1:\(silent.port)/base/go:1'}, concurrency: 1, maxBuildTime: 10}")
    let hanging = try await f.client.upload(
      try f.package(), to: "/images/Test.HelloServer/builds?type=go", as: BuildRow.self)
    let queued = try await f.client.upload(
      try f.package("b.tgz"), to: "/images/Test.HelloServer/builds", as: BuildRow.self)
    let cancelled = try await f.client.upload(
      try f.package("c.tgz"), to: "/images/Test.HelloServer/builds", as: BuildRow.self)
    try await Task.sleep(for: .milliseconds(500))
    #expect(try await f.client.get("/images/builds/\(hanging.id)", as: BuildRow.self).phase == "Pulling")
    #expect(try await f.client.get("/images/builds/\(queued.id)", as: BuildRow.self).phase == "Pending")
    let stopped = try f.client.decode(try await f.client.send(.DELETE, "/images/builds/\(cancelled.id)")) as BuildRow
    #expect(stopped.phase == "Cancelled" && stopped.message == "cancelled by admin", "\(stopped.message)")

    let timedOut = try await f.finished(hanging.id)
    #expect(timedOut.phase == "Cancelled" && timedOut.message.contains("maxBuildTime"), "\(timedOut.message)")
    let next = try await f.finished(queued.id)
    #expect(next.phase == "Done", "the queued build runs once the slot is free: \(next.message)")
    // The log can be read in parts: from a line on.
    let tail = try await f.client.get("/images/builds/\(next.id)?from=2", as: BuildRow.self)
    #expect(tail.logStart == 2 && tail.log == Array(next.log.dropFirst(2)))
    let ti = try await f.timage()
    #expect(ti.json[path: ["build", "last", "id"]]?.stringValue == next.id)
    silent.close()
    await f.stop()
  }

  @Test func twoReplicasNeverBuildOneServerAtOnce() async throws {
    let silent = try SilentListener()
    let f = try await Fixture(imageBuild: "{bases: {cpp: scratch, go: '127.0.0.1:\(silent.port)/base/go:1'}}")
    var options = f.images.options
    options.identity = "admin-1"
    let other = ImageService(store: f.store, namespace: "tars", options: options, log: { _ in })
    // admin-0 builds (and hangs); admin-1's build of the same server waits for the Lease.
    let first = try await f.images.submit(
      BuildRequest(
        server: "Test.HelloServer", serverType: "go", person: "a", setRelease: false,
        package: try f.package("a.tgz")))
    try await Task.sleep(for: .milliseconds(500))
    let second = try await other.submit(
      BuildRequest(
        server: "Test.HelloServer", serverType: "cpp", person: "b", setRelease: true,
        package: try f.package("b.tgz")))
    try await Task.sleep(for: .milliseconds(1500))
    #expect(await other.state(second.id)?.phase == .waiting)
    let lease = try await f.store.get(.leases, namespace: "tars", name: "tars-image-test-helloserver")
    #expect(lease.spec?["holderIdentity"]?.stringValue == "admin-0/\(first.id)")
    _ = await f.images.cancel(first.id, by: "test")
    var done: BuildState?
    for _ in 0..<300 {
      done = await other.state(second.id)
      if done?.phase.finished == true { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    #expect(done?.phase == .done, "\(done?.message ?? "")")
    #expect(await f.images.state(first.id)?.phase == .cancelled)
    #expect(try await f.tserver().spec?[path: ["release", "id"]]?.stringValue == second.id)
    silent.close()
    await f.stop()
  }
  @Test func aBuildThatLosesItsLeaseStopsAndSaysSo() async throws {
    let silent = try SilentListener()
    let f = try await Fixture(imageBuild: "{bases: {go: '127.0.0.1:\(silent.port)/base/go:1'}}")
    let build = try await f.images.submit(
      BuildRequest(
        server: "Test.HelloServer", serverType: "go", person: "a", setRelease: true, package: try f.package()))
    try await Task.sleep(for: .milliseconds(500))
    // Someone else takes the Lease (as a replica would after this one stopped renewing).
    var lease = try await f.store.get(.leases, namespace: "tars", name: "tars-image-test-helloserver")
    #expect(lease.spec?["holderIdentity"]?.stringValue == "admin-0/\(build.id)")
    lease.json.set(["spec", "holderIdentity"], .string("admin-1/other"))
    _ = try await f.store.update(.leases, lease, status: false)
    var state: BuildState?
    for _ in 0..<200 {
      state = await f.images.state(build.id)
      if state?.phase.finished == true { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    #expect(state?.phase == .failed, "\(state?.message ?? "")")
    #expect(state?.message.contains("lost the Lease tars-image-test-helloserver") == true, "\(state?.message ?? "")")
    #expect(try await f.tserver().spec?[path: ["release", "id"]]?.stringValue == "old")
    silent.close()
    await f.stop()
  }
}

/// A TCP listener that completes connections (the kernel does) and never answers a byte.
final class SilentListener: Sendable {
  let fd: Int32
  let port: Int

  init() throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    self.fd = fd
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, 16) == 0 else { throw ImageError("cannot listen: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    self.port = Int(UInt16(bigEndian: address.sin_port))
  }

  func close() { _ = Glibc.close(fd) }
}
