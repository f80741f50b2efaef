/// A JSON text that could not be read, and where.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
  public var offset: Int
  public var message: String
  public var description: String { "JSON at byte \(offset): \(message)" }
}

extension JSONValue {
  /// Parses JSON text (RFC 8259) without Foundation, for files tarsnode reads. Nesting is
  /// limited to 64 levels.
  public init(parsing text: String) throws(JSONParseError) {
    var p = JSONParser(bytes: Array(text.utf8))
    p.skipBlanks()
    self = try p.value(depth: 0)
    p.skipBlanks()
    guard p.i == p.bytes.count else { throw p.fail("unexpected text after the value") }
  }

  /// The member `key` of an object, or nil.
  public subscript(key: String) -> JSONValue? {
    guard case .object(let members) = self else { return nil }
    return members.last { $0.0 == key }?.1
  }

  public var stringValue: String? {
    if case .string(let s) = self { return s }
    return nil
  }

  public var arrayValue: [JSONValue]? {
    if case .array(let a) = self { return a }
    return nil
  }

  public var intValue: Int64? {
    switch self {
    case .integer(let v): return v
    case .number(let d) where d == d.rounded() && abs(d) < 9e15: return Int64(d)
    default: return nil
    }
  }
}

struct JSONParser {
  let bytes: [UInt8]
  var i = 0

  func fail(_ message: String) -> JSONParseError { JSONParseError(offset: i, message: message) }

  mutating func skipBlanks() {
    while i < bytes.count, bytes[i] == 32 || bytes[i] == 9 || bytes[i] == 10 || bytes[i] == 13 { i += 1 }
  }

  mutating func expect(_ word: String) throws(JSONParseError) {
    for b in word.utf8 {
      guard i < bytes.count, bytes[i] == b else { throw fail("expected '\(word)'") }
      i += 1
    }
  }

  mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
    guard depth < 64 else { throw fail("nested deeper than 64 levels") }
    guard i < bytes.count else { throw fail("unexpected end of text") }
    switch bytes[i] {
    case UInt8(ascii: "{"):
      i += 1
      var members: [(String, JSONValue)] = []
      skipBlanks()
      if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
        i += 1
        return .object(members)
      }
      while true {
        skipBlanks()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
        let key = try string()
        skipBlanks()
        try expect(":")
        skipBlanks()
        members.append((key, try value(depth: depth + 1)))
        skipBlanks()
        guard i < bytes.count else { throw fail("unterminated object") }
        if bytes[i] == UInt8(ascii: ",") {
          i += 1
          continue
        }
        try expect("}")
        return .object(members)
      }
    case UInt8(ascii: "["):
      i += 1
      var items: [JSONValue] = []
      skipBlanks()
      if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
        i += 1
        return .array(items)
      }
      while true {
        skipBlanks()
        items.append(try value(depth: depth + 1))
        skipBlanks()
        guard i < bytes.count else { throw fail("unterminated array") }
        if bytes[i] == UInt8(ascii: ",") {
          i += 1
          continue
        }
        try expect("]")
        return .array(items)
      }
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"):
      try expect("true")
      return .bool(true)
    case UInt8(ascii: "f"):
      try expect("false")
      return .bool(false)
    case UInt8(ascii: "n"):
      try expect("null")
      return .null
    default: return try number()
    }
  }

  mutating func number() throws(JSONParseError) -> JSONValue {
    let start = i
    var isInteger = true
    if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
    while i < bytes.count {
      let c = bytes[i]
      if c >= 48 && c <= 57 {
        i += 1
      } else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+")
        || c == UInt8(ascii: "-")
      {
        isInteger = false
        i += 1
      } else {
        break
      }
    }
    let text = String(decoding: bytes[start..<i], as: UTF8.self)
    if isInteger, let v = Int64(text) { return .integer(v) }
    guard let d = Double(text), !text.isEmpty else {
      i = start
      throw fail("expected a value")
    }
    return .number(d)
  }

  mutating func string() throws(JSONParseError) -> String {
    i += 1  // the opening quote
    var out: [UInt8] = []
    while i < bytes.count {
      let c = bytes[i]
      i += 1
      switch c {
      case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
      case UInt8(ascii: "\\"):
        guard i < bytes.count else { throw fail("unterminated escape") }
        let e = bytes[i]
        i += 1
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
        case UInt8(ascii: "b"): out.append(8)
        case UInt8(ascii: "f"): out.append(12)
        case UInt8(ascii: "n"): out.append(10)
        case UInt8(ascii: "r"): out.append(13)
        case UInt8(ascii: "t"): out.append(9)
        case UInt8(ascii: "u"):
          var scalar = try hex4()
          if (0xD800..<0xDC00).contains(scalar) {
            try expect("\\u")
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
          out += Array(String(Character(u)).utf8)
        default: throw fail("unknown escape \\\(Character(Unicode.Scalar(e)))")
        }
      default:
        if c < 0x20 { throw fail("control character in a string") }
        out.append(c)
      }
    }
    throw fail("unterminated string")
  }

  mutating func hex4() throws(JSONParseError) -> UInt32 {
    guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16) else {
      throw fail("bad \\u escape")
    }
    i += 4
    return v
  }
}
