import Glibc
import TarsMonitor

/// Where one batch of remote log lines goes, named as tarslog names it:
/// `<root>/<app>/[<set>/]<server>/<app>.<server>[_<file>]_<time>.log`, the time from the
/// report's format (`%Y%m%d` by default: one file a day). The names come from the wire, so each
/// part is checked before it becomes a path: a name with `/`, a leading dot or a control
/// character is refused, never followed.
public struct LogTarget: Hashable, Sendable {
  /// `<app>/[<set>/]<server>`, relative to the service's root.
  public var directory: String
  /// The file name before the time: `App.Server_file`.
  public var base: String
  /// Between the base and the time (`sConcatStr`, `_` by default).
  public var concat: String
  /// Whether the name ends in `.log` (`bHasSufix`).
  public var suffix: Bool
  public var period: LogPeriod
  /// `App.Server`: the size bound is per server.
  public var server: String

  /// The file for lines arriving at `time` (seconds since 1970, the service's local time).
  public func fileName(at time: Int64) -> String {
    base + concat + period.render(time) + (suffix ? ".log" : "")
  }

  /// `logger(app, server, file, format, …)`: TarsCpp's plain call (and the dyeing logs).
  public init(app: String, server: String, file: String, format: String) throws(LogRequestError) {
    try LogTarget.check(app, "app")
    try LogTarget.check(server, "server")
    if !file.isEmpty { try LogTarget.check(file, "file") }
    directory = app + "/" + server
    base = file.isEmpty ? "\(app).\(server)" : "\(app).\(server)_\(file)"
    concat = "_"
    suffix = true
    period = try LogPeriod(format: format, type: "")
    self.server = "\(app).\(server)"
  }

  /// `loggerbyInfo(info, …)`: what TarsCpp's remote `FDLOG` sends, every `LogInfo` field honoured.
  public init(info: LogInfo) throws(LogRequestError) {
    try LogTarget.check(info.appname, "appname")
    try LogTarget.check(info.servername, "servername")
    if !info.sFilename.isEmpty || !info.bHasAppNamePrefix { try LogTarget.check(info.sFilename, "sFilename") }
    guard info.sConcatStr.utf8.count <= 4, info.sConcatStr.utf8.allSatisfy({ LogTarget.allowed($0) }) else {
      throw LogRequestError("sConcatStr '\(info.sConcatStr)' must be at most 4 of [A-Za-z0-9._-]")
    }
    let set = try LogTarget.setDirectory(info.setdivision)
    directory = info.appname + "/" + (set.isEmpty ? "" : set + "/") + info.servername
    let prefix = "\(info.appname).\(info.servername)"
    base =
      info.bHasAppNamePrefix
      ? (info.sFilename.isEmpty ? prefix : prefix + info.sConcatStr + info.sFilename) : info.sFilename
    concat = info.sConcatStr
    suffix = info.bHasSufix
    period = try LogPeriod(format: info.sFormat, type: info.sLogType)
    server = prefix
  }

  /// tarslog's folder for a set division `name.area.group`: `nameareagroup`, or `namearea`
  /// for group `*`; anything not of three parts means no set.
  static func setDirectory(_ division: String) throws(LogRequestError) -> String {
    let parts = division.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    guard parts.count == 3 else { return "" }
    let joined = parts[0] + parts[1] + (parts[2] == "*" ? "" : parts[2])
    guard joined.utf8.allSatisfy({ allowed($0) }), !joined.hasPrefix("."), joined.utf8.count <= 64 else {
      throw LogRequestError("setdivision '\(division)' must be name.area.group of [A-Za-z0-9._-]")
    }
    return joined
  }

  static func allowed(_ c: UInt8) -> Bool {
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F
      || c == 0x2D
  }

  /// A part of a path: 1–128 of `[A-Za-z0-9._-]`, not starting with a dot.
  static func check(_ name: String, _ field: String) throws(LogRequestError) {
    guard !name.isEmpty, name.utf8.count <= 128, !name.hasPrefix("."), name.utf8.allSatisfy({ allowed($0) }) else {
      throw LogRequestError("\(field) '\(name.prefix(64))' must be 1 to 128 of [A-Za-z0-9._-], not starting with '.'")
    }
  }
}

/// How a file name tells time: a `strftime`-like format of `%Y %m %d %H %M` and plain
/// characters, and a step (`2hour` starts a file every two hours, `10minute` every ten minutes),
/// as TarsCpp's `LogByDay`, `LogByHour` and `LogByMinute`.
public struct LogPeriod: Hashable, Sendable {
  public var format: String
  /// Minutes a file covers when the type names hours or minutes (0: as the format says).
  public var stepMinutes: Int

  public init(format: String, type: String) throws(LogRequestError) {
    let lower = type.lowercased()
    var step = 0
    var fallback = "%Y%m%d"
    for (unit, minutes, defaultCount, defaultFormat) in [
      ("day", 0, 1, "%Y%m%d"), ("hour", 60, 1, "%Y%m%d%H"), ("minute", 1, 10, "%Y%m%d%H%M"),
    ] {
      guard let range = lower.range(of: unit) else { continue }
      let count = Int(lower[..<range.lowerBound]) ?? defaultCount
      guard (1...1440).contains(count) else { throw LogRequestError("sLogType '\(type)' needs a count of 1 to 1440") }
      step = minutes * count
      fallback = defaultFormat
      break
    }
    let f = format.isEmpty ? fallback : format
    var i = f.utf8.makeIterator()
    while let c = i.next() {
      if c == UInt8(ascii: "%") {
        guard let d = i.next(), "YmdHM".utf8.contains(d) else {
          throw LogRequestError("format '\(format)' may use only %Y %m %d %H %M and [A-Za-z0-9._-]")
        }
      } else if !LogTarget.allowed(c) || f.utf8.count > 32 {
        throw LogRequestError("format '\(format)' may use only %Y %m %d %H %M and [A-Za-z0-9._-]")
      }
    }
    self.format = f
    stepMinutes = step
  }

  /// The format applied to `time` in local time, floored to the step.
  public func render(_ time: Int64) -> String {
    var t = time_t(time)
    var tm = Glibc.tm()
    localtime_r(&t, &tm)
    if stepMinutes > 0 {
      let minuteOfDay = Int(tm.tm_hour) * 60 + Int(tm.tm_min)
      let floored = minuteOfDay / stepMinutes * stepMinutes
      tm.tm_hour = Int32(floored / 60)
      tm.tm_min = Int32(floored % 60)
    }
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    var out = ""
    var percent = false
    for ch in format {
      if percent {
        switch ch {
        case "Y": out += "\(tm.tm_year + 1900)"
        case "m": out += two(tm.tm_mon + 1)
        case "d": out += two(tm.tm_mday)
        case "H": out += two(tm.tm_hour)
        default: out += two(tm.tm_min)
        }
        percent = false
      } else if ch == "%" {
        percent = true
      } else {
        out.append(ch)
      }
    }
    return out
  }
}

/// A report the service cannot take; the message names the field to change.
public struct LogRequestError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
