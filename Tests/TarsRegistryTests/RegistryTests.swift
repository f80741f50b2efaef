import Foundation
import NIOPosix
import TarsCtlCore
import TarsEmbeddedStore
import TarsFramework
import TarsKube
import TarsProtocol
import TarsRPC
import TarsRegistry
import TarsTestSupport
import Testing

/// A registry on an embedded store with the namespace, a template and a TServer.
struct RegistryFixture {
  let store: EmbeddedStore
  let service: RegistryService
  let ns = "tars"

  /// `serving` wraps the store the service runs on (to record what it asks of the API).
  static func start(
    hostStyle: HostStyle = .ip, serving: (EmbeddedStore) -> any ObjectStore = { $0 }
  ) async throws -> RegistryFixture {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    _ = try await store.create(
      .ttemplates,
      KubeObject(
        .ttemplates, namespace: "tars", name: "tars.default",
        spec: .object([
          (
            "content",
            .string(
              "<tars>\n<application>\n<client>\nlocator=${locator}\nasyncthread=3\n</client>\n</application>\n</tars>\n"
            )
          ),
          ("parent", .string("tars.default")),
        ])))
    _ = try await store.create(.tservers, tserver(app: "Test", server: "HelloServer", port: 20001))
    var c = RegistryService.Configuration(namespace: "tars")
    c.bindHost = "127.0.0.1"
    c.queryPort = 0
    c.registryPort = 0
    c.metricsPort = 0
    c.hostStyle = hostStyle
    let service = try await RegistryService.start(
      store: serving(store), configuration: c, group: MultiThreadedEventLoopGroup.singleton, log: { _ in })
    let fixture = RegistryFixture(store: store, service: service)
    #expect(await eventually { service.view.hasSynced })
    return fixture
  }

  static func tserver(app: String, server: String, port: Int64, template: String = "tars.default") -> KubeObject {
    KubeObject(
      .tservers, namespace: "tars", name: ServerSpec.resourceName(app: app, server: server),
      labels: ["tars.io/ServerApp": app, "tars.io/ServerName": server],
      spec: .object([
        ("app", .string(app)), ("server", .string(server)), ("subType", .string("tars")),
        (
          "tars",
          .object([
            ("template", .string(template)),
            (
              "profile", .string("<tars>\n<application>\n<server>\nlogLevel=INFO\n</server>\n</application>\n</tars>\n")
            ),
            ("asyncThread", .integer(3)),
            (
              "servants",
              .array([
                .object([
                  ("name", .string("HelloObj")), ("port", .integer(port)), ("thread", .integer(3)),
                  ("connection", .integer(10000)), ("capacity", .integer(10000)), ("timeout", .integer(60000)),
                  ("isTars", .bool(true)), ("isTcp", .bool(true)),
                ])
              ])
            ),
          ])
        ),
      ]))
  }

  /// A pod as the StatefulSet controller and kubelet would leave it: labels and an IP.
  func addPod(_ name: String, ip: String) async throws {
    var pod = KubeObject(
      .pods, namespace: ns, name: name, labels: ["tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer"],
      spec: .object([("containers", .array([.object([("name", .string("main")), ("image", .string("x"))])]))]))
    pod = try await store.create(.pods, pod)
    _ = try await store.patch(
      .pods, namespace: ns, name: name, .merge(.object([("status", .object([("podIP", .string(ip))]))])), status: true)
  }

  var queryPort: Int { service.query.port }
  var registryPort: Int { service.registry.port }
  var locator: String { "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p \(queryPort)" }

  /// Sends `updateServerState` the way tarsnode does.
  func report(_ pod: String, _ setting: String, _ present: String) throws {
    let socket = try RawSocket(port: registryPort)
    var request = Registry.UpdateServerState.request(
      servant: "tars.tarsregistry.RegistryObj",
      .init(podName: pod, settingState: setting, presentState: present))
    request.context = ["PID": "4242"]
    socket.send(request)
    #expect(socket.readResponse()?.iRet == 0)
  }

  func query(_ id: String) throws -> QueryF.FindObjectByIdInSameGroup.Result {
    let socket = try RawSocket(port: queryPort)
    socket.send(QueryF.FindObjectByIdInSameGroup.request(servant: "tars.tarsregistry.QueryObj", .init(id: id)))
    let response = try #require(socket.readResponse())
    return try QueryF.FindObjectByIdInSameGroup.result(from: response)
  }
}

func eventually(_ seconds: Double = 15, _ condition: () async throws -> Bool) async -> Bool {
  let deadline = Date().addingTimeInterval(seconds)
  while Date() < deadline {
    if (try? await condition()) == true { return true }
    try? await Task.sleep(for: .milliseconds(10))
  }
  return false
}

@Suite("Registry end to end on the embedded store")
struct RegistryTests {
  @Test func aPodReportedActiveIsFoundAndLeavesWhenDeactivatingOrDeleted() async throws {
    let f = try await RegistryFixture.start()
    defer { Task { await f.service.stop() } }
    try await f.addPod("test-helloserver-0", ip: "127.0.0.1")
    // Deployed but not yet reported: inactive.
    #expect(await eventually { try f.query("Test.HelloServer.HelloObj").inactiveEp.count == 1 })

    try f.report("test-helloserver-0", "Active", "Active")
    #expect(await eventually { try f.query("Test.HelloServer.HelloObj").activeEp.count == 1 })
    let found = try f.query("Test.HelloServer.HelloObj")
    #expect(found.ret == 0 && found.activeEp.first?.host == "127.0.0.1" && found.activeEp.first?.port == 20001)
    #expect(found.activeEp.first?.timeout == 60000 && found.activeEp.first?.istcp == 1)
    let pod = try await f.store.get(.pods, namespace: "tars", name: "test-helloserver-0")
    #expect(pod.condition("tars.io/active")?["reason"]?.stringValue == "Active/Active/4242")

    // findObjectById (active only), through the POSIX client.
    let socket = try RawSocket(port: f.queryPort)
    socket.send(
      QueryF.FindObjectById.request(servant: "tars.tarsregistry.QueryObj", .init(id: "Test.HelloServer.HelloObj")))
    let byID = try QueryF.FindObjectById.result(from: try #require(socket.readResponse()))
    #expect(byID.ret.map(\.host) == ["127.0.0.1"])

    // tarsctl query shows it.
    let ctl = try TarsCtl().query(locator: "tcp -h 127.0.0.1 -p \(f.queryPort)", name: "Test.HelloServer.HelloObj")
    #expect(ctl.active.count == 1 && ctl.inactive.isEmpty)
    let tool = try Tool.run(
      "tarsctl", ["query", "--locator", "tcp -h 127.0.0.1 -p \(f.queryPort)", "Test.HelloServer.HelloObj"])
    #expect(tool.status == 0 && tool.stdout.contains("127.0.0.1") && tool.stdout.contains("20001"), "\(tool)")

    try f.report("test-helloserver-0", "Active", "Deactivating")
    #expect(await eventually { try f.query("Test.HelloServer.HelloObj").inactiveEp.count == 1 })
    #expect(try f.query("Test.HelloServer.HelloObj").activeEp.isEmpty)

    try await f.store.delete(.pods, namespace: "tars", name: "test-helloserver-0")
    #expect(
      await eventually {
        let r = try f.query("Test.HelloServer.HelloObj")
        return r.activeEp.isEmpty && r.inactiveEp.isEmpty
      })
  }

  @Test func unknownIdsAndBuiltinsAndUpChain() async throws {
    let f = try await RegistryFixture.start()
    defer { Task { await f.service.stop() } }
    for bad in ["", "a.b", "a.b.c.d", "..", "Nope.Server.Obj", "Test.HelloServer.NoSuchObj"] {
      let r = try f.query(bad)
      #expect(r.ret == 0 && r.activeEp.isEmpty && r.inactiveEp.isEmpty, "\(bad)")
    }
    let own = try f.query("tars.tarsregistry.QueryObj")
    #expect(own.activeEp.first?.host == "tars-tarsregistry" && own.activeEp.first?.timeout == 6000)
    // upChain from the TFrameworkConfig: per id, else default.
    _ = try await f.store.create(
      .tframeworkconfigs,
      KubeObject(
        .object([
          ("apiVersion", .string("k8s.tars.io/v1beta3")), ("kind", .string("TFrameworkConfig")),
          ("metadata", .object([("name", .string("tars-framework")), ("namespace", .string("tars"))])),
          (
            "upChain",
            .object([
              ("Legacy.Server.Obj", .array([.object([("host", .string("10.1.1.1")), ("port", .integer(9000))])])),
              ("default", .array([.object([("host", .string("10.2.2.2")), ("port", .integer(17890))])])),
            ])
          ),
        ])))
    #expect(await eventually { try f.query("Legacy.Server.Obj").activeEp.first?.host == "10.1.1.1" })
    let legacy = try f.query("Legacy.Server.Obj").activeEp.first
    #expect(legacy?.port == 9000 && legacy?.timeout == 6000 && legacy?.istcp == 1)
    #expect(try f.query("Other.Server.Obj").activeEp.first?.host == "10.2.2.2")
    // A TServer in the cluster wins over the upChain, even with no pods.
    #expect(try f.query("Test.HelloServer.HelloObj").activeEp.isEmpty)
  }

  @Test func capturedTarsCppRequestsGetRepliesShapedLikeTheCaptures() async throws {
    let f = try await RegistryFixture.start()
    defer { Task { await f.service.stop() } }
    try await f.addPod("test-helloserver-0", ip: "127.0.0.1")
    try f.report("test-helloserver-0", "Active", "Active")
    #expect(await eventually { try f.query("Test.HelloServer.HelloObj").activeEp.count == 1 })
    func capture(_ name: String) throws -> [UInt8] {
      let text = try String(contentsOf: Fixtures.url("vectors/captures/\(name).hex"), encoding: .utf8)
      return Fixtures.bytes(hex: String(text.split(separator: "\n").first { !$0.hasPrefix("#") }!))
    }
    for (request, expected) in [
      ("registry_findObjectByIdInSameGroup_client_req", "registry_findObjectByIdInSameGroup_rsp_synthetic"),
      ("registry_findObjectById_req", "registry_findObjectById_rsp_synthetic"),
    ] {
      let socket = try RawSocket(port: f.queryPort)
      socket.send(try capture(request))
      let reply = try #require(socket.readResponse(), "\(request)")
      let want = try ResponsePacket(tarsBytes: Array(try capture(expected).dropFirst(4)))
      #expect(reply.iRequestId == want.iRequestId && reply.iRet == 0 && reply.iVersion == 1)
      // The captured replies come from a stand-in registry that leaves out optional fields at
      // their defaults; ours writes every field, as K8SFramework's TarsCpp registry does. Both
      // are what TarsCpp clients accept: the same values, and every captured field present.
      #expect(try typedEndpoints(reply.sBuffer) == typedEndpoints(want.sBuffer), "\(request)")
      #expect(
        try contains(TarsValue.decodeFields(reply.sBuffer), TarsValue.decodeFields(want.sBuffer)),
        "\(request): \(Hex.encode(reply.sBuffer)) vs \(Hex.encode(want.sBuffer))")
    }
    // findObjectById4Any as TarsCpp's sync call sends it (out-params encoded).
    let socket = try RawSocket(port: f.queryPort)
    socket.send(try capture("registry_findObjectById4Any_req"))
    let any = try QueryF.FindObjectById4Any.result(from: try #require(socket.readResponse()))
    #expect(any.ret == 0 && any.activeEp.count == 1)
  }

  /// The endpoint lists of a findObjectById or findObjectByIdInSameGroup reply, typed.
  func typedEndpoints(_ buffer: [UInt8]) throws -> [[EndpointF]] {
    if let byID = try? QueryF.FindObjectById.Result(tarsBytes: buffer), !byID.ret.isEmpty { return [byID.ret] }
    let r = try QueryF.FindObjectByIdInSameGroup.Result(tarsBytes: buffer)
    return [r.activeEp, r.inactiveEp]
  }

  /// Every field of `subset` is in `fields` with a value that contains it in turn.
  func contains(_ fields: [TarsField], _ subset: [TarsField]) -> Bool {
    subset.allSatisfy { want in
      guard let have = fields.first(where: { $0.tag == want.tag }) else { return false }
      return contains(have.value, want.value)
    }
  }

  func contains(_ have: TarsValue, _ want: TarsValue) -> Bool {
    switch (have, want) {
    case (.structure(let h), .structure(let w)): return contains(h, w)
    case (.list(let h), .list(let w)): return h.count == w.count && zip(h, w).allSatisfy { contains($0, $1) }
    default: return have == want
    }
  }

  @Test func malformedFramesUnknownFunctionsAndHugeRequests() async throws {
    let f = try await RegistryFixture.start()
    defer { Task { await f.service.stop() } }
    // Unknown function: −3; unknown servant: −4; undecodable arguments: −1.
    var s = try RawSocket(port: f.queryPort)
    s.send(makeRequest(id: 7, servant: "tars.tarsregistry.QueryObj", function: "nope"))
    #expect(s.readResponse()?.iRet == -3)
    s.send(makeRequest(id: 8, servant: "Nope.Obj", function: "findObjectById"))
    #expect(s.readResponse()?.iRet == -4)
    s.send(makeRequest(id: 9, servant: "tars.tarsregistry.QueryObj", function: "findObjectById", args: [0xFF, 0xFF]))
    #expect(s.readResponse()?.iRet == -1)
    // Garbage and an oversized length close the connection; the registry keeps serving.
    s.send([0, 0, 0, 9, 1, 2, 3, 4, 5])
    #expect(s.isClosedByPeer())
    s = try RawSocket(port: f.queryPort)
    s.send([0x7F, 0xFF, 0xFF, 0xFF])
    #expect(s.isClosedByPeer())
    #expect(try f.query("Test.HelloServer.HelloObj").ret == 0)
    // A bad state is refused with the reason; an unknown pod is ignored.
    let r = try RawSocket(port: f.registryPort)
    r.send(
      Registry.UpdateServerState.request(
        servant: "tars.tarsregistry.RegistryObj", .init(podName: "x", settingState: "Running", presentState: "Active")))
    let refused = r.readResponse()
    #expect(refused?.iRet == -1 && refused?.sResultDesc.contains("unknown state") == true)
    try f.report("not-a-tars-pod", "Active", "Active")
    #expect(await eventually { f.service.view.metrics.refusedReports.load(ordering: .relaxed) == 1 })
  }

  @Test func descriptorsFollowTheTemplateChain() async throws {
    let f = try await RegistryFixture.start()
    defer { Task { await f.service.stop() } }
    _ = try await f.store.create(
      .ttemplates,
      KubeObject(
        .ttemplates, namespace: "tars", name: "tars.cpp",
        spec: .object([
          ("content", .string("<tars>\n<application>\n<client>\nasyncthread=5\n</client>\n</application>\n</tars>\n")),
          ("parent", .string("tars.default")),
        ])))
    _ = try await f.store.create(
      .tservers, RegistryFixture.tserver(app: "Test", server: "CppServer", port: 20002, template: "tars.cpp"))
    _ = try await f.store.create(
      .tservers, RegistryFixture.tserver(app: "Test", server: "Orphan", port: 20003, template: "missing"))
    _ = try await f.store.create(
      .ttemplates,
      KubeObject(
        .ttemplates, namespace: "tars", name: "loop.a",
        spec: .object([("content", .string("")), ("parent", .string("loop.b"))])))
    _ = try await f.store.create(
      .ttemplates,
      KubeObject(
        .ttemplates, namespace: "tars", name: "loop.b",
        spec: .object([("content", .string("")), ("parent", .string("loop.a"))])))
    _ = try await f.store.create(
      .tservers, RegistryFixture.tserver(app: "Test", server: "Loopy", port: 20004, template: "loop.a"))
    #expect(
      await eventually {
        f.service.view.serverSpec(app: "Test", server: "Loopy") != nil && f.service.view.templateObjects().count == 4
      })

    func call(_ server: String) throws -> (ResponsePacket, Registry.GetServerDescriptor.Result?) {
      let s = try RawSocket(port: f.registryPort)
      s.send(
        Registry.GetServerDescriptor.request(
          servant: "tars.tarsregistry.RegistryObj", .init(serverApp: "Test", serverName: server)))
      guard let r = s.readResponse() else { throw TarsServantError("no reply to getServerDescriptor") }
      return (r, try? Registry.GetServerDescriptor.result(from: r))
    }
    let (_, cpp) = try call("CppServer")
    let d = try #require(cpp?.serverDescriptor)
    let config = try TarsConfig(parsing: d.profile)
    // The child template overrides its parent; the server's own profile stays.
    #expect(config.domain("/tars/application/client")?.params.first { $0.key == "asyncthread" }?.value == "5")
    #expect(config.domain("/tars/application/client")?.params.first { $0.key == "locator" }?.value == "${locator}")
    #expect(config.domain("/tars/application/server")?.params.first { $0.key == "logLevel" }?.value == "INFO")
    let adapter = try #require(d.adapters["Test.CppServer.HelloObjAdapter"])
    #expect(adapter.endpoint == "tcp -h ${localip} -p 20002 -t 60000" && adapter.servant == "Test.CppServer.HelloObj")
    #expect(adapter.protocol == "tars" && adapter.threadNum == 3 && adapter.queuecap == 10000)

    let (orphan, _) = try call("Orphan")
    #expect(orphan.iRet == -1 && orphan.sResultDesc.contains("template \"missing\""), "\(orphan.sResultDesc)")
    let (loopy, _) = try call("Loopy")
    #expect(loopy.iRet == -1 && loopy.sResultDesc.contains("template cycle: loop.a → loop.b → loop.a"))
    let (none, _) = try call("NoSuchServer")
    #expect(none.iRet == -1 && none.sResultDesc.contains("no TServer test-nosuchserver"))
  }
}
