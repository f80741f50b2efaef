/// A minimal JSON value and printer, so the protocol core can describe packets for tools without
/// importing Foundation. Object members keep their order.
public indirect enum JSONValue: Equatable, Sendable, CustomStringConvertible {
  case null
  case bool(Bool)
  case integer(Int64)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([(String, JSONValue)])

  public static func == (a: JSONValue, b: JSONValue) -> Bool {
    switch (a, b) {
    case (.null, .null): true
    case (.bool(let x), .bool(let y)): x == y
    case (.integer(let x), .integer(let y)): x == y
    case (.number(let x), .number(let y)): x == y
    case (.string(let x), .string(let y)): x == y
    case (.array(let x), .array(let y)): x == y
    case (.object(let x), .object(let y)): x.map(\.0) == y.map(\.0) && x.map(\.1) == y.map(\.1)
    default: false
    }
  }

  /// Compact JSON text.
  public var description: String {
    var out = ""
    write(into: &out, indent: nil, level: 0)
    return out
  }

  /// Indented JSON text.
  public func pretty(indent: Int = 2) -> String {
    var out = ""
    write(into: &out, indent: indent, level: 0)
    return out
  }

  func write(into out: inout String, indent: Int?, level: Int) {
    func newline(_ l: Int) {
      if let indent { out += "\n" + String(repeating: " ", count: indent * l) }
    }
    switch self {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .integer(let v): out += String(v)
    case .number(let v): out += v.isFinite ? "\(v)" : "\"\(v)\""
    case .string(let s): Self.quote(s, into: &out)
    case .array(let items):
      out += "["
      for (i, item) in items.enumerated() {
        if i > 0 { out += indent == nil ? ", " : "," }
        newline(level + 1)
        item.write(into: &out, indent: indent, level: level + 1)
      }
      if !items.isEmpty { newline(level) }
      out += "]"
    case .object(let members):
      out += "{"
      for (i, (k, v)) in members.enumerated() {
        if i > 0 { out += indent == nil ? ", " : "," }
        newline(level + 1)
        Self.quote(k, into: &out)
        out += ": "
        v.write(into: &out, indent: indent, level: level + 1)
      }
      if !members.isEmpty { newline(level) }
      out += "}"
    }
  }

  static func quote(_ s: String, into out: inout String) {
    out += "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if u.value < 0x20 {
          let hex = String(u.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
          out.unicodeScalars.append(u)
        }
      }
    }
    out += "\""
  }
}

/// Hex text ↔ bytes, for tools and tests.
public enum Hex {
  static let digits = Array("0123456789abcdef".utf8)

  public static func encode(_ bytes: [UInt8]) -> String {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
      out.append(digits[Int(b >> 4)])
      out.append(digits[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Decodes hex, ignoring whitespace and an optional `0x`; nil if anything else is in the way.
  public static func decode(_ text: String) -> [UInt8]? {
    var s = Substring(text)
    if s.hasPrefix("0x") || s.hasPrefix("0X") { s = s.dropFirst(2) }
    var out = [UInt8]()
    var high: UInt8?
    for c in s.utf8 {
      let v: UInt8
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
      case 32, 9, 10, 13: continue
      default: return nil
      }
      if let h = high {
        out.append(h << 4 | v)
        high = nil
      } else {
        high = v
      }
    }
    return high == nil ? out : nil
  }
}
