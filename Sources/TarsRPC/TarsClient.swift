import Glibc
import TarsFramework
import TarsProtocol

/// A Tars client on an event loop: one connection per endpoint, pipelined requests matched to
/// replies by iRequestId (in any order), a timer per call (−7 when it fires), −8 when the
/// connection cannot be made, −13 when it drops before the reply. Completions run on the loop.
public final class TarsClient {
  public typealias Options = TarsClientOptions

  public typealias Completion = (Result<ResponsePacket, TarsCallError>) -> Void

  /// Called on the loop when a call (not a ONEWAY one) ends: its outcome and the nanoseconds
  /// since it was sent (what the runtime's call statistics count).
  public var onCompleted:
    (
      (
        _ request: RequestPacket, _ endpoint: TarsEndpoint, _ result: Result<ResponsePacket, TarsCallError>,
        _ elapsedNs: UInt64
      ) -> Void
    )?

  final class Pending {
    let completion: Completion
    var timer: TarsEventLoop.TimerID?
    init(_ completion: @escaping Completion) { self.completion = completion }
  }

  /// The calls to one endpoint and, once the name is resolved and the socket made, their
  /// connection; bytes written before then wait in `queued`.
  final class Channel {
    let endpoint: TarsEndpoint
    var connection: FramedConnection?
    var queued: [UInt8] = []
    var finished = false
    var nextRequestId: Int32 = 0
    var pending: [Int32: Pending] = [:]

    init(_ endpoint: TarsEndpoint) { self.endpoint = endpoint }

    func send(_ bytes: [UInt8]) {
      if let connection {
        connection.send(bytes)
      } else {
        queued.append(contentsOf: bytes)
      }
    }

    func takeRequestId() -> Int32 {
      repeat { nextRequestId = nextRequestId == Int32.max ? 1 : nextRequestId + 1 } while pending[nextRequestId] != nil
      return nextRequestId
    }
  }

  public let loop: TarsEventLoop
  let options: Options
  var channels: [String: Channel] = [:]

  public init(loop: TarsEventLoop, options: Options = Options()) {
    self.loop = loop
    self.options = options
  }

  deinit { closeAll() }

  /// Open connections, for tests and diagnostics.
  public var connectionCount: Int { channels.count }

  /// Sends `request` to `endpoint` and calls `completion` once with the reply or the failure.
  /// A ONEWAY request completes as soon as it is queued, with an empty success reply.
  public func invoke(
    _ request: RequestPacket, to endpoint: TarsEndpoint, timeoutMs: Int, completion original: @escaping Completion
  ) {
    var completion = original
    if let observer = onCompleted, request.cPacketType != TarsPacketType.oneway {
      let started = TarsEventLoop.now()
      completion = { result in
        observer(request, endpoint, result, TarsEventLoop.now() - started)
        original(result)
      }
    }
    guard endpoint.transport == .tcp else {
      completion(
        .failure(TarsCallError(code: TarsReturnCode.proxyConnectError, "\(endpoint): only tcp endpoints are supported"))
      )
      return
    }
    let channel = self.channel(for: endpoint)
    var request = request
    request.iRequestId = channel.takeRequestId()
    if request.cPacketType == TarsPacketType.oneway {
      channel.send(TarsFrame.encode(request))
      completion(.success(TarsResponder.response(to: request, code: TarsReturnCode.success, buffer: [])))
      return
    }
    let id = request.iRequestId
    let pending = Pending(completion)
    channel.pending[id] = pending
    let what = "\(request.sServantName).\(request.sFuncName) at \(endpoint)"
    pending.timer = loop.schedule(afterMilliseconds: timeoutMs) { [weak channel] in
      guard let channel, let p = channel.pending.removeValue(forKey: id) else { return }
      p.completion(.failure(.timeout(timeoutMs, what)))
    }
    channel.send(TarsFrame.encode(request))
  }

  /// Closes every connection; their pending calls fail.
  public func closeAll() {
    let all = channels.values
    channels.removeAll()
    for c in all {
      if let connection = c.connection {
        connection.close(.local)
      } else {
        finish(c, TarsCallError(code: TarsReturnCode.sendRequestError, "the client was closed"))
      }
    }
  }

  static func key(_ e: TarsEndpoint) -> String { "\(e.host):\(e.port)" }

  func channel(for endpoint: TarsEndpoint) -> Channel {
    let key = Self.key(endpoint)
    if let c = channels[key] { return c }
    let channel = Channel(endpoint)
    channels[key] = channel
    Resolver.resolve(host: endpoint.host, port: endpoint.port, on: loop) { [weak self, channel] result in
      guard let self, !channel.finished else { return }
      switch result {
      case .success(let address): self.connect(channel, to: address)
      case .failure(let e):
        self.finish(
          channel, TarsCallError(code: TarsReturnCode.proxyConnectError, "cannot connect to \(endpoint): \(e)"))
      }
    }
    // One deadline for resolving and connecting together.
    loop.schedule(afterMilliseconds: options.connectTimeoutMs) { [weak self, weak channel] in
      guard let self, let channel, !channel.finished else { return }
      if let connection = channel.connection {
        if connection.connecting {
          connection.close(.connectFailed(SystemError("connect to \(endpoint)", errno: ETIMEDOUT)))
        }
      } else {
        self.finish(
          channel,
          TarsCallError(
            code: TarsReturnCode.proxyConnectError,
            "cannot connect to \(endpoint): no answer from the resolver within \(self.options.connectTimeoutMs) ms"))
      }
    }
    return channel
  }

  /// Fails every call of a channel that will never (again) have a connection, and forgets it.
  func finish(_ channel: Channel, _ error: TarsCallError) {
    channel.finished = true
    let key = Self.key(channel.endpoint)
    if channels[key] === channel { channels[key] = nil }
    let pending = channel.pending
    channel.pending.removeAll()
    for p in pending.values {
      if let t = p.timer { loop.cancel(t) }
      p.completion(.failure(error))
    }
  }

  func connect(_ channel: Channel, to address: SocketAddress) {
    let endpoint = channel.endpoint
    let connection: FramedConnection
    do {
      let fd = try Socket.connect(address)
      connection = FramedConnection(
        loop: loop, fd: fd, peer: address, connecting: true, maxFrameLength: options.maxFrameLength)
      do {
        try connection.start()
      } catch {
        Glibc.close(fd)
        throw error
      }
    } catch {
      finish(channel, TarsCallError(code: TarsReturnCode.proxyConnectError, "cannot connect to \(endpoint): \(error)"))
      return
    }
    channel.connection = connection
    // The closures hold the channel; FramedConnection.close() drops them, breaking the cycle.
    connection.onFrame = { [channel, unowned connection] body in
      let response: ResponsePacket
      do throws(TarsDecodeError) {
        response = try ResponsePacket(tarsBytes: body)
      } catch {
        connection.close(.badPacket(error))
        return
      }
      guard let p = channel.pending.removeValue(forKey: response.iRequestId) else { return }  // late or pushed
      if let t = p.timer { connection.loop.cancel(t) }
      p.completion(.success(response))
    }
    connection.onClose = { [weak self, channel] reason in
      let error: TarsCallError
      switch reason {
      case .connectFailed(let e):
        error = TarsCallError(code: TarsReturnCode.proxyConnectError, "cannot connect to \(endpoint): \(e.detail)")
      case .failed(let e):
        error = TarsCallError(code: TarsReturnCode.sendRequestError, "connection to \(endpoint) failed: \(e)")
      case .badFrame(let e):
        error = TarsCallError(code: TarsReturnCode.clientDecodeError, "bad reply from \(endpoint): \(e)")
      case .badPacket(let e):
        error = TarsCallError(code: TarsReturnCode.clientDecodeError, "bad reply from \(endpoint): \(e)")
      case .peerClosed, .local, .idle:
        error = TarsCallError(
          code: TarsReturnCode.sendRequestError, "connection to \(endpoint) closed before the reply")
      }
      if let self {
        self.finish(channel, error)
      } else {
        channel.finished = true
        for p in channel.pending.values { p.completion(.failure(error)) }
        channel.pending.removeAll()
      }
    }
    let queued = channel.queued
    channel.queued = []
    if !queued.isEmpty { connection.send(queued) }
  }
}

/// Calls one object: directly at the endpoints of its address, or by name through a locator.
/// Endpoints are used in round-robin order.
public final class TarsProxy {
  public let client: TarsClient
  public let address: TarsObjectAddress
  public let locator: TarsLocator?
  var cursor = 0

  public init(client: TarsClient, address: TarsObjectAddress, locator: TarsLocator? = nil) {
    self.client = client
    self.address = address
    self.locator = locator
  }

  /// `App.Server.Obj@tcp -h … -p …`, or a bare name with a locator.
  public convenience init(client: TarsClient, _ text: String, locator: TarsLocator? = nil) throws(TarsAddressError) {
    self.init(client: client, address: try TarsObjectAddress(parsing: text), locator: locator)
  }

  /// Sends a request (servant name filled in) and completes with the raw reply.
  public func invoke(_ request: RequestPacket, timeoutMs: Int, completion: @escaping TarsClient.Completion) {
    var request = request
    request.sServantName = address.name
    selectEndpoint { [client] result in
      switch result {
      case .success(let endpoint): client.invoke(request, to: endpoint, timeoutMs: timeoutMs, completion: completion)
      case .failure(let error): completion(.failure(error))
      }
    }
  }

  /// Calls `M` and completes with its decoded result, or the framework's error.
  public func call<M: TarsMethod>(
    _: M.Type, _ args: M.Args, options: TarsCallOptions = TarsCallOptions(),
    completion: @escaping (Result<M.Result, TarsCallError>) -> Void
  ) {
    invoke(M.request(servant: address.name, args, options: options), timeoutMs: options.timeoutMs) { result in
      completion(result.flatMap { response in Result { () throws(TarsCallError) in try M.result(from: response) } })
    }
  }

  /// Sends `M` ONEWAY: no reply is expected or waited for.
  public func oneway<M: TarsMethod>(
    _: M.Type, _ args: M.Args, options: TarsCallOptions = TarsCallOptions(),
    completion: ((TarsCallError?) -> Void)? = nil
  ) {
    invoke(M.request(servant: address.name, args, oneway: true, options: options), timeoutMs: options.timeoutMs) {
      completion?($0.failure)
    }
  }

  func selectEndpoint(_ completion: @escaping (Result<TarsEndpoint, TarsCallError>) -> Void) {
    if !address.endpoints.isEmpty {
      cursor = (cursor + 1) % address.endpoints.count
      completion(.success(address.endpoints[cursor]))
      return
    }
    guard let locator else {
      completion(
        .failure(
          TarsCallError(
            code: TarsReturnCode.adapterNull, "\(address.name) has no endpoints and no locator is configured")))
      return
    }
    locator.nextEndpoint(for: address.name, completion: completion)
  }
}

extension Result {
  var failure: Failure? {
    if case .failure(let e) = self { return e }
    return nil
  }
}

/// Resolves object names through a registry's QueryObj (`findObjectByIdInSameGroup`, what
/// TarsCpp proxies call), caching answers as `LocatorCache` describes. Concurrent lookups of
/// one name share one request.
public final class TarsLocator {
  public let proxy: TarsProxy
  public var timeoutMs = 3000
  var cache: LocatorCache
  var waiting: [String: [(Result<LocatorEntry, TarsCallError>) -> Void]] = [:]

  /// `address` is the locator itself, e.g. `tars.tarsregistry.QueryObj@tcp -h 10.0.0.10 -p 17890`.
  public init(client: TarsClient, address: TarsObjectAddress, refreshIntervalMs: UInt64 = 60_000) {
    proxy = TarsProxy(client: client, address: address)
    cache = LocatorCache(refreshIntervalMs: refreshIntervalMs)
  }

  static func nowMs() -> UInt64 { TarsEventLoop.now() / 1_000_000 }

  /// The cached answer for `name`, fetching it first if there is none; a stale answer is
  /// returned at once and refreshed behind it.
  public func entry(for name: String, completion: @escaping (Result<LocatorEntry, TarsCallError>) -> Void) {
    switch cache.lookup(name, nowMs: Self.nowMs()) {
    case .fresh(let e):
      completion(.success(e))
    case .stale(let e):
      completion(.success(e))
      fetch(name, completion: nil)
    case .missing:
      fetch(name, completion: completion)
    }
  }

  func nextEndpoint(for name: String, completion: @escaping (Result<TarsEndpoint, TarsCallError>) -> Void) {
    entry(for: name) { [weak self] result in
      switch result {
      case .failure(let e): completion(.failure(e))
      case .success:
        if let endpoint = self?.cache.nextEndpoint(name) {
          completion(.success(endpoint))
        } else {
          completion(
            .failure(TarsCallError(code: TarsReturnCode.adapterNull, "the locator knows no active endpoint of \(name)"))
          )
        }
      }
    }
  }

  func fetch(_ name: String, completion: ((Result<LocatorEntry, TarsCallError>) -> Void)?) {
    if waiting[name] != nil {
      if let completion { waiting[name]!.append(completion) }
      return
    }
    waiting[name] = completion.map { [$0] } ?? []
    proxy.call(QueryF.FindObjectByIdInSameGroup.self, .init(id: name), options: TarsCallOptions(timeoutMs: timeoutMs)) {
      [weak self] result in
      guard let self else { return }
      let waiters = self.waiting.removeValue(forKey: name) ?? []
      switch result {
      case .success(let r):
        let entry = self.cache.store(
          name, active: r.activeEp.map(TarsEndpoint.init), inactive: r.inactiveEp.map(TarsEndpoint.init),
          nowMs: Self.nowMs())
        for w in waiters { w(.success(entry)) }
      case .failure(let e):
        for w in waiters { w(.failure(e)) }
      }
    }
  }
}

extension TarsProxy {
  /// Calls `M` and waits for the result by running the proxy's loop. For command-line tools and
  /// tests; never call it from a callback of the same loop.
  public func callBlocking<M: TarsMethod>(
    _ method: M.Type, _ args: M.Args, options: TarsCallOptions = TarsCallOptions()
  ) throws(TarsCallError) -> M.Result {
    var outcome: Result<M.Result, TarsCallError>?
    call(method, args, options: options) { outcome = $0 }
    client.loop.run(until: { outcome != nil })
    return try outcome!.get()
  }
}
