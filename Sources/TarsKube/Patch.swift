import TarsProtocol

/// A patch, by its media type. The embedded store applies them the way the API server does
/// (including the parts recorded in Tests/Fixtures/kube/INDEX.md); the client sends them.
public enum Patch: Sendable, Equatable {
  /// `application/merge-patch+json` (RFC 7386): objects merge, `null` deletes, lists are replaced.
  case merge(JSONValue)
  /// `application/strategic-merge-patch+json`: like merge, but some lists merge by a key (pod
  /// conditions by `type`). Built-in kinds only; custom resources answer 415.
  case strategicMerge(JSONValue)
  /// `application/json-patch+json` (RFC 6902).
  case json(JSONValue)

  public var contentType: String {
    switch self {
    case .merge: "application/merge-patch+json"
    case .strategicMerge: "application/strategic-merge-patch+json"
    case .json: "application/json-patch+json"
    }
  }

  public var body: JSONValue {
    switch self {
    case .merge(let b), .strategicMerge(let b), .json(let b): b
    }
  }

  /// The patched document.
  public func apply(to target: JSONValue, resource: KubeResource) throws(StoreError) -> JSONValue {
    switch self {
    case .merge(let p):
      guard p.isObject else { throw .badRequest("a merge patch must be a JSON object") }
      return Self.merge(target, p, strategic: false)
    case .strategicMerge(let p):
      if resource.isCustom {
        throw .unsupportedMediaType(
          "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        )
      }
      guard p.isObject else { throw .badRequest("a strategic merge patch must be a JSON object") }
      return Self.merge(target, p, strategic: true)
    case .json(let p):
      guard let ops = p.arrayValue else { throw .badRequest("a JSON patch must be a JSON array of operations") }
      var doc = target
      for op in ops { doc = try Self.applyJSONPatch(op, to: doc) }
      return doc
    }
  }

  /// List fields that strategic merge merges by a key instead of replacing.
  static let mergeKeys: [String: String] = [
    "conditions": "type", "containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
    "volumeMounts": "mountPath", "ownerReferences": "uid", "addresses": "type", "imagePullSecrets": "name",
  ]

  static func merge(_ target: JSONValue, _ patch: JSONValue, strategic: Bool, field: String = "") -> JSONValue {
    if case .object(let members) = patch {
      var t: JSONValue = target.isObject ? target : .object([])
      for (k, v) in members {
        if strategic && k.hasPrefix("$") { continue }
        if v.isNull {
          t = t.setting(k, nil)
        } else {
          t = t.setting(k, merge(t[k] ?? .null, v, strategic: strategic, field: k))
        }
      }
      return t
    }
    if strategic, case .array(let items) = patch, let key = mergeKeys[field], case .array(var current) = target {
      for item in items {
        let id = item[key]
        let index = current.firstIndex { id != nil && $0[key] == id }
        if item["$patch"]?.stringValue == "delete" {
          if let index { current.remove(at: index) }
        } else if let index {
          current[index] = merge(current[index], item, strategic: true)
        } else {
          // A new element goes in front (what the API server does: fixtures 041, INDEX.md).
          current.insert(merge(.null, item, strategic: true), at: 0)
        }
      }
      return .array(current)
    }
    if strategic, case .array(let items) = patch {
      return .array(items.map { merge(.null, $0, strategic: true) })
    }
    return patch
  }

  // MARK: RFC 6902

  static func pointer(_ text: String) throws(StoreError) -> [String] {
    if text.isEmpty { return [] }
    guard text.hasPrefix("/") else { throw .badRequest("JSON pointer '\(text)' must start with '/'") }
    return text.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
      String($0).replacing("~1", with: "/").replacing("~0", with: "~")
    }
  }

  static func applyJSONPatch(_ op: JSONValue, to doc: JSONValue) throws(StoreError) -> JSONValue {
    guard let name = op["op"]?.stringValue, let pathText = op["path"]?.stringValue else {
      throw .badRequest("a JSON patch operation needs \"op\" and \"path\"")
    }
    let path = try pointer(pathText)
    switch name {
    case "add":
      guard let value = op["value"] else { throw .badRequest("add needs a value") }
      return try insert(doc, path, value, replace: false)
    case "remove":
      _ = try get(doc, path)
      return try remove(doc, path)
    case "replace":
      guard let value = op["value"] else { throw .badRequest("replace needs a value") }
      _ = try get(doc, path)
      return try insert(doc, path, value, replace: true)
    case "move", "copy":
      guard let fromText = op["from"]?.stringValue else { throw .badRequest("\(name) needs \"from\"") }
      let from = try pointer(fromText)
      let value = try get(doc, from)
      let base = name == "move" ? try remove(doc, from) : doc
      return try insert(base, path, value, replace: false)
    case "test":
      guard let value = op["value"] else { throw .badRequest("test needs a value") }
      guard (try? get(doc, path)) == value else {
        throw .invalid("the server rejected our request due to an error in our request")
      }
      return doc
    default:
      throw .badRequest("unknown JSON patch operation '\(name)'")
    }
  }

  static func get(_ doc: JSONValue, _ path: [String]) throws(StoreError) -> JSONValue {
    var v = doc
    for key in path {
      if case .array(let a) = v {
        guard let i = Int(key), a.indices.contains(i) else { throw .invalid("no element \(key) in a list") }
        v = a[i]
      } else {
        guard let next = v[key] else { throw .invalid("no field \"\(key)\"") }
        v = next
      }
    }
    return v
  }

  static func insert(_ doc: JSONValue, _ path: [String], _ value: JSONValue, replace: Bool) throws(StoreError)
    -> JSONValue
  {
    guard let key = path.first else { return value }
    if path.count > 1 {
      let child = try get(doc, [key])
      let updated = try insert(child, Array(path.dropFirst()), value, replace: replace)
      return try insert(doc, [key], updated, replace: true)
    }
    if case .array(var a) = doc {
      if key == "-" && !replace {
        a.append(value)
      } else {
        guard let i = Int(key), i >= 0, replace ? i < a.count : i <= a.count else {
          throw .invalid("index \(key) is out of the list's range")
        }
        if replace { a[i] = value } else { a.insert(value, at: i) }
      }
      return .array(a)
    }
    guard doc.isObject else { throw .invalid("cannot add \"\(key)\" to a value that is not an object") }
    return doc.setting(key, value)
  }

  static func remove(_ doc: JSONValue, _ path: [String]) throws(StoreError) -> JSONValue {
    guard let key = path.first else { return .null }
    if path.count > 1 {
      let child = try get(doc, [key])
      return try insert(doc, [key], try remove(child, Array(path.dropFirst())), replace: true)
    }
    if case .array(var a) = doc {
      guard let i = Int(key), a.indices.contains(i) else { throw .invalid("index \(key) is out of the list's range") }
      a.remove(at: i)
      return .array(a)
    }
    return doc.setting(key, nil)
  }
}
