import Foundation
import NIOPosix
import TarsEmbeddedStore
import TarsFramework
import TarsKube
import TarsNIO
import TarsNotifyService
import TarsProtocol
import TarsTestSupport
import Testing

@Suite("NotifyObj")
struct NotifyServiceTests {
  func store() async throws -> EmbeddedStore {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    return store
  }

  @Test func takesEveryReportKindAsEventsAboutTheServerAndPagesThem() async throws {
    let store = try await store()
    let service = NotifyService(store: store, namespace: "tars")
    let task = Task { await service.run() }
    defer { task.cancel() }
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
    #expect(await eventually { service.recent(server: "Test.HelloServer").count == 1 })
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
    #expect(await eventually { service.recent(limit: 10).count == 3 })
    let recent = service.recent(server: "Test.HelloServer")
    #expect(recent.map(\.message) == ["[alarm] server exit with signal 9", "restart"])
    #expect(recent.last?.source == "test-helloserver-0" && recent.first?.isAlarm == true)
    #expect(recent.first?.level == NOTIFYLEVEL.NOTIFYERROR.rawValue)

    // Each is an Event about the TServer, as `kubectl describe tserver` lists them.
    let events = try await store.list(.events, namespace: "tars", options: ListOptions()).items
    let alarm = try #require(events.first { $0.json["reason"]?.stringValue == "TarsAlarm" })
    #expect(alarm.json[path: ["involvedObject", "kind"]]?.stringValue == "TServer")
    #expect(alarm.json[path: ["involvedObject", "name"]]?.stringValue == "test-helloserver")
    #expect(alarm.json["type"]?.stringValue == "Warning")
    #expect(alarm.labels[NotifyService.label] == "alarm")

    // A repeat within the window raises the count instead of adding an Event.
    for _ in 0..<3 {
      service.record(.init(server: "Test.Again", source: "", level: 0, message: "again", time: Date(), isAlarm: false))
    }
    #expect(
      await eventually {
        let all = try await store.list(.events, namespace: "tars", options: ListOptions()).items
        return all.count == 4 && all.contains { $0.json["count"]?.intValue == 3 }
      })

    for i in 0..<25 {
      service.record(.init(server: "Test.Busy", source: "", level: 0, message: "m\(i)", time: Date(), isAlarm: false))
    }
    #expect(await eventually { service.recent(server: "Test.Busy", limit: 100).count == 25 })
    socket.send(
      Notify.GetNotifyInfo.request(
        servant: "tars.tarsnotify.NotifyObj", .init(stKey: NotifyKey(name: "Test.Busy", ip: "", page: 0))))
    let page0 = try Notify.GetNotifyInfo.result(from: try #require(socket.readResponse()))
    #expect(page0.stInfo.notifyItems.count == 20 && page0.stInfo.nextpage == 1)
    #expect(page0.stInfo.notifyItems.first?.sMessage == "m24")
    socket.send(
      Notify.GetNotifyInfo.request(
        servant: "tars.tarsnotify.NotifyObj", .init(stKey: NotifyKey(name: "Test.Busy", ip: "", page: 1))))
    let page1 = try Notify.GetNotifyInfo.result(from: try #require(socket.readResponse()))
    #expect(page1.stInfo.notifyItems.count == 5 && page1.stInfo.nextpage == -1)

    // A second replica on the same store sees the same history.
    let other = NotifyService(store: store, namespace: "tars")
    let otherTask = Task { await other.events.run() }
    defer { otherTask.cancel() }
    #expect(await eventually { other.recent(limit: 100).count == service.recent(limit: 100).count })
  }

  /// While the API is away reports wait in a bounded queue; beyond it they are dropped and
  /// counted; when it is back the queue is written, in order.
  @Test func reportsWaitForTheAPIUpToABound() async throws {
    let inner = try await store()
    let store = SwitchableStore(inner)
    store.cut()
    let service = NotifyService(store: store, namespace: "tars", capacity: 5)
    let task = Task { await service.run() }
    defer { task.cancel() }
    for i in 0..<8 {
      service.record(.init(server: "Test.Away", source: "", level: 0, message: "m\(i)", time: Date(), isAlarm: false))
    }
    #expect(service.queued == 5 && service.dropped == 3)
    store.restore()
    #expect(await eventually { service.queued == 0 })
    let written = NotifyService.records(
      try await inner.list(.events, namespace: "tars", options: ListOptions()).items, limit: 100)
    #expect(written.map(\.message) == ["m4", "m3", "m2", "m1", "m0"])
  }
}
