import Foundation
import NIOPosix
import Synchronization
import TarsConfigService
import TarsEmbeddedStore
import TarsFramework
import TarsKube
import TarsNIO
import TarsNotifyService
import TarsProtocol
import TarsRegistry
import TarsStoreTestSupport
import TarsTestSupport
import Testing

/// deploy/registry/rbac.yaml and deploy/config/rbac.yaml grant exactly what the registry and
/// ConfigObj ask of the API: every request of a run through their calls is recorded and
/// compared with the Role, so a new call without its permission — or a permission nothing uses
/// — fails here instead of in a cluster.
@Suite("The registry's and ConfigObj's RBAC")
struct ServiceRBACTests {
  func compare(_ used: borrowing Mutex<Set<String>>, _ file: String) throws {
    let needed = used.withLock { $0 }
    let role = try RoleGrants.granted(file)
    #expect(
      role == needed,
      "\(file): granted but unused: \(role.subtracting(needed).sorted()); used but not granted: \(needed.subtracting(role).sorted())"
    )
    #expect(!(try RoleGrants.documents(file)).contains { $0["kind"] as? String == "ClusterRole" })
  }

  @Test func theRegistryRoleGrantsWhatTheRegistryUsesAndNothingElse() async throws {
    let used = Mutex<Set<String>>([])
    let f = try await RegistryFixture.start { store in
      ObservedStore(store) { verb, resource in used.withLock { _ = $0.insert("\(verb) \(resource)") } }
    }
    try await f.addPod("test-helloserver-0", ip: "127.0.0.1")
    #expect(await eventually { try f.query("Test.HelloServer.HelloObj").inactiveEp.count == 1 })
    try f.report("test-helloserver-0", "Active", "Active")
    #expect(await eventually { try f.query("Test.HelloServer.HelloObj").activeEp.count == 1 })
    let s = try RawSocket(port: f.registryPort)
    s.send(
      Registry.GetServerDescriptor.request(
        servant: "tars.tarsregistry.RegistryObj", .init(serverApp: "Test", serverName: "HelloServer")))
    let descriptor = try #require(s.readResponse())
    #expect(try Registry.GetServerDescriptor.result(from: descriptor).ret == 0)
    // The registry's own pod: its readiness gate.
    try await f.addPod("tars-tarsregistry-0", ip: "127.0.0.2")
    await f.service.activateOwnPod("tars-tarsregistry-0", log: { _ in })
    let own = try await f.store.get(.pods, namespace: "tars", name: "tars-tarsregistry-0")
    #expect(own.condition("tars.io/active")?["status"]?.stringValue == "True")
    try await f.store.delete(.pods, namespace: "tars", name: "test-helloserver-0")
    #expect(await eventually { try f.query("Test.HelloServer.HelloObj").inactiveEp.isEmpty })
    await f.service.stop()
    try compare(used, "registry/rbac.yaml")
  }

  @Test func theConfigRoleGrantsWhatConfigObjUsesAndNothingElse() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    var pod = KubeObject(
      .pods, namespace: "tars", name: "test-helloserver-1",
      labels: ["tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer"])
    pod.json = pod.json.setting(path: ["status", "podIP"], .string("127.0.0.1"))
    _ = try await store.create(.pods, pod)
    _ = try await store.create(.tconfigs, tconfig(named: "hello-m", podSeq: "m", content: "k=master"))
    _ = try await store.create(.tconfigs, tconfig(named: "hello-1", podSeq: "1", content: "k=pod1"))
    let used = Mutex<Set<String>>([])
    let observed = ObservedStore(store) { verb, resource in used.withLock { _ = $0.insert("\(verb) \(resource)") } }
    // As `tars-controlplane config` runs it: with the pods informer (a caller's address → its pod).
    let pods = Informer(store: observed, resource: .pods, namespace: "tars", selector: .tarsServer)
    let service = ConfigService(store: observed, namespace: "tars", pods: pods)
    let tasks = [Task { await pods.run() }, Task { await service.run() }]
    let server = try await TarsNIOServer.start(
      endpoint: TarsEndpoint(host: "127.0.0.1", port: 0, timeout: 60000),
      servants: ["tars.tarsconfig.ConfigObj": service], group: MultiThreadedEventLoopGroup.singleton)
    #expect(await eventually { service.configs.hasSynced && pods.hasSynced })
    func call<M: TarsMethod>(_: M.Type, _ args: M.Args) throws -> M.Result {
      let s = try RawSocket(port: server.port)
      s.send(M.request(servant: "tars.tarsconfig.ConfigObj", args))
      guard let r = s.readResponse() else { throw TarsServantError("no reply") }
      return try M.result(from: r)
    }
    let loaded = try call(Config.LoadConfig.self, .init(app: "Test", server: "HelloServer", filename: "hello.conf"))
    #expect(loaded.ret == 0)
    _ = try call(Config.ListConfig.self, .init(app: "Test", server: "HelloServer"))
    try await server.close()
    for t in tasks { t.cancel() }
    try compare(used, "config/rbac.yaml")
  }

  @Test func theNotifyRoleGrantsWhatNotifyObjUsesAndNothingElse() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    let used = Mutex<Set<String>>([])
    let observed = ObservedStore(store) { verb, resource in used.withLock { _ = $0.insert("\(verb) \(resource)") } }
    let notify = NotifyService(store: observed, namespace: "tars")
    let task = Task { await notify.run() }
    for _ in 0..<2 {
      notify.record(
        .init(server: "Test.HelloServer", source: "", level: 0, message: "restart", time: Date(), isAlarm: false))
    }
    #expect(await eventually { notify.queued == 0 && notify.recent().count == 1 })
    task.cancel()
    try compare(used, "notify/rbac.yaml")
  }

  func tconfig(named name: String, podSeq: String, content: String) -> KubeObject {
    KubeObject(
      .object([
        ("apiVersion", .string("k8s.tars.io/v1beta3")), ("kind", .string("TConfig")),
        ("metadata", .object([("name", .string(name)), ("namespace", .string("tars"))])),
        ("app", .string("Test")), ("server", .string("HelloServer")), ("podSeq", .string(podSeq)),
        ("configName", .string("hello.conf")), ("version", .string("1")), ("configContent", .string(content)),
        ("activated", .bool(true)),
      ]))
  }
}
