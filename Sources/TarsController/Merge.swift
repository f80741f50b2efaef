import TarsKube
import TarsProtocol

/// How the reconciler writes over what is stored: the fields the TServer decides are replaced
/// (or removed), everything else — other controllers' annotations, injected sidecars and their
/// volumes, the API server's defaults — stays. Containers, init containers and volumes merge by
/// name; the names this controller wrote are kept on the object (`tars.io/managed`), so one the
/// TServer no longer has is removed and a stranger's never is.
extension Reconciler {
  static let podSpecKeys = [
    "serviceAccountName", "enableServiceLinks", "dnsPolicy", "dnsConfig", "hostNetwork", "hostIPC", "readinessGates",
    "affinity", "imagePullSecrets", "terminationGracePeriodSeconds", "restartPolicy",
  ]
  static let listKeys = ["initContainers", "containers", "volumes"]
  static let managedLabels = [Workloads.appLabel, Workloads.serverLabel, Workloads.idLabel]

  static func specKeys(_ kind: String) -> [String] {
    switch kind {
    case "StatefulSet":
      [
        "serviceName", "replicas", "podManagementPolicy", "updateStrategy", "revisionHistoryLimit", "selector",
        "volumeClaimTemplates",
      ]
    case "DaemonSet": ["selector", "updateStrategy", "minReadySeconds", "revisionHistoryLimit"]
    default: ["clusterIP", "selector", "ports"]
    }
  }

  /// `want` with the annotation naming what this controller manages in its pod template.
  static func marked(_ want: KubeObject) -> KubeObject {
    guard let podSpec = want.spec?[path: ["template", "spec"]] else { return want }
    var o = want
    let names = listKeys.map { key in
      key + "=" + (podSpec[key]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }.joined(separator: ",")
    }
    o.annotations[managedAnnotation] = names.joined(separator: ";")
    return o
  }

  /// The names of `key` this controller wrote on `o`.
  static func managedNames(_ o: KubeObject, _ key: String) -> Set<String> {
    for part in (o.annotations[managedAnnotation] ?? "").split(separator: ";") {
      let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      if kv.count == 2 && kv[0] == key { return Set(kv[1].split(separator: ",").map(String.init)) }
    }
    return []
  }

  /// What to store: `current` with every field the TServer decides taken from `want`.
  static func merge(_ want: KubeObject, into current: KubeObject) -> KubeObject {
    let mine = marked(want)
    var out = current
    var labels = current.labels
    for key in managedLabels { labels[key] = mine.labels[key] }
    out.labels = labels
    var annotations = current.annotations
    annotations[managedAnnotation] = mine.annotations[managedAnnotation]
    out.annotations = annotations
    out.json.set(["metadata", "ownerReferences"], mine.json[path: ["metadata", "ownerReferences"]])
    var spec = current.spec ?? .object([])
    for key in specKeys(want.kind) { spec = spec.setting(key, want.spec?[key]) }
    if let template = want.spec?["template"] {
      spec = spec.setting("template", mergeTemplate(template, into: spec["template"] ?? .object([]), current: current))
    }
    out.json.set(["spec"], spec)
    return out
  }

  static func mergeTemplate(_ want: JSONValue, into current: JSONValue, current object: KubeObject) -> JSONValue {
    var labels = current[path: ["metadata", "labels"]]?.stringMap ?? [:]
    let wanted = want[path: ["metadata", "labels"]]?.stringMap ?? [:]
    for key in managedLabels { labels[key] = wanted[key] }
    var template = current.setting(path: ["metadata", "labels"], .stringMap(labels))
    var podSpec = current["spec"] ?? .object([])
    for key in podSpecKeys { podSpec = podSpec.setting(key, want[path: ["spec", key]]) }
    for key in listKeys {
      let ours = want[path: ["spec", key]]?.arrayValue ?? []
      let ourNames = Set(ours.compactMap { $0["name"]?.stringValue })
      let before = managedNames(object, key)
      var items: [JSONValue] = []
      var placed = Set<String>()
      for item in podSpec[key]?.arrayValue ?? [] {
        let name = item["name"]?.stringValue ?? ""
        if let replacement = ours.first(where: { $0["name"]?.stringValue == name }) {
          items.append(replacement)
          placed.insert(name)
        } else if !before.contains(name) && !ourNames.contains(name) {
          items.append(item)  // someone else's: a sidecar, its volume
        }
      }
      // New ones go where the TServer has them relative to each other: before strangers for
      // init containers (tarsnode must be copied first), after them otherwise.
      let added = ours.filter { !placed.contains($0["name"]?.stringValue ?? "") }
      items = key == "initContainers" ? added + items : items + added
      podSpec = podSpec.setting(key, items.isEmpty ? nil : .array(items))
    }
    template = template.setting("spec", podSpec)
    return template
  }

  /// Whether `merged` says anything `current` does not: a value that differs, or a field the
  /// TServer decides that `current` has and `merged` dropped. Fields the API server added as
  /// defaults inside what we wrote do not count, so an unchanged TServer writes nothing.
  static func needsWrite(_ merged: KubeObject, _ current: KubeObject) -> Bool {
    if !merged.json.isSubset(of: current.json) { return true }
    let spec = merged.spec ?? .object([])
    let currentSpec = current.spec ?? .object([])
    for key in specKeys(merged.kind) where spec[key] == nil && currentSpec[key] != nil { return true }
    let podSpec = spec[path: ["template", "spec"]] ?? .object([])
    let currentPodSpec = currentSpec[path: ["template", "spec"]] ?? .object([])
    for key in podSpecKeys + listKeys where podSpec[key] == nil && currentPodSpec[key] != nil { return true }
    let labels = spec[path: ["template", "metadata", "labels"]]?.stringMap ?? [:]
    let currentLabels = currentSpec[path: ["template", "metadata", "labels"]]?.stringMap ?? [:]
    for key in managedLabels where labels[key] == nil && currentLabels[key] != nil { return true }
    // Inside each container this controller wrote, a member the TServer dropped (its resources,
    // envFrom, a mount's readOnly) still stored: the subset test cannot see a removal.
    for key in ["initContainers", "containers"] {
      let stored = currentPodSpec[key]?.arrayValue ?? []
      for item in podSpec[key]?.arrayValue ?? [] {
        guard let name = item["name"]?.stringValue, managedNames(merged, key).contains(name),
          let old = stored.first(where: { $0["name"]?.stringValue == name })
        else { continue }
        if dropped(containerKeys, from: item, stillIn: old) { return true }
        let mounts = item["volumeMounts"]?.arrayValue ?? []
        for mount in old["volumeMounts"]?.arrayValue ?? [] {
          guard let ours = mounts.first(where: { $0["name"] == mount["name"] && $0["mountPath"] == mount["mountPath"] })
          else { continue }
          if dropped(mountKeys, from: ours, stillIn: mount) { return true }
        }
      }
    }
    return false
  }

  /// The members of a container this controller decides (what `Workloads` writes into one).
  static let containerKeys = [
    "image", "imagePullPolicy", "command", "args", "lifecycle", "env", "envFrom", "resources", "ports", "volumeMounts",
  ]
  static let mountKeys = ["readOnly", "subPath", "subPathExpr", "mountPropagation"]

  /// Whether one of `keys` is absent from `want` but set (not a zero value) in `stored`.
  static func dropped(_ keys: [String], from want: JSONValue, stillIn stored: JSONValue) -> Bool {
    keys.contains { want[$0] == nil && !(stored[$0]?.isZero ?? true) }
  }
}

extension JSONValue {
  /// Every member of this object (recursively) is in `other` with the same value; arrays match
  /// element by element. What the API server adds to an object we wrote leaves it a subset, and
  /// so does what it leaves out: a zero value (`false`, `""`, `0`, `[]`, `{}`) of an `omitempty`
  /// field is not stored, so it matches a missing member. (Where a zero is kept — a pointer field
  /// like `replicas` or `enableServiceLinks` — the stored object has the member, defaulted if we
  /// did not write it, and the values are compared.)
  func isSubset(of other: JSONValue) -> Bool {
    switch (self, other) {
    case (.object(let a), .object):
      return a.allSatisfy { key, value in other[key].map { value.isSubset(of: $0) } ?? value.isZero }
    case (.array(let a), .array(let b)):
      return a.count == b.count && zip(a, b).allSatisfy { $0.isSubset(of: $1) }
    default:
      return self == other
    }
  }

  /// What Go's `encoding/json` leaves out of an `omitempty` field.
  var isZero: Bool {
    switch self {
    case .bool(let b): !b
    case .string(let s): s.isEmpty
    case .integer(let i): i == 0
    case .array(let a): a.isEmpty
    case .object(let o): o.isEmpty
    case .null: true
    default: false
    }
  }
}
