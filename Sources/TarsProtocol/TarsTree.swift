/// A Tars value decoded without a schema: what the bytes say, tags and wire types included.
/// `tarsctl decode` prints it; tests compare it with the shared vectors' `decoded` trees.
public indirect enum TarsValue: Equatable, Sendable {
  /// INT1, INT2, INT4, INT8 or ZERO_TAG.
  case integer(Int64, TarsWireType)
  case float(Float)
  case double(Double)
  /// STRING1 or STRING4, as raw bytes (Tars does not promise UTF-8).
  case string([UInt8], TarsWireType)
  case map([TarsMapEntry])
  case list([TarsValue])
  case simpleList([UInt8])
  case structure([TarsField])

  public var wireType: TarsWireType {
    switch self {
    case .integer(_, let t), .string(_, let t): t
    case .float: .float
    case .double: .double
    case .map: .map
    case .list: .list
    case .simpleList: .simpleList
    case .structure: .structBegin
    }
  }
}

public struct TarsField: Equatable, Sendable {
  public var tag: UInt8
  public var value: TarsValue

  public init(tag: UInt8, value: TarsValue) {
    self.tag = tag
    self.value = value
  }
}

public struct TarsMapEntry: Equatable, Sendable {
  public var key: TarsValue
  public var value: TarsValue
}

extension TarsReader {
  /// Decodes every remaining field at this level (until the end of input) without a schema.
  public mutating func readTree() throws(TarsDecodeError) -> [TarsField] {
    var fields: [TarsField] = []
    while !isAtEnd {
      let h = try readHead()
      if h.type == .structEnd { throw TarsDecodeError(.invalidValue("STRUCT_END outside a struct"), offset: offset) }
      fields.append(TarsField(tag: h.tag, value: try readTreeValue(h.type)))
    }
    return fields
  }

  /// Decodes one payload of wire type `type` without a schema.
  public mutating func readTreeValue(_ type: TarsWireType) throws(TarsDecodeError) -> TarsValue {
    switch type {
    case .zero, .int1, .int2, .int4, .int8:
      return .integer(try readInteger(type: type, maxWidth: 8, expected: "integer", tag: 0), type)
    case .float:
      return .float(Float(try readFloatingPoint(type: type, allowDouble: false, expected: "float", tag: 0)))
    case .double:
      return .double(try readFloatingPoint(type: type, allowDouble: true, expected: "double", tag: 0))
    case .string1, .string4:
      return .string(Array(base[try readStringBytes(type: type, tag: 0)]), type)
    case .simpleList:
      return .simpleList(Array(base[try readSimpleListRange()]))
    case .list:
      try enterNested()
      defer { leaveNested() }
      let n = try readSize(minBytesPerUnit: 1)
      var items: [TarsValue] = []
      items.reserveCapacity(min(n, 1024))
      for _ in 0..<n {
        let h = try readHead()
        if h.type == .structEnd { throw TarsDecodeError(.requiredFieldMissing, tag: 0, offset: offset) }
        items.append(try readTreeValue(h.type))
      }
      return .list(items)
    case .map:
      try enterNested()
      defer { leaveNested() }
      let n = try readSize(minBytesPerUnit: 2)
      var entries: [TarsMapEntry] = []
      entries.reserveCapacity(min(n, 1024))
      for _ in 0..<n {
        let k = try readHead()
        if k.type == .structEnd { throw TarsDecodeError(.requiredFieldMissing, tag: 0, offset: offset) }
        let key = try readTreeValue(k.type)
        let v = try readHead()
        if v.type == .structEnd { throw TarsDecodeError(.requiredFieldMissing, tag: 1, offset: offset) }
        entries.append(TarsMapEntry(key: key, value: try readTreeValue(v.type)))
      }
      return .map(entries)
    case .structBegin:
      try enterNested()
      defer { leaveNested() }
      var fields: [TarsField] = []
      while true {
        let h = try readHead()
        if h.type == .structEnd { return .structure(fields) }
        fields.append(TarsField(tag: h.tag, value: try readTreeValue(h.type)))
      }
    case .structEnd:
      throw TarsDecodeError(.invalidValue("unexpected STRUCT_END"), offset: offset)
    }
  }
}

extension TarsValue {
  /// Decodes a whole buffer of fields without a schema.
  public static func decodeFields(_ bytes: [UInt8]) throws(TarsDecodeError) -> [TarsField] {
    var r = TarsReader(bytes)
    return try r.readTree()
  }

  /// The value as a JSON object in the shared vectors' format:
  /// `{"type": "STRING1", "len": 3, "value": "abc"}`, `{"type": "LIST", "len": n, "items": […]}`,
  /// `{"type": "MAP", "len": n, "entries": [{"key": …, "value": …}]}`, `{"type": "STRUCT", "fields": […]}`.
  public func json(tag: UInt8? = nil) -> JSONValue {
    var members: [(String, JSONValue)] = []
    if let tag { members.append(("tag", .integer(Int64(tag)))) }
    switch self {
    case .integer(let v, let t):
      members += [("type", .string(t.description)), ("value", .integer(v))]
    case .float(let v):
      members += [("type", .string("FLOAT")), ("value", .number(Double(v)))]
    case .double(let v):
      members += [("type", .string("DOUBLE")), ("value", .number(v))]
    case .string(let bytes, let t):
      members += [
        ("type", .string(t.description)), ("len", .integer(Int64(bytes.count))),
        ("value", .string(String(decoding: bytes, as: UTF8.self))),
      ]
    case .simpleList(let bytes):
      members += [
        ("type", .string("SIMPLE_LIST")), ("len", .integer(Int64(bytes.count))), ("hex", .string(Hex.encode(bytes))),
      ]
    case .list(let items):
      members += [
        ("type", .string("LIST")), ("len", .integer(Int64(items.count))), ("items", .array(items.map { $0.json() })),
      ]
    case .map(let entries):
      members += [
        ("type", .string("MAP")), ("len", .integer(Int64(entries.count))),
        ("entries", .array(entries.map { .object([("key", $0.key.json()), ("value", $0.value.json())]) })),
      ]
    case .structure(let fields):
      members += [("type", .string("STRUCT")), ("fields", .array(fields.map { $0.value.json(tag: $0.tag) }))]
    }
    return .object(members)
  }
}
