import CTarsSys
import Glibc

/// An IPv4 or IPv6 socket address.
public struct SocketAddress: Sendable, CustomStringConvertible {
  var storage = sockaddr_storage()
  var length: socklen_t = 0

  init() {}

  /// Resolves `host` (an IP literal, or a name through /etc/hosts and DNS) and `port`.
  /// Literal addresses never touch the resolver. Name lookups block the caller.
  public init(host: String, port: Int) throws(SystemError) {
    guard (0...65535).contains(port) else {
      throw SystemError("resolve \(host)", detail: "port \(port) is out of range")
    }
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
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(host, String(port), &hints, &result)
    guard rc == 0, let first = result else {
      throw SystemError("resolve \(host)", detail: String(cString: gai_strerror(rc)))
    }
    defer { freeaddrinfo(result) }
    self.init()
    withUnsafeMutableBytes(of: &storage) { dst in
      dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
    }
    length = first.pointee.ai_addrlen
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
enum Socket {
  static func stream(family: Int32) throws(SystemError) -> Int32 {
    let fd = socket(
      family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemError("socket") }
    return fd
  }

  static func listen(_ address: SocketAddress, backlog: Int32 = 1024) throws(SystemError) -> Int32 {
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

  static func accept(_ listener: Int32) -> (Int32, SocketAddress)? {
    var address = SocketAddress()
    address.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let fd = withUnsafeMutablePointer(to: &address.storage) { p in
      p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        ctars_accept4(listener, $0, &address.length)
      }
    }
    guard fd >= 0 else { return nil }
    setNoDelay(fd)
    return (fd, address)
  }

  static func localAddress(_ fd: Int32) -> SocketAddress {
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
