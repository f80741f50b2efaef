import Foundation
import Synchronization
import TarsController
import TarsEmbeddedStore
import TarsKube
import TarsProtocol
import TarsStoreTestSupport
import TarsTestSupport
import Testing

/// deploy/controller/rbac.yaml grants exactly what the controller asks of the API: every
/// request of a run through every path (create, update, the daemonSet switch, an invalid
/// TServer, a missing template, a foreign object, delete, leader election and its release) is
/// recorded and compared with the Role, so a new call without its permission — or a permission
/// nothing uses — fails here instead of in a cluster.
@Suite("The controller's RBAC", .serialized)
struct RBACTests {
  /// The Role's grants and (for --node-labels, in nodes.yaml) the ClusterRole's.
  func granted() throws -> Set<String> {
    let docs = try RoleGrants.documents("controller/rbac.yaml")
    #expect(!docs.contains { $0["kind"] as? String == "ClusterRole" }, "namespaced, but for nodes.yaml")
    return try RoleGrants.granted("controller/rbac.yaml", "controller/nodes.yaml")
  }

  @Test func theRoleGrantsWhatTheControllerUsesAndNothingElse() async throws {
    let store = try EmbeddedStore(path: nil, crdRules: false)
    try await seed(store)
    let used = Mutex<Set<String>>([])
    let observed = ObservedStore(store) { verb, resource in used.withLock { _ = $0.insert("\(verb) \(resource)") } }
    var c = Controller.Configuration(namespace: "tars", workload: options)
    c.resyncSeconds = 1
    c.manageNodeLabels = true
    let controller = Controller(store: observed, configuration: c, log: { _ in })
    var timing = LeaderElector.Timing()
    timing.retry = .milliseconds(100)
    let elector = LeaderElector(
      store: observed, namespace: "tars", name: "tars-controller", identity: "a", timing: timing, log: { _ in })
    let task = Task { await elector.run { await controller.run() } }

    func create(_ name: String, _ spec: String) async throws { try await createTServer(store, spec, name: name) }
    func change(_ name: String, _ body: (inout KubeObject) -> Void) async throws {
      var o = try await store.get(.tservers, namespace: "tars", name: name)
      body(&o)
      _ = try await store.update(.tservers, o, status: false)
    }
    func condition(_ name: String) async -> String? {
      try? await store.get(.tservers, namespace: "tars", name: name).status?["conditions"]?.arrayValue?.first?[
        "reason"]?
        .stringValue
    }
    func exists(_ r: KubeResource, _ name: String) async -> Bool {
      (try? await store.get(r, namespace: "tars", name: name)) != nil
    }

    try await create("test-helloserver", ReconcilerTests.spec)
    #expect(await eventually { await exists(.services, "test-helloserver") })
    try await change("test-helloserver") {
      $0.json.set(
        ["spec", "tars", "servants"], .array([.object([("name", .string("HelloObj")), ("port", .integer(10002))])]))
      $0.json.set(["spec", "release", "image"], .string("hello:2"))
    }
    #expect(
      await eventually {
        try await store.get(.services, namespace: "tars", name: "test-helloserver").spec?["ports"]?.arrayValue?.first?[
          "port"]?.intValue == 10002
      })
    try await change("test-helloserver") { $0.json.set(["spec", "k8s", "daemonSet"], .bool(true)) }
    #expect(await eventually { await exists(.daemonSets, "test-helloserver") })
    try await change("test-helloserver") { $0.json.set(["spec", "release", "image"], .string("hello:3")) }
    #expect(
      await eventually {
        try await store.get(.daemonSets, namespace: "tars", name: "test-helloserver").spec?[
          path: ["template", "spec", "containers"]]?.arrayValue?.first?["image"]?.stringValue == "hello:3"
      })
    try await create(
      "test-broken",
      ReconcilerTests.spec.replacingOccurrences(of: "HelloServer", with: "Broken").replacingOccurrences(
        of: "10001", with: "19386"))
    try await create(
      "test-waiting",
      ReconcilerTests.spec.replacingOccurrences(of: "HelloServer", with: "Waiting").replacingOccurrences(
        of: "tars.default", with: "tars.none"))
    _ = try await store.create(.services, KubeObject(.services, namespace: "tars", name: "test-foreign"))
    try await create("test-foreign", ReconcilerTests.spec.replacingOccurrences(of: "HelloServer", with: "Foreign"))
    #expect(await eventually { await condition("test-broken") == "InvalidSpec" })
    #expect(await eventually { await condition("test-waiting") == "TemplateMissing" })
    #expect(await eventually { await condition("test-foreign") == "NotOwned" })
    // The TFrameworkConfig's history limit: the controller deletes the oldest inactive version.
    _ = try await store.create(
      .tframeworkconfigs, frameworkConfig([("recordLimit", .object([("tconfigHistory", .integer(1))]))]))
    for name in ["hello-a", "hello-b"] { _ = try await store.create(.tconfigs, tconfig(name, activated: false)) }
    #expect(
      await eventually { try await store.list(.tconfigs, namespace: "tars", options: ListOptions()).items.count == 1 })
    // A node given to the namespace gets the aggregate label.
    _ = try await store.create(
      .nodes, KubeObject(.nodes, namespace: nil, name: "n1", labels: ["tars.io/node.tars": ""]))
    #expect(await eventually { try await store.get(.nodes, namespace: nil, name: "n1").labels["tars.io/node"] == "" })
    try await store.delete(.tservers, namespace: "tars", name: "test-helloserver")
    #expect(await eventually { !(await exists(.daemonSets, "test-helloserver")) })
    task.cancel()
    await task.value
    #expect(
      try await store.get(.leases, namespace: "tars", name: "tars-controller").spec?["holderIdentity"]?.stringValue
        == "")

    let needed = used.withLock { $0 }
    let role = try granted()
    #expect(
      role == needed,
      "granted but unused: \(role.subtracting(needed).sorted()); used but not granted: \(needed.subtracting(role).sorted())"
    )
  }
}
