// A stand-in business server for tarsnode's tests that talks to the node exactly as a TarsCpp
// server does (shared/reference/tars-protocol.md §5.4): reads `--config=FILE`, binds AdminObj
// on `local=` before anything else, sends keepActiving (ONEWAY) while "initialising", then
// reportVersion and keepAlive("") (ONEWAY), then every interval one ONEWAY keepAlive per
// adapter plus AdminAdapter. Knobs, read from the <server> block of its config:
//   test-init-ms        how long initialisation takes (keepActiving every 500 ms meanwhile)
//   test-heartbeat-ms   heartbeat interval (TarsCpp: about 10 s)
// Admin commands: tars.viewstatus, tars.setloglevel X, tars.stopheartbeat, tars.exit N.
import Glibc
import TarsExampleHello
import TarsFramework
import TarsProtocol
import TarsRPC
import TarsTestSupport

func say(_ line: String) {
  let bytes = Array((line + "\n").utf8)
  _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

final class TestServer: AdminFServant {
  let config: TarsConfig
  let app: String
  let server: String
  let initMs: Int
  let heartbeatMs: Int
  let loop: TarsEventLoop
  let client: TarsClient
  var nodeProxy: TarsProxy?
  var servers: [TarsServer] = []
  var adapters: [String] = []
  var heartbeating = true
  var exitCode: Int32?

  init(config: TarsConfig) throws {
    self.config = config
    app = config["/tars/application/server<app>"] ?? ""
    server = config["/tars/application/server<server>"] ?? ""
    initMs = Int(config["/tars/application/server<test-init-ms>"] ?? "") ?? 0
    heartbeatMs = Int(config["/tars/application/server<test-heartbeat-ms>"] ?? "") ?? 10_000
    loop = try TarsEventLoop()
    client = TarsClient(loop: loop)
    if let node = config["/tars/application/server<node>"].flatMap({ try? TarsObjectAddress(parsing: $0) }) {
      nodeProxy = TarsProxy(client: client, address: node)
    }
    if let local = config["/tars/application/server<local>"], !local.isEmpty {
      servers.append(
        try TarsServer(loop: loop, endpoint: try TarsEndpoint(parsing: local), servants: ["AdminObj": self]))
    }
  }

  var info: ServerInfo { ServerInfo(application: app, serverName: server, pid: getpid(), adapter: "") }

  func send<M: TarsMethod>(_ m: M.Type, _ args: M.Args) { nodeProxy?.oneway(m, args, options: .init(timeoutMs: 5000)) }

  func bindAdapters() throws {
    for d in config.domain("/tars/application/server")?.subdomains ?? [] {
      guard let endpoint = d["endpoint"], let servant = d["servant"] else { continue }
      servers.append(
        try TarsServer(loop: loop, endpoint: try TarsEndpoint(parsing: endpoint), servants: [servant: HelloImp()]))
      adapters.append(d.name)
    }
  }

  func heartbeat() {
    if heartbeating {
      for a in ["AdminAdapter"] + adapters {
        var i = info
        i.adapter = a
        send(ServerF.KeepAlive.self, .init(serverInfo: i))
      }
    }
    loop.schedule(afterMilliseconds: heartbeatMs) { [unowned self] in heartbeat() }
  }

  func activing(until deadline: UInt64) {
    guard TarsEventLoop.now() < deadline else {
      do {
        try bindAdapters()
      } catch {
        say("cannot bind: \(error)")
        exitCode = 1
        return
      }
      send(ServerF.ReportVersion.self, .init(app: app, serverName: server, version: "test-1.0"))
      send(ServerF.KeepAlive.self, .init(serverInfo: info))
      say("test server \(app).\(server) started, pid \(getpid()), adapters \(adapters.joined(separator: ","))")
      for name in ["TARS_TEST_ECHO", "LD_LIBRARY_PATH"] {
        if let value = getenv(name) { say("\(name)=\(String(cString: value))") }
      }
      loop.schedule(afterMilliseconds: heartbeatMs) { [unowned self] in heartbeat() }
      return
    }
    send(ServerF.KeepActiving.self, .init(serverInfo: info))
    loop.schedule(afterMilliseconds: min(500, initMs)) { [unowned self] in activing(until: deadline) }
  }

  func run() -> Int32 {
    activing(until: TarsEventLoop.now() + UInt64(initMs) * 1_000_000)
    while exitCode == nil && !TestServer.terminated { loop.runOnce(timeoutMs: 100) }
    let code = exitCode ?? 0
    say("test server exiting with \(code)")
    return code
  }

  nonisolated(unsafe) static var terminated = false

  // AdminF
  func shutdown(current: TarsCurrent) throws {
    say("shutdown requested through AdminObj")
    exitCode = 0
  }

  func notify(command: String, current: TarsCurrent) throws -> String {
    let parts = command.split(separator: " ", maxSplits: 1).map(String.init)
    switch parts.first ?? "" {
    case "tars.viewstatus": return "[notify prefix object num:1]\n[1]:app=\(app) server=\(server) pid=\(getpid())\n"
    case "tars.setloglevel": return "[notify prefix object num:1]\n[1]:set log level [\(parts.last ?? "")] ok\n"
    case "tars.stopheartbeat":
      heartbeating = false
      return "heartbeats stopped"
    case "tars.exit":
      exitCode = Int32(parts.last ?? "1") ?? 1
      return "exiting"
    default: return ""
    }
  }

  func getPid(current: TarsCurrent) throws -> Int64 { Int64(getpid()) }
}

final class HelloImp: HelloServant {
  func testHello(sReq: String, current: TarsCurrent) throws -> Hello.TestHello.Result {
    .init(ret: 0, sRsp: "Hello \(sReq) from \(getpid())")
  }
}

var configPath = ""
for a in CommandLine.arguments.dropFirst() where a.hasPrefix("--config=") { configPath = String(a.dropFirst(9)) }
guard !configPath.isEmpty, let file = fopen(configPath, "r") else {
  say("usage: tars-test-server --config=FILE")
  exit(255)
}
var text = ""
var line = [CChar](repeating: 0, count: 4096)
while fgets(&line, 4096, file) != nil {
  text += String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
fclose(file)
signal(SIGTERM) { _ in TestServer.terminated = true }
do {
  exit(try TestServer(config: try TarsConfig(parsing: text)).run())
} catch {
  say("test server failed: \(error)")
  exit(1)
}
