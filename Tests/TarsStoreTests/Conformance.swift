import Foundation
import Synchronization
import TarsAdmin
import TarsEmbeddedStore
import TarsKube
import TarsKubeClient
import TarsProtocol
import TarsTestSupport
import Testing

/// The stores the conformance suite runs on: the embedded store always, and the same store
/// over HTTP (`KubeFront`, what one-machine mode serves to the agent and kubectl) through the
/// Swift client; a real cluster when `TARS_TEST_KUBECONFIG` names a kubeconfig (see README,
/// "Testing against a cluster"; the CRDs in deploy/crds must be applied there).
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case embedded, front, cluster
  var testDescription: String { rawValue }

  static var available: [StoreKind] {
    ProcessInfo.processInfo.environment["TARS_TEST_KUBECONFIG"].map { !$0.isEmpty } == true
      ? [.embedded, .front, .cluster] : [.embedded, .front]
  }

  func make() async throws -> any ObjectStore {
    switch self {
    case .embedded: return try Stores.embedded()
    case .front:
      // Each test's own store on its own port, the front and the client kept until the test
      // process ends (a client must not be dropped while its connections live).
      let front = try await KubeFront.start(
        store: try Stores.embedded(), host: "127.0.0.1", port: 0, token: "conformance-token"
      ) { _ in }
      let client = try KubeClient(
        config: KubeConfig(server: "http://127.0.0.1:\(front.port)", token: "conformance-token"))
      Stores.kept.withLock { $0.append((front, client)) }
      return client
    case .cluster:
      let path = ProcessInfo.processInfo.environment["TARS_TEST_KUBECONFIG"]!
      return try KubeClient(config: try KubeConfig.load(kubeconfig: path))
    }
  }
}

enum Stores {
  static let kept = Mutex<[(KubeFront, KubeClient)]>([])
  static func embedded() throws -> EmbeddedStore { try EmbeddedStore(path: nil, bookmarkIntervalMs: 300) }
}

/// A namespace of the test's own, so runs on a shared cluster do not collide; deleted (with
/// everything in it) when the test ends.
func testNamespace(_ store: any ObjectStore) async throws -> String {
  let name = "tars-test-\(UInt32.random(in: 0..<UInt32.max))"
  _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: name))
  return name
}

func removeLater(_ store: any ObjectStore, _ namespace: String) {
  Task { try? await store.delete(.namespaces, namespace: nil, name: namespace) }
}

func pod(
  _ name: String, _ ns: String,
  labels: [String: String] = ["tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer"]
)
  -> KubeObject
{
  KubeObject(
    .pods, namespace: ns, name: name, labels: labels,
    // A scheduler nobody runs: on a real cluster nothing schedules, starts or updates the pod,
    // so the events the tests see are their own.
    spec: .object([
      ("schedulerName", .string("tars-conformance-none")),
      ("containers", .array([.object([("name", .string("main")), ("image", .string("busybox"))])])),
    ]))
}

/// Collects a watch's events (bookmarks aside) until `count` arrived or the time is up.
func collect(_ stream: AsyncStream<WatchEvent>, count: Int, seconds: Double = 5) async -> [WatchEvent] {
  let box = Mutex<[WatchEvent]>([])
  let reader = Task {
    for await e in stream {
      if case .bookmark = e { continue }
      let n = box.withLock {
        $0.append(e)
        return $0.count
      }
      if n >= count { return }
    }
  }
  let deadline = ContinuousClock.now + .seconds(seconds)
  while ContinuousClock.now < deadline, box.withLock({ $0.count }) < count {
    try? await Task.sleep(for: .milliseconds(10))
  }
  reader.cancel()
  return box.withLock { $0 }
}

@Suite("Store conformance (Kubernetes semantics)")
struct ConformanceTests {
  @Test(arguments: StoreKind.available)
  func createGetListAndErrors(_ kind: StoreKind) async throws {
    let store = try await kind.make()
    let ns = try await testNamespace(store)
    defer { removeLater(store, ns) }
    let created = try await store.create(.pods, pod("hello-0", ns))
    #expect(!created.resourceVersion.isEmpty && !created.uid.isEmpty)
    #expect(created.status?["phase"]?.stringValue == "Pending")
    let got = try await store.get(.pods, namespace: ns, name: "hello-0")
    #expect(got == created)
    let again = await #expect(throws: StoreError.self) { try await store.create(.pods, pod("hello-0", ns)) }
    #expect(again?.code == 409 && again?.reason == .alreadyExists)
    let missing = await #expect(throws: StoreError.self) { try await store.get(.pods, namespace: ns, name: "nope") }
    #expect(missing?.code == 404 && missing?.message == "pods \"nope\" not found")
    let noNamespace = await #expect(throws: StoreError.self) { try await store.create(.pods, pod("x", "nope-ns")) }
    #expect(noNamespace?.code == 404 && noNamespace?.message == "namespaces \"nope-ns\" not found")
    let invalid = await #expect(throws: StoreError.self) { try await store.create(.pods, pod("Bad_Name", ns)) }
    #expect(invalid?.code == 422)
    let selector = await #expect(throws: StoreError.self) {
      try await store.list(
        .pods, namespace: ns, options: ListOptions(labelSelector: try LabelSelector(parsing: "a===b")))
    }
    #expect(selector?.code == 400)
    #expect(throws: StoreError.self) { try LabelSelector(parsing: "tars.io/ServerApp===Test") }
    let field = await #expect(throws: StoreError.self) {
      try await store.list(.pods, namespace: ns, options: ListOptions(fieldSelector: "metadata.labels.foo=bar"))
    }
    #expect(field?.code == 400 && field?.message == "field label not supported: metadata.labels.foo")
  }

  @Test(arguments: StoreKind.available)
  func paginationAndSelectors(_ kind: StoreKind) async throws {
    let store = try await kind.make()
    let ns = try await testNamespace(store)
    defer { removeLater(store, ns) }
    for i in 0..<5 {
      _ = try await store.create(.pods, pod("p-\(i)", ns, labels: ["app": i % 2 == 0 ? "even" : "odd"]))
    }
    var names: [String] = []
    var token: String?
    var pages = 0
    var firstRV = ""
    repeat {
      let page = try await store.list(.pods, namespace: ns, options: ListOptions(limit: 2, continueToken: token))
      if pages == 0 {
        firstRV = page.resourceVersion
        #expect(page.remainingItemCount == 3)
      }
      names += page.items.map(\.name)
      token = page.continueToken
      pages += 1
    } while token != nil
    #expect(names == ["p-0", "p-1", "p-2", "p-3", "p-4"] && pages == 3 && !firstRV.isEmpty)
    let even = try await store.list(
      .pods, namespace: ns, options: ListOptions(labelSelector: try LabelSelector(parsing: "app=even"), limit: 1))
    #expect(even.items.map(\.name) == ["p-0"] && even.remainingItemCount == nil && even.continueToken != nil)
    let notIn = try await store.list(
      .pods, namespace: ns, options: ListOptions(labelSelector: try LabelSelector(parsing: "app notin (even)")))
    #expect(notIn.items.map(\.name) == ["p-1", "p-3"])
    let byName = try await store.list(.pods, namespace: ns, options: ListOptions(fieldSelector: "metadata.name=p-3"))
    #expect(byName.items.map(\.name) == ["p-3"])
  }

  @Test(arguments: StoreKind.available)
  func optimisticConcurrencyAndTheStatusSubresource(_ kind: StoreKind) async throws {
    let store = try await kind.make()
    let ns = try await testNamespace(store)
    defer { removeLater(store, ns) }
    // Valid under deploy/crds/tservers.yaml, so a real cluster takes it too.
    let ts = KubeObject(
      .tservers, namespace: ns, name: "test-helloserver",
      spec: .object([
        ("app", .string("Test")), ("server", .string("HelloServer")), ("subType", .string("tars")),
        ("k8s", .object([("replicas", .integer(1))])),
        ("tars", .object([("template", .string("tars.default")), ("servants", .array([]))])),
      ]))
    let created = try await store.create(.tservers, ts)
    #expect(created.generation == 1)
    var stale = created
    var fresh = created
    fresh.json.set(["spec", "k8s"], .object([("replicas", .integer(3))]))
    let updated = try await store.update(.tservers, fresh, status: false)
    #expect(updated.generation == 2 && updated.resourceVersion != created.resourceVersion)
    stale.json.set(["spec", "k8s"], .object([("replicas", .integer(5))]))
    let conflict = await #expect(throws: StoreError.self) { try await store.update(.tservers, stale, status: false) }
    #expect(conflict?.code == 409 && conflict?.reason == .conflict)
    // Status through the main resource is ignored: no new version, no change.
    let ignored = try await store.patch(
      .tservers, namespace: ns, name: "test-helloserver",
      .merge(.object([("status", .object([("readyReplicas", .integer(99))]))])),
      status: false)
    #expect(ignored.resourceVersion == updated.resourceVersion && ignored.status == nil)
    let status = try await store.patch(
      .tservers, namespace: ns, name: "test-helloserver",
      .merge(.object([("status", .object([("readyReplicas", .integer(2))]))])),
      status: true)
    #expect(status.status?["readyReplicas"]?.intValue == 2 && status.generation == 2)
    let smp = await #expect(throws: StoreError.self) {
      try await store.patch(
        .tservers, namespace: ns, name: "test-helloserver", .strategicMerge(.object([])), status: true)
    }
    #expect(smp?.code == 415)
  }

  @Test(arguments: StoreKind.available)
  func podConditionsMergeByType(_ kind: StoreKind) async throws {
    let store = try await kind.make()
    let ns = try await testNamespace(store)
    defer { removeLater(store, ns) }
    _ = try await store.create(.pods, pod("hello-0", ns))
    func condition(_ type: String, _ status: String) -> Patch {
      .strategicMerge(
        .object([
          (
            "status",
            .object([("conditions", .array([.object([("type", .string(type)), ("status", .string(status))])]))])
          )
        ]))
    }
    _ = try await store.patch(.pods, namespace: ns, name: "hello-0", condition("tars.io/active", "True"), status: true)
    _ = try await store.patch(.pods, namespace: ns, name: "hello-0", condition("PodScheduled", "True"), status: true)
    let flipped = try await store.patch(
      .pods, namespace: ns, name: "hello-0", condition("tars.io/active", "False"), status: true)
    let types = flipped.status?["conditions"]?.arrayValue?.compactMap { $0["type"]?.stringValue }
    #expect(types == ["PodScheduled", "tars.io/active"])
    #expect(flipped.condition("tars.io/active")?["status"]?.stringValue == "False")
    // A merge patch replaces the list.
    let replaced = try await store.patch(
      .pods, namespace: ns, name: "hello-0",
      .merge(
        .object([
          (
            "status",
            .object([
              ("conditions", .array([.object([("type", .string("tars.io/active")), ("status", .string("True"))])]))
            ])
          )
        ])), status: true)
    #expect(replaced.status?["conditions"]?.arrayValue?.count == 1)
    // JSON patch with a failing test is 422 and changes nothing.
    let failed = await #expect(throws: StoreError.self) {
      try await store.patch(
        .pods, namespace: ns, name: "hello-0",
        .json(
          .array([
            .object([
              ("op", .string("test")), ("path", .string("/status/conditions/0/status")), ("value", .string("False")),
            ])
          ])), status: true)
    }
    #expect(failed?.code == 422)
    // Labels removed with null (strategic merge).
    let unlabelled = try await store.patch(
      .pods, namespace: ns, name: "hello-0",
      .strategicMerge(.object([("metadata", .object([("labels", .object([("tars.io/ServerName", .null)]))]))])),
      status: false)
    #expect(unlabelled.labels == ["tars.io/ServerApp": "Test"])
  }

  @Test(arguments: StoreKind.available)
  func watchFromAVersionWithSelectorsAndDeletes(_ kind: StoreKind) async throws {
    let store = try await kind.make()
    let ns = try await testNamespace(store)
    defer { removeLater(store, ns) }
    _ = try await store.create(.pods, pod("hello-0", ns))
    let list = try await store.list(
      .pods, namespace: ns,
      options: ListOptions(labelSelector: try LabelSelector(parsing: "tars.io/ServerName=HelloServer")))
    let stream = store.watch(
      .pods, namespace: ns,
      options: WatchOptions(
        labelSelector: try LabelSelector(parsing: "tars.io/ServerName=HelloServer"),
        resourceVersion: list.resourceVersion))
    _ = try await store.create(.pods, pod("hello-1", ns))
    let removeLabel = Patch.strategicMerge(
      .object([("metadata", .object([("labels", .object([("tars.io/ServerName", .null)]))]))]))
    let unlabelled = try await store.patch(.pods, namespace: ns, name: "hello-0", removeLabel, status: false)
    _ = try await store.patch(
      .pods, namespace: ns, name: "hello-0",
      .strategicMerge(
        .object([("metadata", .object([("labels", .object([("tars.io/ServerName", .string("HelloServer"))]))]))])),
      status: false)
    try await store.delete(.pods, namespace: ns, name: "hello-1")
    // hello-1 ADDED; hello-0 DELETED (label gone) and ADDED (back); hello-1 MODIFIED (deletion
    // timestamp) and DELETED — the API server's sequence (fixtures 020, 025).
    let events = await collect(stream, count: 5)
    #expect(
      events.map(\.typeName) == ["ADDED", "DELETED", "ADDED", "MODIFIED", "DELETED"], "\(events.map(\.typeName))")
    // Labels stopped matching: DELETED with the old state at the new version.
    if events.count > 1, case .deleted(let o) = events[1] {
      #expect(o.labels["tars.io/ServerName"] == "HelloServer" && o.resourceVersion == unlabelled.resourceVersion)
    }
    if events.count > 3, case .modified(let o) = events[3] { #expect(o.deletionTimestamp != nil) }
  }

  @Test(arguments: StoreKind.available)
  func watchWithoutAVersionStartsWithTheCurrentObjects(_ kind: StoreKind) async throws {
    let store = try await kind.make()
    let ns = try await testNamespace(store)
    defer { removeLater(store, ns) }
    _ = try await store.create(.pods, pod("hello-0", ns))
    _ = try await store.create(.pods, pod("hello-1", ns))
    let events = await collect(store.watch(.pods, namespace: ns, options: WatchOptions()), count: 2)
    #expect(events.map(\.typeName) == ["ADDED", "ADDED"])
  }

  @Test func compactedVersionsAnswer410() async throws {
    let store = try Stores.embedded()
    let ns = try await testNamespace(store)
    let first = try await store.create(.pods, pod("hello-0", ns))
    _ = try await store.create(.pods, pod("hello-1", ns))
    // Two pods, one per page: the first page hands out a continue token.
    let page = try await store.list(.pods, namespace: ns, options: ListOptions(limit: 1))
    let newest = try await store.create(.pods, pod("hello-2", ns))
    try store.compact(upTo: Int64(newest.resourceVersion)!)
    let events = await collect(
      store.watch(.pods, namespace: ns, options: WatchOptions(resourceVersion: first.resourceVersion)), count: 1)
    guard case .error(let e) = events.first else {
      Issue.record("expected an ERROR event, got \(events)")
      return
    }
    #expect(e.code == 410 && e.reason == .expired && e.message.hasPrefix("too old resource version"))
    let token = try #require(page.continueToken)
    let expired = await #expect(throws: StoreError.self) {
      try await store.list(.pods, namespace: ns, options: ListOptions(limit: 1, continueToken: token))
    }
    #expect(expired?.code == 410)
  }

  @Test func bookmarksComeOnceTheVersionMoves() async throws {
    let store = try Stores.embedded()
    let ns = try await testNamespace(store)
    let created = try await store.create(.pods, pod("hello-0", ns))
    let stream = store.watch(
      .pods, namespace: ns,
      options: WatchOptions(
        labelSelector: try LabelSelector(parsing: "nothing=matches"), resourceVersion: created.resourceVersion,
        // Bookmarks come every 300 ms; 5 s leaves a busy machine room (2 s once saw none).
        timeoutSeconds: 5))
    _ = try await store.create(.pods, pod("hello-1", ns))
    var bookmarks: [String] = []
    for await e in stream { if case .bookmark(let rv) = e { bookmarks.append(rv) } }
    #expect(!bookmarks.isEmpty && bookmarks.allSatisfy { Int($0)! > Int(created.resourceVersion)! })
  }

  @Test func persistsAcrossReopen() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("state.sqlite").path
    var rv = ""
    do {
      let store = try EmbeddedStore(path: path)
      let ns = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
      rv = try await store.create(.pods, pod("hello-0", ns.name)).resourceVersion
    }
    let reopened = try EmbeddedStore(path: path)
    let got = try await reopened.get(.pods, namespace: "tars", name: "hello-0")
    #expect(got.resourceVersion == rv)
    let next = try await reopened.create(.pods, pod("hello-1", "tars"))
    #expect(Int(next.resourceVersion)! > Int(rv)!)
  }
}

@Suite("The embedded store's errors are the API server's")
struct EmbeddedErrorTests {
  func recorded(_ folder: String) throws -> JSONValue {
    try JSONValue(bytes: Array(try Data(contentsOf: Fixtures.url("kube/\(folder)/response.body"))))
  }

  @Test func statusBodiesMatchTheRecordedOnes() async throws {
    let store = try Stores.embedded()
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    let created = try await store.create(.pods, pod("test-helloserver-0", "tars"))
    _ = try await store.patch(
      .pods, namespace: "tars", name: "test-helloserver-0",
      .merge(.object([("metadata", .object([("labels", .object([("x", .string("y"))]))]))])), status: false)
    let cases: [(String, () async throws -> Void)] = [
      ("060_get_pod_missing_404", { _ = try await store.get(.pods, namespace: "tars", name: "no-such-pod") }),
      ("063_post_pod_already_exists_409", { _ = try await store.create(.pods, pod("test-helloserver-0", "tars")) }),
      ("061_put_pod_stale_rv_409", { _ = try await store.update(.pods, created, status: false) }),
      ("074_post_pod_missing_namespace_404", { _ = try await store.create(.pods, pod("x", "nope")) }),
      (
        "134_list_pods_bad_field_selector_400",
        {
          _ = try await store.list(
            .pods, namespace: "tars", options: ListOptions(fieldSelector: "metadata.labels.foo=bar"))
        }
      ),
      ("073_delete_missing_pod_404", { try await store.delete(.pods, namespace: "tars", name: "no-such-pod") }),
    ]
    for (folder, call) in cases {
      do {
        try await call()
        Issue.record("\(folder): no error")
      } catch let e as StoreError {
        #expect(e.status == (try recorded(folder)), "\(folder): \(e.status.text)")
      }
    }
  }
}

@Suite("Embedded store edge cases")
struct EmbeddedEdgeTests {
  @Test func clusterWidePagesFollowTheListOrderAcrossNamespaces() async throws {
    let store = try Stores.embedded()
    for ns in ["tars", "tars-dev", "tars.x"] {
      _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: ns))
      for i in 0..<3 { _ = try await store.create(.pods, pod("p-\(i)", ns)) }
    }
    var seen: [String] = []
    var token: String?
    repeat {
      let page = try await store.list(.pods, namespace: nil, options: ListOptions(limit: 2, continueToken: token))
      seen += page.items.map { "\($0.namespace!)/\($0.name)" }
      token = page.continueToken
    } while token != nil
    let all = try await store.list(.pods, namespace: nil, options: ListOptions()).items.map {
      "\($0.namespace!)/\($0.name)"
    }
    #expect(seen == all && seen.count == 9 && Set(seen).count == 9, "\(seen)")
  }

  @Test func aPatchCannotMoveAnObjectAndExactVersionsAreHonest() async throws {
    let store = try Stores.embedded()
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "a"))
    let first = try await store.create(.pods, pod("p", "a"))
    let moved = await #expect(throws: StoreError.self) {
      try await store.patch(
        .pods, namespace: "a", name: "p", .merge(.object([("metadata", .object([("namespace", .string("b"))]))])),
        status: false)
    }
    #expect(moved?.code == 422)
    #expect(try await store.list(.pods, namespace: nil, options: ListOptions()).items.count == 1)
    _ = try await store.create(.pods, pod("q", "a"))
    let older = await #expect(throws: StoreError.self) {
      try await store.list(
        .pods, namespace: "a",
        options: ListOptions(resourceVersion: first.resourceVersion, resourceVersionMatch: "Exact"))
    }
    #expect(older?.code == 400)
    try store.compact(upTo: Int64(first.resourceVersion)!)
    let compacted = await #expect(throws: StoreError.self) {
      try await store.list(
        .pods, namespace: "a",
        options: ListOptions(resourceVersion: first.resourceVersion, resourceVersionMatch: "Exact"))
    }
    #expect(compacted?.code == 410 && compacted?.message == "The resourceVersion for the provided list is too old.")
  }
}
