import Foundation
import Glibc
import TarsExampleHello
import TarsFramework
import TarsImage
import TarsProtocol
import TarsTestSupport
import Testing

/// The image run for real by runc, as a kubelet's runtime would: tarsnode as PID 1 supervising
/// the example HelloServer (both static, nothing else in the image), answering a Tars call,
/// and stopping on SIGTERM with the server's exit status.
@Suite("An image run by runc", .serialized)
struct RuncTests {
  static let tarsnode = Fixtures.repositoryRoot.appendingPathComponent(".build-static/tarsnode").path
  static let hello = Fixtures.repositoryRoot.appendingPathComponent(".build-static-hello/HelloServer").path
  static var ready: Bool {
    getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc")
      && FileManager.default.isExecutableFile(atPath: "/usr/bin/umoci")
      && FileManager.default.isExecutableFile(atPath: tarsnode) && FileManager.default.isExecutableFile(atPath: hello)
  }

  @Test(
    .enabled(
      if: ready,
      "needs root, runc, umoci, and the static builds (scripts/build-tarsnode, scripts/build-hello-static)"))
  func tarsnodeRunsHelloServerInRunc() async throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let (adapter, serverObj, nodeObj, admin) = (freePort(), freePort(), freePort(), freePort())
    // The package, as an operator ships it: the binary and what tarsnode needs to run it
    // without a registry (the descriptor the registry would answer).
    let top = dir.file("HelloServer")
    try FileManager.default.createDirectory(atPath: top, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: Self.hello, toPath: top + "/HelloServer")
    try #"""
    {"profile": "<tars>\n<application>\n<server>\nhearttimeout=60\n</server>\n</application>\n</tars>\n",
     "asyncThreadNum": 1,
     "adapters": {"Test.HelloServer.HelloObjAdapter":
       {"endpoint": "tcp -h ${localip} -p \#(adapter) -t 60000", "servant": "Test.HelloServer.HelloObj"}}}
    """#.write(toFile: top + "/descriptor.json", atomically: true, encoding: .utf8)
    let tar = try Tool.run("/usr/bin/tar", ["czf", dir.file("HelloServer.tgz"), "-C", dir.path, "HelloServer"])
    #expect(tar.status == 0, "\(tar.stderr)")

    var build = ImageBuild()
    build.package = dir.file("HelloServer.tgz")
    build.server = "Test.HelloServer"
    build.serverType = "cpp"
    build.tarsnode = Self.tarsnode
    build.env = ["ServerApp=Test", "ServerName=HelloServer", "PodName=test-helloserver-0", "PodIP=127.0.0.1"]
    build.entrypoint = [
      "/usr/local/bin/tarsnode", "--descriptor", "/usr/local/server/bin/descriptor.json", "--registry",
      "tars.tarsregistry.RegistryObj@tcp -h 127.0.0.1 -p 1", "--server-obj-port", "\(serverObj)", "--node-obj-port",
      "\(nodeObj)", "--admin-port", "\(admin)", "--grace", "5",
    ]
    _ = try build.build(into: try ImageLayout(path: dir.file("layout")), tag: "hello-1")
    let unpack = try Tool.run(
      "/usr/bin/umoci", ["unpack", "--image", dir.file("layout") + ":hello-1", dir.file("bundle")])
    #expect(unpack.status == 0, "\(unpack.stderr)")

    // The host's network (the test calls it on 127.0.0.1); everything else as umoci made it.
    let configURL = URL(fileURLWithPath: dir.file("bundle/config.json"))
    var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
    var linux = try #require(config["linux"] as? [String: Any])
    linux["namespaces"] = (linux["namespaces"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != "network" }
    config["linux"] = linux
    var process = try #require(config["process"] as? [String: Any])
    process["terminal"] = false
    process.removeValue(forKey: "oomScoreAdj")
    config["process"] = process
    try JSONSerialization.data(withJSONObject: config).write(to: configURL)

    let id = "tars-test-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
    let runc = Process()
    runc.executableURL = URL(fileURLWithPath: "/usr/sbin/runc")
    runc.arguments = ["run", "--bundle", dir.file("bundle"), id]
    let output = Pipe()
    runc.standardOutput = output
    runc.standardError = output
    try runc.run()
    defer {
      if runc.isRunning { _ = try? Tool.run("/usr/sbin/runc", ["kill", id, "KILL"]) }
      _ = try? Tool.run("/usr/sbin/runc", ["delete", "--force", id])
    }

    var answer = ""
    let answered = await eventually(30) {
      let s = try RawSocket(port: adapter)
      s.send(Hello.TestHello.request(servant: "Test.HelloServer.HelloObj", .init(sReq: "runc")))
      guard let r = s.readResponse() else { return false }
      answer = try Hello.TestHello.result(from: r).sRsp
      return true
    }
    let state = try Tool.run("/usr/sbin/runc", ["state", id])
    #expect(answered && answer == "Hello runc", "\(answer); runc state: \(state.stdout)")
    #expect(state.stdout.contains("\"status\": \"running\""))
    let pid1 = (try? JSONSerialization.jsonObject(with: Data(state.stdout.utf8)) as? [String: Any])?["pid"] as? Int
    let comm = try String(contentsOfFile: "/proc/\(pid1 ?? 0)/comm", encoding: .utf8)
    #expect(comm.hasPrefix("tarsnode"), "PID 1 in the container is tarsnode: \(comm)")

    // SIGTERM to the container's PID 1: tarsnode stops the server and exits with its status.
    let kill = try Tool.run("/usr/sbin/runc", ["kill", id, "TERM"])
    #expect(kill.status == 0, "\(kill.stderr)")
    let deadline = Date().addingTimeInterval(20)
    while runc.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
    let log = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
    #expect(!runc.isRunning, "runc still runs 20 s after SIGTERM: \(log)")
    #expect(runc.terminationStatus == 0, "the server's exit status: \(log)")
  }
}

func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async -> Bool {
  let deadline = Date().addingTimeInterval(seconds)
  while Date() < deadline {
    if (try? await condition()) == true { return true }
    try? await Task.sleep(for: .milliseconds(100))
  }
  return false
}
