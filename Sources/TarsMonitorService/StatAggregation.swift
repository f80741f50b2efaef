import TarsMonitor

/// One minute of calls between a caller and a callee's interface, as the rows of the classic
/// tarsstat tables: who called (`master`), whom (`slave`, `App.Server`), which interface, from
/// and to which address, and with which return code; `source` says whose view it is — the
/// caller's (`bFromClient`, what TarsCpp clients report) or the callee's (TarsCpp servers report
/// their own side with the master `stat_from_server`).
public struct StatKey: Hashable, Sendable {
  public var minute: Int64
  public var source: Source
  public var master: String
  public var slave: String
  public var interface: String
  public var masterIP: String
  public var slaveIP: String
  public var slavePort: Int32
  public var returnValue: Int32
  /// `name.area.id` of the callee's set, "" when it has none.
  public var slaveSet: String

  public enum Source: String, Sendable, CaseIterable { case client, server }

  public init(
    minute: Int64, source: Source, master: String, slave: String, interface: String, masterIP: String,
    slaveIP: String, slavePort: Int32, returnValue: Int32, slaveSet: String = ""
  ) {
    self.minute = minute
    self.source = source
    self.master = master
    self.slave = slave
    self.interface = interface
    self.masterIP = masterIP
    self.slaveIP = slaveIP
    self.slavePort = slavePort
    self.returnValue = returnValue
    self.slaveSet = slaveSet
  }
}

/// What a minute of calls adds up to: successes (`count`, TarsCpp's name), timeouts,
/// exceptions, the successes' total, longest and shortest response times in milliseconds, and
/// how many fell in each of the reporter's latency buckets (upper bound in ms → calls; TarsCpp's
/// defaults are 5, 10, 50, 100, 200, 500, 1000, 2000 and 3000).
public struct StatValue: Equatable, Sendable {
  public var count: Int64 = 0
  public var timeouts: Int64 = 0
  public var exceptions: Int64 = 0
  public var totalMs: Int64 = 0
  public var maxMs: Int64 = 0
  /// Meaningful only when `count > 0`.
  public var minMs: Int64 = 0
  public var intervals: [Int32: Int64] = [:]

  public init() {}

  public init(
    count: Int64, timeouts: Int64, exceptions: Int64, totalMs: Int64, maxMs: Int64, minMs: Int64,
    intervals: [Int32: Int64]
  ) {
    self.count = count
    self.timeouts = timeouts
    self.exceptions = exceptions
    self.totalMs = totalMs
    self.maxMs = maxMs
    self.minMs = minMs
    self.intervals = intervals
  }

  /// Adds another report of the same key: sums, the longest of the longest, the shortest of the
  /// shortest among reports that had successes.
  public mutating func merge(_ o: StatValue) {
    if o.count > 0 {
      minMs = count > 0 ? min(minMs, o.minMs) : o.minMs
      maxMs = count > 0 ? max(maxMs, o.maxMs) : o.maxMs
    }
    count += o.count
    timeouts += o.timeouts
    exceptions += o.exceptions
    totalMs += o.totalMs
    for (bound, n) in o.intervals { intervals[bound, default: 0] += n }
  }

  /// `5:1,10:0,…`, ascending: how buckets are stored.
  public var intervalsText: String {
    intervals.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
  }

  /// Parses `intervalsText` (several joined by `;` add up).
  public static func intervals(parsing text: Substring) -> [Int32: Int64] {
    var out: [Int32: Int64] = [:]
    for part in text.split(whereSeparator: { $0 == "," || $0 == ";" }) {
      let pair = part.split(separator: ":")
      if pair.count == 2, let b = Int32(pair[0]), let n = Int64(pair[1]) { out[b, default: 0] += n }
    }
    return out
  }
}

/// Why a report, or part of it, was not counted.
public enum ReportRefusal: String, Sendable, CaseIterable {
  /// More entries in one report than `Limits.entriesPerReport`.
  case oversized
  /// A negative count or time, or one beyond `Limits` (a broken or hostile reporter).
  case absurd
  /// A property policy other than Sum, Avg, Distr, Count, Max, Min, or a value that is no number.
  case unknownPolicy
  /// A name longer than `Limits.nameBytes`.
  case longName
  /// Past `Limits.keys` distinct keys in memory: a new key is dropped, existing ones still count.
  case tooManyKeys
}

/// What one report may carry, and what memory may hold.
public struct MonitorLimits: Sendable {
  public var entriesPerReport = 10_000
  public var nameBytes = 512
  /// Calls one entry may claim (a reporter sends one entry per key per interval).
  public var callsPerEntry: Int64 = 1_000_000_000
  /// The longest response time an entry may claim: a day.
  public var maxMs: Int64 = 86_400_000
  public var keys = 2_000_000
  public init() {}
}

extension StatValue {
  /// A reported body as a value, or why it cannot be counted.
  init(reported b: StatMicMsgBody, limits: MonitorLimits) throws(RefusalError) {
    let counts = [Int64(b.count), Int64(b.timeoutCount), Int64(b.execCount)]
    guard counts.allSatisfy({ (0...limits.callsPerEntry).contains($0) }),
      (0...limits.maxMs * limits.callsPerEntry).contains(b.totalRspTime),
      (0...limits.maxMs).contains(Int64(b.maxRspTime)), (0...limits.maxMs).contains(Int64(b.minRspTime)),
      b.intervalCount.allSatisfy({ $0.key >= 0 && Int64($0.key) <= limits.maxMs && $0.value >= 0 })
    else { throw RefusalError(.absurd) }
    self.init(
      count: counts[0], timeouts: counts[1], exceptions: counts[2], totalMs: b.totalRspTime,
      maxMs: Int64(b.maxRspTime), minMs: Int64(b.minRspTime),
      intervals: Dictionary(uniqueKeysWithValues: b.intervalCount.map { ($0.key, Int64($0.value)) }))
  }
}

struct RefusalError: Error {
  var reason: ReportRefusal
  init(_ reason: ReportRefusal) { self.reason = reason }
}
