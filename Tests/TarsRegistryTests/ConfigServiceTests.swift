import Foundation
import NIOPosix
import TarsConfigService
import TarsEmbeddedStore
import TarsFramework
import TarsKube
import TarsNIO
import TarsProtocol
import TarsTestSupport
import Testing

@Suite("ConfigObj from TConfig objects")
struct ConfigServiceTests {
  func tconfig(
    _ name: String, app: String, server: String, podSeq: String = "m", file: String, content: String,
    activated: Bool = true
  )
    -> KubeObject
  {
    KubeObject(
      .object([
        ("apiVersion", .string("k8s.tars.io/v1beta3")), ("kind", .string("TConfig")),
        ("metadata", .object([("name", .string(name)), ("namespace", .string("tars"))])),
        ("app", .string(app)), ("server", .string(server)), ("podSeq", .string(podSeq)), ("configName", .string(file)),
        ("version", .string("1")), ("configContent", .string(content)), ("activated", .bool(activated)),
      ]))
  }

  @Test func servesAppServerAndPodFilesTheWayClientsAskForThem() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    for o in [
      tconfig("app-conf", app: "Test", server: "", file: "app.conf", content: "<app>\nk=app\n</app>"),
      tconfig("hello-old", app: "Test", server: "HelloServer", file: "hello.conf", content: "old", activated: false),
      tconfig("hello-m", app: "Test", server: "HelloServer", file: "hello.conf", content: "<a>\nk=master\n</a>"),
      tconfig(
        "hello-1", app: "Test", server: "HelloServer", podSeq: "1", file: "hello.conf", content: "<a>\nk=pod1\n</a>"),
      tconfig("broken", app: "Test", server: "HelloServer", file: "broken.conf", content: "<a>\nk=1\n"),
    ] { _ = try await store.create(.tconfigs, o) }
    let service = ConfigService(store: store, namespace: "tars")
    let task = Task { await service.run() }
    defer { task.cancel() }
    let server = try await TarsNIOServer.start(
      endpoint: TarsEndpoint(host: "127.0.0.1", port: 0, timeout: 60000),
      servants: ["tars.tarsconfig.ConfigObj": service], group: MultiThreadedEventLoopGroup.singleton)
    defer { Task { try? await server.close() } }
    #expect(await eventually { service.configs.hasSynced })

    func call<M: TarsMethod>(_: M.Type, _ args: M.Args) throws -> M.Result {
      let s = try RawSocket(port: server.port)
      s.send(M.request(servant: "tars.tarsconfig.ConfigObj", args))
      guard let r = s.readResponse() else { throw TarsServantError("no reply") }
      return try M.result(from: r)
    }
    // TarsCpp addConfig: loadConfig(app, server, file) — the master (the caller, 127.0.0.1, is no pod).
    let master = try call(Config.LoadConfig.self, .init(app: "Test", server: "HelloServer", filename: "hello.conf"))
    #expect(master.ret == 0 && master.config == "<a>\nk=master\n</a>")
    // From pod 1 (by name): master, then its own file.
    let byHost = try call(
      Config.LoadConfigByHost.self,
      .init(appServerName: "Test.HelloServer", filename: "hello.conf", host: "test-helloserver-1.test-helloserver"))
    #expect(byHost.ret == 0 && byHost.config == "<a>\nk=master\n</a>\r\n\r\n<a>\nk=pod1\n</a>")
    // addAppConfig: server "" (TarsGo: bAppOnly).
    #expect(
      try call(Config.LoadConfig.self, .init(app: "Test", server: "", filename: "app.conf")).config
        == "<app>\nk=app\n</app>")
    var info = ConfigInfo()
    info.appname = "Test"
    info.servername = "HelloServer"
    info.filename = "app.conf"
    info.bAppOnly = true
    #expect(try call(Config.LoadConfigByInfo.self, .init(configInfo: info)).config == "<app>\nk=app\n</app>")
    // Missing: ret −1, empty (clients keep their local copy).
    let missing = try call(Config.LoadConfig.self, .init(app: "Test", server: "HelloServer", filename: "nope.conf"))
    #expect(missing.ret == -1 && missing.config.isEmpty)
    #expect(
      try call(Config.ListConfig.self, .init(app: "Test", server: "HelloServer")).vf == ["broken.conf", "hello.conf"])
    var list = GetConfigListInfo()
    list.appname = "Test"
    list.bAppOnly = true
    #expect(try call(Config.ListAllConfigByInfo.self, .init(configInfo: list)).vf == ["app.conf"])
    let bad = try call(
      Config.CheckConfig.self, .init(appServerName: "Test.HelloServer", filename: "broken.conf", host: ""))
    #expect(bad.ret == -1 && bad.result.hasPrefix("broken.conf does not parse"))
    #expect(
      try call(Config.CheckConfig.self, .init(appServerName: "Test.HelloServer", filename: "hello.conf", host: "")).ret
        == 0)
  }
}
