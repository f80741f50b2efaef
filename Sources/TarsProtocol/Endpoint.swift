/// A bad endpoint or object string, with what is wrong in it.
public struct TarsAddressError: Error, Sendable, Equatable, CustomStringConvertible {
  public var input: String
  public var message: String

  public init(input: String, message: String) {
    self.input = input
    self.message = message
  }

  public var description: String { "invalid address '\(input)': \(message)" }
}

/// One endpoint as written in configs and proxy strings: `tcp -h 10.0.0.1 -p 10015 -t 60000`.
/// Parsing follows TarsCpp's `TC_Endpoint::parse` (unknown options are skipped); printing is the
/// canonical form, which TarsGo's stricter parser also accepts.
public struct TarsEndpoint: Hashable, Sendable, CustomStringConvertible {
  public enum Transport: String, Sendable, CaseIterable {
    case tcp, udp, ssl

    /// EndpointF.istcp: 0 UDP, 1 TCP, 2 SSL.
    public var istcp: Int32 {
      switch self {
      case .udp: 0
      case .tcp: 1
      case .ssl: 2
      }
    }

    public init(istcp: Int32) {
      self = istcp == 0 ? .udp : istcp == 2 ? .ssl : .tcp
    }
  }

  public var transport: Transport
  public var host: String
  public var port: Int
  /// Milliseconds. On a server adapter this is the idle-connection timeout.
  public var timeout: Int
  public var grid: Int
  public var qos: Int
  /// −1 means no weight.
  public var weight: Int
  /// 0 round robin, 1 static weight.
  public var weightType: Int
  /// 0 none, 1 local auth.
  public var authType: Int
  /// `-s`: the endpoint's set division, only in registry-provided strings.
  public var setId: String

  public init(
    _ transport: Transport = .tcp, host: String, port: Int, timeout: Int = 3000, grid: Int = 0, qos: Int = 0,
    weight: Int = -1, weightType: Int = 0, authType: Int = 0, setId: String = ""
  ) {
    self.transport = transport
    self.host = host
    self.port = port
    self.timeout = timeout
    self.grid = grid
    self.qos = qos
    self.weight = weight
    self.weightType = weightType
    self.authType = authType
    self.setId = setId
  }

  /// Parses `tcp|udp|ssl -h host -p port [-t ms] [-g n] [-q n] [-w n] [-v n] [-e n] [-s set]`.
  public init(parsing text: String) throws(TarsAddressError) {
    let words = Self.words(text)
    func fail(_ message: String) -> TarsAddressError { TarsAddressError(input: text, message: message) }
    guard let first = words.first else { throw fail("empty endpoint") }
    guard let transport = Transport(rawValue: first.lowercased()) else {
      throw fail("expected tcp, udp or ssl, found '\(first)'")
    }
    self.init(transport, host: "", port: 0)
    var i = 1
    while i < words.count {
      let option = words[i]
      guard option.count == 2, option.first == "-" else { throw fail("expected an option like -h, found '\(option)'") }
      let value: String? = i + 1 < words.count && !words[i + 1].hasPrefix("-") ? words[i + 1] : nil
      i += value == nil ? 1 : 2
      func number(_ range: ClosedRange<Int> = Int.min...Int.max) throws(TarsAddressError) -> Int {
        guard let value, let n = Int(value), range.contains(n) else {
          throw fail("\(option) needs a number\(range.lowerBound == Int.min ? "" : " in \(range)")")
        }
        return n
      }
      switch option {
      case "-h":
        guard let value else { throw fail("-h needs a host") }
        host = value == "*" ? "0.0.0.0" : value
      case "-p": port = try number(0...65535)
      case "-t": timeout = try number(0...Int(Int32.max))
      case "-g": grid = try number()
      case "-q": qos = try number()
      case "-w": weight = try number()
      case "-v": weightType = try number()
      case "-e":
        authType = try number()
        guard authType == 0 || authType == 1 else { throw fail("-e must be 0 or 1") }
      case "-s": setId = value ?? ""
      default: break  // TarsCpp ignores options it does not know (e.g. TarsGo's -b)
      }
    }
    guard !host.isEmpty else { throw fail("-h is required") }
    if weightType != 0 && weight == -1 { weight = 100 }
    if weight > 100 { weight = 100 }
  }

  /// The canonical text: options only when they differ from their defaults.
  public var description: String {
    var s = "\(transport.rawValue) -h \(host) -p \(port)"
    if timeout != 0 { s += " -t \(timeout)" }
    if grid != 0 { s += " -g \(grid)" }
    if qos != 0 { s += " -q \(qos)" }
    if weight > 0 { s += " -w \(weight)" }
    if weightType != 0 { s += " -v \(weightType)" }
    if authType != 0 { s += " -e \(authType)" }
    if !setId.isEmpty { s += " -s \(setId)" }
    return s
  }

  /// Why TarsCpp or TarsGo would misread this endpoint inside a multi-endpoint string, or nil.
  /// TarsCpp splits such strings at every "tcp"/"udp"/"ssl"; TarsGo splits at every ':'.
  public var legacyParserProblem: String? {
    let lower = host.lowercased()
    if Transport.allCases.contains(where: { lower.utf8.containsSequence($0.rawValue.utf8) }) {
      return "host '\(host)' contains tcp, udp or ssl, which TarsCpp takes for the start of another endpoint"
    }
    if host.contains(":") { return "host '\(host)' contains ':', which TarsGo takes for an endpoint separator" }
    return nil
  }

  static func words(_ text: String) -> [String] {
    text.split(whereSeparator: { TarsConfig.blanks.contains($0) }).map(String.init)
  }
}

/// An object (servant) address: `App.Server.Obj` to be resolved through the locator, or
/// `App.Server.Obj@tcp -h … -p …[:tcp -h … -p …]` with direct endpoints.
public struct TarsObjectAddress: Hashable, Sendable, CustomStringConvertible {
  public var name: String
  public var endpoints: [TarsEndpoint]

  public init(name: String, endpoints: [TarsEndpoint] = []) {
    self.name = name
    self.endpoints = endpoints
  }

  /// Endpoints are separated by ':' only where the next one starts (`: tcp -h`), so IPv6 hosts
  /// and hosts containing "tcp" parse correctly here even though older parsers fail on them.
  public init(parsing text: String) throws(TarsAddressError) {
    let trimmed = Self.trim(Substring(text))
    guard let at = trimmed.firstIndex(of: "@") else {
      name = Self.stripSuffix(String(trimmed))
      endpoints = []
      guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "\t" }) else {
        throw TarsAddressError(input: text, message: "expected an object name like App.Server.Obj")
      }
      return
    }
    name = Self.stripSuffix(String(Self.trim(trimmed[..<at])))
    guard !name.isEmpty else { throw TarsAddressError(input: text, message: "missing object name before '@'") }
    var list: [TarsEndpoint] = []
    for piece in Self.splitEndpoints(trimmed[trimmed.index(after: at)...]) {
      list.append(try TarsEndpoint(parsing: String(piece)))
    }
    guard !list.isEmpty else { throw TarsAddressError(input: text, message: "no endpoint after '@'") }
    endpoints = list
  }

  public var description: String {
    endpoints.isEmpty ? name : name + "@" + endpoints.map(\.description).joined(separator: ":")
  }

  /// Why TarsCpp or TarsGo would misread this address (see `TarsEndpoint.legacyParserProblem`);
  /// nil when it is safe to hand to them. Only multi-endpoint strings are at risk.
  public var legacyParserProblem: String? {
    guard endpoints.count > 1 else { return nil }
    return endpoints.lazy.compactMap(\.legacyParserProblem).first
  }

  /// TarsCpp appends `#N` to names of parallel proxies; the registry never sees it.
  static func stripSuffix(_ name: String) -> String {
    guard let hash = name.firstIndex(of: "#") else { return name }
    return String(name[..<hash])
  }

  static func trim(_ s: Substring) -> Substring { TarsConfig.trim(s) }

  static func splitEndpoints(_ s: Substring) -> [Substring] {
    var pieces: [Substring] = []
    var start = s.startIndex
    var i = s.startIndex
    while i < s.endIndex {
      if s[i] == ":" {
        var j = s.index(after: i)
        while j < s.endIndex, s[j] == " " || s[j] == "\t" { j = s.index(after: j) }
        let rest = s[j...].lowercased()
        if TarsEndpoint.Transport.allCases.contains(where: {
          rest.hasPrefix($0.rawValue + " ") || rest.hasPrefix($0.rawValue + "\t")
        }) {
          pieces.append(trim(s[start..<i]))
          start = j
          i = j
          continue
        }
      }
      i = s.index(after: i)
    }
    pieces.append(trim(s[start...]))
    return pieces.filter { !$0.isEmpty }
  }
}

extension Collection where Element: Equatable {
  /// Whether `needle` occurs as a contiguous run (String.contains(String) lives in
  /// _StringProcessing, which the lean static tarsnode does not link).
  func containsSequence<C: Collection>(_ needle: C) -> Bool where C.Element == Element {
    guard let first = needle.first else { return true }
    var i = startIndex
    while i != endIndex {
      if self[i] == first && self[i...].starts(with: needle) { return true }
      i = index(after: i)
    }
    return false
  }
}
