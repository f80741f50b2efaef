import Foundation
import NIOPosix
import PostgresNIO
import Synchronization
import TarsMonitor
import TarsMonitorService
import TarsNIO
import TarsProtocol
import TarsTestSupport
import Testing

/// A clock the tests move by hand.
final class TestClock: Sendable {
  let seconds: Atomic<Int64>
  init(_ start: Int64) { seconds = Atomic(start) }
  var now: Int64 { seconds.load(ordering: .relaxed) }
  func set(_ s: Int64) { seconds.store(s, ordering: .relaxed) }
}

/// The two stores every storage test runs on: SQLite, and a real PostgreSQL from Debian's
/// packages (`TestPostgres`).
enum MonitorStoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case sqlite, postgres
  var testDescription: String { rawValue }

  /// A new store; `reusing` a place (a file, a database) opens what an earlier one wrote.
  func make(reusing place: String? = nil) throws -> (store: any MonitorStore, place: String) {
    switch self {
    case .sqlite:
      let path = place ?? NSTemporaryDirectory() + "monitor-\(UInt32.random(in: 0..<UInt32.max)).db"
      return (try SQLiteMonitorStore(path: path), path)
    case .postgres:
      let server = try TestPostgres.shared.get()
      let database = try place ?? server.database()
      return (PostgresMonitorStore(configuration: Self.configuration(server, database)), database)
    }
  }

  static func configuration(_ server: TestPostgres, _ database: String) -> PostgresClient.Configuration {
    PostgresClient.Configuration(
      host: "127.0.0.1", port: server.port, username: "tars", password: nil, database: database, tls: .disable)
  }
}

/// StatObj and PropertyObj on a real socket over a store.
struct MonitorHarness {
  let service: MonitorService
  let server: TarsNIOServer
  let clock: TestClock

  static let minute: Int64 = 1_796_000_400  // a whole minute

  init(store: any MonitorStore, options: MonitorService.Options = .init(), clock: TestClock = TestClock(minute + 7))
    async throws
  {
    try await store.migrate()
    self.clock = clock
    service = MonitorService(
      store: store, options: options, clock: { clock.now },
      log: { FileHandle.standardError.write(Data(("monitor-log: " + $0 + "\n").utf8)) })
    server = try await TarsNIOServer.start(
      endpoint: TarsEndpoint(host: "127.0.0.1", port: 0, timeout: 60_000),
      servants: ["tars.tarsstat.StatObj": service.stat, "tars.tarsproperty.PropertyObj": service.property],
      group: MultiThreadedEventLoopGroup.singleton)
  }

  /// Sends frames on one connection, as a reporter does, and waits until the service took them
  /// all (reports are ONEWAY: there is no reply to wait for).
  func send(_ frames: [[UInt8]]) async throws {
    let before = service.aggregator.counters.reports
    let socket = try RawSocket(port: server.port)
    for f in frames { socket.send(f) }
    let deadline = Date().addingTimeInterval(10)
    while service.aggregator.counters.reports < before + frames.count, Date() < deadline {
      try await Task.sleep(for: .milliseconds(10))
    }
    #expect(service.aggregator.counters.reports == before + frames.count, "every report arrived")
  }

  func stop() async {
    try? await server.close()
    await service.store.close()
  }

  static func capture(_ name: String) throws -> [UInt8] {
    let text = try String(contentsOf: Fixtures.url("vectors/captures/\(name).hex"), encoding: .utf8)
    return Fixtures.bytes(hex: text.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined())
  }

  static func frame<M: TarsMethod>(_ m: M.Type, servant: String, _ args: M.Args) -> [UInt8] {
    TarsFrame.encode(M.request(servant: servant, args, oneway: true, options: .init(timeoutMs: 5000)))
  }
}

@Suite("Stat and property reports over real sockets")
struct MonitorWireTests {
  @Test(arguments: MonitorStoreKind.allCases)
  func tarsCppsCapturedReportsAreStoredAsSent(_ kind: MonitorStoreKind) async throws {
    let h = try await MonitorHarness(store: try kind.make().store)
    defer { Task { await h.stop() } }
    try await h.send([
      try MonitorHarness.capture("stat_reportMicMsg_req"), try MonitorHarness.capture("property_reportPropMsg_req"),
    ])
    #expect(await h.service.flush(before: Int64.max))
    let m = MonitorHarness.minute
    let rows = try await h.service.store.stats(
      StatQuery(from: m, to: m + 60, filters: [.slave: "Test.HelloServer", .source: "server"], groupBy: [.interface]))
    let byInterface = Dictionary(uniqueKeysWithValues: rows.map { ($0.dimensions[.interface]!, $0.value) })
    let buckets: [Int32: Int64] = [5: 0, 10: 0, 50: 0, 100: 0, 200: 0, 500: 0, 1000: 0, 2000: 0, 3000: 0]
    func with(_ b: [Int32: Int64]) -> [Int32: Int64] { buckets.merging(b) { $1 } }
    #expect(
      byInterface == [
        "getPid": StatValue(
          count: 1, timeouts: 0, exceptions: 0, totalMs: 0, maxMs: 0, minMs: 0, intervals: with([5: 1])),
        "notify": StatValue(
          count: 5, timeouts: 0, exceptions: 0, totalMs: 1, maxMs: 1, minMs: 1, intervals: with([5: 5])),
        "testHello": StatValue(
          count: 2, timeouts: 0, exceptions: 0, totalMs: 1, maxMs: 1, minMs: 1, intervals: with([5: 2])),
      ])
    // The server's own view: master stat_from_server, its address from the connection.
    let views = try await h.service.store.stats(
      StatQuery(from: m, to: m + 60, groupBy: [.master, .masterIP, .slaveIP, .source]))
    #expect(
      views.map(\.dimensions) == [
        [.master: "stat_from_server", .masterIP: "127.0.0.1", .slaveIP: "127.0.0.1", .source: "server"]
      ])

    let props = try await h.service.store.properties(
      PropertyQuery(from: m, to: m + 60, filters: [.server: "Test.HelloServer"], groupBy: [.property, .ip]))
    func value(_ property: String, _ policy: PropertyKey.Policy) -> Double? {
      props.first { $0.dimensions[.property] == property && $0.policy == policy }?.value.value(policy)
    }
    let wait = "Test.HelloServer.HelloObjAdapter.queueWaitTime"
    #expect(value(wait, .avg) == 78.5 && value(wait, .min) == 71 && value(wait, .max) == 86 && value(wait, .count) == 2)
    let distr = props.first { $0.dimensions[.property] == wait && $0.policy == .distr }
    #expect(
      distr?.value.distrText
        == "5|0,10|0,50|0,100|2,200|0,500|0,1000|0,2000|0,5000|0,10000|0,20000|0,50000|0,100000|0,max|0")
    #expect(value("sendrspqueue", .avg) == 7.333333)
    #expect(value("Test.HelloServer.HelloObjAdapter.timeoutNum", .sum) == 0)
    #expect(props.allSatisfy { $0.dimensions[.ip] == "127.0.0.1" }, "TarsCpp sends no ip: the connection's")
    #expect(props.count == 15, "seven properties: five with one policy, two with five")
  }

  /// Reports built from the IDL with every field set, as TarsCpp writes them: the caller's and
  /// the callee's views, two reports of one key in one minute, every property policy.
  @Test(arguments: MonitorStoreKind.allCases)
  func everyFieldBothViewsAndEveryPolicyAddUp(_ kind: MonitorStoreKind) async throws {
    let h = try await MonitorHarness(store: try kind.make().store)
    defer { Task { await h.stop() } }
    var head = StatMicMsgHead()
    head.masterName = "Test.HelloClient"
    head.slaveName = "Test.HelloServer"
    head.interfaceName = "testHello"
    head.masterIp = "10.0.0.1"
    head.slaveIp = "10.0.0.2"
    head.slavePort = 10015
    head.returnValue = 0
    head.slaveSetName = "sz"
    head.slaveSetArea = "a"
    head.slaveSetID = "1"
    head.tarsVersion = "3.0.22"
    func body(_ count: Int32, _ timeouts: Int32, _ exceptions: Int32, total: Int64, max: Int32, min: Int32)
      -> StatMicMsgBody
    {
      var b = StatMicMsgBody()
      b.count = count
      b.timeoutCount = timeouts
      b.execCount = exceptions
      b.totalRspTime = total
      b.maxRspTime = max
      b.minRspTime = min
      b.intervalCount = [5: count / 2, 10: count - count / 2, 50: 0, 100: 0, 200: 0, 500: 0, 1000: 0, 2000: 0, 3000: 0]
      return b
    }
    var failed = head
    failed.returnValue = -7
    let stat = "tars.tarsstat.StatObj"
    try await h.send([
      MonitorHarness.frame(
        StatF.ReportMicMsg.self, servant: stat,
        .init(
          msg: [head: body(10, 1, 2, total: 40, max: 9, min: 2), failed: body(0, 0, 3, total: 0, max: 0, min: 0)],
          bFromClient: true)),
      MonitorHarness.frame(
        StatF.ReportMicMsg.self, servant: stat,
        .init(msg: [head: body(6, 0, 0, total: 30, max: 12, min: 1)], bFromClient: true)),
      MonitorHarness.frame(
        StatF.ReportMicMsg.self, servant: stat,
        .init(msg: [head: body(16, 1, 2, total: 70, max: 12, min: 1)], bFromClient: false)),
    ])

    var p = StatPropMsgHead()
    p.moduleName = "Test.HelloServer"
    p.ip = "10.0.0.2"
    p.propertyName = "latency"
    p.setName = "sz"
    p.setArea = "a"
    p.setID = "1"
    p.sContainer = "test-helloserver-0"
    p.iPropertyVer = 2
    func info(_ pairs: [(String, String)]) -> StatPropMsgBody {
      var b = StatPropMsgBody()
      b.vInfo = pairs.map {
        var i = StatPropInfo(); i.policy = $0.0; i.value = $0.1; return i
      }
      return b
    }
    let property = "tars.tarsproperty.PropertyObj"
    try await h.send([
      MonitorHarness.frame(
        PropertyF.ReportPropMsg.self, servant: property,
        .init(statmsg: [
          p: info([
            ("Sum", "10"), ("Avg", "4"), ("Max", "9"), ("Min", "2"), ("Count", "3"), ("Distr", "5|1,10|2,max|0"),
          ])
        ])),
      MonitorHarness.frame(
        PropertyF.ReportPropMsg.self, servant: property,
        .init(statmsg: [
          p: info([
            ("Sum", "5.5"), ("Avg", "6"), ("Max", "7"), ("Min", "1"), ("Count", "2"), ("Distr", "5|0,10|1,max|4"),
          ])
        ])),
    ])
    #expect(await h.service.flush(before: Int64.max))
    let m = MonitorHarness.minute
    let rows = try await h.service.store.stats(
      StatQuery(from: m, to: m + 60, groupBy: [.source, .returnValue, .master, .slaveIP, .slavePort]))
    let client = rows.first { $0.dimensions[.source] == "client" && $0.dimensions[.returnValue] == "0" }
    #expect(
      client?.value
        == StatValue(
          count: 16, timeouts: 1, exceptions: 2, totalMs: 70, maxMs: 12, minMs: 1,
          intervals: [5: 8, 10: 8, 50: 0, 100: 0, 200: 0, 500: 0, 1000: 0, 2000: 0, 3000: 0]))
    #expect(client?.dimensions[.master] == "Test.HelloClient" && client?.dimensions[.slavePort] == "10015")
    let failure = rows.first { $0.dimensions[.returnValue] == "-7" }
    #expect(failure?.value.exceptions == 3 && failure?.value.count == 0 && failure?.dimensions[.source] == "client")
    let server = rows.first { $0.dimensions[.source] == "server" }
    #expect(server?.value.count == 16 && server?.value.maxMs == 12, "the callee's own view is kept apart")
    // Across both views and return codes: what a chart of the interface adds up.
    let all = try await h.service.store.stats(
      StatQuery(from: m, to: m + 60, filters: [.interface: "testHello", .source: "client"]))
    #expect(all.first?.value.count == 16 && all.first?.value.exceptions == 5 && all.first?.value.timeouts == 1)

    let props = try await h.service.store.properties(
      PropertyQuery(from: m, to: m + 60, filters: [.property: "latency"]))
    let v = Dictionary(uniqueKeysWithValues: props.map { ($0.policy, $0.value) })
    #expect(v[.sum]?.value(.sum) == 15.5)
    #expect(v[.avg]?.value(.avg) == 5)
    #expect(v[.max]?.value(.max) == 9)
    #expect(v[.min]?.value(.min) == 1)
    #expect(v[.count]?.value(.count) == 5)
    #expect(v[.distr]?.distrText == "5|1,10|3,max|4")
  }
}
