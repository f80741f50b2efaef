import Foundation

/// A label selector, Kubernetes syntax: `a`, `!a`, `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
/// `a notin (x,y)`, comma-separated, all must hold.
public struct LabelSelector: Sendable, Equatable, CustomStringConvertible {
  public enum Requirement: Sendable, Equatable {
    case exists(String)
    case notExists(String)
    case equals(String, String)
    case notEquals(String, String)
    case isIn(String, [String])
    case notIn(String, [String])
  }

  public var requirements: [Requirement]

  public init(_ requirements: [Requirement] = []) { self.requirements = requirements }

  /// Equality on every pair.
  public init(matching labels: [String: String]) {
    requirements = labels.sorted { $0.key < $1.key }.map { .equals($0.key, $0.value) }
  }

  public var isEmpty: Bool { requirements.isEmpty }

  public init(parsing text: String) throws(StoreError) {
    var out: [Requirement] = []
    var parts: [String] = []
    var depth = 0
    var current = ""
    for c in text {
      if c == "(" { depth += 1 }
      if c == ")" { depth -= 1 }
      if c == "," && depth == 0 {
        parts.append(current)
        current = ""
      } else {
        current.append(c)
      }
    }
    if !current.isEmpty || !parts.isEmpty { parts.append(current) }
    func bad(_ why: String) -> StoreError {
      .badRequest("unable to parse requirement: \(why) (label selector \"\(text)\")")
    }
    for raw in parts {
      let part = raw.trimmingBlank()
      guard !part.isEmpty else { throw bad("empty requirement") }
      if part.hasPrefix("!") {
        let key = String(part.dropFirst()).trimmingBlank()
        guard Self.validKey(key) else { throw bad("invalid key '\(key)'") }
        out.append(.notExists(key))
      } else if let r = part.range(of: "!=") {
        let (k, v) = (part[..<r.lowerBound].trimmingBlank(), part[r.upperBound...].trimmingBlank())
        guard Self.validKey(k), Self.validValue(v) else { throw bad("invalid '\(part)'") }
        out.append(.notEquals(k, v))
      } else if let r = part.range(of: "==") ?? part.range(of: "=") {
        let (k, v) = (part[..<r.lowerBound].trimmingBlank(), part[r.upperBound...].trimmingBlank())
        guard Self.validKey(k), Self.validValue(v) else { throw bad("invalid '\(part)'") }
        out.append(.equals(k, v))
      } else if let open = part.firstIndex(of: "("), part.hasSuffix(")") {
        let head = part[..<open].split(separator: " ").map(String.init)
        let values = part[part.index(after: open)..<part.index(before: part.endIndex)].split(
          separator: ",", omittingEmptySubsequences: false
        ).map { $0.trimmingBlank() }
        guard head.count == 2, Self.validKey(head[0]), values.allSatisfy(Self.validValue) else {
          throw bad("invalid '\(part)'")
        }
        switch head[1] {
        case "in": out.append(.isIn(head[0], values))
        case "notin": out.append(.notIn(head[0], values))
        default: throw bad("unknown operator '\(head[1])'")
        }
      } else {
        guard Self.validKey(part) else { throw bad("invalid key '\(part)'") }
        out.append(.exists(part))
      }
    }
    requirements = out
  }

  public func matches(_ labels: [String: String]) -> Bool {
    requirements.allSatisfy { r in
      switch r {
      case .exists(let k): labels[k] != nil
      case .notExists(let k): labels[k] == nil
      case .equals(let k, let v): labels[k] == v
      case .notEquals(let k, let v): labels[k] != v
      case .isIn(let k, let vs): labels[k].map(vs.contains) ?? false
      case .notIn(let k, let vs): !(labels[k].map(vs.contains) ?? false)
      }
    }
  }

  public var description: String {
    requirements.map { r in
      switch r {
      case .exists(let k): k
      case .notExists(let k): "!\(k)"
      case .equals(let k, let v): "\(k)=\(v)"
      case .notEquals(let k, let v): "\(k)!=\(v)"
      case .isIn(let k, let vs): "\(k) in (\(vs.joined(separator: ",")))"
      case .notIn(let k, let vs): "\(k) notin (\(vs.joined(separator: ",")))"
      }
    }.joined(separator: ",")
  }

  /// `[prefix/]name`: name ≤ 63 of alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
  public static func isValidKey(_ key: String) -> Bool { validKey(key) }

  static func validKey(_ key: String) -> Bool {
    let parts = key.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count <= 2, let name = parts.last, !name.isEmpty, name.count <= 63 else { return false }
    if parts.count == 2 && (parts[0].isEmpty || parts[0].count > 253) { return false }
    return validName(name)
  }

  static func validValue(_ value: String) -> Bool { value.isEmpty || (value.count <= 63 && validName(value[...])) }

  static func validName(_ s: Substring) -> Bool {
    guard let f = s.first, let l = s.last, f.isASCII && (f.isLetter || f.isNumber),
      l.isASCII && (l.isLetter || l.isNumber)
    else { return false }
    return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
  }
}

/// A field selector: `field=value`, `field==value`, `field!=value`, comma-separated, on the
/// fields the API server supports for the kind.
public struct FieldSelector: Sendable, Equatable, CustomStringConvertible {
  public var terms: [(field: String, value: String, equal: Bool)]

  public static func == (a: FieldSelector, b: FieldSelector) -> Bool { a.description == b.description }

  public init(parsing text: String, resource: KubeResource) throws(StoreError) {
    terms = []
    for part in text.split(separator: ",") {
      let s = String(part)
      let (field, value, equal): (String, String, Bool)
      if let r = s.range(of: "!=") {
        (field, value, equal) = (String(s[..<r.lowerBound]), String(s[r.upperBound...]), false)
      } else if let r = s.range(of: "==") ?? s.range(of: "=") {
        (field, value, equal) = (String(s[..<r.lowerBound]), String(s[r.upperBound...]), true)
      } else {
        throw .badRequest("invalid field selector: '\(s)': expected field=value or field!=value")
      }
      guard Self.supported(resource).contains(field) else {
        throw .badRequest("field label not supported: \(field)")
      }
      terms.append((field, value, equal))
    }
  }

  static func supported(_ r: KubeResource) -> Set<String> {
    var s: Set<String> = ["metadata.name", "metadata.namespace"]
    if r == .pods { s.formUnion(["spec.nodeName", "status.phase", "status.podIP", "spec.restartPolicy"]) }
    return s
  }

  public func matches(_ object: KubeObject) -> Bool {
    terms.allSatisfy { t in
      let v = object.value(t.field)?.stringValue ?? ""
      return (v == t.value) == t.equal
    }
  }

  public var description: String {
    terms.map { "\($0.field)\($0.equal ? "=" : "!=")\($0.value)" }.joined(separator: ",")
  }
}

extension String {
  func trimmingBlank() -> String {
    var s = self[...]
    while s.first == " " { s = s.dropFirst() }
    while s.last == " " { s = s.dropLast() }
    return String(s)
  }
}

extension Substring {
  func trimmingBlank() -> String { String(self).trimmingBlank() }
}

extension LabelSelector {
  /// What every Tars object of a server carries — its pods, and the workloads and Service the
  /// controller makes: `tars.io/ServerApp` and `tars.io/ServerName`.
  public static let tarsServer = LabelSelector([.exists("tars.io/ServerApp"), .exists("tars.io/ServerName")])
}
