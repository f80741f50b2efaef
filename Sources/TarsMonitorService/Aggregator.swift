import Synchronization
import TarsMonitor

/// Reports of the current minutes, summed in memory: a burst of reports costs no writes, and a
/// minute is written once, when it is over (`MonitorService` takes what is complete). Reports
/// arrive on the RPC threads; each is merged under one lock in time linear in its entries.
public final class Aggregator: Sendable {
  public let limits: MonitorLimits

  /// A Prometheus series: one caller → callee interface, from one side, since the start.
  public struct Series: Hashable, Sendable {
    public var source: StatKey.Source
    public var caller: String
    public var callee: String
    public var interface: String
  }

  struct State {
    var totals: [Series: StatValue] = [:]
    var stats: [StatKey: StatValue] = [:]
    var properties: [PropertyKey: PropertyValue] = [:]
    var refused: [ReportRefusal: Int] = [:]
    var reports = 0
    var calls: Int64 = 0
  }

  let state = Mutex(State())

  public init(limits: MonitorLimits = MonitorLimits()) { self.limits = limits }

  /// Merges a `reportMicMsg`; `peer` fills the reporter's own address where it left it empty.
  public func addStats(
    _ report: [StatMicMsgHead: StatMicMsgBody], fromClient: Bool, minute: Int64, peer: String
  ) {
    guard report.count <= limits.entriesPerReport else {
      state.withLock {
        $0.reports += 1
        $0.refused[.oversized, default: 0] += 1
      }
      return
    }
    var entries: [(StatKey, StatValue)] = []
    entries.reserveCapacity(report.count)
    var refused: [ReportRefusal: Int] = [:]
    for (h, b) in report {
      let names = [h.masterName, h.slaveName, h.interfaceName, h.masterIp, h.slaveIp]
      guard names.allSatisfy({ $0.utf8.count <= limits.nameBytes }) else {
        refused[.longName, default: 0] += 1
        continue
      }
      let value: StatValue
      do throws(RefusalError) {
        value = try StatValue(reported: b, limits: limits)
      } catch {
        refused[error.reason, default: 0] += 1
        continue
      }
      let set = h.slaveSetName.isEmpty ? "" : "\(h.slaveSetName).\(h.slaveSetArea).\(h.slaveSetID)"
      let key = StatKey(
        minute: minute, source: fromClient ? .client : .server, master: h.masterName, slave: h.slaveName,
        interface: h.interfaceName, masterIP: h.masterIp.isEmpty && fromClient ? peer : h.masterIp,
        slaveIP: h.slaveIp.isEmpty && !fromClient ? peer : h.slaveIp, slavePort: h.slavePort,
        returnValue: h.returnValue, slaveSet: set)
      entries.append((key, value))
    }
    state.withLock { s in
      s.reports += 1
      for (r, n) in refused { s.refused[r, default: 0] += n }
      for (key, value) in entries {
        if let i = s.stats.index(forKey: key) {
          s.stats.values[i].merge(value)
        } else if s.stats.count + s.properties.count < limits.keys {
          s.stats[key] = value
        } else {
          s.refused[.tooManyKeys, default: 0] += 1
          continue
        }
        s.calls += value.count + value.timeouts + value.exceptions
        let series = Series(source: key.source, caller: key.master, callee: key.slave, interface: key.interface)
        if let i = s.totals.index(forKey: series) {
          s.totals.values[i].merge(value)
        } else if s.totals.count < limits.keys {
          s.totals[series] = value
        }
      }
    }
  }

  /// Merges a `reportPropMsg`; `peer` fills an empty reporter address (TarsCpp sends "").
  public func addProperties(_ report: [StatPropMsgHead: StatPropMsgBody], minute: Int64, peer: String) {
    guard report.count <= limits.entriesPerReport else {
      state.withLock {
        $0.reports += 1
        $0.refused[.oversized, default: 0] += 1
      }
      return
    }
    var entries: [(PropertyKey, PropertyValue)] = []
    var refused: [ReportRefusal: Int] = [:]
    for (h, b) in report {
      guard [h.moduleName, h.ip, h.propertyName].allSatisfy({ $0.utf8.count <= limits.nameBytes }),
        b.vInfo.count <= 16
      else {
        refused[.longName, default: 0] += 1
        continue
      }
      for info in b.vInfo {
        do throws(RefusalError) {
          let (policy, value) = try PropertyValue.reported(info.policy, info.value)
          entries.append(
            (
              PropertyKey(
                minute: minute, server: h.moduleName, ip: h.ip.isEmpty ? peer : h.ip, property: h.propertyName,
                policy: policy), value
            ))
        } catch {
          refused[error.reason, default: 0] += 1
        }
      }
    }
    state.withLock { s in
      s.reports += 1
      for (r, n) in refused { s.refused[r, default: 0] += n }
      for (key, value) in entries {
        if let i = s.properties.index(forKey: key) {
          s.properties.values[i].merge(value)
        } else if s.stats.count + s.properties.count < limits.keys {
          s.properties[key] = value
        } else {
          s.refused[.tooManyKeys, default: 0] += 1
        }
      }
    }
  }

  /// Removes and returns every minute before `minute` (all of them with `Int64.max`).
  public func take(before minute: Int64) -> MinuteBatch {
    state.withLock { s in
      var batch = MinuteBatch()
      for (k, v) in s.stats where k.minute < minute { batch.stats.append((k, v)) }
      for (k, v) in s.properties where k.minute < minute { batch.properties.append((k, v)) }
      if batch.stats.count == s.stats.count {
        s.stats.removeAll(keepingCapacity: true)
      } else {
        for (k, _) in batch.stats { s.stats[k] = nil }
      }
      if batch.properties.count == s.properties.count {
        s.properties.removeAll(keepingCapacity: true)
      } else {
        for (k, _) in batch.properties { s.properties[k] = nil }
      }
      return batch
    }
  }

  /// The minutes not yet taken, for `/metrics` and queries of the current minute.
  public func peek() -> MinuteBatch {
    state.withLock { s in MinuteBatch(stats: s.stats.map { ($0, $1) }, properties: s.properties.map { ($0, $1) }) }
  }

  /// Every series' totals since the start (what `/metrics` shows: counters only grow).
  public var totals: [Series: StatValue] { state.withLock { $0.totals } }

  public struct Counters: Sendable, Equatable {
    public var reports: Int
    public var calls: Int64
    public var refused: [ReportRefusal: Int]
    public var keys: Int
  }

  public var counters: Counters {
    state.withLock {
      Counters(reports: $0.reports, calls: $0.calls, refused: $0.refused, keys: $0.stats.count + $0.properties.count)
    }
  }
}

/// Complete minutes on their way to the database. Its `id` makes a write idempotent: a write
/// whose answer was lost (a deadline passed while the database committed it) is retried, and
/// the store writes a batch it has already seen no second time.
public struct MinuteBatch: Sendable {
  public var id: String
  public var stats: [(StatKey, StatValue)] = []
  public var properties: [(PropertyKey, PropertyValue)] = []
  public var isEmpty: Bool { stats.isEmpty && properties.isEmpty }
  public var count: Int { stats.count + properties.count }
  public init() { id = MinuteBatch.newID() }
  public init(stats: [(StatKey, StatValue)], properties: [(PropertyKey, PropertyValue)]) {
    id = MinuteBatch.newID()
    self.stats = stats
    self.properties = properties
  }

  static func newID() -> String {
    (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max), radix: 16) }.joined(separator: "-")
  }
}
