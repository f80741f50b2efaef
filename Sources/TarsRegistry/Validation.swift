import TarsCRD
import TarsKube
import TarsProtocol

/// What is wrong with a TServer before anything is deployed from it — the checks K8SFramework's
/// webhook makes (reference §4.1, §4.5): the CRD's schema (names, enums, ranges), its CEL rules
/// (`TarsCRDRules`, the same words as the API server's), and what neither can say — that the
/// template exists. Each problem is one sentence naming the field; an empty list means it may be
/// applied.
public enum TServerValidation {
  public static func problems(_ o: KubeObject, templates: Set<String>) -> [String] {
    var out: [String] = []
    guard let spec = o.spec else { return ["spec is missing"] }
    let app = spec["app"]?.stringValue ?? ""
    let server = spec["server"]?.stringValue ?? ""
    for (field, value) in [("spec.app", app), ("spec.server", server)] {
      if !isName(value) {
        out.append("\(field) '\(value)' must start with a letter and hold only letters and digits (at most 63)")
      }
    }
    let subType = spec["subType"]?.stringValue ?? ""
    if subType != "tars" && subType != "normal" { out.append("spec.subType must be tars or normal, not '\(subType)'") }
    func port(_ value: Int64?, _ owner: String) {
      if !(1...65535).contains(value ?? 0) { out.append("\(owner): port must be 1-65535") }
    }
    if subType == "tars", let tars = spec["tars"] {
      let template = tars["template"]?.stringValue ?? ""
      if template.isEmpty {
        out.append("spec.tars.template is required")
      } else if !templates.contains(template) {
        out.append(TarsCRDRules.templateMissing(template))
      }
      for (i, s) in (tars["servants"]?.arrayValue ?? []).enumerated() {
        let name = s["name"]?.stringValue ?? ""
        if !isName(name) {
          out.append(
            "spec.tars.servants[\(i)].name '\(name)' must start with a letter and hold only letters and digits")
        }
        port(s["port"]?.intValue, "servant \(name)")
      }
      for (i, p) in (tars["ports"]?.arrayValue ?? []).enumerated() {
        port(p["port"]?.intValue, "spec.tars.ports[\(i)]")
      }
    } else if subType == "normal" {
      for (i, p) in (spec[path: ["normal", "ports"]]?.arrayValue ?? []).enumerated() {
        port(p["port"]?.intValue, "spec.normal.ports[\(i)]")
      }
    }
    if let replicas = spec[path: ["k8s", "replicas"]]?.intValue, replicas < 0 {
      out.append("spec.k8s.replicas must not be negative")
    }
    // The CRD's CEL rules, with their own messages (the API server and the embedded store
    // refuse with the same words).
    return out + TarsCRDRules.violations(kind: "TServer", o).map(\.short)
  }

  static func isName(_ s: String) -> Bool {
    guard let f = s.first, f.isASCII, f.isLetter, s.count <= 63 else { return false }
    return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
  }
}
