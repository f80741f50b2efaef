import TarsKube
import TarsProtocol

/// One `x-kubernetes-validations` rule of a Tars CRD, with its Swift twin.
///
/// The CRDs in `deploy/crds/` carry these rules so a real API server refuses a bad TServer or
/// TConfig without a webhook or a certificate (K8SFramework's validating webhook, reference
/// §4.5). The embedded store and the admin API cannot run CEL, so each rule is written a second
/// time here, as a function over the same JSON, with the same message; a test keeps the CEL text,
/// the place and the message of each rule equal to the CRD's.
public struct CRDRule: Sendable {
  /// Where the rule sits in the schema, as the API server names it in its error ("" for the root).
  public let path: [String]
  /// The CEL expression in the CRD.
  public let rule: String
  public let message: String
  /// What the rule allows: `self` and, for a transition rule, `oldSelf` at `path`.
  let holds: @Sendable (_ new: JSONValue, _ old: JSONValue?) -> Bool
  /// A transition rule (one that reads `oldSelf`) only runs on updates.
  public var isTransition: Bool { rule.contains("oldSelf") }

  init(
    _ path: [String], _ rule: String, _ message: String,
    _ holds: @escaping @Sendable (_ new: JSONValue, _ old: JSONValue?) -> Bool
  ) {
    self.path = path
    self.rule = rule
    self.message = message
    self.holds = holds
  }

  /// The field path as the API server writes it in a 422 cause.
  public var field: String { path.isEmpty ? "<nil>" : path.joined(separator: ".") }
}

/// A rule an object breaks, worded as the API server words it.
public struct RuleViolation: Sendable, Equatable, CustomStringConvertible {
  public var field: String
  public var message: String
  public var description: String { "\(field): Invalid value: \"object\": \(message)" }
  /// For people: the message, after its field unless the rule is on the whole object.
  public var short: String { field == "<nil>" ? message : "\(field): \(message)" }
}

/// The rules of the Tars CRDs, by kind.
public enum TarsCRDRules {
  /// What no CEL rule can check (it needs another object), said the same way by the admin API,
  /// which refuses the TServer, and the controller, which reports it.
  public static func templateMissing(_ template: String) -> String {
    "spec.tars.template '\(template)' does not exist: apply the TTemplate first"
  }

  public static let byKind: [String: [CRDRule]] = ["TServer": tserver, "TConfig": tconfig]

  /// The rules `object` breaks (an update when `old` is given: transition rules run too).
  /// A rule whose place is absent from the object (no `spec.normal`) does not run, as in CEL; on
  /// an update, neither does one whose place is unchanged (the API server's validation
  /// ratcheting), so an object written before a rule existed can still get its status and
  /// metadata written.
  public static func violations(kind: String, _ object: KubeObject, old: KubeObject? = nil) -> [RuleViolation] {
    var out: [RuleViolation] = []
    for rule in byKind[kind] ?? [] {
      guard let value = object.json[path: rule.path] else { continue }
      let previous = old?.json[path: rule.path]
      if rule.isTransition && previous == nil { continue }
      if !rule.path.isEmpty, let previous, previous.sameContent(as: value) { continue }
      if !rule.holds(value, previous) { out.append(RuleViolation(field: rule.field, message: rule.message)) }
    }
    return out
  }
}

// MARK: - Helpers mirroring CEL on JSON

extension JSONValue {
  fileprivate var list: [JSONValue] { arrayValue ?? [] }
  fileprivate func str(_ key: String) -> String { self[key]?.stringValue ?? "" }
}

/// CEL's `l.all(x, l.exists_one(y, key(y) == key(x)))`: every key appears once.
private func unique<K: Hashable>(_ items: [JSONValue], _ key: (JSONValue) -> K?) -> Bool {
  var seen: Set<K> = []
  for item in items {
    guard let k = key(item) else { continue }
    if !seen.insert(k).inserted { return false }
  }
  return true
}

private func notReserved(_ items: [JSONValue]) -> Bool {
  items.allSatisfy { ($0["port"]?.intValue).map { $0 < 19385 || $0 > 19387 } ?? true }
}

extension TarsCRDRules {
  static let reservedMessage = "ports 19385-19387 are reserved for tarsnode (NodeObj, ServerObj, AdminObj)"

  public static let tserver: [CRDRule] = [
    CRDRule(
      [], "self.metadata.name == self.spec.app.lowerAscii() + '-' + self.spec.server.lowerAscii()",
      "metadata.name must be lower(spec.app)-lower(spec.server)"
    ) { o, _ in
      o[path: ["metadata", "name"]]?.stringValue
        == (o[path: ["spec", "app"]]?.stringValue ?? "").lowercased() + "-"
        + (o[path: ["spec", "server"]]?.stringValue ?? "").lowercased()
    },
    CRDRule(
      [], "self.metadata.name.size() < 59", "metadata.name must be shorter than 59 characters"
    ) { o, _ in (o[path: ["metadata", "name"]]?.stringValue ?? "").count < 59 },
    CRDRule(["spec"], "self.app == oldSelf.app", "spec.app is immutable") { s, old in
      s.str("app") == old?.str("app")
    },
    CRDRule(["spec"], "self.server == oldSelf.server", "spec.server is immutable") { s, old in
      s.str("server") == old?.str("server")
    },
    CRDRule(["spec"], "self.subType == oldSelf.subType", "spec.subType is immutable") { s, old in
      s.str("subType") == old?.str("subType")
    },
    CRDRule(
      ["spec"], "self.subType != 'tars' || has(self.tars)", "spec.tars is required when spec.subType is tars"
    ) { s, _ in s.str("subType") != "tars" || s["tars"] != nil },
    CRDRule(
      ["spec"],
      "!has(self.k8s.hostPorts) || self.k8s.hostPorts.all(h, "
        + "(has(self.tars) && (self.tars.servants.exists(s, s.name.lowerAscii() == h.nameRef.lowerAscii()) "
        + "|| (has(self.tars.ports) && self.tars.ports.exists(p, p.name == h.nameRef)))) "
        + "|| (has(self.normal) && has(self.normal.ports) && self.normal.ports.exists(p, p.name == h.nameRef)))",
      "spec.k8s.hostPorts[].nameRef must name a servant or a port of this server"
    ) { s, _ in
      let servants = s[path: ["tars", "servants"]]?.list.map { $0.str("name").lowercased() } ?? []
      let ports = (s[path: ["tars", "ports"]]?.list ?? []).map { $0.str("name") }
      let normal = (s[path: ["normal", "ports"]]?.list ?? []).map { $0.str("name") }
      return (s[path: ["k8s", "hostPorts"]]?.list ?? []).allSatisfy { h in
        let ref = h.str("nameRef")
        return servants.contains(ref.lowercased()) || ports.contains(ref) || normal.contains(ref)
      }
    },
    CRDRule(
      ["spec", "tars"], "self.servants.all(s, self.servants.exists_one(t, t.name.lowerAscii() == s.name.lowerAscii()))",
      "spec.tars.servants must have unique names (ignoring case)"
    ) { t, _ in unique(t["servants"]?.list ?? []) { $0["name"]?.stringValue?.lowercased() } },
    CRDRule(
      ["spec", "tars"],
      "self.servants.all(s, self.servants.exists_one(t, t.port == s.port)) && (!has(self.ports) || "
        + "(self.ports.all(p, self.ports.exists_one(q, q.port == p.port)) "
        + "&& self.ports.all(p, !self.servants.exists(s, s.port == p.port))))",
      "ports must be unique across spec.tars.servants and spec.tars.ports"
    ) { t, _ in unique((t["servants"]?.list ?? []) + (t["ports"]?.list ?? [])) { $0["port"]?.intValue } },
    CRDRule(
      ["spec", "tars"],
      "self.servants.all(s, s.port < 19385 || s.port > 19387) && "
        + "(!has(self.ports) || self.ports.all(p, p.port < 19385 || p.port > 19387))",
      reservedMessage
    ) { t, _ in notReserved(t["servants"]?.list ?? []) && notReserved(t["ports"]?.list ?? []) },
    CRDRule(
      ["spec", "normal"], "!has(self.ports) || self.ports.all(p, self.ports.exists_one(q, q.port == p.port))",
      "spec.normal.ports must have unique port numbers"
    ) { n, _ in unique(n["ports"]?.list ?? []) { $0["port"]?.intValue } },
    CRDRule(
      ["spec", "normal"], "!has(self.ports) || self.ports.all(p, p.port < 19385 || p.port > 19387)", reservedMessage
    ) { n, _ in notReserved(n["ports"]?.list ?? []) },
    CRDRule(
      ["spec", "k8s"],
      "!(has(self.daemonSet) && self.daemonSet) || !has(self.mounts) || !self.mounts.exists(m, has(m.source) && "
        + "(has(m.source.persistentVolumeClaimTemplate) || has(m.source.tLocalVolume)))",
      "a DaemonSet cannot have claim templates: drop spec.k8s.daemonSet or the "
        + "persistentVolumeClaimTemplate and tLocalVolume mounts"
    ) { k, _ in
      guard k["daemonSet"]?.boolValue == true else { return true }
      return !(k["mounts"]?.list ?? []).contains {
        $0[path: ["source", "persistentVolumeClaimTemplate"]] != nil || $0[path: ["source", "tLocalVolume"]] != nil
      }
    },
    CRDRule(
      ["spec", "k8s"],
      "!has(self.serviceAccount) || !(self.serviceAccount in ["
        + frameworkServiceAccounts.map { "'\($0)'" }.joined(separator: ", ") + "])",
      "spec.k8s.serviceAccount cannot be the framework's own (its permissions are the control plane's): "
        + "create a ServiceAccount for the server"
    ) { k, _ in !frameworkServiceAccounts.contains(k.str("serviceAccount")) },
  ]

  /// The control plane's own ServiceAccounts (deploy/): a server run as one would hold its
  /// permissions (the API server lets whoever writes a workload name any account of the namespace).
  public static let frameworkServiceAccounts = [
    "tars-controller", "tars-tarsregistry", "tars-tarsconfig", "tars-tarsnotify", "tars-tarsadmin", "tars-secrets",
    "tars-tarsagent", "tars-tarsmonitor", "tars-tarslog",
  ]

  public static let tconfig: [CRDRule] = [
    CRDRule(
      [], "self.configContent == oldSelf.configContent",
      "configContent is immutable: a changed config is a new TConfig version"
    ) { c, old in c["configContent"] == old?["configContent"] }
  ]
}
