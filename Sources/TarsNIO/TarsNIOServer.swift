import NIOCore
import NIOPosix
import TarsProtocol

/// The servants of a SwiftNIO server; they must be `Sendable` because every event-loop thread
/// calls them.
struct SendableServantTable: @unchecked Sendable {
  let table: TarsServantTable

  init(_ servants: [String: any TarsDispatcher & Sendable]) {
    table = TarsServantTable(servants.mapValues { $0 as any TarsDispatcher })
  }
}

/// A Tars server on SwiftNIO for the control plane: many connections across the event loops of
/// a group, pipelined requests answered as they complete, replies flushed once per read batch.
/// Same serving rules as the POSIX server (`TarsServantTable`).
public final class TarsNIOServer: Sendable {
  public struct Options: Sendable {
    public var maxFrameLength: Int
    /// Close connections idle this long; nil takes the endpoint's `-t`, 0 never closes.
    public var idleTimeoutMs: Int?

    public init(maxFrameLength: Int = TarsFrame.defaultMaxLength, idleTimeoutMs: Int? = nil) {
      self.maxFrameLength = maxFrameLength
      self.idleTimeoutMs = idleTimeoutMs
    }
  }

  public let channel: any Channel
  /// The endpoint as bound (port 0 replaced by the kernel's choice).
  public let endpoint: TarsEndpoint

  init(channel: any Channel, endpoint: TarsEndpoint) {
    self.channel = channel
    self.endpoint = endpoint
  }

  public var port: Int { endpoint.port }

  /// Binds `endpoint` (tcp) and serves `servants` on `group`.
  public static func start(
    endpoint: TarsEndpoint, servants: [String: any TarsDispatcher & Sendable], group: any EventLoopGroup,
    options: Options = Options()
  ) async throws -> TarsNIOServer {
    guard endpoint.transport == .tcp else {
      throw TarsServantError("only tcp endpoints are served (udp and ssl are not implemented): \(endpoint)")
    }
    let table = SendableServantTable(servants)
    let idle = options.idleTimeoutMs ?? endpoint.timeout
    let maxFrame = options.maxFrameLength
    let bootstrap = ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 1024)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
      .childChannelOption(.maxMessagesPerRead, value: 16)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          let sync = channel.pipeline.syncOperations
          if idle > 0 { try sync.addHandler(IdleStateHandler(allTimeout: .milliseconds(Int64(idle)))) }
          try sync.addHandler(ByteToMessageHandler(TarsFrameDecoder(maxFrameLength: maxFrame)))
          try sync.addHandler(TarsServerHandler(table: table))
        }
      }
    let channel = try await ListenError.naming(
      ListenError.serviceName(servants: servants.keys), host: endpoint.host, port: endpoint.port
    ) { try await bootstrap.bind(host: endpoint.host, port: endpoint.port).get() }
    var bound = endpoint
    bound.port = channel.localAddress?.port ?? endpoint.port
    return TarsNIOServer(channel: channel, endpoint: bound)
  }

  /// Stops listening. Open connections finish on their own.
  public func close() async throws {
    try await channel.close()
  }
}

final class TarsServerHandler: ChannelInboundHandler {
  typealias InboundIn = [UInt8]
  typealias OutboundOut = ByteBuffer

  let table: SendableServantTable
  var context: ChannelHandlerContext?
  var peer: TarsPeer?
  var reading = false
  var needsFlush = false

  init(table: SendableServantTable) { self.table = table }

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    peer = context.remoteAddress.map { TarsPeer(host: $0.ipAddress ?? "?", port: $0.port ?? 0) }
  }
  func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let body = unwrapInboundIn(data)
    let request: RequestPacket
    do {
      request = try RequestPacket(tarsBytes: body)
    } catch {
      context.close(promise: nil)  // an undecodable packet cannot be answered: TarsCpp closes too
      return
    }
    reading = true
    defer { reading = false }
    let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
    let eventLoop = context.eventLoop
    table.table.handle(request, peer: peer) { response in
      let bytes = TarsFrame.encode(response, omittingDefaults: true)
      if eventLoop.inEventLoop {
        bound.value.send(bytes)
      } else {
        eventLoop.execute { bound.value.send(bytes) }
      }
    }
  }

  func send(_ bytes: [UInt8]) {
    guard let context else { return }
    context.write(wrapOutboundOut(ByteBuffer(tarsPacket: bytes)), promise: nil)
    if reading {
      needsFlush = true
    } else {
      context.flush()
    }
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    if needsFlush {
      needsFlush = false
      context.flush()
    }
  }

  /// A peer that does not read its replies stops being read from, so queued replies cannot grow
  /// without bound (the POSIX server does the same).
  func channelWritabilityChanged(context: ChannelHandlerContext) {
    context.channel.setOption(.autoRead, value: context.channel.isWritable).whenComplete { _ in }
    if context.channel.isWritable { context.read() }
    context.fireChannelWritabilityChanged()
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is IdleStateHandler.IdleStateEvent {
      context.close(promise: nil)
    } else {
      context.fireUserInboundEventTriggered(event)
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}

extension ListenError {
  /// Runs a NIO bind for `service`; a failure to listen comes out as a `ListenError`, any other
  /// error as it was.
  public static func naming<T>(
    _ service: String, host: String, port: Int, _ bind: () async throws -> T
  ) async throws -> T {
    do {
      return try await bind()
    } catch let error as IOError {
      throw ListenError(service: service, host: host, port: port, io: error)
    }
  }

  /// Why `service` could not listen, from the error a NIO bind failed with.
  public init(service: String, host: String, port: Int, io error: IOError) {
    self.init(service: service, host: host, port: port, reason: Reason(errno: error.errnoCode, detail: "\(error)"))
  }
}
