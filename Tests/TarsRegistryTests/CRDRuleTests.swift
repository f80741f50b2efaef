import Foundation
import TarsCRD
import TarsEmbeddedStore
import TarsKube
import TarsProtocol
import TarsRegistry
import TarsTestSupport
import Testing
import Yams

/// The CEL rules in deploy/crds and their Swift twin (`TarsCRDRules`) are one list: same places,
/// same expressions, same messages; and the embedded store and the admin API's validation refuse
/// each broken rule with its message.
@Suite("The CRDs' validation rules")
struct CRDRuleTests {
  struct Entry: Equatable, CustomStringConvertible {
    var path: String
    var rule: String
    var message: String
    var description: String { "\(path): \(rule) — \(message)" }
  }

  static func squeeze(_ s: String) -> String {
    s.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
  }

  /// Every `x-kubernetes-validations` entry of a CRD file, with where it sits.
  func crdRules(_ file: String) throws -> [Entry] {
    let text = try String(contentsOf: ManifestTests.deploy.appendingPathComponent("crds/\(file)"), encoding: .utf8)
    let crd = try #require(try Yams.load(yaml: text) as? [String: Any])
    let version = try #require((crd["spec"] as? [String: Any])?["versions"] as? [[String: Any]]).first
    let schema = try #require((version?["schema"] as? [String: Any])?["openAPIV3Schema"] as? [String: Any])
    var out: [Entry] = []
    func walk(_ node: [String: Any], _ path: [String]) {
      for v in node["x-kubernetes-validations"] as? [[String: Any]] ?? [] {
        out.append(
          Entry(
            path: path.joined(separator: "."), rule: Self.squeeze(v["rule"] as? String ?? ""),
            message: Self.squeeze(v["message"] as? String ?? "")))
      }
      for (name, child) in (node["properties"] as? [String: Any] ?? [:]).sorted(by: { $0.key < $1.key }) {
        walk(child as? [String: Any] ?? [:], path + [name])
      }
      if let items = node["items"] as? [String: Any] { walk(items, path + ["[]"]) }
    }
    walk(schema, [])
    return out
  }

  func swiftRules(_ kind: String) -> [Entry] {
    (TarsCRDRules.byKind[kind] ?? []).map {
      Entry(path: $0.path.joined(separator: "."), rule: Self.squeeze($0.rule), message: $0.message)
    }
  }

  @Test func theCRDsAndTheSwiftTwinHoldTheSameRules() throws {
    for (file, kind) in [("tservers.yaml", "TServer"), ("tconfigs.yaml", "TConfig")] {
      let inCRD = try crdRules(file)
      let inSwift = swiftRules(kind)
      #expect(!inCRD.isEmpty)
      let order: (Entry, Entry) -> Bool = { ($0.path, $0.rule) < ($1.path, $1.rule) }
      #expect(inCRD.sorted(by: order) == inSwift.sorted(by: order), "\(file)")
    }
  }

  static let base = """
    {"apiVersion": "k8s.tars.io/v1beta3", "kind": "TServer",
     "metadata": {"name": "test-helloserver", "namespace": "tars"},
     "spec": {"app": "Test", "server": "HelloServer", "subType": "tars",
      "tars": {"template": "tars.default", "servants": [{"name": "HelloObj", "port": 10001}],
               "ports": [{"name": "http", "port": 8080}]},
      "k8s": {"replicas": 1}}}
    """

  static func tserver(_ edit: (inout JSONValue) -> Void = { _ in }) -> KubeObject {
    var json = try! JSONValue(parsing: base)
    edit(&json)
    return KubeObject(json)
  }

  /// One TServer per rule, each breaking only that rule.
  static let broken: [(String, KubeObject)] = [
    (
      "metadata.name must be lower(spec.app)-lower(spec.server)",
      tserver { $0.set(["metadata", "name"], .string("hello")) }
    ),
    (
      "metadata.name must be shorter than 59 characters",
      tserver {
        let app = String(repeating: "A", count: 50)
        $0.set(["spec", "app"], .string(app))
        $0.set(["metadata", "name"], .string(app.lowercased() + "-helloserver"))
      }
    ),
    ("spec.tars is required when spec.subType is tars", tserver { $0.set(["spec", "tars"], nil) }),
    (
      "spec.k8s.hostPorts[].nameRef must name a servant or a port of this server",
      tserver {
        $0.set(
          ["spec", "k8s", "hostPorts"], .array([.object([("nameRef", .string("nope")), ("port", .integer(80))])]))
      }
    ),
    (
      "spec.tars.servants must have unique names (ignoring case)",
      tserver {
        $0.set(
          ["spec", "tars", "servants"],
          .array([
            .object([("name", .string("HelloObj")), ("port", .integer(10001))]),
            .object([("name", .string("helloobj")), ("port", .integer(10002))]),
          ]))
      }
    ),
    (
      "ports must be unique across spec.tars.servants and spec.tars.ports",
      tserver {
        $0.set(["spec", "tars", "ports"], .array([.object([("name", .string("http")), ("port", .integer(10001))])]))
      }
    ),
    (
      "ports 19385-19387 are reserved for tarsnode (NodeObj, ServerObj, AdminObj)",
      tserver {
        $0.set(["spec", "tars", "ports"], .array([.object([("name", .string("http")), ("port", .integer(19386))])]))
      }
    ),
    (
      "spec.normal.ports must have unique port numbers",
      tserver {
        $0.set(["spec", "subType"], .string("normal"))
        $0.set(["spec", "tars"], nil)
        $0.set(
          ["spec", "normal", "ports"],
          .array([
            .object([("name", .string("a")), ("port", .integer(80))]),
            .object([("name", .string("b")), ("port", .integer(80))]),
          ]))
      }
    ),
    (
      "ports 19385-19387 are reserved for tarsnode (NodeObj, ServerObj, AdminObj)",
      tserver {
        $0.set(["spec", "subType"], .string("normal"))
        $0.set(["spec", "tars"], nil)
        $0.set(["spec", "normal", "ports"], .array([.object([("name", .string("a")), ("port", .integer(19385))])]))
      }
    ),
    (
      "a DaemonSet cannot have claim templates: drop spec.k8s.daemonSet or the "
        + "persistentVolumeClaimTemplate and tLocalVolume mounts",
      tserver {
        $0.set(["spec", "k8s", "daemonSet"], .bool(true))
        $0.set(
          ["spec", "k8s", "mounts"],
          .array([
            .object([
              ("name", .string("data")), ("mountPath", .string("/data")),
              ("source", .object([("tLocalVolume", .object([]))])),
            ])
          ]))
      }
    ),
    (
      "spec.k8s.serviceAccount cannot be the framework's own (its permissions are the control plane's): "
        + "create a ServiceAccount for the server",
      tserver { $0.set(["spec", "k8s", "serviceAccount"], .string("tars-tarsadmin")) }
    ),
  ]

  /// The accounts the rule keeps servers from are exactly the ServiceAccounts deploy/ makes.
  @Test func theFrameworksServiceAccountsAreTheOnesDeployMakes() throws {
    let deploy = Fixtures.repositoryRoot.appendingPathComponent("deploy")
    var accounts: Set<String> = []
    for path in FileManager.default.enumerator(atPath: deploy.path)?.compactMap({ $0 as? String }) ?? []
    where path.hasSuffix(".yaml") {
      let text = try String(contentsOf: deploy.appendingPathComponent(path), encoding: .utf8)
      for doc in try Yams.load_all(yaml: text).compactMap({ $0 as? [String: Any] })
      where doc["kind"] as? String == "ServiceAccount" {
        if let name = (doc["metadata"] as? [String: Any])?["name"] as? String { accounts.insert(name) }
      }
    }
    #expect(accounts == Set(TarsCRDRules.frameworkServiceAccounts))
  }

  func store(rules: Bool = true) async throws -> EmbeddedStore {
    let store = try EmbeddedStore(path: nil, crdRules: rules)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    return store
  }

  @Test func eachRuleIsRefusedWithItsMessageByTheStoreAndTheAdminAPI() async throws {
    let store = try await store()
    _ = try await store.create(.tservers, Self.tserver())
    try await store.delete(.tservers, namespace: "tars", name: "test-helloserver")
    let everyMessage = Set(TarsCRDRules.tserver.filter { !$0.isTransition }.map(\.message))
    #expect(Set(Self.broken.map(\.0)) == everyMessage, "every rule that judges a new TServer has a case")
    for (message, object) in Self.broken {
      let broken = TarsCRDRules.violations(kind: "TServer", object)
      #expect(broken.map(\.message) == [message])
      do {
        _ = try await store.create(.tservers, object)
        Issue.record("the store took a TServer breaking '\(message)'")
      } catch {
        #expect(error.code == 422 && error.reason == .invalid)
        #expect(
          error.message == "TServer.k8s.tars.io \"\(object.name)\" is invalid: \(broken[0])", "\(error.message)")
      }
      let problems = TServerValidation.problems(object, templates: ["tars.default"])
      #expect(problems.contains { $0.hasSuffix(message) }, "the admin API says '\(message)': \(problems)")
    }
  }

  @Test func immutableFieldsAreRefusedOnUpdateOnly() async throws {
    let store = try await store()
    let created = try await store.create(.tservers, Self.tserver())
    var changed = created
    changed.json.set(["spec", "subType"], .string("normal"))
    changed.json.set(["spec", "tars"], nil)
    await #expect(throws: StoreError.self) { _ = try await store.update(.tservers, changed, status: false) }
    do {
      _ = try await store.update(.tservers, changed, status: false)
    } catch {
      #expect(error.message.hasSuffix("spec: Invalid value: \"object\": spec.subType is immutable"), "\(error.message)")
    }

    var config = KubeObject(.tconfigs, namespace: "tars", name: "test-helloserver-a.conf")
    config.json.set(["app"], .string("Test"))
    config.json.set(["configName"], .string("a.conf"))
    config.json.set(["configContent"], .string("x=1"))
    let stored = try await store.create(.tconfigs, config)
    var edited = stored
    edited.json.set(["configContent"], .string("x=2"))
    do {
      _ = try await store.update(.tconfigs, edited, status: false)
      Issue.record("TConfig content changed in place")
    } catch {
      #expect(
        error.message
          == "TConfig.k8s.tars.io \"test-helloserver-a.conf\" is invalid: <nil>: Invalid value: \"object\": "
          + "configContent is immutable: a changed config is a new TConfig version")
    }
    var activated = stored
    activated.json.set(["activated"], .bool(true))
    #expect(try await store.update(.tconfigs, activated, status: false).json["activated"] == .bool(true))
  }

  /// An object written before a rule existed keeps getting its status and metadata written
  /// (validation ratcheting), while a change to the broken part is judged.
  @Test func anObjectFromBeforeTheRulesCanStillBeWritten() async throws {
    let old = try await store(rules: false)
    let bad = Self.broken[5].1
    let stored = try await old.create(.tservers, bad)
    #expect(TarsCRDRules.violations(kind: "TServer", stored, old: stored).isEmpty)
    var labelled = stored
    labelled.json.set(["metadata", "labels"], .object([("team", .string("a"))]))
    #expect(TarsCRDRules.violations(kind: "TServer", labelled, old: stored).isEmpty)
    var worse = stored
    worse.json.set(["spec", "tars", "ports"], .array([.object([("name", .string("x")), ("port", .integer(19387))])]))
    #expect(TarsCRDRules.violations(kind: "TServer", worse, old: stored).map(\.field) == ["spec.tars"])
  }
}
