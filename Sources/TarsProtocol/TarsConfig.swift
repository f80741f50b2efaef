/// A malformed config file or a value that cannot be written portably.
public struct TarsConfigError: Error, Sendable, Equatable, CustomStringConvertible {
  /// 1-based line of the input, when parsing.
  public var line: Int?
  public var message: String

  public init(line: Int?, message: String) {
    self.line = line
    self.message = message
  }

  public var description: String { line.map { "config line \($0): \(message)" } ?? "config: \(message)" }
}

/// The TC_Config file format every Tars server reads: `<domain>` … `</domain>` blocks, one
/// `key=value` per line, `#` comments. Parsing follows TarsCpp's `TC_Config` exactly: keys and
/// values are trimmed, split at the first unescaped '=', escapes `\\ \r \n \t \=` are decoded, a
/// repeated key keeps its last value and moves to the end, a repeated domain is merged.
public struct TarsConfig: Equatable, Sendable, CustomStringConvertible {
  public struct Domain: Equatable, Sendable {
    public var name: String
    /// Keys in order, each once.
    public var params: [(key: String, value: String)]
    public var subdomains: [Domain]

    public init(name: String, params: [(key: String, value: String)] = [], subdomains: [Domain] = []) {
      self.name = name
      self.params = params
      self.subdomains = subdomains
    }

    public static func == (a: Domain, b: Domain) -> Bool {
      a.name == b.name && a.subdomains == b.subdomains && a.params.map(\.key) == b.params.map(\.key)
        && a.params.map(\.value) == b.params.map(\.value)
    }

    public subscript(key: String) -> String? { params.first { $0.key == key }?.value }

    /// TarsCpp `setParamValue`: last value wins and the key moves to the end.
    public mutating func set(_ key: String, _ value: String) {
      params.removeAll { $0.key == key }
      params.append((key, value))
    }

    public mutating func removeParam(_ key: String) { params.removeAll { $0.key == key } }

    public func subdomain(_ name: String) -> Domain? { subdomains.first { $0.name == name } }

    /// TarsCpp `addSubDomain`: an existing domain of that name is reused in place.
    @discardableResult
    public mutating func withSubdomain<R>(_ name: String, _ body: (inout Domain) throws -> R) rethrows -> R {
      if let i = subdomains.firstIndex(where: { $0.name == name }) { return try body(&subdomains[i]) }
      subdomains.append(Domain(name: name))
      return try body(&subdomains[subdomains.count - 1])
    }

    /// Applies `other` on top of this domain, as re-parsing the two texts one after the other does.
    mutating func apply(_ other: Domain) {
      for (k, v) in other.params { set(k, v) }
      for sub in other.subdomains { withSubdomain(sub.name) { $0.apply(sub) } }
    }
  }

  /// The unnamed root; files normally hold one `<tars>` domain in it.
  public var root: Domain

  public init(root: Domain = Domain(name: "")) { self.root = root }

  public init(parsing text: String) throws(TarsConfigError) {
    var stack = [Domain(name: "")]
    var lineNumber = 0
    // Lines end in LF or CRLF ("\r\n" is a single Character in Swift).
    for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
      lineNumber += 1
      let line = Self.trim(rawLine)
      if line.isEmpty || line.first == "#" { continue }
      if line.first == "<" {
        guard let close = line.firstIndex(of: ">") else {
          throw TarsConfigError(line: lineNumber, message: "'\(line)' has no closing '>'")
        }
        let inner = line[line.index(after: line.startIndex)..<close]
        if inner.first == "/" {
          let name = String(inner.dropFirst())
          guard stack.count > 1 else {
            throw TarsConfigError(line: lineNumber, message: "</\(name)> closes a domain that was never opened")
          }
          guard stack[stack.count - 1].name == name else {
            throw TarsConfigError(
              line: lineNumber, message: "</\(name)> does not match <\(stack[stack.count - 1].name)>")
          }
          let done = stack.removeLast()
          stack[stack.count - 1].withSubdomain(done.name) { $0.apply(done) }
        } else {
          let name = String(Self.trim(inner))
          guard !name.isEmpty else { throw TarsConfigError(line: lineNumber, message: "empty domain name") }
          // Reopening a domain merges into it; pull the existing one off its parent meanwhile.
          var domain = Domain(name: name)
          if let i = stack[stack.count - 1].subdomains.firstIndex(where: { $0.name == name }) {
            domain = stack[stack.count - 1].subdomains[i]
            stack[stack.count - 1].subdomains[i].params = []
            stack[stack.count - 1].subdomains[i].subdomains = []
          }
          stack.append(domain)
        }
        continue
      }
      let (key, value) = try Self.parseParam(line, lineNumber: lineNumber)
      stack[stack.count - 1].set(key, value)
    }
    guard stack.count == 1 else {
      throw TarsConfigError(line: nil, message: "<\(stack[stack.count - 1].name)> is never closed")
    }
    root = stack[0]
  }

  /// TarsCpp trims " \r\n\t" (and so CRLF); nothing else counts as blank.
  static func trim(_ s: Substring) -> Substring {
    var s = s
    while let f = s.first, blanks.contains(f) { s = s.dropFirst() }
    while let l = s.last, blanks.contains(l) { s = s.dropLast() }
    return s
  }

  static let blanks: Set<Character> = [" ", "\t", "\r", "\n", "\r\n"]

  static func parseParam(_ line: Substring, lineNumber: Int) throws(TarsConfigError) -> (String, String) {
    var previous: Character = " "
    for i in line.indices {
      if line[i] == "=" && previous != "\\" {
        let key = try unescape(trim(line[..<i]), lineNumber: lineNumber)
        let value = try unescape(trim(line[line.index(after: i)...]), lineNumber: lineNumber)
        return (key, value)
      }
      previous = line[i]
    }
    return (try unescape(line, lineNumber: lineNumber), "")
  }

  static func unescape(_ s: Substring, lineNumber: Int) throws(TarsConfigError) -> String {
    guard s.contains("\\") else { return String(s) }
    var out = ""
    var it = s.makeIterator()
    while let c = it.next() {
      guard c == "\\" else {
        out.append(c)
        continue
      }
      switch it.next() {
      case "\\": out.append("\\")
      case "r": out.append("\r")
      case "n": out.append("\n")
      case "t": out.append("\t")
      case "=": out.append("=")
      case let other:
        let seq = other.map { "\\\($0)" } ?? "a trailing \\"
        throw TarsConfigError(
          line: lineNumber, message: "'\(s)': \(seq) is not an escape TarsCpp understands (\\\\ \\r \\n \\t \\=)")
      }
    }
    return out
  }

  // MARK: Lookup

  static func splitPath(_ path: String) throws(TarsConfigError) -> (domains: [String], key: String?) {
    guard path.first == "/" else { throw TarsConfigError(line: nil, message: "path '\(path)' must start with '/'") }
    var domainPart = Substring(path.dropFirst())
    var key: String?
    if let open = domainPart.firstIndex(of: "<") {
      guard let close = domainPart.lastIndex(of: ">"), close > open else {
        throw TarsConfigError(line: nil, message: "path '\(path)' has '<' without '>'")
      }
      key = String(domainPart[domainPart.index(after: open)..<close])
      domainPart = domainPart[..<open]
    }
    return (domainPart.split(separator: "/").map(String.init), key)
  }

  /// The domain at `/a/b/c`, or nil.
  public func domain(_ path: String) -> Domain? {
    guard let (domains, _) = try? Self.splitPath(path) else { return nil }
    var d = root
    for name in domains {
      guard let sub = d.subdomain(name) else { return nil }
      d = sub
    }
    return d
  }

  /// The value at `/a/b<key>`, or nil.
  public subscript(path: String) -> String? {
    guard let (domains, key) = try? Self.splitPath(path), let key else { return nil }
    var d = root
    for name in domains {
      guard let sub = d.subdomain(name) else { return nil }
      d = sub
    }
    return d[key]
  }

  /// Names of the subdomains at `path`, in file order (e.g. a server's adapters).
  public func subdomainNames(_ path: String) -> [String] { domain(path)?.subdomains.map(\.name) ?? [] }

  /// Sets `/a/b<key>`, creating domains as needed.
  public mutating func set(_ path: String, _ value: String) throws(TarsConfigError) {
    let (domains, key) = try Self.splitPath(path)
    guard let key, !key.isEmpty else { throw TarsConfigError(line: nil, message: "path '\(path)' names no <key>") }
    Self.update(&root, domains[...]) { $0.set(key, value) }
  }

  /// Runs `body` on the domain at `/a/b`, creating it as needed.
  public mutating func updateDomain(_ path: String, _ body: (inout Domain) -> Void) throws(TarsConfigError) {
    let (domains, _) = try Self.splitPath(path)
    Self.update(&root, domains[...], body)
  }

  static func update(_ d: inout Domain, _ path: ArraySlice<String>, _ body: (inout Domain) -> Void) {
    guard let first = path.first else { return body(&d) }
    d.withSubdomain(first) { update(&$0, path.dropFirst(), body) }
  }

  /// TarsCpp `joinConfig`: with `override`, `other`'s values replace ours; without it ("keep"),
  /// ours stay and only what we lack is taken from `other`.
  public mutating func join(_ other: TarsConfig, override: Bool) {
    if override {
      root.apply(other.root)
    } else {
      var merged = other.root
      merged.apply(root)
      root = merged
    }
  }

  // MARK: Output

  /// The text, indented two spaces per level like TarsCpp's `tostr`, with TarsCpp's escapes.
  /// Use `renderPortable()` for files TarsGo must read too.
  public var description: String {
    var out = ""
    for d in root.subdomains { Self.render(d, depth: 0, into: &out, escape: Self.escape) }
    return out
  }

  /// The text, refusing anything TarsCpp and TarsGo would read differently: backslashes,
  /// `& < >`, line breaks, or leading/trailing blanks in a value; '=' or '#' where they would
  /// change the meaning of a key.
  public func renderPortable() throws(TarsConfigError) -> String {
    var problem: String?
    var out = ""
    for d in root.subdomains {
      Self.render(d, depth: 0, into: &out) { text, isKey in
        if let reason = Self.portabilityProblem(text, isKey: isKey), problem == nil {
          problem = "'\(text)': \(reason)"
        }
        return text
      }
    }
    if let problem { throw TarsConfigError(line: nil, message: problem) }
    return out
  }

  static func portabilityProblem(_ s: String, isKey: Bool) -> String? {
    if s.contains(where: { $0 == "\\" || $0 == "&" || $0 == "<" || $0 == ">" }) {
      return "contains \\, & , < or >, which TarsCpp and TarsGo read differently"
    }
    if s.contains(where: { $0 == "\n" || $0 == "\r" }) { return "contains a line break" }
    if s.first?.isWhitespace == true || s.last?.isWhitespace == true { return "has leading or trailing blanks" }
    if isKey && (s.isEmpty || s.contains("=") || s.first == "#") { return "is not a usable key" }
    return nil
  }

  static func escape(_ s: String, isKey: Bool) -> String {
    var out = ""
    for c in s {
      switch c {
      case "\\": out += "\\\\"
      case "\r": out += "\\r"
      case "\n": out += "\\n"
      case "\t": out += "\\t"
      case "=" where isKey: out += "\\="
      default: out.append(c)
      }
    }
    return out
  }

  static func render(_ d: Domain, depth: Int, into out: inout String, escape: (String, Bool) -> String) {
    let pad = String(repeating: "  ", count: depth)
    out += "\(pad)<\(d.name)>\n"
    for (k, v) in d.params {
      out += v.isEmpty ? "\(pad)  \(escape(k, true))\n" : "\(pad)  \(escape(k, true))=\(escape(v, false))\n"
    }
    for sub in d.subdomains { render(sub, depth: depth + 1, into: &out, escape: escape) }
    out += "\(pad)</\(d.name)>\n"
  }
}
