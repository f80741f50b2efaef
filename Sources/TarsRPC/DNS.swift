import CTarsSys
import Glibc

/// Name resolution that works in a fully static binary: glibc's `getaddrinfo` needs its NSS
/// shared libraries for DNS, which a minimal container does not have, so tarsnode reads
/// `/etc/hosts` and asks the nameservers of `/etc/resolv.conf` itself (A records over UDP,
/// with the search list and `ndots` the way Kubernetes pods are set up).
public enum NameResolution {
  /// `/etc/resolv.conf`, as much of it as a stub resolver needs.
  public struct Configuration: Sendable, Equatable {
    public var nameservers: [String]
    public var search: [String]
    public var ndots: Int
    public var timeoutMs: Int
    public var attempts: Int
    /// The nameservers' port; always 53 outside tests.
    public var port: Int

    public init(
      nameservers: [String], search: [String] = [], ndots: Int = 1, timeoutMs: Int = 2000, attempts: Int = 2,
      port: Int = 53
    ) {
      self.nameservers = nameservers
      self.search = search
      self.ndots = ndots
      self.timeoutMs = timeoutMs
      self.attempts = attempts
      self.port = port
    }

    /// Parses resolv.conf text: `nameserver`, `search`/`domain`, `options ndots:N timeout:S attempts:N`.
    public init(parsing text: String) {
      self.init(nameservers: [])
      for line in text.split(whereSeparator: \.isNewline) {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let key = words.first, !key.hasPrefix("#"), !key.hasPrefix(";") else { continue }
        switch key {
        case "nameserver": if words.count > 1 { nameservers.append(words[1]) }
        case "search", "domain": search = Array(words.dropFirst())
        case "options":
          for option in words.dropFirst() {
            let parts = option.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let v = Int(parts[1]) else { continue }
            switch parts[0] {
            case "ndots": ndots = min(max(v, 0), 15)
            case "timeout": timeoutMs = min(max(v, 1), 30) * 1000
            case "attempts": attempts = min(max(v, 1), 5)
            default: break
            }
          }
        default: break
        }
      }
      if nameservers.isEmpty { nameservers = ["127.0.0.1"] }
    }

    public static func system() -> Configuration {
      Configuration(parsing: (try? Files.readText("/etc/resolv.conf")) ?? "")
    }
  }

  /// The addresses `/etc/hosts` lists for `name` (case-insensitive).
  public static func hostsFile(_ name: String) -> [String] {
    hostsFile(name, text: (try? Files.readText("/etc/hosts")) ?? "")
  }

  /// The addresses hosts-file `text` lists for `name`.
  public static func hostsFile(_ name: String, text: String) -> [String] {
    let wanted = name.lowercased()
    var out: [String] = []
    for line in text.split(whereSeparator: \.isNewline) {
      let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
      let words = content.split(whereSeparator: { $0 == " " || $0 == "\t" })
      guard words.count >= 2 else { continue }
      if words.dropFirst().contains(where: { $0.lowercased() == wanted }) { out.append(String(words[0])) }
    }
    return out
  }

  /// The names to try for `name`, in order: as-is first when it has at least `ndots` dots (or
  /// ends in '.'), the search domains appended otherwise.
  public static func candidates(_ name: String, _ config: Configuration) -> [String] {
    if name.hasSuffix(".") { return [String(name.dropLast())] }
    let dots = name.filter { $0 == "." }.count
    let searched = config.search.map { "\(name).\($0)" }
    return dots >= config.ndots ? [name] + searched : searched + [name]
  }

  /// IPv4 addresses of `name` from DNS, or the reason there are none.
  public static func query(_ name: String, _ config: Configuration) -> Result<[String], SystemError> {
    var lastError = SystemError("resolve \(name)", detail: "no nameserver answered")
    for candidate in candidates(name, config) {
      for _ in 0..<config.attempts {
        for server in config.nameservers {
          switch ask(candidate, server: server, port: config.port, timeoutMs: config.timeoutMs) {
          case .success(let addresses) where !addresses.isEmpty: return .success(addresses)
          case .success: lastError = SystemError("resolve \(name)", detail: "no such name")
          case .failure(let e): lastError = e
          }
        }
        if lastError.detail == "no such name" { break }
      }
    }
    return .failure(lastError)
  }

  /// One A query over UDP, blocking up to `timeoutMs` (callers run it off the event loop).
  static func ask(_ name: String, server: String, port: Int, timeoutMs: Int) -> Result<[String], SystemError> {
    guard let address = SocketAddress(literal: server, port: port) else {
      return .failure(SystemError("resolve \(name)", detail: "nameserver \(server) is not an IP address"))
    }
    let fd = socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return .failure(SystemError("resolve \(name): socket")) }
    defer { close(fd) }
    var tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let id = UInt16.random(in: 0...UInt16.max)
    guard let query = message(id: id, name: name) else {
      return .failure(SystemError("resolve \(name)", detail: "not a valid DNS name"))
    }
    let sent = address.withSockaddr { sa, len in
      query.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, len) }
    }
    guard sent == query.count else { return .failure(SystemError("resolve \(name): send to \(server)")) }
    var buffer = [UInt8](repeating: 0, count: 1500)
    let deadline = TarsEventLoop.now() + UInt64(timeoutMs) * 1_000_000
    while TarsEventLoop.now() < deadline {
      let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if n < 0 {
        if ctars_errno() == EINTR { continue }
        return .failure(SystemError("resolve \(name)", detail: "no answer from \(server) within \(timeoutMs) ms"))
      }
      if let answer = parse(Array(buffer[0..<n]), id: id) { return answer }
    }
    return .failure(SystemError("resolve \(name)", detail: "no answer from \(server) within \(timeoutMs) ms"))
  }

  /// A standard query with recursion desired, for type A, class IN.
  static func message(id: UInt16, name: String) -> [UInt8]? {
    var out: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
    for label in name.split(separator: ".") {
      let bytes = Array(label.utf8)
      guard !bytes.isEmpty, bytes.count < 64 else { return nil }
      out.append(UInt8(bytes.count))
      out += bytes
    }
    out += [0, 0, 1, 0, 1]
    return out.count <= 512 ? out : nil
  }

  /// The A records of a response to query `id`; nil if it is not one (a stray datagram).
  static func parse(_ m: [UInt8], id: UInt16) -> Result<[String], SystemError>? {
    guard m.count >= 12, UInt16(m[0]) << 8 | UInt16(m[1]) == id, m[2] & 0x80 != 0 else { return nil }
    let rcode = m[3] & 0x0F
    if rcode == 3 { return .success([]) }  // NXDOMAIN
    if rcode != 0 { return .failure(SystemError("resolve", detail: "nameserver answered with code \(rcode)")) }
    let questions = Int(m[4]) << 8 | Int(m[5])
    let answers = Int(m[6]) << 8 | Int(m[7])
    var i = 12
    func skipName() -> Bool {
      while i < m.count {
        let length = Int(m[i])
        if length == 0 {
          i += 1
          return true
        }
        if length & 0xC0 == 0xC0 {
          i += 2
          return i <= m.count
        }
        i += 1 + length
      }
      return false
    }
    for _ in 0..<questions {
      guard skipName(), i + 4 <= m.count else { return .failure(SystemError("resolve", detail: "malformed answer")) }
      i += 4
    }
    var addresses: [String] = []
    for _ in 0..<answers {
      guard skipName(), i + 10 <= m.count else { break }
      let type = Int(m[i]) << 8 | Int(m[i + 1])
      let length = Int(m[i + 8]) << 8 | Int(m[i + 9])
      i += 10
      guard i + length <= m.count else { break }
      if type == 1 && length == 4 { addresses.append("\(m[i]).\(m[i + 1]).\(m[i + 2]).\(m[i + 3])") }
      i += length
    }
    return .success(addresses)
  }
}
