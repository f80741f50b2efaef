import Glibc
import TarsRPC

/// The sd_notify protocol, both ways: a datagram socket tarsnode offers a not-tars server as
/// its `NOTIFY_SOCKET` (READY=1 makes it Active), and the message tarsnode itself sends when it
/// runs under systemd. One unix datagram each — no libsystemd, so tarsnode stays static.
final class NotifySocket {
  let loop: TarsEventLoop
  let path: String
  let fd: Int32
  var onReady: () -> Void = {}

  init(loop: TarsEventLoop, path: String) throws(SpawnError) {
    self.loop = loop
    self.path = path
    unlink(path)
    // The descriptor is stored once bound: from then on `deinit` closes it, also when this
    // initializer throws (a class whose properties are all set is deinitialized on a throw).
    let fd = socket(
      AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SpawnError("cannot create the notify socket: \(String(cString: strerror(errno)))") }
    guard Self.withAddress(path, { bind(fd, $0, $1) }) == 0 else {
      let e = errno
      close(fd)
      throw SpawnError(
        "NOTIFY_SOCKET cannot listen on \(path): \(String(cString: strerror(e))) (--ready-notify puts it in --base-dir)"
      )
    }
    self.fd = fd
    do {
      try loop.register(fd: fd, events: .readable) { [unowned self] _ in self.receive() }
    } catch {
      throw SpawnError("cannot watch the notify socket: \(error)")
    }
  }

  deinit {
    loop.unregister(fd: fd)
    close(fd)
    unlink(path)
  }

  func receive() {
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if n <= 0 { return }
      let lines = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n")
      if lines.contains("READY=1") { onReady() }
    }
  }

  /// Calls `body` with a sockaddr_un for `path` (`@name` is the abstract namespace).
  static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(path.utf8)
    if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    let count = min(bytes.count, capacity - 1)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for i in 0..<count { raw[i] = bytes[i] }
    }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + count + (bytes.first == 0 ? 0 : 1))
    return withUnsafePointer(to: &address) { p in
      p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
    }
  }

  /// Sends `message` to the socket systemd named in `NOTIFY_SOCKET` (best effort).
  static func send(_ message: String, to path: String) {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return }
    defer { close(fd) }
    let bytes = Array(message.utf8)
    _ = withAddress(path) { address, length in
      bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), address, length) }
    }
  }
}
