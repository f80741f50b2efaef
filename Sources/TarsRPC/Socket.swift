import CTarsSys
import Glibc

/// An IPv4 or IPv6 socket address.
public struct SocketAddress: Sendable, CustomStringConvertible {
  var storage = sockaddr_storage()
  var length: socklen_t = 0

  init() {}

  /// The address of an IP literal, or nil if `host` is a name.
  public init?(literal host: String, port: Int) {
    guard (0...65535).contains(port) else { return nil }
    var v4 = in_addr()
    if inet_pton(AF_INET, host, &v4) == 1 {
      var sin = sockaddr_in()
      sin.sin_family = sa_family_t(AF_INET)
      sin.sin_port = in_port_t(UInt16(port).bigEndian)
      sin.sin_addr = v4
      self.init(sin)
      return
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, host, &v6) == 1 {
      var sin6 = sockaddr_in6()
      sin6.sin6_family = sa_family_t(AF_INET6)
      sin6.sin6_port = in_port_t(UInt16(port).bigEndian)
      sin6.sin6_addr = v6
      self.init(sin6)
      return
    }
    return nil
  }

  /// Resolves `host` (an IP literal, or a name through /etc/hosts and DNS). Names resolve to
  /// IPv4 first, as TarsCpp does, and to IPv6 only when there is no IPv4 address. A name lookup
  /// blocks the caller: event-loop code uses `Resolver` instead.
  public init(host: String, port: Int) throws(SystemError) {
    guard (0...65535).contains(port) else {
      throw SystemError("resolve \(host)", detail: "port \(port) is out of range")
    }
    if let literal = SocketAddress(literal: host, port: port) {
      self = literal
      return
    }
    // /etc/hosts and DNS by ourselves first: that works in a static binary in an empty image.
    if let ip = NameResolution.hostsFile(host).first, let address = SocketAddress(literal: ip, port: port) {
      self = address
      return
    }
    let dns = NameResolution.query(host, .system())
    if case .success(let ips) = dns, let ip = ips.first, let address = SocketAddress(literal: ip, port: port) {
      self = address
      return
    }
    var lastError: Int32 = 0
    for family in [AF_INET, AF_INET6] {
      var hints = addrinfo()
      hints.ai_family = family
      hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
      var result: UnsafeMutablePointer<addrinfo>?
      let rc = getaddrinfo(host, String(port), &hints, &result)
      guard rc == 0, let first = result else {
        lastError = rc
        continue
      }
      defer { freeaddrinfo(result) }
      self.init()
      withUnsafeMutableBytes(of: &storage) { dst in
        dst.copyMemory(
          from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
      }
      length = first.pointee.ai_addrlen
      return
    }
    if case .failure(let e) = dns { throw e }
    throw SystemError("resolve \(host)", detail: String(cString: gai_strerror(lastError)))
  }

  init<T>(_ address: T) {
    withUnsafeMutableBytes(of: &storage) { dst in
      withUnsafeBytes(of: address) { dst.copyMemory(from: $0) }
    }
    length = socklen_t(MemoryLayout<T>.size)
  }

  var family: Int32 { Int32(storage.ss_family) }

  public var host: String {
    var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    var copy = storage
    return withUnsafePointer(to: &copy) { p in
      p.withMemoryRebound(to: UInt8.self, capacity: MemoryLayout<sockaddr_storage>.size) { raw in
        if family == AF_INET6 {
          return raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
            var a = sin6.pointee.sin6_addr
            inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
            return Self.string(buffer)
          }
        }
        return raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
          var a = sin.pointee.sin_addr
          inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
          return Self.string(buffer)
        }
      }
    }
  }

  static func string(_ cString: [CChar]) -> String {
    String(decoding: cString.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  public var port: Int {
    var copy = storage
    return withUnsafePointer(to: &copy) { p in
      p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
    }
  }

  public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

  func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    var copy = storage
    return withUnsafePointer(to: &copy) { p in
      p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
    }
  }
}

/// Thin wrappers over the socket calls the RPC layer makes; every descriptor is non-blocking
/// and close-on-exec so a spawned business server inherits none of them.
/// Non-blocking TCP sockets: what TarsServer and TarsClient build on, and what a small server
/// of another protocol on the same loop (the agent's /metrics) listens and accepts with.
public enum Socket {
  static func stream(family: Int32) throws(SystemError) -> Int32 {
    let fd = socket(
      family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemError("socket") }
    return fd
  }

  public static func listen(_ address: SocketAddress, backlog: Int32 = 1024) throws(SystemError) -> Int32 {
    let fd = try stream(family: address.family)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let rc = address.withSockaddr { bind(fd, $0, $1) }
    guard rc == 0 else {
      let e = SystemError("bind \(address)")
      close(fd)
      throw e
    }
    guard Glibc.listen(fd, backlog) == 0 else {
      let e = SystemError("listen \(address)")
      close(fd)
      throw e
    }
    return fd
  }

  /// Starts a non-blocking connect; the socket becomes writable when it completes.
  static func connect(_ address: SocketAddress) throws(SystemError) -> Int32 {
    let fd = try stream(family: address.family)
    setNoDelay(fd)
    let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
    if rc != 0 && ctars_errno() != EINPROGRESS {
      let e = SystemError("connect \(address)")
      close(fd)
      throw e
    }
    return fd
  }

  public enum Accepted {
    case connection(Int32, SocketAddress)
    /// Nothing more to accept now.
    case none
    /// The process or system is out of descriptors: the pending connection stays queued.
    case outOfDescriptors
  }

  public static func accept(_ listener: Int32) -> Accepted {
    var address = SocketAddress()
    address.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    while true {
      let fd = withUnsafeMutablePointer(to: &address.storage) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { ctars_accept4(listener, $0, &address.length) }
      }
      if fd >= 0 {
        setNoDelay(fd)
        return .connection(fd, address)
      }
      switch ctars_errno() {
      case EINTR, ECONNABORTED, EPROTO: continue  // that connection is gone; try the next
      case EMFILE, ENFILE, ENOBUFS, ENOMEM: return .outOfDescriptors
      default: return .none
      }
    }
  }

  public static func localAddress(_ fd: Int32) -> SocketAddress {
    var address = SocketAddress()
    address.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    _ = withUnsafeMutablePointer(to: &address.storage) { p in
      p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &address.length) }
    }
    return address
  }

  static func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
  }

  /// The result of a non-blocking connect (0 on success).
  static func pendingError(_ fd: Int32) -> Int32 {
    var error: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
    return error
  }
}

/// Name lookups off the event loop: `getaddrinfo` can block for seconds when DNS is slow, and a
/// supervisor must not stop supervising meanwhile. IP literals are answered at once.
enum Resolver {
  final class Job {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
  }

  /// Calls `completion` on `loop` with the address of `host`.
  static func resolve(
    host: String, port: Int, on loop: TarsEventLoop, completion: @escaping (Result<SocketAddress, SystemError>) -> Void
  ) {
    if let literal = SocketAddress(literal: host, port: port) {
      completion(.success(literal))
      return
    }
    let callback = LoopBound(value: completion)
    let job = Job {
      let result = Result { () throws(SystemError) in try SocketAddress(host: host, port: port) }
      loop.execute { callback.value(result) }
    }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(job).toOpaque()
    let rc = pthread_create(
      &thread, nil,
      { raw in
        Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
      }, context)
    if rc != 0 {
      Unmanaged<Job>.fromOpaque(context).release()
      completion(.failure(SystemError("resolve \(host): start a resolver thread", errno: rc)))
      return
    }
    pthread_detach(thread)
  }
}
