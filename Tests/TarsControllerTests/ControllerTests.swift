import Foundation
import TarsController
import TarsEmbeddedStore
import TarsKube
import TarsProtocol
import TarsStoreTestSupport
import TarsTestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// Polls `condition` every 20 ms for up to `seconds`.
func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async -> Bool {
  let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
  while ContinuousClock.now < deadline {
    if (try? await condition()) == true { return true }
    try? await Task.sleep(for: .milliseconds(20))
  }
  return (try? await condition()) == true
}

@Suite("The work queue")
struct WorkQueueTests {
  @Test func aKeyIsQueuedOnceAndNeverWorkedOnTwiceAtOnce() async throws {
    let q = WorkQueue(baseDelayMs: 10)
    await q.add("a")
    await q.add("a")
    await q.add("b")
    #expect(await q.depth == 2)
    let first = await q.next()
    #expect(first == "a")
    await q.add("a")  // while "a" is worked on: not handed out again yet
    #expect(await q.next() == "b")
    #expect(await q.depth == 0)
    await q.done("a", failed: false)
    #expect(await q.next() == "a", "added during processing: handed out after")
    // A failure comes back after a delay that grows.
    await q.done("a", failed: true)
    #expect(await q.failureCount("a") == 1)
    #expect(await q.depth == 0)
    #expect(await q.next() == "a")
    await q.done("a", failed: false)
    #expect(await q.failureCount("a") == 0)
    await q.shutdown()
    #expect(await q.next() == nil)
  }
}

@Suite("The controller loop", .serialized)
struct ControllerTests {
  func start(_ store: EmbeddedStore, resyncSeconds: Int = 1) -> (Controller, Task<Void, Never>) {
    var c = Controller.Configuration(namespace: "tars", workload: options)
    c.resyncSeconds = resyncSeconds
    let controller = Controller(store: store, configuration: c, log: { _ in })
    return (controller, Task { await controller.run() })
  }

  func exists(_ store: EmbeddedStore, _ resource: KubeResource, _ name: String) async -> Bool {
    (try? await store.get(resource, namespace: "tars", name: name)) != nil
  }

  @Test func convergesOnChangesAndAfterARestart() async throws {
    let store = try EmbeddedStore(path: nil)
    try await seed(store)
    var (controller, task) = start(store)
    try await createTServer(store, ReconcilerTests.spec)
    #expect(await eventually { await exists(store, .statefulSets, "test-helloserver") })
    #expect(await eventually { await exists(store, .services, "test-helloserver") })

    // Someone deletes the StatefulSet: it comes back.
    try await store.delete(.statefulSets, namespace: "tars", name: "test-helloserver")
    #expect(await eventually { await exists(store, .statefulSets, "test-helloserver") })

    // Scaled while the controller is down: the next one converges from what is stored.
    task.cancel()
    await task.value
    var ts = try await store.get(.tservers, namespace: "tars", name: "test-helloserver")
    ts.json.set(["spec", "k8s", "replicas"], .integer(5))
    _ = try await store.update(.tservers, ts, status: false)
    (controller, task) = start(store)
    defer { task.cancel() }
    #expect(
      await eventually {
        try await store.get(.statefulSets, namespace: "tars", name: "test-helloserver").spec?["replicas"]?.intValue == 5
      })
    #expect(
      await eventually {
        try await store.get(.tservers, namespace: "tars", name: "test-helloserver").status?["observedGeneration"]?
          .intValue == 2
      })

    // Deleted: what it owned goes.
    try await store.delete(.tservers, namespace: "tars", name: "test-helloserver")
    #expect(await eventually { !(await exists(store, .statefulSets, "test-helloserver")) })
    #expect(await eventually { !(await exists(store, .services, "test-helloserver")) })
    let idle = controller.snapshot
    try await Task.sleep(for: .milliseconds(1500))
    #expect(controller.snapshot.writes == idle.writes, "a resync with nothing to do writes nothing")
    #expect(controller.snapshot.errors == 0)
  }

  /// A TServer waiting for its template goes on when the template is applied, without waiting
  /// for a resync (an hour here).
  @Test func aTemplateAppliedLaterUnblocksItsTServers() async throws {
    let store = try EmbeddedStore(path: nil)
    try await seed(store)
    let (_, task) = start(store, resyncSeconds: 3600)
    defer { task.cancel() }
    try await createTServer(store, ReconcilerTests.spec.replacingOccurrences(of: "tars.default", with: "tars.cpp"))
    #expect(
      await eventually {
        try await store.get(.tservers, namespace: "tars", name: "test-helloserver").status?["conditions"]?
          .arrayValue?.first?["reason"]?.stringValue == "TemplateMissing"
      })
    #expect(!(await exists(store, .statefulSets, "test-helloserver")))
    _ = try await store.create(.ttemplates, template("tars.cpp"))
    #expect(await eventually(5) { await exists(store, .statefulSets, "test-helloserver") })
  }
}

/// What the TFrameworkConfig `tars-framework` decides, as K8SFramework's webhook and TConfig
/// controller applied it: the node image and its pull secret, and how many inactive versions of
/// each config file are kept.
@Suite("The TFrameworkConfig's defaults", .serialized)
struct FrameworkConfigTests {
  func inactive(_ store: EmbeddedStore) async throws -> [String] {
    try await store.list(.tconfigs, namespace: "tars", options: ListOptions()).items.map(TConfig.init)
      .filter { !$0.activated }.map(\.object.name).sorted()
  }

  @Test func theNodeImageAndTheConfigHistoryComeFromIt() async throws {
    let store = try EmbeddedStore(path: nil)
    try await seed(store)
    var c = Controller.Configuration(namespace: "tars", workload: options)
    c.resyncSeconds = 3600
    let controller = Controller(store: store, configuration: c, log: { _ in })
    let task = Task { await controller.run() }
    defer { task.cancel() }
    try await createTServer(store, ReconcilerTests.spec)
    func initImage() async -> String? {
      try? await store.get(.statefulSets, namespace: "tars", name: "test-helloserver").spec?[
        path: ["template", "spec", "initContainers"]]?.arrayValue?.first?["image"]?.stringValue
    }
    #expect(await eventually { await initImage() == "registry.local/tars/node:1" }, "the flag's, without one")

    // Twelve inactive versions and the active one: the default history keeps ten.
    for i in 0..<12 { _ = try await store.create(.tconfigs, tconfig("hello-v\(i)", activated: false)) }
    _ = try await store.create(.tconfigs, tconfig("hello-now", activated: true))
    #expect(await eventually { try await inactive(store).count == 10 })
    let kept = try await inactive(store)
    #expect(!kept.contains("hello-v0") && !kept.contains("hello-v1"), "oldest first")

    let framework = frameworkConfig([
      ("nodeImage", .object([("image", .string("fw.local/tars/node:2")), ("secret", .string("fw-pull"))])),
      ("recordLimit", .object([("tconfigHistory", .integer(3))])),
    ])
    _ = try await store.create(.tframeworkconfigs, framework)
    #expect(await eventually { await initImage() == "fw.local/tars/node:2" }, "a change queues every TServer")
    let pullSecrets = try await store.get(.statefulSets, namespace: "tars", name: "test-helloserver").spec?[
      path: ["template", "spec", "imagePullSecrets"]]?.arrayValue?.compactMap { $0["name"]?.stringValue }
    #expect(pullSecrets == ["fw-pull"])
    _ = try await store.create(.tconfigs, tconfig("hello-v12", activated: false))
    #expect(await eventually { try await inactive(store) == ["hello-v10", "hello-v11", "hello-v12"] })
    #expect(try await store.get(.tconfigs, namespace: "tars", name: "hello-now").json["activated"] == .bool(true))
  }
}

@Suite("The aggregate node label")
struct NodeLabelTests {
  @Test func aNodeGivenToSomeNamespaceCarriesTarsNodeAndLosesItAfter() async throws {
    let store = try EmbeddedStore(path: nil)
    try await seed(store)
    var c = Controller.Configuration(namespace: "tars", workload: options)
    c.manageNodeLabels = true
    let controller = Controller(store: store, configuration: c, log: { _ in })
    let task = Task { await controller.run() }
    defer { task.cancel() }
    func label(_ name: String) async -> String? {
      (try? await store.get(.nodes, namespace: nil, name: name))?.labels["tars.io/node"]
    }
    _ = try await store.create(.nodes, KubeObject(.nodes, namespace: nil, name: "a", labels: ["tars.io/node.tars": ""]))
    _ = try await store.create(.nodes, KubeObject(.nodes, namespace: nil, name: "b", labels: ["disk": "ssd"]))
    #expect(await eventually { await label("a") == "" })
    var a = try await store.get(.nodes, namespace: nil, name: "a")
    a.labels = ["tars.io/node": ""]
    _ = try await store.update(.nodes, a, status: false)
    #expect(await eventually { await label("a") == nil }, "no tars.io/node.<ns> left")
    #expect(await label("b") == nil, "never given to Tars")
  }

  /// Without the ClusterRole for nodes, node labels stop; TServers go on.
  @Test func noPermissionOnNodesStopsOnlyTheNodeLabels() async throws {
    let store = try EmbeddedStore(path: nil)
    try await seed(store)
    let forbidden = ObservedStore(store) { _, resource throws(StoreError) in
      if resource == "/nodes" { throw StoreError(code: 403, reason: .forbidden, message: "nodes is forbidden") }
    }
    var c = Controller.Configuration(namespace: "tars", workload: options)
    c.manageNodeLabels = true
    let controller = Controller(store: forbidden, configuration: c, log: { _ in })
    let task = Task { await controller.run() }
    defer { task.cancel() }
    try await createTServer(store, ReconcilerTests.spec)
    #expect(
      await eventually { (try? await store.get(.statefulSets, namespace: "tars", name: "test-helloserver")) != nil })
  }
}

@Suite("tars-controlplane controller, the executable")
struct ControllerExecutableTests {
  @Test func reconcilesAStoreFileAndStopsOnSIGTERM() async throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let path = dir.file("state.sqlite")
    do {
      let store = try EmbeddedStore(path: path)
      try await seed(store)
      try await createTServer(store, ReconcilerTests.spec)
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Tool.path("tars-controlplane"))
    let metrics = freePort()
    p.arguments = [
      "controller", "--store", path, "--namespace", "tars", "--node-image", "registry.local/tars/node:1", "--bind",
      "127.0.0.1", "--metrics-port", "\(metrics)",
    ]
    let err = dir.file("controller.err")
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    p.standardError = FileHandle(forWritingAtPath: err)
    try p.run()
    defer { if p.isRunning { p.terminate() } }
    let log = { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }
    #expect(await eventually(30) { log().contains("created(\"StatefulSet test-helloserver\")") }, "\(log())")
    #expect(log().contains("leads tars/tars-controller"), "\(log())")
    let scraped = await eventually {
      let (body, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(metrics)/metrics")!)
      let text = String(decoding: body, as: UTF8.self)
      return text.contains("tars_controller_leader 1") && text.contains("tars_controller_tservers 1")
        && !text.contains("tars_controller_reconciles_total 0\n")
    }
    #expect(scraped, "/metrics")
    // Its metrics port taken: it says which flag.
    let taken = try Tool.run(
      "tars-controlplane",
      [
        "controller", "--store", dir.file("other.sqlite"), "--node-image", "n", "--bind", "127.0.0.1", "--metrics-port",
        "\(metrics)",
      ])
    #expect(
      taken.status != 0
        && taken.stderr.contains(
          "metrics cannot listen on 127.0.0.1:\(metrics): address in use (another tars-controlplane? use --metrics-port)"
        ),
      "\(taken.stderr)")
    kill(p.processIdentifier, SIGTERM)
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "\(log())")
    #expect(log().contains("released tars/tars-controller"), "a stopping leader hands over: \(log())")
    let store = try EmbeddedStore(path: path)
    let sts = try await store.get(.statefulSets, namespace: "tars", name: "test-helloserver")
    #expect(
      sts.spec?[path: ["template", "spec", "initContainers"]]?.arrayValue?.first?["image"]?.stringValue
        == "registry.local/tars/node:1")

    let missing = try Tool.run("tars-controlplane", ["controller", "--store", path])
    #expect(missing.status != 0 && missing.stderr.contains("--node-image"), "\(missing.stderr)")
  }
}
