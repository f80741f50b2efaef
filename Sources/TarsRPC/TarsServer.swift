import Glibc
import TarsProtocol

/// A Tars server on an event loop: one listening endpoint, the servants bound to it, and the
/// shared serving rules of `TarsServantTable`. An undecodable packet or an impossible frame
/// length closes that connection only; a connection idle for the endpoint's `-t` is closed.
public final class TarsServer {
  public struct Options: Sendable {
    public var maxFrameLength: Int
    /// Close connections idle this long; nil takes the endpoint's `-t`, 0 never closes.
    public var idleTimeoutMs: Int?
    public var maxConnections: Int

    public init(
      maxFrameLength: Int = TarsFrame.defaultMaxLength, idleTimeoutMs: Int? = nil, maxConnections: Int = 100_000
    ) {
      self.maxFrameLength = maxFrameLength
      self.idleTimeoutMs = idleTimeoutMs
      self.maxConnections = maxConnections
    }
  }

  public let loop: TarsEventLoop
  /// The endpoint as bound (port 0 replaced by the port the kernel chose).
  public private(set) var endpoint: TarsEndpoint
  let options: Options
  let table: TarsServantTable
  let listenFD: Int32
  let idleTimeoutNs: UInt64
  var connections: [Int32: FramedConnection] = [:]
  var closed = false
  /// Called on the loop for every request answered (not ONEWAY ones): its return code and
  /// the nanoseconds from its arrival to its answer (what the runtime's call statistics count).
  public var onServed: ((_ request: RequestPacket, _ peer: TarsPeer?, _ ret: Int32, _ elapsedNs: UInt64) -> Void)?

  /// Binds `endpoint` (tcp only) and starts accepting on `loop`.
  public init(
    loop: TarsEventLoop, endpoint: TarsEndpoint, servants: [String: any TarsDispatcher], options: Options = Options()
  ) throws(SystemError) {
    guard endpoint.transport == .tcp else {
      throw SystemError(
        "listen on \(endpoint)", detail: "only tcp endpoints are served (udp and ssl are not implemented)")
    }
    self.loop = loop
    self.options = options
    table = TarsServantTable(servants)
    let address = try SocketAddress(host: endpoint.host, port: endpoint.port)
    listenFD = try Socket.listen(address)
    var bound = endpoint
    bound.port = Socket.localAddress(listenFD).port
    self.endpoint = bound
    idleTimeoutNs = UInt64(max(0, options.idleTimeoutMs ?? endpoint.timeout)) * 1_000_000
    do {
      try loop.register(fd: listenFD, events: .readable) { [weak self] _ in self?.acceptAll() }
    } catch {
      // Every property is set, so `deinit` runs on this throw and closes the listener.
      throw error
    }
  }

  public var port: Int { endpoint.port }
  public var connectionCount: Int { connections.count }

  /// Stops listening and closes every connection.
  public func close() {
    guard !closed else { return }
    closed = true
    loop.unregister(fd: listenFD)
    Glibc.close(listenFD)
    for c in connections.values { c.close(.local) }
    connections.removeAll()
  }

  deinit { close() }

  func acceptAll() {
    while true {
      let fd: Int32
      let peer: SocketAddress
      switch Socket.accept(listenFD) {
      case .connection(let f, let p): (fd, peer) = (f, p)
      case .none: return
      case .outOfDescriptors:
        // The listener stays readable while the connection waits in the backlog; stop watching
        // it for a moment instead of spinning, and try again when descriptors may be free.
        loop.modify(fd: listenFD, events: [])
        loop.schedule(afterMilliseconds: 100) { [weak self] in
          guard let self, !self.closed else { return }
          self.loop.modify(fd: self.listenFD, events: .readable)
        }
        return
      }
      guard connections.count < options.maxConnections else {
        Glibc.close(fd)
        continue
      }
      let connection = FramedConnection(
        loop: loop, fd: fd, peer: peer, connecting: false, maxFrameLength: options.maxFrameLength)
      connection.onFrame = { [weak self, unowned connection] body in self?.serve(body, on: connection) }
      connection.onClose = { [weak self] _ in self?.connections[fd] = nil }
      do {
        try connection.start()
      } catch {
        Glibc.close(fd)
        continue
      }
      connections[fd] = connection
      if idleTimeoutNs > 0 { armIdleTimer(connection) }
    }
  }

  /// One timer per connection, re-armed lazily: it fires at the earliest possible idle deadline
  /// and only closes the connection if nothing happened since.
  func armIdleTimer(_ connection: FramedConnection) {
    loop.schedule(at: connection.lastActivity + idleTimeoutNs) { [weak self, weak connection] in
      guard let self, let connection, !connection.closed else { return }
      if TarsEventLoop.now() >= connection.lastActivity + self.idleTimeoutNs {
        connection.close(.idle)
      } else {
        self.armIdleTimer(connection)
      }
    }
  }

  func serve(_ body: [UInt8], on connection: FramedConnection) {
    let request: RequestPacket
    do {
      request = try RequestPacket(tarsBytes: body)
    } catch {
      connection.close(.badPacket(error))
      return
    }
    let bound = LoopBound(value: connection)
    let loop = self.loop
    let observer = onServed.map { LoopBound(value: $0) }
    let started = observer == nil ? 0 : TarsEventLoop.now()
    let peer = connection.tarsPeer
    table.handle(request, peer: peer) { response in
      let bytes = TarsFrame.encode(response, omittingDefaults: true)
      let ret = response.iRet
      if loop.inEventLoop {
        observer?.value(request, peer, ret, TarsEventLoop.now() - started)
        bound.value.send(bytes)
      } else {
        loop.execute {
          observer?.value(request, peer, ret, TarsEventLoop.now() - started)
          bound.value.send(bytes)
        }
      }
    }
  }
}

extension ListenError {
  /// Why `service` could not listen on `endpoint`, from a failed `TarsServer` start.
  public init(_ error: SystemError, service: String, endpoint: TarsEndpoint) {
    self.init(
      service: service, host: endpoint.host, port: endpoint.port,
      reason: error.errno == 0 ? .other(error.detail) : Reason(errno: error.errno, detail: error.detail))
  }
}
