import TarsProtocol

/// Kubernetes objects are kept as JSON trees, so fields this code does not know (a newer
/// Kubernetes, another controller's annotations) survive a read-modify-write unchanged.
extension JSONValue {
  /// The members of an object; empty for anything else.
  public var members: [(String, JSONValue)] {
    if case .object(let m) = self { return m }
    return []
  }

  /// Equal as JSON means: objects with the same members in any order (the API server's view;
  /// `==` also compares the order, which this type keeps for round trips).
  public func sameContent(as other: JSONValue) -> Bool {
    switch (self, other) {
    case (.object(let a), .object(let b)):
      guard a.count == b.count else { return false }
      var byKey: [String: JSONValue] = [:]
      for (k, v) in b { byKey[k] = v }
      return a.allSatisfy { k, v in byKey[k].map { v.sameContent(as: $0) } ?? false }
    case (.array(let a), .array(let b)):
      return a.count == b.count && zip(a, b).allSatisfy { $0.sameContent(as: $1) }
    default:
      return self == other
    }
  }

  public var boolValue: Bool? {
    if case .bool(let b) = self { return b }
    return nil
  }

  public var isNull: Bool {
    if case .null = self { return true }
    return false
  }

  public var isObject: Bool {
    if case .object = self { return true }
    return false
  }

  /// The value at a path of object keys, or nil.
  public subscript(path path: [String]) -> JSONValue? {
    var v: JSONValue? = self
    for key in path { v = v?[key] }
    return v
  }

  /// This object with `key` set (appended when new, replaced in place otherwise) or removed
  /// (nil). A non-object becomes an object first.
  public func setting(_ key: String, _ value: JSONValue?) -> JSONValue {
    var m = members
    if let i = m.firstIndex(where: { $0.0 == key }) {
      if let value { m[i].1 = value } else { m.remove(at: i) }
    } else if let value {
      m.append((key, value))
    }
    return .object(m)
  }

  /// This object with the value at `path` set or removed, creating objects on the way.
  public func setting(path: [String], _ value: JSONValue?) -> JSONValue {
    guard let first = path.first else { return value ?? .null }
    if path.count == 1 { return setting(first, value) }
    let child = self[first] ?? .object([])
    if value == nil && self[first] == nil { return self }
    return setting(first, child.setting(path: Array(path.dropFirst()), value))
  }

  public mutating func set(_ path: [String], _ value: JSONValue?) { self = setting(path: path, value) }

  /// A string map (labels, annotations); other members are skipped.
  public var stringMap: [String: String] {
    var out: [String: String] = [:]
    for (k, v) in members { if let s = v.stringValue { out[k] = s } }
    return out
  }

  public static func stringMap(_ map: [String: String]) -> JSONValue {
    .object(map.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
  }

  /// JSON text, for storage and the wire.
  public var text: String { description }

  /// Parses JSON bytes.
  public init(bytes: [UInt8]) throws(JSONParseError) {
    try self.init(parsing: String(decoding: bytes, as: UTF8.self))
  }
}
