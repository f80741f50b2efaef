import Foundation
import Glibc
import TarsProtocol

/// A plain blocking TCP socket for tests that need to send exactly the bytes they choose
/// (malformed frames, pipelined batches) and watch what comes back.
/// Sendable: sending and receiving from two threads is safe on one socket.
public final class RawSocket: @unchecked Sendable {
  public let fd: Int32

  /// The descriptor is stored only once connected: a class whose stored properties are all set
  /// runs `deinit` when its initializer throws, and closing the descriptor there as well closed
  /// whatever another thread had opened under that number since (a test's pipe read as empty).
  public init(port: Int, host: String = "127.0.0.1", timeoutMs: Int = 5000) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    var tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int((timeoutMs % 1000) * 1000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &addr.sin_addr)
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard rc == 0 else {
      let e = errno
      close(fd)
      throw POSIXError(POSIXErrorCode(rawValue: e) ?? .ECONNREFUSED)
    }
    self.fd = fd
  }

  deinit { close(fd) }

  public func send(_ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
      let n = bytes.withUnsafeBytes {
        Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
      }
      if n <= 0 { return }
      offset += n
    }
  }

  public func send(_ request: RequestPacket) { send(TarsFrame.encode(request)) }

  /// Reads exactly `count` bytes; nil on EOF, error or timeout.
  public func read(_ count: Int) -> [UInt8]? {
    var out = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
      let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
      if n <= 0 { return nil }
      got += n
    }
    return out
  }

  /// Everything until the peer closes (or the receive timeout).
  public func readToEnd() -> [UInt8] {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
      if n <= 0 { return out }
      out += chunk[..<n]
    }
  }

  /// An HTTP/1.1 GET and its whole answer (status line, headers, body), for small test servers
  /// that close after answering.
  public static func httpGet(port: Int, path: String) throws -> String {
    let s = try RawSocket(port: port)
    s.send(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
    return String(decoding: s.readToEnd(), as: UTF8.self)
  }

  /// The next framed response, or nil if the connection closed (or timed out).
  public func readResponse() -> ResponsePacket? {
    guard let header = read(4) else { return nil }
    let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
    guard length >= 4, let body = read(length - 4) else { return nil }
    return try? ResponsePacket(tarsBytes: body)
  }

  /// True if the peer closed the connection (read returns 0) within the receive timeout.
  public func isClosedByPeer() -> Bool {
    var byte: UInt8 = 0
    let n = recv(fd, &byte, 1, 0)
    return n == 0 || (n < 0 && errno == ECONNRESET)
  }
}

/// A request to `servant.function` with `args` encoded at their tags.
public func makeRequest(
  id: Int32, servant: String, function: String, args: [UInt8] = [], oneway: Bool = false, messageType: Int32 = 0
) -> RequestPacket {
  RequestPacket(
    iVersion: 1, cPacketType: oneway ? 1 : 0, iMessageType: messageType, iRequestId: id, sServantName: servant,
    sFuncName: function, sBuffer: args, iTimeout: 3000, context: [:], status: [:])
}
