import TarsEmbeddedStore
import TarsKube
import TarsProtocol
import Testing

@testable import TarsAdmin

@Suite("Manifests applied the way kubectl apply would")
struct ManifestApplierTests {
  @Test func yamlBecomesJSONWithItsTypesAndKeyOrder() throws {
    let objects = try ManifestApplier.parse(
      """
      # a comment
      apiVersion: k8s.tars.io/v1beta3
      kind: TServer
      metadata: {name: test-helloserver}
      spec:
        app: Test
        server: HelloServer
        k8s: {replicas: 2, hostNetwork: false}
        release: {id: "007", image: null, ratio: 0.5}
      ---
      ---
      apiVersion: k8s.tars.io/v1beta3
      kind: TConfig
      metadata: {name: c}
      configContent: |
        <a>
          k=v
        </a>
      """, source: "test.yaml")
    #expect(objects.count == 2)
    let spec = try #require(objects[0].spec)
    #expect(spec.members.map(\.0) == ["app", "server", "k8s", "release"])
    #expect(spec[path: ["k8s", "replicas"]] == .integer(2))
    #expect(spec[path: ["k8s", "hostNetwork"]] == .bool(false))
    #expect(spec[path: ["release", "id"]] == .string("007"))
    #expect(spec[path: ["release", "image"]] == .null)
    #expect(spec[path: ["release", "ratio"]] == .number(0.5))
    #expect(objects[1].json["configContent"] == .string("<a>\n  k=v\n</a>"))
    // Anchors and aliases are expanded.
    let aliased = try ManifestApplier.parse("base: &b {a: 1}\nuse: *b\n", source: "test.yaml")
    #expect(aliased.first?.json["use"] == .object([("a", .integer(1))]))

    for (bad, reason) in [
      ("kind: TServer\n  metadata: [unclosed\n", "test.yaml: not valid YAML"),
      ("- just\n- a list\n", "test.yaml: a document is not a mapping"),
    ] {
      let e = #expect(throws: ManifestError.self) { try ManifestApplier.parse(bad, source: "test.yaml") }
      #expect(e?.message.contains(reason) == true, "\(e?.message ?? "")")
    }
  }

  @Test func createsConfiguresLeavesUnchangedAndRejectsEachObjectOnItsOwn() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    let applier = ManifestApplier(store: store, namespace: "tars")
    func tserver(_ replicas: Int, port: Int = 10015, template: String = "tars.default") -> String {
      """
      apiVersion: k8s.tars.io/v1beta3
      kind: TServer
      metadata: {name: test-helloserver}
      spec:
        app: Test
        server: HelloServer
        subType: tars
        tars: {template: \(template), servants: [{name: HelloObj, port: \(port)}]}
        k8s: {replicas: \(replicas)}
      """
    }
    let template =
      "apiVersion: k8s.tars.io/v1beta3\nkind: TTemplate\nmetadata: {name: tars.default}\nspec: {content: '', parent: tars.default}\n"
    var rows = await applier.apply(try ManifestApplier.parse(template + "---\n" + tserver(2), source: "a"))
    #expect(rows.map(\.action) == ["created", "created"])
    rows = await applier.apply(try ManifestApplier.parse(tserver(2), source: "a"))
    #expect(rows.map(\.action) == ["unchanged"])
    rows = await applier.apply(try ManifestApplier.parse(tserver(3), source: "a"))
    #expect(rows.map(\.action) == ["configured"])

    let before = try await store.get(.tservers, namespace: "tars", name: "test-helloserver")
    rows = await applier.apply(
      try ManifestApplier.parse(
        tserver(5, port: 19387) + "\n---\n" + tserver(1, template: "missing")
          + "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
          + "---\napiVersion: k8s.tars.io/v1beta3\nkind: TConfig\nmetadata: {name: c, namespace: other}\n",
        source: "b"))
    #expect(rows.allSatisfy { $0.action == "rejected" })
    #expect(
      rows[0].problems == ["spec.tars: ports 19385-19387 are reserved for tarsnode (NodeObj, ServerObj, AdminObj)"])
    #expect(rows[1].problems == ["spec.tars.template 'missing' does not exist: apply the TTemplate first"])
    #expect(rows[2].problems.first?.hasPrefix("kind 'Secret' cannot be applied here") == true)
    #expect(rows[3].problems.first?.contains("is not tars, the namespace this control plane serves") == true)
    let after = try await store.get(.tservers, namespace: "tars", name: "test-helloserver")
    #expect(after == before, "a rejected object leaves the stored one as it was")

    // One machine runs at most so many replicas of a server.
    let capped = ManifestApplier(store: store, namespace: "tars", maxReplicas: 100)
    rows = await capped.apply(try ManifestApplier.parse(tserver(9_223_372_036_854_775_807), source: "c"))
    #expect(
      rows.first?.problems == ["spec.k8s.replicas 9223372036854775807 is more than this control plane runs (100)"])
  }

  /// A TConfig's content is immutable, so a changed file applies as a new activated version and
  /// the one before is deactivated; an earlier content comes back as its old version.
  @Test func aChangedConfigIsANewVersionAndTheOldOneIsDeactivated() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    let applier = ManifestApplier(store: store, namespace: "tars")
    func config(_ content: String) throws -> [KubeObject] {
      try ManifestApplier.parse(
        """
        apiVersion: k8s.tars.io/v1beta3
        kind: TConfig
        metadata: {name: test-helloserver-a.conf}
        app: Test
        server: HelloServer
        podSeq: m
        configName: a.conf
        activated: true
        configContent: \(content)
        """, source: "c")
    }
    func active() async throws -> [String: String] {
      let items = try await store.list(.tconfigs, namespace: "tars", options: ListOptions()).items.map(TConfig.init)
      return Dictionary(uniqueKeysWithValues: items.filter(\.activated).map { ($0.object.name, $0.configContent) })
    }
    #expect(await applier.apply(try config("x=1")).map(\.action) == ["created"])
    #expect(await applier.apply(try config("x=2")).map(\.action) == ["configured"])
    let second = "test-helloserver-a.conf-" + ManifestApplier.contentHash("x=2")
    #expect(try await active() == [second: "x=2"])
    #expect(await applier.apply(try config("x=2")).map(\.action) == ["unchanged"])
    #expect(await applier.apply(try config("x=1")).map(\.action) == ["configured"])
    #expect(try await active() == ["test-helloserver-a.conf": "x=1"])
    let all = try await store.list(.tconfigs, namespace: "tars", options: ListOptions()).items
    #expect(all.map(\.name).sorted() == ["test-helloserver-a.conf", second])

    // Every version stays (the controller trims the history): one active, the rest inactive.
    for i in 0..<3 { #expect(await applier.apply(try config("y=\(i)")).map(\.action) == ["configured"]) }
    let kept = try await store.list(.tconfigs, namespace: "tars", options: ListOptions()).items.map(TConfig.init)
    #expect(kept.count == 5)
    #expect(kept.filter(\.activated).map(\.configContent) == ["y=2"])
  }
}

/// The role each admin call needs, judged by the route the router matches.
@Suite("Admin roles")
struct AdminRoleTests {
  @Test func readsCommandsAndChangesNeedTheirRoles() {
    #expect(AdminRole.needed(method: .get, path: "/api/v1/servers") == .viewer)
    #expect(AdminRole.needed(method: .post, path: "/api/v1/servers/Test.Hello/scale") == .operator)
    #expect(AdminRole.needed(method: .post, path: "/api/v1/pods/p-0/drain") == .operator)
    #expect(AdminRole.needed(method: .post, path: "/api/v1/apply") == .admin)
    #expect(AdminRole.needed(method: .post, path: "/api/v1/apply/") == .admin, "a trailing slash reaches apply too")
    #expect(AdminRole.needed(method: .post, path: "//api//v1/apply?x=1") == .admin)
    #expect(AdminRole.needed(method: .delete, path: "/api/v1/servers/Test.Hello") == .admin)
  }
}
