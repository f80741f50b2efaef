import TarsKube
import TarsProtocol

/// What is wrong with a TServer before anything is deployed from it — the checks K8SFramework's
/// webhook makes (reference §4.1, §4.5) that a one-machine control plane must make itself. Each
/// problem is one sentence naming the field; an empty list means it may be applied.
public enum TServerValidation {
  /// Ports tarsnode and the server's AdminObj own inside every pod.
  public static let reservedPorts: Set<Int64> = [19385, 19386, 19387]

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
    let expected = ServerSpec.resourceName(app: app, server: server)
    if !app.isEmpty && !server.isEmpty && o.name != expected {
      out.append("metadata.name '\(o.name)' must be '\(expected)' (lower(app)-lower(server))")
    }
    if o.name.count >= 59 { out.append("metadata.name '\(o.name)' must be shorter than 59 characters") }
    let subType = spec["subType"]?.stringValue ?? ""
    if subType != "tars" && subType != "normal" { out.append("spec.subType must be tars or normal, not '\(subType)'") }
    var ports: [Int64: String] = [:]
    func port(_ value: Int64?, _ owner: String) {
      guard let value, (1...65535).contains(value) else {
        out.append("\(owner): port must be 1-65535")
        return
      }
      if reservedPorts.contains(value) {
        out.append("\(owner): port \(value) is reserved for tarsnode (19385 NodeObj, 19386 ServerObj, 19387 AdminObj)")
      }
      if let other = ports[value] {
        out.append("\(owner): port \(value) is already used by \(other)")
      } else {
        ports[value] = owner
      }
    }
    if subType == "tars" {
      guard let tars = spec["tars"] else { return out + ["spec.tars is required for subType tars"] }
      let template = tars["template"]?.stringValue ?? ""
      if template.isEmpty {
        out.append("spec.tars.template is required")
      } else if !templates.contains(template) {
        out.append("spec.tars.template '\(template)' does not exist")
      }
      var names: Set<String> = []
      for (i, s) in (tars["servants"]?.arrayValue ?? []).enumerated() {
        let name = s["name"]?.stringValue ?? ""
        if !isName(name) {
          out.append(
            "spec.tars.servants[\(i)].name '\(name)' must start with a letter and hold only letters and digits")
        }
        if !names.insert(name).inserted { out.append("spec.tars.servants[\(i)].name '\(name)' is used twice") }
        port(s["port"]?.intValue, "servant \(name)")
      }
      for (i, p) in (tars["ports"]?.arrayValue ?? []).enumerated() {
        port(p["port"]?.intValue, "spec.tars.ports[\(i)]")
      }
    } else {
      for (i, p) in (spec[path: ["normal", "ports"]]?.arrayValue ?? []).enumerated() {
        port(p["port"]?.intValue, "spec.normal.ports[\(i)]")
      }
    }
    if let replicas = spec[path: ["k8s", "replicas"]]?.intValue, replicas < 0 {
      out.append("spec.k8s.replicas must not be negative")
    }
    return out
  }

  static func isName(_ s: String) -> Bool {
    guard let f = s.first, f.isASCII, f.isLetter, s.count <= 63 else { return false }
    return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
  }
}
