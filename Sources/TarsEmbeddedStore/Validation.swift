import TarsCRD
import TarsKube

/// The checks the API server makes on every write that the embedded store must make too, with
/// its messages (422 Invalid, fixture 062).
enum Validation {
  static func check(_ resource: KubeResource, _ o: KubeObject) throws(StoreError) {
    try check(resource, o, causes: [])
  }

  /// The Tars CRDs' `x-kubernetes-validations` rules, in their Swift twin (`TarsCRDRules`), on
  /// a create (`old` nil) or an update of the spec; status writes do not re-judge the spec.
  static func checkRules(_ resource: KubeResource, _ o: KubeObject, old: KubeObject?) throws(StoreError) {
    guard resource.isCustom else { return }
    let broken = TarsCRDRules.violations(kind: resource.kind, o, old: old)
    guard !broken.isEmpty else { return }
    let list = broken.count == 1 ? "\(broken[0])" : "[\(broken.map(\.description).joined(separator: ", "))]"
    throw .invalid("\(resource.kind).\(resource.group) \"\(o.name)\" is invalid: \(list)")
  }

  static func check(_ resource: KubeResource, _ o: KubeObject, causes initial: [String]) throws(StoreError) {
    var causes = initial
    if o.name.isEmpty {
      causes.append("metadata.name: Required value: name or generateName is required")
    } else if !isDNSSubdomain(o.name) {
      causes.append(
        "metadata.name: Invalid value: \"\(o.name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
      )
    }
    if resource.namespaced && (o.namespace ?? "").isEmpty {
      causes.append("metadata.namespace: Required value")
    }
    for key in o.labels.keys where !LabelSelector.isValidKey(key) {
      causes.append("metadata.labels: Invalid value: \"\(key)\": name part must consist of alphanumeric characters")
    }
    guard causes.isEmpty else {
      let list = causes.count == 1 ? causes[0] : "[\(causes.joined(separator: ", "))]"
      throw .invalid("\(resource.kind) \"\(o.name)\" is invalid: \(list)")
    }
  }

  static func isDNSSubdomain(_ s: String) -> Bool {
    guard !s.isEmpty, s.count <= 253, let f = s.first, let l = s.last else { return false }
    let ok: (Character) -> Bool = { $0.isASCII && ($0.isLowercase || $0.isNumber) }
    return ok(f) && ok(l) && s.allSatisfy { ok($0) || $0 == "-" || $0 == "." }
  }
}
