import Foundation
import Synchronization
import TarsMonitor
import TarsProtocol

/// `tars.tarsstat.StatObj` and `tars.tarsproperty.PropertyObj` over one aggregator and one
/// store. Reports are summed in memory per minute; once a minute is over (and a grace for
/// late reports), `run()` writes it in one transaction. At most the current minute and the
/// grace are in memory: a restart loses them, never a minute already written. When the
/// database is away, complete minutes wait in memory, up to `maxPendingRows`; beyond that the
/// oldest are dropped and counted (`droppedRows`), and the rest are written when it returns.
public final class MonitorService: Sendable {
  public struct Options: Sendable {
    /// Seconds after a minute ends before it is written: reports sent at :59 still count.
    public var graceSeconds: Int64 = 5
    /// Minutes older than this many days are deleted (checked hourly).
    public var retentionDays: Int64 = 31
    /// Rows of complete minutes kept while the database is away.
    public var maxPendingRows = 1_000_000
    /// How long one write may take before it counts as failed (the rows wait for the next).
    public var writeTimeout: Duration = .seconds(20)
    public var limits = MonitorLimits()
    public init() {}
  }

  public let aggregator: Aggregator
  public let store: any MonitorStore
  public let options: Options
  let clock: @Sendable () -> Int64
  let log: @Sendable (String) -> Void
  let pending = Mutex(Pending())

  struct Pending {
    var batches: [MinuteBatch] = []
    var rows = 0
    var dropped = 0
    var written = 0
    var lastError: String?
    var lastPrune: Int64 = 0
  }

  public init(
    store: any MonitorStore, options: Options = Options(),
    clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
    log: @escaping @Sendable (String) -> Void = { _ in }
  ) {
    self.store = store
    self.options = options
    self.clock = clock
    self.log = log
    aggregator = Aggregator(limits: options.limits)
  }

  /// The minute a report arriving now counts in.
  var minute: Int64 { clock() / 60 * 60 }

  public var stat: StatObj { StatObj(service: self) }
  public var property: PropertyObj { PropertyObj(service: self) }

  /// Rows dropped because the database was away too long.
  public var droppedRows: Int { pending.withLock { $0.dropped } }
  public var pendingRows: Int { pending.withLock { $0.rows } }
  public var writtenRows: Int { pending.withLock { $0.written } }

  /// Takes the minutes before `minute` and writes them with whatever waited; true when the
  /// store took everything.
  @discardableResult
  public func flush(before minute: Int64) async -> Bool {
    let batch = aggregator.take(before: minute)
    let waiting: [MinuteBatch] = pending.withLock { p in
      if !batch.isEmpty {
        p.batches.append(batch)
        p.rows += batch.count
      }
      // Over the bound: the oldest go first.
      while p.rows > options.maxPendingRows, !p.batches.isEmpty {
        let first = p.batches.removeFirst()
        p.rows -= first.count
        p.dropped += first.count
      }
      return p.batches
    }
    var done = 0
    for b in waiting {
      do {
        try await withDeadline(options.writeTimeout) { [store] in try await store.write(b) }
        done += 1
      } catch {
        let message = String(reflecting: error)
        let changed = pending.withLock { p in
          defer { p.lastError = message }
          return p.lastError != message
        }
        if changed { log("monitor: cannot write \(b.count) rows, keeping them (\(pendingRows) waiting): \(message)") }
        break
      }
    }
    let recovered: Bool = pending.withLock { p in
      let rows = p.batches.prefix(done).reduce(0) { $0 + $1.count }
      p.batches.removeFirst(done)
      p.rows -= rows
      p.written += rows
      let recovered = done > 0 && p.batches.isEmpty && p.lastError != nil
      if p.batches.isEmpty { p.lastError = nil }
      return recovered
    }
    if recovered { log("monitor: the database is back; everything waiting is written") }
    return pending.withLock { $0.batches.isEmpty }
  }

  /// Writes each minute once it is over (plus the grace), and deletes what is past retention,
  /// until cancelled; then writes what it has, the current minute included.
  public func run() async {
    while !Task.isCancelled {
      let now = clock()
      let next = (now / 60 + 1) * 60 + options.graceSeconds
      try? await Task.sleep(for: .seconds(Double(next - now)))
      if Task.isCancelled { break }
      await flush(before: (clock() - options.graceSeconds) / 60 * 60)
      await pruneIfDue()
    }
    await flush(before: Int64.max)
  }

  func pruneIfDue() async {
    let now = clock()
    let due = pending.withLock { p in
      guard now - p.lastPrune >= 3600 else { return false }
      p.lastPrune = now
      return true
    }
    guard due else { return }
    do {
      let n = try await store.prune(before: now - options.retentionDays * 86_400)
      if n > 0 { log("monitor: deleted \(n) rows older than \(options.retentionDays) days") }
    } catch {
      log("monitor: cannot delete old rows: \(error)")
    }
  }
}

/// `tars.tarsstat.StatObj`.
public final class StatObj: StatFServant, Sendable {
  let service: MonitorService
  init(service: MonitorService) { self.service = service }

  public func reportMicMsg(msg: [StatMicMsgHead: StatMicMsgBody], bFromClient: Bool, current: TarsCurrent) throws
    -> Int32
  {
    service.aggregator.addStats(msg, fromClient: bFromClient, minute: service.minute, peer: current.peer?.host ?? "")
    return 0
  }

  /// Call-chain samples: accepted, so reporters see no error, and not kept (nothing reads them).
  public func reportSampleMsg(msg: [StatSampleMsg], current: TarsCurrent) throws -> Int32 { 0 }
}

/// `tars.tarsproperty.PropertyObj`.
public final class PropertyObj: PropertyFServant, Sendable {
  let service: MonitorService
  init(service: MonitorService) { self.service = service }

  public func reportPropMsg(statmsg: [StatPropMsgHead: StatPropMsgBody], current: TarsCurrent) throws -> Int32 {
    service.aggregator.addProperties(statmsg, minute: service.minute, peer: current.peer?.host ?? "")
    return 0
  }
}

struct DeadlineExceeded: Error, CustomStringConvertible {
  var after: Duration
  var description: String { "no answer within \(after)" }
}

/// `body`, cancelled and failed with `DeadlineExceeded` when it takes longer than `limit`.
func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
  try await withThrowingTaskGroup(of: T?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await Task.sleep(for: limit)
      return nil
    }
    defer { group.cancelAll() }
    guard let first = try await group.next(), let value = first else { throw DeadlineExceeded(after: limit) }
    return value
  }
}
