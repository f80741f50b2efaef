import Glibc
import TarsMonitor
import TarsProtocol
import TarsRPC

/// A remote log file, as TarsCpp's `FDLOG("file")` with remote logging on: each line gets the
/// local time (`2026-12-07 10:20:30|`) and goes to LogObj in batches — once a second, or at 200
/// lines — which keeps it in `App.Server_file_YYYYMMDD.log`. Lines wait in memory (at most
/// `maxWaiting`; beyond, the oldest are dropped and counted) while LogObj does not answer.
public final class TarsRemoteLog {
  public let file: String
  let info: LogInfo
  /// Sent as the calls' `node_name`, which LogObj puts before each line (TarsCpp's NodeName).
  let context: [String: String]
  var waiting: [String] = []
  /// The batch being sent (one at a time, so lines arrive in order).
  var inFlight: [String] = []
  /// Lines dropped because LogObj was away too long, and reports it refused.
  public private(set) var dropped = 0
  public private(set) var failures = 0
  public static let maxWaiting = 10_000
  static let batch = 200
  let proxy: TarsProxy

  init(file: String, app: String, server: String, node: String, proxy: TarsProxy) {
    self.file = file
    var info = LogInfo()
    info.appname = app
    info.servername = server
    info.sFilename = file
    info.sFormat = "%Y%m%d"
    self.info = info
    context = node.isEmpty ? [:] : ["node_name": node]
    self.proxy = proxy
  }

  /// Adds a line; it is sent with the next batch.
  public func write(_ line: String) {
    waiting.append(Self.now() + "|" + line + (line.hasSuffix("\n") ? "" : "\n"))
    if waiting.count > Self.maxWaiting {
      dropped += waiting.count - Self.maxWaiting
      waiting.removeFirst(waiting.count - Self.maxWaiting)
    }
    if waiting.count >= Self.batch { send() }
  }

  /// Sends what waits, one batch at a time, each answered before the next.
  func send() {
    guard inFlight.isEmpty, !waiting.isEmpty else { return }
    inFlight = Array(waiting.prefix(Self.batch))
    waiting.removeFirst(inFlight.count)
    proxy.call(
      Log.LoggerbyInfo.self, .init(info: info, buffer: inFlight),
      options: TarsCallOptions(timeoutMs: 3000, context: context)
    ) { [weak self] result in
      guard let self else { return }
      let lines = self.inFlight
      self.inFlight = []
      switch result {
      case .success:
        self.send()
      case .failure(let e) where e.code == TarsReturnCode.serverUnknownError:
        // LogObj refused them (a bad name): sending again would fail again.
        self.failures += 1
        self.dropped += lines.count
      case .failure:
        // Away: they go first next time, within the bound.
        self.failures += 1
        self.waiting = lines + self.waiting
        if self.waiting.count > Self.maxWaiting {
          self.dropped += self.waiting.count - Self.maxWaiting
          self.waiting.removeFirst(self.waiting.count - Self.maxWaiting)
        }
      }
    }
  }

  /// Sends everything and waits for LogObj, for a process about to exit: the batch in flight
  /// is answered first, then the rest go a batch at a time; what LogObj does not take is dropped.
  func flush() {
    if !inFlight.isEmpty { _ = proxy.client.loop.run(until: { self.inFlight.isEmpty }, timeoutMs: 5000) }
    while !waiting.isEmpty {
      let lines = Array(waiting.prefix(Self.batch))
      waiting.removeFirst(lines.count)
      guard
        (try? proxy.callBlocking(
          Log.LoggerbyInfo.self, .init(info: info, buffer: lines),
          options: TarsCallOptions(timeoutMs: 3000, context: context)))
          != nil
      else {
        dropped += lines.count + waiting.count
        waiting = []
        return
      }
    }
  }

  static func now() -> String {
    var t = time(nil)
    var tm = Glibc.tm()
    localtime_r(&t, &tm)
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return
      "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday)) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))"
  }
}

extension TarsCommunicator {
  /// Sends remote logs to `logObject` (`tars.tarslog.LogObj`, as `<server> log=` names it)
  /// for `app`.`server`, from `node` (what LogObj writes before each line: TarsCpp's
  /// `<server> nodename`, by default the server's address); `remoteLog(_:)` hands out the files.
  public func sendLogs(to logObject: String, app: String, server: String, node: String = "") throws(TarsAddressError) {
    remoteLogs = RemoteLogs(proxy: try proxy(logObject), app: app, server: server, node: node)
    every(1000) { [weak self] in
      for log in self?.remoteLogs?.files.values.map({ $0 }) ?? [] { log.send() }
    }
  }

  /// The remote log `file` ("" for the server's main one), nil when no LogObj is configured.
  public func remoteLog(_ file: String = "") -> TarsRemoteLog? {
    guard let logs = remoteLogs else { return nil }
    if let log = logs.files[file] { return log }
    let log = TarsRemoteLog(file: file, app: logs.app, server: logs.server, node: logs.node, proxy: logs.proxy)
    logs.files[file] = log
    return log
  }
}

/// The remote log files of one process.
final class RemoteLogs {
  let proxy: TarsProxy
  let app: String
  let server: String
  let node: String
  var files: [String: TarsRemoteLog] = [:]

  init(proxy: TarsProxy, app: String, server: String, node: String) {
    self.proxy = proxy
    self.app = app
    self.server = server
    self.node = node
  }
}
