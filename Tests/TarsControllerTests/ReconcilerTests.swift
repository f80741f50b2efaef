import TarsController
import TarsEmbeddedStore
import TarsKube
import TarsProtocol
import Testing

/// The reconciler on the embedded store (API-server semantics: resource versions, the status
/// subresource, 404/409): create, no-op, update keeping others' fields, foreign objects, invalid
/// specs, the daemonSet switch, deletion.
@Suite("Reconciling a TServer")
struct ReconcilerTests {
  static let spec = """
    {"app": "Test", "server": "HelloServer", "subType": "tars",
     "tars": {"template": "tars.default", "servants": [{"name": "HelloObj", "port": 10001}]},
     "k8s": {"replicas": 2, "env": [{"name": "A", "value": "1"}],
             "mounts": [{"name": "scratch", "mountPath": "/scratch", "source": {"emptyDir": {}}}]},
     "release": {"id": "1", "image": "hello:1"}}
    """

  /// `crdRules: false` stands for an API server whose CRDs predate the rules, so an invalid
  /// TServer can reach the controller.
  func fixture(crdRules: Bool = true) async throws -> (EmbeddedStore, Reconciler) {
    let store = try EmbeddedStore(path: nil, crdRules: crdRules)
    try await seed(store)
    return (store, Reconciler(store: store, options: options))
  }

  func create(_ store: EmbeddedStore, _ spec: String = spec) async throws -> KubeObject {
    try await createTServer(store, spec)
  }

  func edit(_ store: EmbeddedStore, _ change: (inout KubeObject) -> Void) async throws {
    var o = try await store.get(.tservers, namespace: "tars", name: "test-helloserver")
    change(&o)
    _ = try await store.update(.tservers, o, status: false)
  }

  @Test func createsThenWritesNothingWhenNothingChanged() async throws {
    let (store, reconciler) = try await fixture()
    let ts = try await create(store)
    let first = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(first.actions == [.created("StatefulSet test-helloserver"), .created("Service test-helloserver")])
    let sts = try await store.get(.statefulSets, namespace: "tars", name: "test-helloserver")
    #expect(sts.json[path: ["metadata", "ownerReferences"]]?.arrayValue?.first?["uid"]?.stringValue == ts.uid)
    #expect(
      sts.annotations["tars.io/managed"]
        == "initContainers=tarsnode;containers=test-helloserver;volumes=tarsnode-bin,node-secret,scratch")
    let status = try await store.get(.tservers, namespace: "tars", name: "test-helloserver").status
    #expect(status?["selector"]?.stringValue == "tars.io/ServerApp=Test,tars.io/ServerName=HelloServer")
    #expect(status?["observedGeneration"]?.intValue == 1)
    #expect(status?["conditions"]?.arrayValue?.first?["reason"]?.stringValue == "Reconciled")

    let version = sts.resourceVersion
    let again = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(again.actions.isEmpty)
    #expect(try await store.get(.statefulSets, namespace: "tars", name: "test-helloserver").resourceVersion == version)
  }

  @Test func anUpdateKeepsWhatOthersAdded() async throws {
    let (store, reconciler) = try await fixture()
    _ = try await create(store)
    _ = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    // A mesh injects a sidecar and its volume; someone annotates; the API server defaults a field.
    var sts = try await store.get(.statefulSets, namespace: "tars", name: "test-helloserver")
    var podSpec = sts.spec![path: ["template", "spec"]]!
    podSpec = podSpec.setting(
      "containers",
      .array(
        podSpec["containers"]!.arrayValue!.map { $0.setting("terminationMessagePath", .string("/dev/termination-log")) }
          + [.object([("name", .string("proxy")), ("image", .string("envoy:1"))])]))
    podSpec = podSpec.setting(
      "volumes",
      .array(
        podSpec["volumes"]!.arrayValue! + [.object([("name", .string("proxy-certs")), ("emptyDir", .object([]))])]))
    podSpec = podSpec.setting("schedulerName", .string("default-scheduler"))
    sts.json.set(["spec", "template", "spec"], podSpec)
    sts.annotations["team"] = "payments"
    _ = try await store.update(.statefulSets, sts, status: false)
    let defaulted = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(defaulted.actions.isEmpty, "others' additions and defaults are no reason to write")

    // The TServer changes its env and drops its mount.
    try await edit(store) { o in
      o.json.set(["spec", "k8s", "env"], .array([.object([("name", .string("A")), ("value", .string("2"))])]))
      o.json.set(["spec", "k8s", "mounts"], nil)
    }
    let changed = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(changed.actions == [.updated("StatefulSet test-helloserver")])
    let after = try await store.get(.statefulSets, namespace: "tars", name: "test-helloserver")
    let pod = after.spec![path: ["template", "spec"]]!
    #expect(pod["containers"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["test-helloserver", "proxy"])
    let env = pod["containers"]?.arrayValue?.first?["env"]?.arrayValue ?? []
    #expect(env.first { $0["name"]?.stringValue == "A" }?["value"]?.stringValue == "2")
    #expect(
      pod["volumes"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == [
        "tarsnode-bin", "node-secret", "proxy-certs",
      ], "scratch goes, the sidecar's stays")
    #expect(pod["schedulerName"]?.stringValue == "default-scheduler")
    #expect(after.annotations["team"] == "payments")
  }

  @Test func aSameNamedObjectItDoesNotOwnIsLeftAloneAndSaidSo() async throws {
    let (store, reconciler) = try await fixture()
    let foreign = KubeObject(
      .services, namespace: "tars", name: "test-helloserver", spec: .object([("clusterIP", .string("10.0.0.9"))]))
    _ = try await store.create(.services, foreign)
    _ = try await create(store)
    let report = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(report.actions == [.created("StatefulSet test-helloserver"), .notOwned("Service test-helloserver")])
    #expect(
      try await store.get(.services, namespace: "tars", name: "test-helloserver").spec?["clusterIP"]?.stringValue
        == "10.0.0.9")
    let condition = try await store.get(.tservers, namespace: "tars", name: "test-helloserver").status?["conditions"]?
      .arrayValue?.first
    #expect(condition?["status"]?.stringValue == "False" && condition?["reason"]?.stringValue == "NotOwned")
    #expect(condition?["message"]?.stringValue?.hasPrefix("Service test-helloserver exists and is not owned") == true)
    _ = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    let events = try await store.list(.events, namespace: "tars", options: ListOptions()).items
    #expect(events.filter { $0.json["reason"]?.stringValue == "NotOwned" }.count == 1, "one Event, not one per pass")
  }

  @Test func anInvalidTServerGetsAConditionAndAnEventAndOthersGoOn() async throws {
    let (store, reconciler) = try await fixture(crdRules: false)
    _ = try await create(
      store,
      Self.spec.replacingOccurrences(
        of: #""replicas": 2,"#, with: #""replicas": 2, "hostPorts": [{"nameRef": "Nope", "port": 1}],"#))
    let report = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(report.invalid == "spec: spec.k8s.hostPorts[].nameRef must name a servant or a port of this server")
    #expect(report.actions.isEmpty)
    let condition = try await store.get(.tservers, namespace: "tars", name: "test-helloserver").status?["conditions"]?
      .arrayValue?.first
    #expect(condition?["reason"]?.stringValue == "InvalidSpec")
    let events = try await store.list(.events, namespace: "tars", options: ListOptions()).items
    #expect(
      events.contains {
        $0.json["reason"]?.stringValue == "InvalidSpec"
          && $0.json[path: ["involvedObject", "kind"]]?.stringValue == "TServer"
      })
    // Another server in the namespace is unaffected.
    var other = try tserver(Self.spec.replacingOccurrences(of: "HelloServer", with: "Other"), name: "test-other")
    other.json.set(["metadata", "uid"], nil)
    _ = try await store.create(.tservers, other)
    #expect(try await reconciler.reconcile(namespace: "tars", name: "test-other").actions.count == 2)
  }

  @Test func aMissingTemplateIsReportedUntilItIsApplied() async throws {
    let (store, reconciler) = try await fixture()
    _ = try await create(store, Self.spec.replacingOccurrences(of: "tars.default", with: "tars.cpp"))
    let report = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(report.invalid == "spec.tars.template 'tars.cpp' does not exist: apply the TTemplate first")
    #expect(report.actions.isEmpty)
    let condition = try await store.get(.tservers, namespace: "tars", name: "test-helloserver").status?["conditions"]?
      .arrayValue?.first
    #expect(condition?["reason"]?.stringValue == "TemplateMissing")
    _ = try await store.create(.ttemplates, template("tars.cpp"))
    let again = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(again.invalid == nil)
    #expect(again.actions.count == 2)
  }

  @Test func switchingToADaemonSetAndDeletingRemoveWhatItOwned() async throws {
    let (store, reconciler) = try await fixture()
    _ = try await create(store)
    _ = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    try await edit(store) { $0.json.set(["spec", "k8s", "daemonSet"], .bool(true)) }
    let switched = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(
      switched.actions == [
        .created("DaemonSet test-helloserver"), .deleted("StatefulSet test-helloserver"),
        .deleted("Service test-helloserver"),
      ])
    try await store.delete(.tservers, namespace: "tars", name: "test-helloserver")
    let gone = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(gone.actions == [.deleted("DaemonSet test-helloserver")])
    #expect(try await store.list(.daemonSets, namespace: "tars", options: ListOptions()).items.isEmpty)
  }

  /// A DaemonSet has no replicas to hold at 0, so a DaemonSet TServer without a release has no
  /// DaemonSet (rather than a pod failing on every node); the release brings it, and taking the
  /// release away removes it.
  @Test func aDaemonSetWaitsForItsRelease() async throws {
    let (store, reconciler) = try await fixture()
    _ = try await create(store)
    _ = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    try await edit(store) {
      $0.json.set(["spec", "k8s", "daemonSet"], .bool(true))
      $0.json.set(["spec", "release"], .null)
    }
    let held = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(held.actions == [.deleted("StatefulSet test-helloserver"), .deleted("Service test-helloserver")])
    let condition = try await store.get(.tservers, namespace: "tars", name: "test-helloserver").status?["conditions"]?
      .arrayValue?.first
    #expect(condition?["status"]?.stringValue == "True")
    #expect(condition?["message"]?.stringValue == "no release: the DaemonSet is made when spec.release names an image")
    #expect(try await reconciler.reconcile(namespace: "tars", name: "test-helloserver").actions.isEmpty)

    try await edit(store) {
      $0.json.set(["spec", "release"], .object([("id", .string("2")), ("image", .string("hello:2"))]))
    }
    let released = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(released.actions == [.created("DaemonSet test-helloserver")])
    try await edit(store) { $0.json.set(["spec", "release"], .null) }
    let withdrawn = try await reconciler.reconcile(namespace: "tars", name: "test-helloserver")
    #expect(withdrawn.actions == [.deleted("DaemonSet test-helloserver")])
  }
}
