import Foundation
import Synchronization
import TarsAuth
import TarsMonitor
import TarsProtocol

/// `tars.tarslog.LogObj` and `tars.tarslog.LogQueryObj` over one `LogFiles`.
///
/// Lines are written as tarslog writes them: each after the sender's node name (the
/// `node_name` of the call's context, else its address) and the separator, into the file the
/// report names for the current day (or hour, or minutes). Lines of TarsCpp's call-chain trace
/// (`_t_trace_`) go to `_tars_/_trace_/`, after the app and server, as tarslog puts them.
/// A report that names a bad path is refused with an exception naming the field; a line over
/// the limit is dropped and counted; nothing the sender says leaves the root.
///
/// Writes happen on the thread that decoded the report: one `write` of page cache a report,
/// shorter than the decode.
public final class LogService: Sendable {
  public let files: LogFiles
  /// Verifies LogQueryObj calls (nil: open, for a service on loopback).
  let auth: NodeCallAuth?
  let clock: @Sendable () -> Int64
  let refused = Mutex(0)
  let replays = Mutex(ReplayGuard())
  let log: @Sendable (String) -> Void

  /// The target LogQueryObj calls are signed for (`NodeCallAuth`, the NodeObj signature).
  public static let queryTarget = "tars.tarslog"

  public init(
    files: LogFiles, auth: NodeCallAuth?,
    clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
    log: @escaping @Sendable (String) -> Void = { _ in }
  ) {
    self.files = files
    self.auth = auth
    self.clock = clock
    self.log = log
  }

  public var logObj: LogObj { LogObj(service: self) }
  public var queryObj: LogQueryObj { LogQueryObj(service: self) }

  /// Reports refused for a bad name, format or set.
  public var refusedReports: Int { refused.withLock { $0 } }

  func refuse(_ error: LogRequestError) -> TarsServantError {
    refused.withLock { $0 += 1 }
    return TarsServantError("tarslog: \(error.message)")
  }

  /// Deletes what is past retention once an hour, until cancelled.
  public func run() async {
    while !Task.isCancelled {
      files.prune(now: clock())
      try? await Task.sleep(for: .seconds(3600))
    }
  }

  /// The service's counters in Prometheus' text format.
  public func exposition() -> String {
    let c = files.counters
    let rows: [(String, String, String)] = [
      ("tars_log_lines_total", "counter", "\(c.lines)"), ("tars_log_bytes_total", "counter", "\(c.bytes)"),
      ("tars_log_dropped_lines_total", "counter", "\(c.droppedLines)"),
      ("tars_log_long_lines_total", "counter", "\(c.longLines)"),
      ("tars_log_refused_reports_total", "counter", "\(refusedReports)"),
      ("tars_log_write_errors_total", "counter", "\(c.writeErrors)"),
      ("tars_log_deleted_files_total{reason=\"age\"}", "counter", "\(c.deletedForAge)"),
      ("tars_log_deleted_files_total{reason=\"size\"}", "counter", "\(c.deletedForSize)"),
      ("tars_log_freed_bytes_total", "counter", "\(c.freedBytes)"),
    ]
    var out = ""
    var typed: Set<String> = []
    for (name, type, value) in rows {
      let base = String(name.prefix { $0 != "{" })
      if typed.insert(base).inserted { out += "# TYPE \(base) \(type)\n" }
      out += "\(name) \(value)\n"
    }
    return out
  }
}

/// `tars.tarslog.LogObj`: `logger` and `loggerbyInfo`, as TarsCpp, TarsGo and our runtime send them.
public final class LogObj: LogServant, Sendable {
  let service: LogService
  init(service: LogService) { self.service = service }

  static let traceFile = "_t_trace_"

  func node(_ current: TarsCurrent) -> String {
    let name = current.context["node_name"] ?? ""
    return name.isEmpty ? current.peer?.host ?? "" : name
  }

  public func logger(app: String, server: String, file: String, format: String, buffer: [String], current: TarsCurrent)
    throws
  {
    let target: LogTarget
    do {
      target = try LogTarget(app: app, server: server, file: file, format: format)
    } catch {
      throw service.refuse(error)
    }
    service.files.write(buffer, to: target, at: service.clock(), prefix: node(current) + "|")
  }

  public func loggerbyInfo(info: LogInfo, buffer: [String], current: TarsCurrent) throws {
    do throws(LogRequestError) {
      if info.sFilename == Self.traceFile {
        let target = try LogTarget(app: "_tars_", server: "_trace_", file: info.sFilename, format: info.sFormat)
        try LogTarget.check(info.appname, "appname")
        try LogTarget.check(info.servername, "servername")
        let prefix = node(current) + "|" + info.appname + "|" + info.servername + "|"
        return service.files.write(buffer, to: target, at: service.clock(), prefix: prefix)
      }
      let target = try LogTarget(info: info)
      guard info.sSepar.utf8.count <= 4, !info.sSepar.contains("\n") else {
        throw LogRequestError("sSepar '\(info.sSepar)' must be at most 4 characters, no newline")
      }
      service.files.write(buffer, to: target, at: service.clock(), prefix: node(current) + info.sSepar)
    } catch {
      throw service.refuse(error)
    }
  }
}

/// `tars.tarslog.LogQueryObj`: the files kept for a server and their ends, for the admin API.
/// Logs say what servers do, so with a secret every call must be signed (the NodeObj
/// signature, target `tars.tarslog`) and is good once.
public final class LogQueryObj: LogQueryServant, Sendable {
  let service: LogService
  init(service: LogService) { self.service = service }

  /// Why the call is refused, or nil.
  func refusal(_ current: TarsCurrent) -> String? {
    guard let auth = service.auth else { return nil }
    do {
      let now = unixTimeSeconds()
      let verified = try auth.verify(current.request, target: LogService.queryTarget, now: now)
      try service.replays.withLock { g throws(NodeAuthError) in try g.admit(verified, now: now) }
      return nil
    } catch {
      service.log("log: refused \(current.request.sFuncName) from \(current.peer.map(\.description) ?? "?"): \(error)")
      return "refused: \(error)"
    }
  }

  /// The most one answer carries.
  static let maxTail: Int64 = 4 << 20

  public func listFiles(app: String, server: String, current: TarsCurrent) throws -> LogQuery.ListFiles.Result {
    if let refused = refusal(current) { return .init(ret: -2, files: [], result: refused) }
    do {
      let files = try service.files.list(app: app, server: server)
      return .init(
        ret: 0, files: files.map { RemoteLogFile(name: $0.name, size: $0.size, modified: $0.modified) }, result: "")
    } catch {
      return .init(ret: -1, files: [], result: error.message)
    }
  }

  public func tail(app: String, server: String, name: String, maxBytes: Int64, current: TarsCurrent) throws
    -> LogQuery.Tail.Result
  {
    if let refused = refusal(current) { return .init(ret: -2, text: "", result: refused) }
    guard (1...Self.maxTail).contains(maxBytes) else {
      return .init(ret: -1, text: "", result: "maxBytes must be 1 to \(Self.maxTail)")
    }
    do {
      return .init(
        ret: 0, text: try service.files.tail(app: app, server: server, name: name, maxBytes: Int(maxBytes)), result: "")
    } catch {
      return .init(ret: -1, text: "", result: error.message)
    }
  }
}
