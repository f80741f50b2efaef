import Foundation
import PostgresNIO
import Synchronization
import TarsMonitor
import TarsMonitorService
import TarsProtocol
import TarsTestSupport
import Testing

/// A store that can be taken away: writes fail while it is down, as a database that went away.
final class FlakyStore: MonitorStore {
  let inner: SQLiteMonitorStore
  let down = Atomic<Bool>(false)
  init(_ inner: SQLiteMonitorStore) { self.inner = inner }

  struct Away: Error, CustomStringConvertible { var description: String { "connection refused" } }

  func migrate() async throws { try await inner.migrate() }
  func write(_ batch: MinuteBatch) async throws {
    if down.load(ordering: .relaxed) { throw Away() }
    try await inner.write(batch)
  }
  func stats(_ q: StatQuery) async throws -> [StatRow] { try await inner.stats(q) }
  func properties(_ q: PropertyQuery) async throws -> [PropertyRow] { try await inner.properties(q) }
  func prune(before minute: Int64) async throws -> Int { try await inner.prune(before: minute) }
  func close() async { await inner.close() }
}

@Suite("Bad reports and a database that goes away")
struct MonitorFailureTests {
  static func head(_ interface: String, master: String = "Test.HelloClient") -> StatMicMsgHead {
    var h = StatMicMsgHead()
    h.masterName = master
    h.slaveName = "Test.HelloServer"
    h.interfaceName = interface
    h.masterIp = "10.0.0.1"
    h.slaveIp = "10.0.0.2"
    h.slavePort = 10015
    return h
  }

  static func body(_ count: Int32, total: Int64 = 10, max: Int32 = 5, min: Int32 = 1) -> StatMicMsgBody {
    var b = StatMicMsgBody()
    b.count = count
    b.totalRspTime = total
    b.maxRspTime = max
    b.minRspTime = min
    b.intervalCount = [5: count]
    return b
  }

  static func report(_ msg: [StatMicMsgHead: StatMicMsgBody]) -> [UInt8] {
    MonitorHarness.frame(StatF.ReportMicMsg.self, servant: "tars.tarsstat.StatObj", .init(msg: msg, bFromClient: true))
  }

  @Test func badEntriesAreRefusedAndCountedWhileTheRestCounts() async throws {
    var limits = MonitorLimits()
    limits.entriesPerReport = 100
    var options = MonitorService.Options()
    options.limits = limits
    let h = try await MonitorHarness(store: try SQLiteMonitorStore(path: nil), options: options)
    defer { Task { await h.stop() } }
    // One report over the entry limit: dropped whole.
    var huge: [StatMicMsgHead: StatMicMsgBody] = [:]
    for i in 0..<101 { huge[Self.head("f\(i)")] = Self.body(1) }
    // One report with good and bad entries side by side.
    var negative = Self.body(-3)
    negative.intervalCount = [5: 1]
    var slow = Self.body(1, total: 10, max: Int32.max, min: 1)
    slow.intervalCount = [:]
    var badBucket = Self.body(1)
    badBucket.intervalCount = [-5: 1]
    let long = String(repeating: "x", count: 600)
    let mixed: [StatMicMsgHead: StatMicMsgBody] = [
      Self.head("good"): Self.body(4), Self.head("negative"): negative, Self.head("absurd"): slow,
      Self.head("bucket"): badBucket, Self.head(long): Self.body(1),
    ]
    var p = StatPropMsgHead()
    p.moduleName = "Test.HelloServer"
    p.propertyName = "queue"
    func info(_ policy: String, _ value: String) -> StatPropInfo {
      var i = StatPropInfo()
      i.policy = policy
      i.value = value
      return i
    }
    var props = StatPropMsgBody()
    props.vInfo = [
      info("Median", "3"), info("Sum", "nan"), info("Avg", "inf"), info("Distr", "5|x"), info("Count", "-2"),
      info("Max", "1e300"), info("Sum", "12"),
    ]
    try await h.send([
      Self.report(huge), Self.report(mixed),
      MonitorHarness.frame(
        PropertyF.ReportPropMsg.self, servant: "tars.tarsproperty.PropertyObj", .init(statmsg: [p: props])),
    ])
    let c = h.service.aggregator.counters
    #expect(c.refused[.oversized] == 1)
    #expect(c.refused[.absurd] == 5, "negative count, a day-long time, a negative bucket, a negative Count, 1e300")
    #expect(c.refused[.longName] == 1)
    #expect(c.refused[.unknownPolicy] == 4, "Median, nan, inf, a Distr that is no distribution")
    #expect(await h.service.flush(before: Int64.max))
    let m = MonitorHarness.minute
    let rows = try await h.service.store.stats(StatQuery(from: m, to: m + 60, groupBy: [.interface]))
    #expect(rows.map { $0.dimensions[.interface]! } == ["good"] && rows.first?.value.count == 4)
    let stored = try await h.service.store.properties(PropertyQuery(from: m, to: m + 60))
    #expect(stored.map(\.policy) == [.sum] && stored.first?.value.value(.sum) == 12)
  }

  @Test func pastTheKeyLimitNewKeysAreDroppedAndOldOnesStillCount() async throws {
    var options = MonitorService.Options()
    options.limits.keys = 2
    let h = try await MonitorHarness(store: try SQLiteMonitorStore(path: nil), options: options)
    defer { Task { await h.stop() } }
    try await h.send([
      Self.report([Self.head("a"): Self.body(1), Self.head("b"): Self.body(1)]),
      Self.report([Self.head("a"): Self.body(2), Self.head("c"): Self.body(1)]),
    ])
    #expect(h.service.aggregator.counters.refused[.tooManyKeys] == 1)
    #expect(await h.service.flush(before: Int64.max))
    let m = MonitorHarness.minute
    let rows = try await h.service.store.stats(StatQuery(from: m, to: m + 60, groupBy: [.interface]))
    #expect(rows.map { "\($0.dimensions[.interface]!)=\($0.value.count)" } == ["a=3", "b=1"])
  }

  @Test func minutesWaitWhileTheDatabaseIsAwayUpToTheBound() async throws {
    var options = MonitorService.Options()
    options.maxPendingRows = 3
    let store = FlakyStore(try SQLiteMonitorStore(path: nil))
    let clock = TestClock(MonitorHarness.minute + 7)
    let h = try await MonitorHarness(store: store, options: options, clock: clock)
    defer { Task { await h.stop() } }
    store.down.store(true, ordering: .relaxed)
    // Three minutes of two keys each while the database is away: six rows, three kept.
    for i in 0..<3 {
      clock.set(MonitorHarness.minute + Int64(i) * 60 + 7)
      try await h.send([Self.report([Self.head("m\(i)a"): Self.body(1), Self.head("m\(i)b"): Self.body(1)])])
      #expect(await h.service.flush(before: MonitorHarness.minute + Int64(i + 1) * 60) == false)
    }
    #expect(h.service.pendingRows == 2 && h.service.droppedRows == 4, "the oldest minutes go first")
    store.down.store(false, ordering: .relaxed)
    #expect(await h.service.flush(before: MonitorHarness.minute + 180))
    #expect(h.service.pendingRows == 0)
    let rows = try await store.stats(
      StatQuery(from: MonitorHarness.minute, to: MonitorHarness.minute + 180, groupBy: [.interface]))
    #expect(rows.map { $0.dimensions[.interface]! } == ["m2a", "m2b"])
  }

  @Test(arguments: MonitorStoreKind.allCases)
  func aRestartLosesNoMinuteThatWasWritten(_ kind: MonitorStoreKind) async throws {
    let clock = TestClock(MonitorHarness.minute + 7)
    let (store, place) = try kind.make()
    let first = try await MonitorHarness(store: store, clock: clock)
    try await first.send([Self.report([Self.head("written"): Self.body(5)])])
    clock.set(MonitorHarness.minute + 60 + 7)
    #expect(await first.service.flush(before: MonitorHarness.minute + 60))
    // The current minute is only in memory: a crash (no final flush) loses it.
    try await first.send([Self.report([Self.head("current"): Self.body(2)])])
    await first.stop()

    let second = try await MonitorHarness(store: try kind.make(reusing: place).store, clock: clock)
    defer { Task { await second.stop() } }
    try await second.send([Self.report([Self.head("written"): Self.body(1)])])
    #expect(await second.service.flush(before: Int64.max))
    let m = MonitorHarness.minute
    let rows = try await second.service.store.stats(
      StatQuery(from: m, to: m + 120, groupBy: [.interface], bucketSeconds: 60))
    #expect(
      rows.map { "\($0.time!)/\($0.dimensions[.interface]!)=\($0.value.count)" } == [
        "\(m)/written=5", "\(m + 60)/written=1",
      ])
  }

  /// The real thing: PostgreSQL stopped while minutes are due, then started again.
  @Test func minutesWrittenWhenPostgreSQLComesBack() async throws {
    let server = try TestPostgres.own()
    let database = try server.database()
    let clock = TestClock(MonitorHarness.minute + 7)
    let store = PostgresMonitorStore(configuration: MonitorStoreKind.configuration(server, database))
    var options = MonitorService.Options()
    options.writeTimeout = .seconds(2)
    let h = try await MonitorHarness(store: store, options: options, clock: clock)
    defer {
      Task { await h.stop() }
      try? server.stop()
    }
    try await h.send([Self.report([Self.head("kept"): Self.body(3)])])
    try server.stop()
    clock.set(MonitorHarness.minute + 67)
    #expect(await h.service.flush(before: MonitorHarness.minute + 60) == false)
    #expect(h.service.pendingRows == 1)
    try server.start()
    // The pool reconnects; the waiting minute goes with the next flush.
    var written = false
    for _ in 0..<100 where !written {
      written = await h.service.flush(before: MonitorHarness.minute + 60)
      if !written { try await Task.sleep(for: .milliseconds(200)) }
    }
    #expect(written && h.service.pendingRows == 0)
    let rows = try await store.stats(
      StatQuery(from: MonitorHarness.minute, to: MonitorHarness.minute + 60, groupBy: [.interface]))
    #expect(rows.map { "\($0.dimensions[.interface]!)=\($0.value.count)" } == ["kept=3"])
  }

  /// A write whose answer was lost is retried; the store takes the same batch only once.
  @Test(arguments: MonitorStoreKind.allCases)
  func aBatchWrittenTwiceCountsOnce(_ kind: MonitorStoreKind) async throws {
    let store = try kind.make().store
    try await store.migrate()
    defer { Task { await store.close() } }
    let m = MonitorHarness.minute
    let batch = MinuteBatch(
      stats: [
        (
          StatKey(
            minute: m, source: .client, master: "a", slave: "Test.HelloServer", interface: "x", masterIP: "",
            slaveIP: "", slavePort: 0, returnValue: 0),
          StatValue(count: 2, timeouts: 0, exceptions: 0, totalMs: 2, maxMs: 1, minMs: 1, intervals: [5: 2])
        )
      ], properties: [])
    try await store.write(batch)
    try await store.write(batch)
    try await store.write(MinuteBatch(stats: batch.stats, properties: []))
    let rows = try await store.stats(StatQuery(from: m, to: m + 60))
    #expect(rows.first?.value.count == 4, "the same batch once, another batch with the same rows again")
  }
}
