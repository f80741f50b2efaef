import Foundation
import TarsAgentF
import TarsAuth
import TarsProtocol
import TarsRPC
import TarsTestSupport
import Testing

/// The real `tarsagent` serving `tars.tarsagent.AgentObj`: signed calls for its node answer,
/// unsigned, wrongly signed and replayed ones are refused; ports and free ports are the node's.
/// One test at a time: each takes a free port for its agent, and two taken at once can be the same.
@Suite("tarsagent's AgentObj", .serialized)
struct AgentObjTests {
  let dir: TemporaryDirectory
  let secret: String
  let port = freePort()

  init() throws {
    dir = try TemporaryDirectory("agentobj")
    secret = dir.file("secret")
    try String(repeating: "ab", count: 16).write(toFile: secret, atomically: true, encoding: .utf8)
    try FileManager.default.createDirectory(atPath: dir.file("logs"), withIntermediateDirectories: true)
  }

  func start(_ extra: [String]) throws -> pid_t {
    try Spawned.start(
      [Tool.path("tarsagent"), "run", "--log-dir", dir.file("logs"), "--node", "node-a"] + extra,
      output: dir.file("agent.log"))
  }

  /// Sends `request` and decodes the answer, waiting (up to 20 s) for the agent to listen.
  func send<M: TarsMethod>(_ request: RequestPacket, as: M.Type) throws -> M.Result {
    let deadline = Date().addingTimeInterval(20)
    while (try? RawSocket(port: port)) == nil, Date() < deadline { usleep(50_000) }
    let loop = try TarsEventLoop()
    let proxy = TarsProxy(
      client: TarsClient(loop: loop),
      address: try TarsObjectAddress(parsing: "tars.tarsagent.AgentObj@tcp -h 127.0.0.1 -p \(port)"))
    var reply: Result<ResponsePacket, TarsCallError>?
    proxy.invoke(request, timeoutMs: 5000) { reply = $0 }
    _ = loop.run(until: { reply != nil }, timeoutMs: 10_000)
    return try M.result(from: try #require(try reply?.get()))
  }

  func signed<M: TarsMethod>(_ m: M.Type, _ args: M.Args, target: String = "node-a", key: String? = nil) throws
    -> RequestPacket
  {
    var r = M.request(servant: "tars.tarsagent.AgentObj", args)
    try NodeCallAuth(secretFile: key ?? secret).sign(&r, target: target, timestamp: unixTimeSeconds())
    return r
  }

  @Test func signedCallsForItsNodeSeeTheNodesPortsAndOthersAreRefused() throws {
    defer { dir.remove() }
    let held = try TarsTestSupport.ListeningSocket(host: "127.0.0.1")
    defer { held.close() }
    let agent = try start([
      "--listen", "127.0.0.1", "--port", "\(port)", "--secret-file", secret, "--metrics-port", "0",
    ])
    defer { Spawned.kill(agent) }

    let unsigned = try send(
      Agent.ListPorts.request(servant: "tars.tarsagent.AgentObj", .init()), as: Agent.ListPorts.self)
    #expect(unsigned.ret == -1 && unsigned.result.hasPrefix("refused"), "\(unsigned)")
    #expect(unsigned.ports.isEmpty)
    let otherNode = try send(signed(Agent.ListPorts.self, .init(), target: "node-b"), as: Agent.ListPorts.self)
    #expect(otherNode.ret == -1, "a signature for another node: \(otherNode)")

    let request = try signed(Agent.ListPorts.self, .init(allNamespaces: false))
    let listed = try send(request, as: Agent.ListPorts.self)
    #expect(listed.ret == 0, "\(listed)")
    let mine = try #require(listed.ports.first { $0.port == Int32(held.port) && $0.transport == "tcp" })
    #expect(mine.pids.contains(getpid()) && mine.address == "127.0.0.1" && mine.namespace == "host", "\(mine)")
    #expect(listed.ports.contains { $0.port == Int32(port) && $0.pids == [agent] }, "its own AgentObj port")
    let replayed = try send(request, as: Agent.ListPorts.self)
    #expect(replayed.ret == -1 && replayed.result.contains("replay"), "the same signed call twice: \(replayed)")

    let free = try send(
      signed(
        Agent.FreePorts.self, .init(transport: "tcp", first: Int32(held.port), last: Int32(held.port) + 50, count: 3)),
      as: Agent.FreePorts.self)
    #expect(free.ret == 0 && free.ports.count == 3 && !free.ports.contains(Int32(held.port)), "\(free)")
    let bad = try send(
      signed(Agent.FreePorts.self, .init(transport: "sctp", first: 1, last: 2, count: 1)), as: Agent.FreePorts.self)
    #expect(bad.ret == -3 && bad.result.contains("tcp or udp"), "\(bad)")
  }

  @Test func withoutASecretItServesOnlyOnLoopback() throws {
    defer { dir.remove() }
    let out = try Tool.run(
      Tool.path("tarsagent"), ["run", "--log-dir", dir.file("logs"), "--listen", "0.0.0.0", "--port", "\(port)"])
    #expect(out.status != 0)
    #expect(out.stderr.contains("--secret-file"), "\(out.stderr)")
    let agent = try start(["--listen", "127.0.0.1", "--port", "\(port)", "--metrics-port", "0"])
    defer { Spawned.kill(agent) }
    let open = try send(Agent.ListPorts.request(servant: "tars.tarsagent.AgentObj", .init()), as: Agent.ListPorts.self)
    #expect(open.ret == 0 && !open.ports.isEmpty, "\(open)")
  }

  @Test func metricsCountWhatRetentionDeletedAndTheNodesPorts() throws {
    defer { dir.remove() }
    // A 10-day-old log the first pass deletes, and a fresh one it keeps.
    let old = dir.file("logs/Test/HelloServer/Test.HelloServer_20261127.log")
    try FileManager.default.createDirectory(
      atPath: dir.file("logs/Test/HelloServer"), withIntermediateDirectories: true)
    try String(repeating: "x", count: 1000).write(toFile: old, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes(
      [.modificationDate: Date().addingTimeInterval(-10 * 86_400)], ofItemAtPath: old)
    try "fresh".write(toFile: dir.file("logs/Test/HelloServer/Test.HelloServer.log"), atomically: true, encoding: .utf8)
    let metricsPort = freePort()
    let agent = try start(["--listen", "127.0.0.1", "--port", "\(port)", "--metrics-port", "\(metricsPort)"])
    defer { Spawned.kill(agent) }
    var answer = ""
    for _ in 0..<50 where !answer.hasPrefix("HTTP/1.1 200") {
      answer = (try? RawSocket.httpGet(port: metricsPort, path: "/metrics")) ?? ""
      if !answer.hasPrefix("HTTP/1.1 200") { usleep(100_000) }
    }
    #expect(answer.hasPrefix("HTTP/1.1 200 OK"), "\(answer)")
    let lines = Set(answer.split(separator: "\n").map(String.init))
    for expected in [
      "tarsagent_retention_deleted_files_total{rule=\"age\"} 1",
      "tarsagent_retention_freed_bytes_total{rule=\"age\"} 1000",
      "tarsagent_retention_deleted_files_total{rule=\"pressure\"} 0", "tarsagent_log_files 1", "tarsagent_log_bytes 5",
      "tarsagent_retention_passes_total 1", "# TYPE tarsagent_retention_freed_bytes_total counter",
    ] {
      #expect(lines.contains(expected), "\(expected) in:\n\(answer)")
    }
    // AgentObj and /metrics themselves are listening TCP ports of the node.
    let tcp = try #require(lines.first { $0.hasPrefix("tarsagent_ports_in_use{transport=\"tcp\"} ") })
    #expect((Int(tcp.split(separator: " ").last ?? "") ?? 0) >= 2, "\(tcp)")
    #expect(!FileManager.default.fileExists(atPath: old))
    let other = try RawSocket.httpGet(port: metricsPort, path: "/")
    #expect(other.hasPrefix("HTTP/1.1 404"), "\(other)")
  }
}
