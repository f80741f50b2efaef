import Foundation
import TarsApplication
import TarsLogService
import TarsMonitor
import TarsMonitorService
import TarsProtocol
import TarsTestSupport
import Testing

/// Our runtime reports properties and remote logs as TarsCpp does, to the real services.
@Suite("The Swift runtime's properties and remote logs", .serialized)
struct RuntimeReportTests {
  @Test func propertiesArriveWithEveryPolicyAsTarsCppComputesThem() async throws {
    let h = try await MonitorHarness(
      store: try MonitorStoreKind.sqlite.make().store, clock: TestClock(Int64(Date().timeIntervalSince1970)))
    defer { Task { await h.stop() } }
    let communicator = try TarsCommunicator(locator: nil)
    try communicator.reportProperties(
      to: "tars.tarsproperty.PropertyObj@tcp -h 127.0.0.1 -p \(h.server.port)", module: "Test.HelloServer")
    let bytes = communicator.property("bytes", [.sum, .count, .avg, .max, .min, .distr([512, 8, 64, 8])])
    for v: Int32 in [0, 5, 10, 100, 1000] { bytes.report(v) }
    let idle = communicator.property("idle", [.sum, .max, .min])
    communicator.flushStats()
    let got = Dictionary(
      h.service.aggregator.peek().properties.map { ("\($0.0.property) \($0.0.policy.rawValue)", $0.1) },
      uniquingKeysWith: { (a: PropertyValue, _: PropertyValue) in a })
    #expect(got["bytes Sum"]?.sum == 1115)
    #expect(got["bytes Count"]?.sum == 5)
    #expect(got["bytes Avg"]?.sum == 223)
    #expect(got["bytes Max"]?.max == 1000)
    // TarsCpp's Min is the smallest value other than 0; a value counts under the first bound above it.
    #expect(got["bytes Min"]?.min == 5)
    #expect(got["bytes Distr"]?.distr == ["8": 2, "64": 1, "512": 1, "max": 1])
    // A property with no values: Sum 0 is sent, Max and Min of nothing are not.
    #expect(got["idle Sum"]?.sum == 0 && got["idle Max"] == nil && got["idle Min"] == nil)
    #expect(h.service.aggregator.peek().properties.allSatisfy { $0.0.server == "Test.HelloServer" })
    _ = idle
    // The next interval starts again.
    bytes.report(7)
    communicator.flushStats()
    let sums = h.service.aggregator.peek().properties.filter { $0.0.property == "bytes" && $0.0.policy == .sum }
    #expect(sums.first?.1.sum == 1122 && sums.first?.1.reports == 2, "\(sums)")
  }

  @Test func remoteLogLinesArriveWithTheirTimeInTheDayFile() async throws {
    let h = try await LogHarness()
    defer { Task { await h.stop() } }
    let communicator = try TarsCommunicator(locator: nil)
    #expect(communicator.remoteLog("access") == nil, "no LogObj configured: no remote log")
    try communicator.sendLogs(
      to: "tars.tarslog.LogObj@tcp -h 127.0.0.1 -p \(h.server.port)", app: "Test", server: "HelloServer")
    let access = try #require(communicator.remoteLog("access"))
    for i in 0..<250 { access.write("call \(i)") }
    communicator.remoteLog()?.write("main")
    communicator.flushStats()
    let day = LogHarness.noonDay
    let text = try #require(h.read("Test/HelloServer/Test.HelloServer_access_\(day).log"))
    let lines = text.split(separator: "\n")
    #expect(lines.count == 250 && lines.last?.hasSuffix("|call 249") == true, "\(lines.suffix(2))")
    // node|YYYY-MM-DD HH:MM:SS|line, the node being the sender's address.
    let first = lines[0].split(separator: "|")
    #expect(first.count == 3 && first[0] == "127.0.0.1" && first[1].count == 19 && first[2] == "call 0", "\(first)")
    #expect(h.read("Test/HelloServer/Test.HelloServer_\(day).log")?.hasSuffix("|main\n") == true)
    #expect(access.dropped == 0)
  }

  /// LogObj away: lines wait (the batch that failed first again) and are sent when it is back;
  /// at exit what it cannot take is dropped and counted, never waited for without end.
  @Test func linesWaitWhileLogObjIsAwayAndAreSentWhenItIsBack() async throws {
    let port = freePort()
    let communicator = try TarsCommunicator(locator: nil)
    try communicator.sendLogs(
      to: "tars.tarslog.LogObj@tcp -h 127.0.0.1 -p \(port) -t 1000", app: "Test", server: "Away")
    let log = try #require(communicator.remoteLog("x"))
    for i in 0..<3 { log.write("line \(i)") }
    // The once-a-second send fails (nothing listens) and keeps the lines.
    communicator.loop.run(until: { log.failures > 0 }, timeoutMs: 5000)
    #expect(log.failures > 0 && log.dropped == 0)
    let h = try await LogHarness(port: port)
    defer { Task { await h.stop() } }
    communicator.loop.run(
      until: { h.read("Test/Away/Test.Away_x_\(LogHarness.noonDay).log") != nil }, timeoutMs: 10_000)
    let text = h.read("Test/Away/Test.Away_x_\(LogHarness.noonDay).log") ?? ""
    #expect(
      text.split(separator: "\n").map { $0.split(separator: "|").last ?? "" } == ["line 0", "line 1", "line 2"],
      "\(text)")
    // At exit with LogObj still away, the line is dropped and counted.
    let exiting = try TarsCommunicator(locator: nil)
    try exiting.sendLogs(
      to: "tars.tarslog.LogObj@tcp -h 127.0.0.1 -p \(freePort()) -t 1000", app: "Test", server: "Away")
    let last = try #require(exiting.remoteLog("x"))
    last.write("after")
    exiting.flushStats()
    #expect(last.dropped == 1)
  }
}
