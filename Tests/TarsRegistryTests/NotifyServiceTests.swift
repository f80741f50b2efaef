import Foundation
import NIOPosix
import TarsFramework
import TarsNIO
import TarsNotifyService
import TarsProtocol
import TarsTestSupport
import Testing

@Suite("NotifyObj")
struct NotifyServiceTests {
  @Test func takesEveryReportKindKeepsABoundedHistoryAndPagesIt() async throws {
    let service = NotifyService(capacity: 30)
    let server = try await TarsNIOServer.start(
      endpoint: TarsEndpoint(host: "127.0.0.1", port: 0, timeout: 60000),
      servants: ["tars.tarsnotify.NotifyObj": service], group: MultiThreadedEventLoopGroup.singleton)
    defer { Task { try? await server.close() } }
    let socket = try RawSocket(port: server.port)
    // What TarsCpp servers send now: reportNotifyInfo, ONEWAY (no reply).
    var info = ReportInfo()
    info.eType = .REPORT
    info.sApp = "Test"
    info.sServer = "HelloServer"
    info.sMessage = "restart"
    info.sNodeName = "test-helloserver-0"
    var oneway = Notify.ReportNotifyInfo.request(servant: "tars.tarsnotify.NotifyObj", .init(info: info))
    oneway.cPacketType = 1
    socket.send(oneway)
    // The legacy calls, as tarsnode and older servers send them.
    socket.send(
      Notify.NotifyServer.request(
        servant: "tars.tarsnotify.NotifyObj",
        .init(sServerName: "Test.HelloServer", level: .NOTIFYERROR, sMessage: "[alarm] server exit with signal 9")))
    #expect(socket.readResponse()?.iRet == 0)
    socket.send(
      Notify.ReportServer.request(
        servant: "tars.tarsnotify.NotifyObj", .init(sServerName: "Test.Other", sThreadId: "1", sMessage: "hello")))
    #expect(socket.readResponse()?.iRet == 0)
    let recent = service.recent(server: "Test.HelloServer")
    #expect(recent.map(\.message) == ["[alarm] server exit with signal 9", "restart"])
    #expect(recent.last?.source == "test-helloserver-0" && recent.first?.isAlarm == true)

    for i in 0..<40 {
      service.record(.init(server: "Test.Busy", source: "", level: 0, message: "m\(i)", time: Date(), isAlarm: false))
    }
    #expect(service.recent(limit: 1000).count == 30, "bounded")
    socket.send(
      Notify.GetNotifyInfo.request(
        servant: "tars.tarsnotify.NotifyObj", .init(stKey: NotifyKey(name: "Test.Busy", ip: "", page: 0))))
    let page0 = try Notify.GetNotifyInfo.result(from: try #require(socket.readResponse()))
    #expect(page0.stInfo.notifyItems.count == 20 && page0.stInfo.nextpage == 1)
    #expect(page0.stInfo.notifyItems.first?.sMessage == "m39")
    socket.send(
      Notify.GetNotifyInfo.request(
        servant: "tars.tarsnotify.NotifyObj", .init(stKey: NotifyKey(name: "Test.Busy", ip: "", page: 1))))
    let page1 = try Notify.GetNotifyInfo.result(from: try #require(socket.readResponse()))
    #expect(page1.stInfo.notifyItems.count == 10 && page1.stInfo.nextpage == -1)
  }
}
