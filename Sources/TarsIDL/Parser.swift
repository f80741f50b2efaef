/// A syntax or semantic error in an IDL file, with the place to fix it.
public struct IDLError: Error, Equatable, CustomStringConvertible {
  public var file: String
  public var line: Int
  public var column: Int
  public var message: String

  public var description: String { "\(file):\(line):\(column): error: \(message)" }
}

enum Token: Equatable {
  case identifier(String)
  case integer(Int64)
  case floating(Double)
  case string(String)
  case punct(String)
  case include(String)
  case end
}

struct Lexed {
  var token: Token
  var line: Int
  var column: Int
  /// The comment block right before this token, used as its doc comment.
  var doc: String?
}

/// Splits IDL text into tokens. Comments are dropped except the one directly before a
/// declaration, which becomes its doc comment.
struct Lexer {
  let file: String
  let chars: [UInt8]
  var i = 0
  var line = 1
  var lineStart = 0

  init(file: String, text: String) {
    self.file = file
    chars = Array(text.utf8)
  }

  func error(_ message: String) -> IDLError {
    IDLError(file: file, line: line, column: i - lineStart + 1, message: message)
  }

  mutating func tokens() throws(IDLError) -> [Lexed] {
    var out: [Lexed] = []
    var pendingDoc: [String] = []
    while true {
      // whitespace and comments
      while i < chars.count {
        let c = chars[i]
        if c == UInt8(ascii: "\n") {
          i += 1
          line += 1
          lineStart = i
        } else if c == 32 || c == 9 || c == 13 {
          i += 1
        } else if c == UInt8(ascii: "/") && i + 1 < chars.count && chars[i + 1] == UInt8(ascii: "/") {
          let start = i + 2
          while i < chars.count && chars[i] != UInt8(ascii: "\n") { i += 1 }
          pendingDoc.append(String(decoding: chars[start..<i], as: UTF8.self))
        } else if c == UInt8(ascii: "/") && i + 1 < chars.count && chars[i + 1] == UInt8(ascii: "*") {
          let start = i + 2
          i += 2
          while i + 1 < chars.count && !(chars[i] == UInt8(ascii: "*") && chars[i + 1] == UInt8(ascii: "/")) {
            if chars[i] == UInt8(ascii: "\n") {
              line += 1
              lineStart = i + 1
            }
            i += 1
          }
          if i + 1 >= chars.count { throw error("unterminated /* comment") }
          let body = String(decoding: chars[start..<i], as: UTF8.self)
          i += 2
          pendingDoc.append(
            contentsOf: body.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init))
        } else {
          break
        }
      }
      let col = i - lineStart + 1
      let doc = Self.cleanDoc(pendingDoc)
      pendingDoc = []
      guard i < chars.count else {
        out.append(Lexed(token: .end, line: line, column: col, doc: nil))
        return out
      }
      let c = chars[i]
      let token: Token
      if Self.isIdentStart(c) {
        let start = i
        while i < chars.count && Self.isIdentPart(chars[i]) { i += 1 }
        token = .identifier(String(decoding: chars[start..<i], as: UTF8.self))
      } else if Self.isDigit(c)
        || ((c == UInt8(ascii: "-") || c == UInt8(ascii: "+")) && i + 1 < chars.count && Self.isDigit(chars[i + 1]))
      {
        token = try number()
      } else if c == UInt8(ascii: "\"") {
        token = .string(try stringLiteral())
      } else if c == UInt8(ascii: "#") {
        i += 1
        let start = i
        while i < chars.count && Self.isIdentPart(chars[i]) { i += 1 }
        let directive = String(decoding: chars[start..<i], as: UTF8.self)
        guard directive == "include" else { throw error("unknown directive #\(directive)") }
        while i < chars.count && (chars[i] == 32 || chars[i] == 9) { i += 1 }
        guard i < chars.count, chars[i] == UInt8(ascii: "\"") else { throw error("#include needs a quoted file name") }
        token = .include(try stringLiteral())
      } else if c == UInt8(ascii: ":") && i + 1 < chars.count && chars[i + 1] == UInt8(ascii: ":") {
        i += 2
        token = .punct("::")
      } else if "{}()<>,;=[]".utf8.contains(c) {
        i += 1
        token = .punct(String(UnicodeScalar(c)))
      } else {
        throw error("unexpected character '\(UnicodeScalar(c))'")
      }
      out.append(Lexed(token: token, line: line, column: col, doc: doc))
    }
  }

  mutating func number() throws(IDLError) -> Token {
    let start = i
    if chars[i] == UInt8(ascii: "-") || chars[i] == UInt8(ascii: "+") { i += 1 }
    if i + 1 < chars.count && chars[i] == UInt8(ascii: "0") && (chars[i + 1] | 0x20) == UInt8(ascii: "x") {
      i += 2
      let digitsStart = i
      while i < chars.count && Self.isHexDigit(chars[i]) { i += 1 }
      let negative = chars[start] == UInt8(ascii: "-")
      guard let v = UInt64(String(decoding: chars[digitsStart..<i], as: UTF8.self), radix: 16), v <= UInt64(Int64.max)
      else {
        throw error("bad hexadecimal number")
      }
      return .integer(negative ? -Int64(v) : Int64(v))
    }
    var isFloat = false
    while i < chars.count {
      let d = chars[i]
      if Self.isDigit(d) {
        i += 1
      } else if d == UInt8(ascii: ".") || d == UInt8(ascii: "e") || d == UInt8(ascii: "E") {
        isFloat = true
        i += 1
        if i < chars.count && (chars[i] == UInt8(ascii: "-") || chars[i] == UInt8(ascii: "+")) { i += 1 }
      } else {
        break
      }
    }
    let text = String(decoding: chars[start..<i], as: UTF8.self)
    if i < chars.count && (chars[i] | 0x20) == UInt8(ascii: "f") { i += 1 }
    if isFloat {
      guard let v = Double(text) else { throw error("bad number \(text)") }
      return .floating(v)
    }
    guard let v = Int64(text) else { throw error("bad integer \(text)") }
    return .integer(v)
  }

  mutating func stringLiteral() throws(IDLError) -> String {
    i += 1
    var bytes: [UInt8] = []
    while i < chars.count && chars[i] != UInt8(ascii: "\"") {
      if chars[i] == UInt8(ascii: "\n") { throw error("newline in string literal") }
      if chars[i] == UInt8(ascii: "\\") && i + 1 < chars.count {
        i += 1
        switch chars[i] {
        case UInt8(ascii: "n"): bytes.append(10)
        case UInt8(ascii: "t"): bytes.append(9)
        case UInt8(ascii: "r"): bytes.append(13)
        default: bytes.append(chars[i])
        }
      } else {
        bytes.append(chars[i])
      }
      i += 1
    }
    guard i < chars.count else { throw error("unterminated string literal") }
    i += 1
    return String(decoding: bytes, as: UTF8.self)
  }

  static func cleanDoc(_ lines: [String]) -> String? {
    let cleaned = lines.map { line -> String in
      var s = Substring(line)
      while let f = s.first, f == " " || f == "\t" || f == "*" || f == "/" { s = s.dropFirst() }
      while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
      return String(s)
    }
    var trimmed = cleaned
    while trimmed.first?.isEmpty == true { trimmed.removeFirst() }
    while trimmed.last?.isEmpty == true { trimmed.removeLast() }
    return trimmed.isEmpty ? nil : trimmed.joined(separator: "\n")
  }

  static func isIdentStart(_ c: UInt8) -> Bool {
    (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
  }
  static func isIdentPart(_ c: UInt8) -> Bool { isIdentStart(c) || isDigit(c) }
  static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
  static func isHexDigit(_ c: UInt8) -> Bool { isDigit(c) || ((c | 0x20) >= 97 && (c | 0x20) <= 102) }
}

/// Parses one IDL file. Checks what tars2cpp checks that matters for the wire: tags in
/// 0...255 and unique, fields in ascending tag order, no out-param before an in-param.
public struct IDLParser {
  let file: String
  var tokens: [Lexed] = []
  var p = 0

  public init(file: String) { self.file = file }

  public static func parse(file: String, text: String) throws(IDLError) -> IDLFile {
    var parser = IDLParser(file: file)
    var lexer = Lexer(file: file, text: text)
    parser.tokens = try lexer.tokens()
    return try parser.parseFile()
  }

  var current: Lexed { tokens[p] }

  func error(_ message: String, at t: Lexed? = nil) -> IDLError {
    let t = t ?? current
    return IDLError(file: file, line: t.line, column: t.column, message: message)
  }

  mutating func advance() -> Lexed {
    defer { if p < tokens.count - 1 { p += 1 } }
    return tokens[p]
  }

  mutating func expect(_ punct: String) throws(IDLError) {
    guard current.token == .punct(punct) else { throw error("expected '\(punct)'\(found)") }
    _ = advance()
  }

  var found: String {
    switch current.token {
    case .identifier(let s): ", found '\(s)'"
    case .punct(let s): ", found '\(s)'"
    case .integer(let v): ", found \(v)"
    case .floating(let v): ", found \(v)"
    case .string(let s): ", found \"\(s)\""
    case .include: ", found #include"
    case .end: ", found end of file"
    }
  }

  mutating func accept(_ punct: String) -> Bool {
    if current.token == .punct(punct) {
      _ = advance()
      return true
    }
    return false
  }

  mutating func identifier(_ what: String) throws(IDLError) -> String {
    guard case .identifier(let s) = current.token else { throw error("expected \(what)\(found)") }
    _ = advance()
    return s
  }

  mutating func keyword(_ word: String) -> Bool {
    if current.token == .identifier(word) {
      _ = advance()
      return true
    }
    return false
  }

  mutating func parseFile() throws(IDLError) -> IDLFile {
    var includes: [String] = []
    var modules: [IDLModule] = []
    while current.token != .end {
      if case .include(let path) = current.token {
        includes.append(path)
        _ = advance()
      } else if keyword("module") {
        modules.append(try parseModule())
      } else {
        throw error("expected 'module' or #include\(found)")
      }
    }
    return IDLFile(path: file, includes: includes, modules: modules)
  }

  mutating func parseModule() throws(IDLError) -> IDLModule {
    let name = try identifier("module name")
    try expect("{")
    var defs: [IDLDefinition] = []
    var keys: [(String, [String], Lexed)] = []
    while !accept("}") {
      let start = current
      let doc = current.doc
      if keyword("struct") {
        var s = try parseStruct()
        s.doc = doc
        defs.append(.structure(s))
      } else if keyword("enum") {
        var e = try parseEnum()
        e.doc = doc
        defs.append(.enumeration(e))
      } else if keyword("interface") {
        var i = try parseInterface()
        i.doc = doc
        defs.append(.interface(i))
      } else if keyword("const") {
        let type = try parseType()
        let cname = try identifier("constant name")
        try expect("=")
        let value = try parseLiteral()
        try expect(";")
        defs.append(.constant(IDLConst(type: type, name: cname, value: value, doc: doc)))
      } else if keyword("key") {
        try expect("[")
        let sname = try identifier("struct name")
        var fields: [String] = []
        while accept(",") { fields.append(try identifier("field name")) }
        try expect("]")
        try expect(";")
        keys.append((sname, fields, start))
      } else {
        throw error("expected struct, enum, interface, const or key\(found)")
      }
    }
    _ = accept(";")
    for (sname, fields, at) in keys {
      guard let index = defs.firstIndex(where: { if case .structure(let s) = $0 { s.name == sname } else { false } }),
        case .structure(var s) = defs[index]
      else { throw error("key[] names unknown struct \(sname)", at: at) }
      for f in fields where !s.fields.contains(where: { $0.name == f }) {
        throw error("key[] names unknown field \(sname).\(f)", at: at)
      }
      s.keyFields = fields
      defs[index] = .structure(s)
    }
    return IDLModule(name: name, definitions: defs)
  }

  mutating func parseStruct() throws(IDLError) -> IDLStruct {
    let name = try identifier("struct name")
    try expect("{")
    var fields: [IDLField] = []
    while !accept("}") {
      let at = current
      let doc = current.doc
      guard case .integer(let tag) = current.token else { throw error("expected a field tag\(found)") }
      _ = advance()
      guard (0...255).contains(tag) else { throw error("tag \(tag) is outside 0...255", at: at) }
      let required: Bool
      if keyword("require") {
        required = true
      } else if keyword("optional") {
        required = false
      } else {
        throw error("expected 'require' or 'optional'\(found)")
      }
      let type = try parseType()
      let fname = try identifier("field name")
      var value: IDLLiteral?
      if accept("=") { value = try parseLiteral() }
      try expect(";")
      if let last = fields.last, last.tag >= Int(tag) {
        throw error("field \(fname): tag \(tag) must be greater than the previous tag \(last.tag)", at: at)
      }
      if fields.contains(where: { $0.name == fname }) { throw error("duplicate field \(fname)", at: at) }
      fields.append(
        IDLField(tag: Int(tag), isRequired: required, type: type, name: fname, defaultValue: value, doc: doc))
    }
    _ = accept(";")
    return IDLStruct(name: name, fields: fields, keyFields: nil, doc: nil)
  }

  mutating func parseEnum() throws(IDLError) -> IDLEnum {
    let name = try identifier("enum name")
    try expect("{")
    var members: [(String, Int32)] = []
    var next: Int64 = 0
    while !accept("}") {
      let at = current
      let mname = try identifier("enum member")
      if accept("=") {
        switch current.token {
        case .integer(let v): next = v
        case .identifier(let other):
          guard let v = members.first(where: { $0.0 == other })?.1 else { throw error("unknown enum member \(other)") }
          next = Int64(v)
        default: throw error("expected an enum value\(found)")
        }
        _ = advance()
      }
      guard let value = Int32(exactly: next) else { throw error("enum value \(next) does not fit in int", at: at) }
      members.append((mname, value))
      next += 1
      if !accept(",") {
        try expect("}")
        break
      }
    }
    _ = accept(";")
    return IDLEnum(name: name, members: members, doc: nil)
  }

  mutating func parseInterface() throws(IDLError) -> IDLInterface {
    let name = try identifier("interface name")
    try expect("{")
    var ops: [IDLOperation] = []
    while !accept("}") {
      let doc = current.doc
      let at = current
      let returnType: IDLType? = keyword("void") ? nil : try parseType()
      let oname = try identifier("operation name")
      try expect("(")
      var params: [IDLParameter] = []
      if !accept(")") {
        repeat {
          let pat = current
          let isOut = keyword("out")
          _ = keyword("routekey")
          let type = try parseType()
          let pname = try identifier("parameter name")
          if !isOut, params.contains(where: \.isOut) {
            throw error("in-parameter \(pname) follows an out-parameter", at: pat)
          }
          if params.contains(where: { $0.name == pname }) { throw error("duplicate parameter \(pname)", at: pat) }
          params.append(IDLParameter(name: pname, type: type, isOut: isOut, tag: params.count + 1))
        } while accept(",")
        try expect(")")
      }
      try expect(";")
      if params.count > 255 { throw error("\(oname) has more than 255 parameters", at: at) }
      if ops.contains(where: { $0.name == oname }) { throw error("duplicate operation \(oname)", at: at) }
      ops.append(IDLOperation(name: oname, returnType: returnType, parameters: params, doc: doc))
    }
    _ = accept(";")
    return IDLInterface(name: name, operations: ops, doc: nil)
  }

  mutating func parseType() throws(IDLError) -> IDLType {
    let at = current
    let word = try identifier("a type")
    switch word {
    case "bool": return .bool
    case "byte", "char": return .byte
    case "short": return .short
    case "int": return .int
    case "long": return .long
    case "float": return .float
    case "double": return .double
    case "string": return .string
    case "unsigned":
      let inner = try identifier("byte, short or int after 'unsigned'")
      switch inner {
      case "byte", "char": return .unsignedByte
      case "short": return .unsignedShort
      case "int": return .unsignedInt
      default: throw error("'unsigned \(inner)' is not a Tars type", at: at)
      }
    case "vector":
      try expect("<")
      let element = try parseType()
      try expect(">")
      return .vector(element)
    case "map":
      try expect("<")
      let key = try parseType()
      try expect(",")
      let value = try parseType()
      try expect(">")
      return .map(key, value)
    default:
      var name = word
      while accept("::") { name += "::" + (try identifier("a type name")) }
      return .named(name)
    }
  }

  mutating func parseLiteral() throws(IDLError) -> IDLLiteral {
    let t = advance()
    switch t.token {
    case .integer(let v): return .integer(v)
    case .floating(let v): return .floating(v)
    case .string(let s): return .string(s)
    case .identifier("true"): return .bool(true)
    case .identifier("false"): return .bool(false)
    case .identifier(var name):
      while accept("::") { name += "::" + (try identifier("a name")) }
      return .identifier(name)
    default: throw error("expected a value", at: t)
    }
  }
}
