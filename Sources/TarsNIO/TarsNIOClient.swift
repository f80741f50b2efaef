import NIOCore
import NIOPosix
import Synchronization
import TarsFramework
import TarsProtocol

struct OutboundCall: Sendable {
  var request: RequestPacket
  var timeoutMs: Int
  /// nil for ONEWAY.
  var promise: EventLoopPromise<ResponsePacket>?
  /// Who completes `promise`: the handler once it has seen the call, otherwise the caller (when
  /// the channel closed before the write reached the handler).
  let owner = PromiseOwner()
}

final class PromiseOwner: Sendable {
  let claimed = Atomic<Bool>(false)

  /// True for the first caller only.
  func claim() -> Bool { !claimed.exchange(true, ordering: .acquiringAndReleasing) }
}

/// Assigns request ids, keeps the calls in flight of one connection and matches replies to
/// them by iRequestId, in whatever order they come.
final class TarsClientHandler: ChannelDuplexHandler {
  typealias InboundIn = [UInt8]
  typealias OutboundIn = OutboundCall
  typealias OutboundOut = ByteBuffer

  struct Pending {
    var promise: EventLoopPromise<ResponsePacket>
    var timeout: Scheduled<Void>?
  }

  let endpoint: TarsEndpoint
  var nextRequestId: Int32 = 0
  var pending: [Int32: Pending] = [:]

  init(endpoint: TarsEndpoint) { self.endpoint = endpoint }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    var call = unwrapOutboundIn(data)
    repeat { nextRequestId = nextRequestId == Int32.max ? 1 : nextRequestId + 1 } while pending[nextRequestId] != nil
    let id = nextRequestId
    call.request.iRequestId = id
    if let p = call.promise, call.owner.claim() {
      guard context.channel.isActive else {
        p.fail(
          TarsCallError(
            code: TarsReturnCode.sendRequestError, "connection to \(endpoint) closed before the request was sent"))
        promise?.fail(ChannelError.ioOnClosedChannel)
        return
      }
      let what = "\(call.request.sServantName).\(call.request.sFuncName) at \(endpoint)"
      let ms = call.timeoutMs
      let timeout = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(ms))) {
        self.pending.removeValue(forKey: id)?.promise.fail(TarsCallError.timeout(ms, what))
        return
      }
      pending[id] = Pending(promise: p, timeout: timeout)
    }
    context.write(wrapOutboundOut(ByteBuffer(tarsPacket: TarsFrame.encode(call.request))), promise: promise)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let response: ResponsePacket
    do {
      response = try ResponsePacket(tarsBytes: unwrapInboundIn(data))
    } catch {
      failAll(TarsCallError(code: TarsReturnCode.clientDecodeError, "bad reply from \(endpoint): \(error)"))
      context.close(promise: nil)
      return
    }
    guard let p = pending.removeValue(forKey: response.iRequestId) else { return }  // late, or a push
    p.timeout?.cancel()
    p.promise.succeed(response)
  }

  func channelInactive(context: ChannelHandlerContext) {
    failAll(TarsCallError(code: TarsReturnCode.sendRequestError, "connection to \(endpoint) closed before the reply"))
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if error is TarsFrameError {
      failAll(TarsCallError(code: TarsReturnCode.clientDecodeError, "bad reply from \(endpoint): \(error)"))
    } else {
      failAll(TarsCallError(code: TarsReturnCode.sendRequestError, "connection to \(endpoint) failed: \(error)"))
    }
    context.close(promise: nil)
  }

  func failAll(_ error: TarsCallError) {
    let all = pending
    pending.removeAll()
    for p in all.values {
      p.timeout?.cancel()
      p.promise.fail(error)
    }
  }
}

/// A Tars client on SwiftNIO for the control plane: one connection per endpoint shared by all
/// callers, many calls in flight on it, async/await API.
public final class TarsNIOClient: Sendable {
  public typealias Options = TarsClientOptions

  let group: any EventLoopGroup
  let options: Options
  let channels = Mutex<[String: EventLoopFuture<any Channel>]>([:])

  public init(group: any EventLoopGroup, options: Options = Options()) {
    self.group = group
    self.options = options
  }

  func channel(for endpoint: TarsEndpoint) -> EventLoopFuture<any Channel> {
    let key = "\(endpoint.host):\(endpoint.port)"
    return channels.withLock { map in
      if let existing = map[key] { return existing }
      let maxFrame = options.maxFrameLength
      let future = ClientBootstrap(group: group)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .connectTimeout(.milliseconds(Int64(options.connectTimeoutMs)))
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers(
              ByteToMessageHandler(TarsFrameDecoder(maxFrameLength: maxFrame)), TarsClientHandler(endpoint: endpoint))
          }
        }
        .connect(host: endpoint.host, port: endpoint.port)
      map[key] = future
      future.whenFailure { [weak self] _ in self?.forget(future, key: key) }
      future.whenSuccess { [weak self] channel in
        let client = self
        channel.closeFuture.whenComplete { _ in client?.forget(future, key: key) }
      }
      return future
    }
  }

  /// Drops a connection from the pool unless a newer one has taken its place.
  func forget(_ future: EventLoopFuture<any Channel>, key: String) {
    channels.withLock { map in
      if map[key] === future { map[key] = nil }
    }
  }

  func activeChannel(for endpoint: TarsEndpoint) async throws(TarsCallError) -> any Channel {
    for _ in 0..<2 {
      let future = channel(for: endpoint)
      let channel: any Channel
      do {
        channel = try await future.get()
      } catch {
        throw TarsCallError(code: TarsReturnCode.proxyConnectError, "cannot connect to \(endpoint): \(error)")
      }
      if channel.isActive { return channel }
      // Closed, and its close callback has not run yet: replace it now.
      forget(future, key: "\(endpoint.host):\(endpoint.port)")
    }
    throw TarsCallError(
      code: TarsReturnCode.proxyConnectError, "cannot connect to \(endpoint): the connection closes at once")
  }

  /// Sends `request` to `endpoint` and returns the reply. ONEWAY requests return as soon as they
  /// are written, with an empty success reply.
  public func invoke(_ request: RequestPacket, to endpoint: TarsEndpoint, timeoutMs: Int) async throws(TarsCallError)
    -> ResponsePacket
  {
    guard endpoint.transport == .tcp else {
      throw TarsCallError(code: TarsReturnCode.proxyConnectError, "\(endpoint): only tcp endpoints are supported")
    }
    let channel = try await activeChannel(for: endpoint)
    let oneway = request.cPacketType == TarsPacketType.oneway
    let promise: EventLoopPromise<ResponsePacket>? = oneway ? nil : channel.eventLoop.makePromise()
    let written = channel.eventLoop.makePromise(of: Void.self)
    let call = OutboundCall(request: request, timeoutMs: timeoutMs, promise: promise)
    written.futureResult.whenFailure { error in
      if call.owner.claim() {
        promise?.fail(TarsCallError(code: TarsReturnCode.sendRequestError, "sending to \(endpoint) failed: \(error)"))
      }
    }
    channel.writeAndFlush(call, promise: written)
    do {
      guard let promise else {
        try await written.futureResult.get()
        return TarsResponder.response(to: request, code: TarsReturnCode.success, buffer: [])
      }
      return try await promise.futureResult.get()
    } catch let error as TarsCallError {
      throw error
    } catch {
      throw TarsCallError(code: TarsReturnCode.sendRequestError, "sending to \(endpoint) failed: \(error)")
    }
  }

  /// Closes every connection.
  public func close() async {
    let all = channels.withLock { map in
      defer { map.removeAll() }
      return Array(map.values)
    }
    for f in all { try? await f.get().close() }
  }
}

/// Resolves object names through a registry's QueryObj for the SwiftNIO client, with the same
/// cache rules as the POSIX locator (`LocatorCache`).
public final class TarsNIOLocator: Sendable {
  let client: TarsNIOClient
  let address: TarsObjectAddress
  let cache: Mutex<LocatorCache>
  /// One lookup in flight per name; later callers wait for it instead of asking again.
  let inFlight = Mutex<[String: Task<LocatorEntry, any Error>]>([:])
  let cursor = Atomic<Int>(0)
  public let timeoutMs: Int

  public init(
    client: TarsNIOClient, address: TarsObjectAddress, refreshIntervalMs: UInt64 = 60_000, timeoutMs: Int = 3000
  ) {
    self.client = client
    self.address = address
    cache = Mutex(LocatorCache(refreshIntervalMs: refreshIntervalMs))
    self.timeoutMs = timeoutMs
  }

  static func nowMs() -> UInt64 { UInt64(NIODeadline.now().uptimeNanoseconds / 1_000_000) }

  /// The next active endpoint of `name`, from the cache or a fresh lookup.
  public func nextEndpoint(for name: String) async throws(TarsCallError) -> TarsEndpoint {
    let lookup = cache.withLock { $0.lookup(name, nowMs: Self.nowMs()) }
    switch lookup {
    case .fresh: break
    case .stale: _ = lookupTask(name)
    case .missing:
      do {
        _ = try await lookupTask(name).value
      } catch let error as TarsCallError {
        throw error
      } catch {
        throw TarsCallError(code: TarsReturnCode.adapterNull, "locator lookup of \(name) failed: \(error)")
      }
    }
    guard let endpoint = cache.withLock({ $0.nextEndpoint(name) }) else {
      throw TarsCallError(code: TarsReturnCode.adapterNull, "the locator knows no active endpoint of \(name)")
    }
    return endpoint
  }

  /// The lookup of `name` in flight, started if there is none.
  func lookupTask(_ name: String) -> Task<LocatorEntry, any Error> {
    inFlight.withLock { tasks in
      if let running = tasks[name] { return running }
      let task = Task { () throws -> LocatorEntry in
        defer { _ = self.inFlight.withLock { $0.removeValue(forKey: name) } }
        return try await self.refresh(name)
      }
      tasks[name] = task
      return task
    }
  }

  /// Asks the locator now and caches the answer.
  public func refresh(_ name: String) async throws(TarsCallError) -> LocatorEntry {
    guard !address.endpoints.isEmpty else {
      throw TarsCallError(code: TarsReturnCode.adapterNull, "the locator address \(address) has no endpoints")
    }
    let i = cursor.add(1, ordering: .relaxed).newValue
    let endpoint = address.endpoints[i % address.endpoints.count]
    let request = QueryF.FindObjectByIdInSameGroup.request(
      servant: address.name, .init(id: name), options: TarsCallOptions(timeoutMs: timeoutMs))
    let reply = try await client.invoke(request, to: endpoint, timeoutMs: timeoutMs)
    let r = try QueryF.FindObjectByIdInSameGroup.result(from: reply)
    return cache.withLock {
      $0.store(
        name, active: r.activeEp.map(TarsEndpoint.init), inactive: r.inactiveEp.map(TarsEndpoint.init),
        nowMs: Self.nowMs())
    }
  }
}

/// Calls one object with the SwiftNIO client: at its direct endpoints (round robin) or by name
/// through a locator.
public struct TarsNIOProxy: Sendable {
  public let client: TarsNIOClient
  public let address: TarsObjectAddress
  public let locator: TarsNIOLocator?
  let cursor = CursorBox()

  final class CursorBox: Sendable {
    let value = Atomic<Int>(0)
  }

  public init(client: TarsNIOClient, address: TarsObjectAddress, locator: TarsNIOLocator? = nil) {
    self.client = client
    self.address = address
    self.locator = locator
  }

  func endpoint() async throws(TarsCallError) -> TarsEndpoint {
    if !address.endpoints.isEmpty {
      return address.endpoints[cursor.value.add(1, ordering: .relaxed).newValue % address.endpoints.count]
    }
    guard let locator else {
      throw TarsCallError(
        code: TarsReturnCode.adapterNull, "\(address.name) has no endpoints and no locator is configured")
    }
    return try await locator.nextEndpoint(for: address.name)
  }

  /// Calls `M` and returns its decoded result.
  public func call<M: TarsMethod>(_: M.Type, _ args: M.Args, options: TarsCallOptions = TarsCallOptions())
    async throws(TarsCallError) -> M.Result
  {
    let reply = try await client.invoke(
      M.request(servant: address.name, args, options: options), to: endpoint(), timeoutMs: options.timeoutMs)
    return try M.result(from: reply)
  }

  /// Sends `M` ONEWAY.
  public func oneway<M: TarsMethod>(_: M.Type, _ args: M.Args, options: TarsCallOptions = TarsCallOptions())
    async throws(TarsCallError)
  {
    _ = try await client.invoke(
      M.request(servant: address.name, args, oneway: true, options: options), to: endpoint(),
      timeoutMs: options.timeoutMs)
  }
}
