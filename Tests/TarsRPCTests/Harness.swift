import Dispatch
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import TarsExampleHello
import TarsFramework
import TarsNIO
import TarsProtocol
import TarsRPC
import TarsTestSupport
import Testing

/// The Hello servant of the classic examples, with a few extra behaviours chosen by the request
/// text: "throw", "code:N", "never" (no reply), "defer:MS" (reply MS milliseconds later, from
/// another thread), anything else → "Hello <text>".
final class HelloImpl: HelloServant, Sendable {
  let calls = Atomic<Int>(0)
  let onewayCalls = Atomic<Int>(0)

  struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }

  func testHello(sReq: String, current: TarsCurrent) throws -> Hello.TestHello.Result {
    calls.add(1, ordering: .relaxed)
    if current.isOneway { onewayCalls.add(1, ordering: .relaxed) }
    if sReq == "throw" { throw Boom() }
    if sReq.hasPrefix("code:") { throw TarsServantError(code: Int32(sReq.dropFirst(5))!, "chosen code") }
    if sReq == "never" {
      _ = current.deferReply()
      return .init()
    }
    if sReq.hasPrefix("defer:") {
      let responder = current.deferReply()
      DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(sReq.dropFirst(6))!)) {
        responder.reply(Hello.TestHello.Result(ret: 0, sRsp: "Hello " + sReq))
      }
      return .init()
    }
    return .init(ret: Int32(sReq.utf8.count), sRsp: "Hello " + sReq)
  }
}

/// A locator answering from a fixed table, with a lookup counter.
final class FixedLocator: QueryFServant, Sendable {
  let table: Mutex<[String: [EndpointF]]>
  let lookups = Atomic<Int>(0)

  init(_ table: [String: [EndpointF]]) { self.table = Mutex(table) }

  func set(_ name: String, _ endpoints: [EndpointF]) { table.withLock { $0[name] = endpoints } }

  func find(_ id: String) -> [EndpointF] {
    lookups.add(1, ordering: .relaxed)
    return table.withLock { $0[id] ?? [] }
  }

  func findObjectById(id: String, current: TarsCurrent) throws -> [EndpointF] { find(id) }
  func findObjectById4Any(id: String, current: TarsCurrent) throws -> QueryF.FindObjectById4Any.Result {
    .init(ret: 0, activeEp: find(id), inactiveEp: [EndpointF(TarsEndpoint(host: "10.9.9.9", port: 1))])
  }
  func findObjectById4All(id: String, current: TarsCurrent) throws -> QueryF.FindObjectById4All.Result {
    .init(ret: 0, activeEp: find(id), inactiveEp: [])
  }
  func findObjectByIdInSameGroup(id: String, current: TarsCurrent) throws -> QueryF.FindObjectByIdInSameGroup.Result {
    .init(ret: 0, activeEp: find(id), inactiveEp: [])
  }
  func findObjectByIdInSameStation(id: String, sStation: String, current: TarsCurrent) throws
    -> QueryF.FindObjectByIdInSameStation.Result
  { .init(ret: 0, activeEp: find(id), inactiveEp: []) }
  func findObjectByIdInSameSet(id: String, setId: String, current: TarsCurrent) throws
    -> QueryF.FindObjectByIdInSameSet.Result
  {
    .init(ret: 0, activeEp: find(id), inactiveEp: [])
  }
  func findObjectNodeName(id: String, current: TarsCurrent) throws -> QueryF.FindObjectNodeName.Result {
    .init(ret: 0, nodeName: [])
  }
  func registerChange(timestamp: [String: String], name: String, current: TarsCurrent) throws -> Int32 { 0 }
  func registerQuery(id: String, name: String, current: TarsCurrent) throws -> Int32 { 0 }
  func getLocker(req: GetMasterSlaveLock, current: TarsCurrent) throws -> Int32 { 1 }
}

/// A business server's AdminObj, answering the way TarsCpp does.
final class AdminImpl: AdminFServant, Sendable {
  let shutdowns = Atomic<Int>(0)

  func shutdown(current: TarsCurrent) throws { shutdowns.add(1, ordering: .relaxed) }
  func notify(command: String, current: TarsCurrent) throws -> String {
    if command == "hang" {
      _ = current.deferReply()
      return ""
    }
    return command == "tars.viewstatus" ? "[notify prefix object num:1]\n[1]:app=Test server=HelloServer\n" : ""
  }
  func getPid(current: TarsCurrent) throws -> Int64 { Int64(getpid()) }
}

protocol TestServer: Sendable {
  var port: Int { get }
  func stop() async
}

/// Our POSIX server on its own event-loop thread.
typealias PosixTestServer = LoopServer

extension LoopServer: TestServer {
  convenience init(servants: [String: any TarsDispatcher & Sendable], options: TarsServer.Options) throws {
    try self.init(servants: servants, host: "127.0.0.1", port: 0, options: options)
  }
}

/// Our SwiftNIO server on a two-thread group.
final class NIOTestServer: TestServer {
  let group: MultiThreadedEventLoopGroup
  let server: TarsNIOServer

  init(servants: [String: any TarsDispatcher & Sendable], options: TarsNIOServer.Options = .init()) async throws {
    group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    server = try await TarsNIOServer.start(
      endpoint: TarsEndpoint(host: "127.0.0.1", port: 0, timeout: 60000), servants: servants, group: group,
      options: options)
  }

  var port: Int { server.port }

  func stop() async {
    try? await server.close()
    try? await group.shutdownGracefully()
  }
}

enum ServerKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case posix, nio

  var testDescription: String { rawValue }

  func start(
    _ servants: [String: any TarsDispatcher & Sendable], idleTimeoutMs: Int? = nil,
    maxFrameLength: Int = TarsFrame.defaultMaxLength
  )
    async throws -> any TestServer
  {
    switch self {
    case .posix:
      return try PosixTestServer(
        servants: servants, options: .init(maxFrameLength: maxFrameLength, idleTimeoutMs: idleTimeoutMs))
    case .nio:
      return try await NIOTestServer(
        servants: servants, options: .init(maxFrameLength: maxFrameLength, idleTimeoutMs: idleTimeoutMs))
    }
  }
}

let helloName = "Test.HelloServer.HelloObj"

func helloArgs(_ text: String) -> [UInt8] { Hello.TestHello.Args(sReq: text).tarsBytes() }
