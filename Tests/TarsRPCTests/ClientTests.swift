import Foundation
import NIOPosix
import TarsExampleHello
import TarsFramework
import TarsNIO
import TarsProtocol
import TarsRPC
import TarsTestSupport
import Testing

/// Both clients against both servers: calls, pipelining with out-of-order replies, timeouts,
/// connect errors, ONEWAY and name resolution through a locator.
@Suite("Clients over loopback", .serialized)
struct ClientTests {
  @Test(arguments: ServerKind.allCases)
  func posixClient(_ kind: ServerKind) async throws {
    let hello = HelloImpl()
    let server = try await kind.start([helloName: hello])
    let loop = try TarsEventLoop()
    let client = TarsClient(loop: loop)
    let proxy = try TarsProxy(client: client, "\(helloName)@tcp -h 127.0.0.1 -p \(server.port) -t 3000")

    #expect(try proxy.callBlocking(Hello.TestHello.self, .init(sReq: "posix")) == .init(ret: 5, sRsp: "Hello posix"))

    // 200 calls in flight on one connection, replies in a different order than the requests.
    var results: [Int: String] = [:]
    for i in 0..<200 {
      let text = i % 3 == 0 ? "defer:\(200 - i)" : "n\(i)"
      proxy.call(Hello.TestHello.self, .init(sReq: text)) { r in results[i] = (try? r.get())?.sRsp ?? "error" }
    }
    #expect(loop.run(until: { results.count == 200 }, timeoutMs: 10_000))
    for i in 0..<200 {
      #expect(results[i] == "Hello " + (i % 3 == 0 ? "defer:\(200 - i)" : "n\(i)"))
    }
    #expect(client.connectionCount == 1)

    // A reply that never comes: −7 after the call's timeout, and the connection stays usable.
    let start = Date()
    let timeout = #expect(throws: TarsCallError.self) {
      try proxy.callBlocking(Hello.TestHello.self, .init(sReq: "never"), options: .init(timeoutMs: 300))
    }
    #expect(timeout?.code == TarsReturnCode.invokeTimeout)
    #expect(Date().timeIntervalSince(start) < 2)
    #expect(try proxy.callBlocking(Hello.TestHello.self, .init(sReq: "after")).sRsp == "Hello after")

    // The server's error codes arrive as TarsCallError.
    let error = #expect(throws: TarsCallError.self) {
      try proxy.callBlocking(Hello.TestHello.self, .init(sReq: "code:-9"))
    }
    #expect(error?.code == -9)

    // ONEWAY: nothing to wait for; the servant still runs.
    var sent = false
    proxy.oneway(Hello.TestHello.self, .init(sReq: "fire")) { e in sent = e == nil }
    #expect(sent)
    for _ in 0..<300 where hello.onewayCalls.load(ordering: .relaxed) == 0 { loop.runOnce(timeoutMs: 10) }
    #expect(hello.onewayCalls.load(ordering: .relaxed) == 1)
    await server.stop()
  }

  @Test(arguments: ServerKind.allCases)
  func callsInFlightFailWhenTheConnectionDrops(_ kind: ServerKind) async throws {
    let server = try await kind.start([helloName: HelloImpl()])
    let address = try TarsObjectAddress(parsing: "\(helloName)@tcp -h 127.0.0.1 -p \(server.port)")
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let nio = TarsNIOProxy(client: TarsNIOClient(group: group), address: address)
    #expect(try await nio.call(Hello.TestHello.self, .init(sReq: "up")).sRsp == "Hello up")
    let start = Date()
    let pending = Task { () -> Int32? in
      do {
        _ = try await nio.call(Hello.TestHello.self, .init(sReq: "never"), options: .init(timeoutMs: 30_000))
        return nil
      } catch let error as TarsCallError {
        return error.code
      }
    }
    try await Task.sleep(for: .milliseconds(200))
    await server.stop()
    // −13 when the call was on the wire; −8 if, on a loaded machine, the task only got to
    // write after the connection was already gone. Either way: now, not at the timeout.
    let code = try await pending.value
    #expect(
      code == TarsReturnCode.sendRequestError || code == TarsReturnCode.proxyConnectError,
      "got \(String(describing: code))")
    // Well below the 30 s timeout, with room for a loaded machine (the tests share 2 cores).
    #expect(Date().timeIntervalSince(start) < 15, "the call must fail when the connection drops, not at its timeout")
    do {
      _ = try await nio.call(Hello.TestHello.self, .init(sReq: "x"))
      Issue.record("expected a connect error once the server is gone")
    } catch {
      #expect(error.code == TarsReturnCode.proxyConnectError)
    }
    try await group.shutdownGracefully()
  }

  @Test(arguments: ServerKind.allCases)
  func hostNamesResolveOffTheLoop(_ kind: ServerKind) async throws {
    let server = try await kind.start([helloName: HelloImpl()])
    let loop = try TarsEventLoop()
    let client = TarsClient(loop: loop)
    let proxy = try TarsProxy(client: client, "\(helloName)@tcp -h localhost -p \(server.port)")
    #expect(try proxy.callBlocking(Hello.TestHello.self, .init(sReq: "by name")).sRsp == "Hello by name")
    await server.stop()
  }

  @Test func posixClientConnectErrors() throws {
    let loop = try TarsEventLoop()
    let client = TarsClient(loop: loop)
    let refused = try TarsProxy(client: client, "\(helloName)@tcp -h 127.0.0.1 -p 1")
    let e1 = #expect(throws: TarsCallError.self) { try refused.callBlocking(Hello.TestHello.self, .init(sReq: "x")) }
    #expect(e1?.code == TarsReturnCode.proxyConnectError)
    let noName = try TarsProxy(client: client, "\(helloName)@tcp -h no-such-host.invalid -p 1")
    let e2 = #expect(throws: TarsCallError.self) { try noName.callBlocking(Hello.TestHello.self, .init(sReq: "x")) }
    #expect(e2?.code == TarsReturnCode.proxyConnectError)
    let noLocator = TarsProxy(client: client, address: TarsObjectAddress(name: helloName))
    let e3 = #expect(throws: TarsCallError.self) { try noLocator.callBlocking(Hello.TestHello.self, .init(sReq: "x")) }
    #expect(e3?.code == TarsReturnCode.adapterNull)
  }

  @Test(arguments: ServerKind.allCases)
  func nioClient(_ kind: ServerKind) async throws {
    let hello = HelloImpl()
    let server = try await kind.start([helloName: hello])
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let client = TarsNIOClient(group: group)
    let proxy = TarsNIOProxy(
      client: client, address: try TarsObjectAddress(parsing: "\(helloName)@tcp -h 127.0.0.1 -p \(server.port)"))

    #expect(try await proxy.call(Hello.TestHello.self, .init(sReq: "nio")) == .init(ret: 3, sRsp: "Hello nio"))
    let texts = (0..<300).map { i in i % 4 == 0 ? "defer:\(300 - i)" : "n\(i)" }
    let replies = try await withThrowingTaskGroup(of: (Int, String).self) { group in
      for (i, text) in texts.enumerated() {
        group.addTask { (i, try await proxy.call(Hello.TestHello.self, .init(sReq: text)).sRsp) }
      }
      var out = [Int: String]()
      for try await (i, r) in group { out[i] = r }
      return out
    }
    for (i, text) in texts.enumerated() { #expect(replies[i] == "Hello " + text) }

    do {
      _ = try await proxy.call(Hello.TestHello.self, .init(sReq: "never"), options: .init(timeoutMs: 300))
      Issue.record("expected a timeout")
    } catch {
      #expect(error.code == TarsReturnCode.invokeTimeout)
    }
    try await proxy.oneway(Hello.TestHello.self, .init(sReq: "fire"))
    for _ in 0..<100 where hello.onewayCalls.load(ordering: .relaxed) == 0 {
      try await Task.sleep(for: .milliseconds(20))
    }
    #expect(hello.onewayCalls.load(ordering: .relaxed) == 1)

    let refused = TarsNIOProxy(
      client: client, address: try TarsObjectAddress(parsing: "\(helloName)@tcp -h 127.0.0.1 -p 1"))
    do {
      _ = try await refused.call(Hello.TestHello.self, .init(sReq: "x"))
      Issue.record("expected a connect error")
    } catch {
      #expect(error.code == TarsReturnCode.proxyConnectError)
    }
    await client.close()
    try await group.shutdownGracefully()
    await server.stop()
  }

  @Test(arguments: ServerKind.allCases)
  func namesResolveThroughTheLocator(_ kind: ServerKind) async throws {
    let a = HelloImpl()
    let b = HelloImpl()
    let serverA = try await kind.start([helloName: a])
    let serverB = try await kind.start([helloName: b])
    let locator = FixedLocator([
      helloName: [serverA.port, serverB.port].map {
        EndpointF(TarsEndpoint(host: "127.0.0.1", port: $0, timeout: 3000))
      }
    ])
    let registry = try await kind.start(["tars.tarsregistry.QueryObj": locator])
    let locatorAddress = try TarsObjectAddress(
      parsing: "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p \(registry.port)")

    // POSIX: round robin over both endpoints, one lookup for many calls.
    let loop = try TarsEventLoop()
    let client = TarsClient(loop: loop)
    let posixLocator = TarsLocator(client: client, address: locatorAddress)
    let proxy = TarsProxy(client: client, address: TarsObjectAddress(name: helloName), locator: posixLocator)
    for i in 0..<10 { #expect(try proxy.callBlocking(Hello.TestHello.self, .init(sReq: "\(i)")).sRsp == "Hello \(i)") }
    #expect(a.calls.load(ordering: .relaxed) == 5 && b.calls.load(ordering: .relaxed) == 5)
    #expect(locator.lookups.load(ordering: .relaxed) == 1)
    let unknown = TarsProxy(client: client, address: TarsObjectAddress(name: "No.Such.Obj"), locator: posixLocator)
    let e = #expect(throws: TarsCallError.self) { try unknown.callBlocking(Hello.TestHello.self, .init(sReq: "x")) }
    #expect(e?.code == TarsReturnCode.adapterNull)

    // A stale answer is used while it is refreshed; the refresh picks up the change.
    let refreshing = TarsLocator(client: client, address: locatorAddress, refreshIntervalMs: 0)
    let viaRefreshing = TarsProxy(client: client, address: TarsObjectAddress(name: helloName), locator: refreshing)
    _ = try viaRefreshing.callBlocking(Hello.TestHello.self, .init(sReq: "warm"))
    locator.set(helloName, [EndpointF(TarsEndpoint(host: "127.0.0.1", port: serverA.port))])
    // Each call uses the answer it has and refreshes it behind; soon every call goes to A (the
    // refresh's answer may take a while on a loaded machine: up to 10 s, a call every 10 ms).
    var consecutiveA = 0
    var tries = 0
    while consecutiveA < 3 && tries < 1000 {
      tries += 1
      let before = a.calls.load(ordering: .relaxed)
      _ = try viaRefreshing.callBlocking(Hello.TestHello.self, .init(sReq: "x"))
      consecutiveA = a.calls.load(ordering: .relaxed) > before ? consecutiveA + 1 : 0
      if consecutiveA == 0 { usleep(10_000) }
    }
    #expect(consecutiveA == 3, "after the refresh only A is called")

    // NIO.
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let nioClient = TarsNIOClient(group: group)
    let nioProxy = TarsNIOProxy(
      client: nioClient, address: TarsObjectAddress(name: helloName),
      locator: TarsNIOLocator(client: nioClient, address: locatorAddress))
    #expect(try await nioProxy.call(Hello.TestHello.self, .init(sReq: "nio")).sRsp == "Hello nio")
    await nioClient.close()
    try await group.shutdownGracefully()
    await registry.stop()
    await serverA.stop()
    await serverB.stop()
  }
}
