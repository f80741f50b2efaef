import Foundation
import NIOPosix
import PostgresNIO
import TarsMonitor
import TarsMonitorService
import TarsNIO
import TarsProtocol
import TarsRPC

/// The monitor's figures: report RPCs and the calls they carry aggregated per second, beside
/// tars_ping on the same server (the peer: an empty call); the time to write a minute of
/// 10,000 distinct keys to SQLite and to PostgreSQL (`--postgres URL`); memory at that size.
func monitor(_ arguments: [String]) async throws {
  var postgres: String?
  if let i = arguments.firstIndex(of: "--postgres"), i + 1 < arguments.count { postgres = arguments[i + 1] }

  // Reports as real clients batch them: 10 or 100 interfaces each, 100 calls per interface.
  for interfaces in [10, 100] {
    try await aggregation(interfaces: interfaces)
  }

  // A minute of 10,000 distinct keys, written in one transaction.
  func minute() -> Aggregator {
    let a = Aggregator()
    for r in 0..<100 {
      var msg: [StatMicMsgHead: StatMicMsgBody] = [:]
      for i in 0..<100 {
        var h = StatMicMsgHead()
        h.masterName = "Bench.Client\(r)"
        h.slaveName = "Bench.Server\(i % 10)"
        h.interfaceName = "call\(i)"
        h.masterIp = "10.0.0.\(r)"
        var b = StatMicMsgBody()
        b.count = 10
        b.totalRspTime = 30
        b.maxRspTime = 5
        b.minRspTime = 1
        b.intervalCount = [5: 10, 10: 0, 50: 0, 100: 0, 200: 0, 500: 0, 1000: 0, 2000: 0, 3000: 0]
        msg[h] = b
      }
      a.addStats(msg, fromClient: true, minute: 1_796_000_400, peer: "")
    }
    return a
  }
  let before = residentKiB()
  let full = minute()
  let after = residentKiB()
  print(
    "10,000 keys in memory: \(full.counters.keys) keys, resident \(after - before) KiB more (\((after - before) * 1024 / max(1, full.counters.keys)) bytes a key)"
  )
  var stores: [(String, any MonitorStore)] = []
  let file = NSTemporaryDirectory() + "tars-bench-monitor-\(getpid()).sqlite"
  stores.append(("SQLite (file, WAL)", try SQLiteMonitorStore(path: file)))
  if let postgres {
    stores.append(
      ("PostgreSQL", PostgresMonitorStore(configuration: try PostgresMonitorStore.configuration(url: postgres))))
  }
  for (name, store) in stores {
    try await store.migrate()
    var times: [Double] = []
    for _ in 0..<5 {
      let batch = minute().take(before: Int64.max)
      let start = DispatchTime.now().uptimeNanoseconds
      try await store.write(batch)
      times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    print("flush of a minute of 10,000 keys to \(name): \(String(format: "%.1f", times.sorted()[2])) ms (median of 5)")
    await store.close()
  }
  try? FileManager.default.removeItem(atPath: file)
}

func residentKiB() -> Int {
  let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
  let line = text.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
  return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

/// Report RPCs of `interfaces` entries each aggregated per second, beside tars_ping.
func aggregation(interfaces: Int) async throws {
  let callsPerInterface: Int32 = 100
  func report(_ n: Int) -> RequestPacket {
    var msg: [StatMicMsgHead: StatMicMsgBody] = [:]
    for i in 0..<interfaces {
      var h = StatMicMsgHead()
      h.masterName = "Bench.Client\(n % 8)"
      h.slaveName = "Bench.Server"
      h.interfaceName = "call\(i)"
      h.masterIp = "10.0.0.\(n % 8)"
      h.slaveIp = "10.0.1.1"
      h.slavePort = 10000
      var b = StatMicMsgBody()
      b.count = callsPerInterface
      b.totalRspTime = 300
      b.maxRspTime = 9
      b.minRspTime = 1
      b.intervalCount = [5: 90, 10: 10, 50: 0, 100: 0, 200: 0, 500: 0, 1000: 0, 2000: 0, 3000: 0]
      msg[h] = b
    }
    return StatF.ReportMicMsg.request(servant: "tars.tarsstat.StatObj", .init(msg: msg, bFromClient: true))
  }
  let requests = (0..<8).map(report)
  let service = MonitorService(store: try SQLiteMonitorStore(path: nil))
  let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
  let server = try await TarsNIOServer.start(
    endpoint: TarsEndpoint(host: "127.0.0.1", port: 0, timeout: 0),
    servants: ["tars.tarsstat.StatObj": service.stat, "Bench.PingServer.PingObj": PingServant()], group: group)
  let ping = RequestPacket(
    iVersion: 1, cPacketType: 0, iMessageType: 0, iRequestId: 0, sServantName: "Bench.PingServer.PingObj",
    sFuncName: "tars_ping", sBuffer: [], iTimeout: 3000, context: [:], status: [:])
  var reportRates: [Double] = []
  var pingRates: [Double] = []
  for _ in 0..<3 {
    reportRates.append(callLoad(port: server.port, requests: requests, connections: 16, seconds: 2).0)
    pingRates.append(callLoad(port: server.port, requests: [ping], connections: 16, seconds: 2).0)
  }
  let reports = reportRates.sorted()[1]
  let pings = pingRates.sorted()[1]
  print(
    String(
      format:
        "reportMicMsg (%d interfaces each), 16 connections: %9.0f reports/s = %.2f M calls/s represented; tars_ping %9.0f/s; reports/ping %.2f",
      interfaces, reports, reports * Double(interfaces) * Double(callsPerInterface) / 1e6, pings, reports / pings))
  try await server.close()
  try await group.shutdownGracefully()

}
