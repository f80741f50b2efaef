import CTarsSys
import Glibc

/// One HTTP GET on the event loop, for readiness probes: `http://HOST:PORT/PATH` is ready when
/// it answers 2xx. A few dozen lines of socket code instead of libcurl, which has no static
/// archive on Debian and would cost tarsnode its single static binary.
public final class HTTPProbe {
  public struct URL: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var path: String

    /// Parses `http://host[:port][/path]`.
    public init?(_ text: String) {
      guard text.hasPrefix("http://") else { return nil }
      let rest = text.dropFirst(7)
      let slash = rest.firstIndex(of: "/") ?? rest.endIndex
      let authority = rest[..<slash]
      path = slash == rest.endIndex ? "/" : String(rest[slash...])
      if let colon = authority.lastIndex(of: ":"), let p = Int(authority[authority.index(after: colon)...]) {
        host = String(authority[..<colon])
        port = p
      } else {
        host = String(authority)
        port = 80
      }
      if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
      guard !host.isEmpty, (1...65535).contains(port) else { return nil }
    }
  }

  let loop: TarsEventLoop
  let url: URL
  var fd: Int32 = -1
  var response: [UInt8] = []
  var completion: ((Bool, String) -> Void)?
  var timer: TarsEventLoop.TimerID?

  /// Probes `url` once and calls `completion(ready, detail)` on the loop within `timeoutMs`.
  public static func probe(
    _ url: URL, on loop: TarsEventLoop, timeoutMs: Int = 1000, completion: @escaping (Bool, String) -> Void
  ) {
    let p = HTTPProbe(loop: loop, url: url, completion: completion)
    p.start(timeoutMs: timeoutMs)
  }

  init(loop: TarsEventLoop, url: URL, completion: @escaping (Bool, String) -> Void) {
    self.loop = loop
    self.url = url
    self.completion = completion
  }

  func start(timeoutMs: Int) {
    Resolver.resolve(host: url.host, port: url.port, on: loop) { [self] result in
      switch result {
      case .failure(let e): finish(false, "\(e)")
      case .success(let address):
        do {
          fd = try Socket.connect(address)
          try loop.register(fd: fd, events: .writable) { [self] events in handle(events) }
        } catch {
          finish(false, "\(error)")
          return
        }
        timer = loop.schedule(afterMilliseconds: timeoutMs) { [self] in
          finish(false, "no answer within \(timeoutMs) ms")
        }
      }
    }
  }

  func handle(_ events: TarsEventLoop.Events) {
    if response.isEmpty && events.contains(.writable) {
      let error = Socket.pendingError(fd)
      guard error == 0 else {
        finish(false, String(cString: strerror(error)))
        return
      }
      let request = Array("GET \(url.path) HTTP/1.0\r\nHost: \(url.host)\r\nConnection: close\r\n\r\n".utf8)
      _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      response = [0]  // marks "request sent"; the status line starts after it
      loop.modify(fd: fd, events: .readable)
      return
    }
    var buffer = [UInt8](repeating: 0, count: 512)
    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    if n > 0 { response += buffer[0..<n] }
    let text = String(decoding: response.dropFirst(), as: UTF8.self)
    if let lineEnd = text.firstIndex(of: "\r") ?? text.firstIndex(of: "\n") {
      let status = text[..<lineEnd].split(separator: " ")
      let ok = status.count >= 2 && status[0].hasPrefix("HTTP/") && status[1].hasPrefix("2")
      finish(ok, String(text[..<lineEnd]))
    } else if n <= 0 {
      finish(false, n == 0 ? "connection closed before a status line" : String(cString: strerror(ctars_errno())))
    }
  }

  func finish(_ ready: Bool, _ detail: String) {
    if let t = timer { loop.cancel(t) }
    timer = nil
    if fd >= 0 {
      loop.unregister(fd: fd)
      close(fd)
      fd = -1
    }
    let c = completion
    completion = nil
    c?(ready, detail)
  }
}
