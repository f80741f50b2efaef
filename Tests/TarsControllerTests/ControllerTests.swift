import Foundation
import TarsController
import TarsEmbeddedStore
import TarsKube
import TarsProtocol
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
    var o = try tserver(ReconcilerTests.spec)
    o.json.set(["metadata", "uid"], nil)
    _ = try await store.create(.tservers, o)
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
    var o = try tserver(ReconcilerTests.spec.replacingOccurrences(of: "tars.default", with: "tars.cpp"))
    o.json.set(["metadata", "uid"], nil)
    _ = try await store.create(.tservers, o)
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

@Suite("tars-controlplane controller, the executable")
struct ControllerExecutableTests {
  @Test func reconcilesAStoreFileAndStopsOnSIGTERM() async throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let path = dir.file("state.sqlite")
    do {
      let store = try EmbeddedStore(path: path)
      try await seed(store)
      var o = try tserver(ReconcilerTests.spec)
      o.json.set(["metadata", "uid"], nil)
      _ = try await store.create(.tservers, o)
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
