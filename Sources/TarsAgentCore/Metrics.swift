import Glibc
import Synchronization
import TarsRPC

/// What the agent counts, from its loop and its API threads, for `/metrics` (Prometheus' text
/// format): the log directory and what retention freed, the node's ports, the volumes it made
/// and reclaimed, and the Tars pods on its node with their tarsnode state.
public final class AgentMetrics: Sendable {
  public struct Pod: Sendable, Equatable {
    public var namespace: String
    public var name: String
    /// `App.Server`.
    public var server: String
    public var phase: String
    /// The pod's `tars.io/active` condition: tarsnode says its server is up.
    public var active: Bool
  }

  struct State {
    var logFiles = 0
    var logBytes: Int64 = 0
    var passes = 0
    var lastPass: Int64 = 0
    var deleted: [Deletion.Rule: Int] = [:]
    var freed: [Deletion.Rule: Int64] = [:]
    var provisioned = 0
    var reclaimed = 0
    var volumeFailures = 0
    var hostPortConflicts = 0
    var pods: [Pod] = []
  }

  let state = Mutex(State())
  public init() {}

  /// After each retention pass: what it saw and what it deleted.
  public func retention(files: [LogFile], deleted: [Deletion], at time: Int64) {
    state.withLock { s in
      s.logFiles = files.count
      s.logBytes = files.reduce(0) { $0 + $1.bytes }
      s.passes += 1
      s.lastPass = time
      for d in deleted {
        s.deleted[d.rule, default: 0] += 1
        s.freed[d.rule, default: 0] += d.file.bytes
      }
      s.logFiles -= deleted.count
      s.logBytes -= deleted.reduce(0) { $0 + $1.file.bytes }
    }
  }

  public enum VolumeEvent: Sendable { case provisioned, reclaimed, failed }
  public func volume(_ e: VolumeEvent) {
    state.withLock { s in
      switch e {
      case .provisioned: s.provisioned += 1
      case .reclaimed: s.reclaimed += 1
      case .failed: s.volumeFailures += 1
      }
    }
  }

  public func hostPortConflict() { state.withLock { $0.hostPortConflicts += 1 } }
  public func pods(_ pods: [Pod]) { state.withLock { $0.pods = pods } }

  /// The exposition; the ports and free space are read now, the rest is as last counted.
  public func render(logDirectory: String, host: PortScanner.Namespace?) -> String {
    let s = state.withLock { $0 }
    var out = ""
    func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
      out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
      for (labels, value) in samples { out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(value)\n" }
    }
    func label(_ v: String) -> String {
      var e = ""
      for c in v {
        switch c {
        case "\\": e += "\\\\"
        case "\"": e += "\\\""
        case "\n": e += "\\n"
        default: e.append(c)
        }
      }
      return e
    }
    metric(
      "tarsagent_log_files", "gauge", "Files under the log directory the retention rules look at (last pass).",
      [("", "\(s.logFiles)")])
    metric("tarsagent_log_bytes", "gauge", "Their total size in bytes (last pass).", [("", "\(s.logBytes)")])
    metric(
      "tarsagent_log_filesystem_free_bytes", "gauge", "Free bytes on the log directory's file system.",
      [("", "\(Retention.freeBytes(logDirectory) ?? 0)")])
    metric("tarsagent_retention_passes_total", "counter", "Retention passes run.", [("", "\(s.passes)")])
    metric(
      "tarsagent_retention_last_pass_timestamp_seconds", "gauge", "When the last retention pass ran.",
      [("", "\(s.lastPass)")])
    metric(
      "tarsagent_retention_deleted_files_total", "counter", "Files retention deleted, by rule.",
      Deletion.Rule.allCases.map { ("rule=\"\($0.rawValue)\"", "\(s.deleted[$0] ?? 0)") })
    metric(
      "tarsagent_retention_freed_bytes_total", "counter", "Bytes retention freed, by rule.",
      Deletion.Rule.allCases.map { ("rule=\"\($0.rawValue)\"", "\(s.freed[$0] ?? 0)") })
    let listening = host?.listening ?? []
    metric(
      "tarsagent_ports_in_use", "gauge", "Listening TCP and bound UDP ports on the node's network.",
      ListeningSocket.Transport.allCases.map { t in
        (
          "transport=\"\(t.rawValue)\"",
          "\(Set(listening.filter { $0.socket.transport == t }.map(\.socket.port)).count)"
        )
      })
    metric(
      "tarsagent_volumes_provisioned_total", "counter", "Local volumes made for claims on this node.",
      [("", "\(s.provisioned)")])
    metric(
      "tarsagent_volumes_reclaimed_total", "counter", "Local volumes removed after their claim went.",
      [("", "\(s.reclaimed)")])
    metric(
      "tarsagent_volume_failures_total", "counter", "Claims the agent could not serve, and failed reclaims.",
      [("", "\(s.volumeFailures)")])
    metric(
      "tarsagent_host_port_conflicts_total", "counter", "Host ports a pod asked for that another process held.",
      [("", "\(s.hostPortConflicts)")])
    metric(
      "tarsagent_tars_pod_active", "gauge",
      "Tars pods on this node: 1 while tarsnode reports the server active (condition tars.io/active).",
      s.pods.map { p in
        (
          "namespace=\"\(label(p.namespace))\",pod=\"\(label(p.name))\",server=\"\(label(p.server))\",phase=\"\(label(p.phase))\"",
          p.active ? "1" : "0"
        )
      })
    return out
  }
}

/// `GET /metrics` over HTTP/1.1 on the agent's loop: one request per connection, answered and
/// closed; anything else 404, a request over 8 KiB or slower than 10 s dropped.
public final class MetricsHTTP {
  let loop: TarsEventLoop
  let listener: Int32
  let body: () -> String
  public let port: Int
  /// Each open connection's request so far, with an id: a descriptor number comes back for a
  /// later connection, and a timer must not drop that one.
  var pending: [Int32: (id: Int, bytes: [UInt8])] = [:]
  var nextID = 0

  public init(loop: TarsEventLoop, host: String, port: Int, body: @escaping () -> String) throws(SystemError) {
    self.loop = loop
    self.body = body
    listener = try Socket.listen(try SocketAddress(host: host, port: port))
    self.port = Socket.localAddress(listener).port
    try loop.register(fd: listener, events: .readable) { [unowned self] _ in self.accept() }
  }

  func accept() {
    while case .connection(let fd, _) = Socket.accept(listener) {
      nextID += 1
      let id = nextID
      pending[fd] = (id, [])
      do {
        try loop.register(fd: fd, events: .readable) { [unowned self] _ in self.read(fd) }
      } catch {
        drop(fd)
        continue
      }
      _ = loop.schedule(afterMilliseconds: 10_000) { [weak self] in
        if self?.pending[fd]?.id == id { self?.drop(fd) }
      }
    }
  }

  func read(_ fd: Int32) {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
    if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
    guard n > 0, var request = pending[fd]?.bytes else { return drop(fd) }
    request += buffer[..<n]
    guard request.count <= 8192 else { return drop(fd) }
    pending[fd]?.bytes = request
    guard let end = Self.headerEnd(request) else { return }
    let line = String(decoding: request[..<end].prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
    let parts = line.split(separator: " ")
    let found = parts.count >= 2 && parts[0] == "GET" && (parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?"))
    let text = found ? body() : "not found: the agent serves GET /metrics\n"
    let head =
      "HTTP/1.1 \(found ? "200 OK" : "404 Not Found")\r\nContent-Type: \(found ? "text/plain; version=0.0.4" : "text/plain")\r\nContent-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n"
    loop.unregister(fd: fd)
    pending[fd] = nil
    // The answer is small; a blocking write of it keeps this simple and the loop's wait short.
    let flags = fcntl(fd, F_GETFL)
    _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let bytes = Array((head + text).utf8)
    var sent = 0
    while sent < bytes.count {
      let w = bytes[sent...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
      if w <= 0 { break }
      sent += w
    }
    close(fd)
  }

  func drop(_ fd: Int32) {
    guard pending.removeValue(forKey: fd) != nil else { return }
    loop.unregister(fd: fd)
    close(fd)
  }

  static func headerEnd(_ b: [UInt8]) -> Int? {
    guard b.count >= 4 else { return nil }
    for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
    return nil
  }
}
