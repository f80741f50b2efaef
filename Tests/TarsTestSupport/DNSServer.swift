import Foundation
import Glibc

/// A tiny authoritative DNS server on 127.0.0.1 (UDP) for tests: answers A queries from a
/// table, with a CNAME in front when asked to, and NXDOMAIN for the rest.
public final class TestDNSServer: @unchecked Sendable {
  public let port: Int
  let fd: Int32
  let records: [String: String]
  let viaCNAME: Bool
  public private(set) var queries: [String] = []
  let lock = NSLock()

  public init(records: [String: String], viaCNAME: Bool = false) throws {
    self.records = records
    self.viaCNAME = viaCNAME
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    self.fd = fd
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
        bind(fd, p, len)
        return getsockname(fd, p, &len)
      }
    }
    port = Int(UInt16(bigEndian: addr.sin_port))
    Thread.detachNewThread { [self] in serve() }
  }

  public var seen: [String] { lock.withLock { queries } }

  func serve() {
    var buffer = [UInt8](repeating: 0, count: 512)
    while true {
      var from = sockaddr_storage()
      var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
      let n = withUnsafeMutablePointer(to: &from) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &fromLength) }
      }
      if n < 12 { return }
      var i = 12
      var labels: [String] = []
      while i < n, buffer[i] != 0 {
        let l = Int(buffer[i])
        labels.append(String(decoding: buffer[(i + 1)..<min(n, i + 1 + l)], as: UTF8.self))
        i += 1 + l
      }
      let question = Array(buffer[12..<(i + 5)])
      let name = labels.joined(separator: ".").lowercased()
      lock.withLock { queries.append(name) }
      var reply: [UInt8] = [buffer[0], buffer[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]
      var answers: [UInt8] = []
      var count: UInt8 = 0
      if let ip = records[name] {
        if viaCNAME {
          // name CNAME alias.test, then alias.test A ip (pointer to the question name first).
          let target: [UInt8] = [5] + Array("alias".utf8) + [4] + Array("test".utf8) + [0]
          answers += [0xC0, 0x0C, 0, 5, 0, 1, 0, 0, 0, 60, 0, UInt8(target.count)] + target
          let targetOffset = 12 + question.count + 12
          answers += [0xC0 | UInt8(targetOffset >> 8), UInt8(targetOffset & 0xFF), 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]
          count = 2
        } else {
          answers += [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]
          count = 1
        }
        answers += ip.split(separator: ".").map { UInt8($0)! }
      } else {
        reply[3] = 0x83  // NXDOMAIN
      }
      reply[7] = count
      reply += question + answers
      _ = withUnsafePointer(to: &from) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, fromLength) }
      }
    }
  }
}
