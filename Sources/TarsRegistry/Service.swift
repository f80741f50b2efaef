import NIOCore
import NIOHTTP1
import NIOPosix
import TarsFramework
import TarsKube
import TarsNIO
import TarsProtocol

/// The registry as a running service: the view's informers, QueryObj and RegistryObj on the
/// NIO server, and `/metrics` + `/healthz` over HTTP.
public final class RegistryService: Sendable {
  public struct Configuration: Sendable {
    public var namespace: String
    public var hostStyle: HostStyle = .ip
    public var bindHost = "0.0.0.0"
    public var queryPort = 17890
    public var registryPort = 17891
    /// nil: no metrics listener.
    public var metricsPort: Int? = nil
    /// The name other servers reach the registry by (its Service).
    public var advertisedHost = "tars-tarsregistry"
    public var extraBuiltins: [String: [EndpointF]] = [:]
    /// How long start-up waits for the caches before giving up.
    public var syncTimeoutMs = 30_000

    public init(namespace: String) { self.namespace = namespace }
  }

  public let view: RegistryView
  public let patcher: StatePatcher
  let store: any ObjectStore
  public let query: TarsNIOServer
  public let registry: TarsNIOServer
  public let metricsChannel: (any Channel)?
  let task: Task<Void, Never>

  init(
    store: any ObjectStore, view: RegistryView, patcher: StatePatcher, query: TarsNIOServer, registry: TarsNIOServer,
    metricsChannel: (any Channel)?, task: Task<Void, Never>
  ) {
    self.store = store
    self.view = view
    self.patcher = patcher
    self.query = query
    self.registry = registry
    self.metricsChannel = metricsChannel
    self.task = task
  }

  public static func start(
    store: any ObjectStore, configuration c: Configuration, group: any EventLoopGroup,
    log: @escaping @Sendable (String) -> Void
  ) async throws -> RegistryService {
    var builtins = RegistryView.Options.registryBuiltins(
      host: c.advertisedHost, queryPort: Int32(c.queryPort), registryPort: Int32(c.registryPort))
    builtins.merge(c.extraBuiltins) { _, new in new }
    let view = RegistryView(
      store: store, options: RegistryView.Options(namespace: c.namespace, hostStyle: c.hostStyle, builtins: builtins))
    let patcher = StatePatcher(store: store, view: view, log: log)
    let task = Task { await view.run() }
    // Nothing is served before the caches hold the cluster: an empty answer would send clients
    // nowhere, and the upChain would catch ids the cluster serves.
    let deadline = ContinuousClock.now + .milliseconds(c.syncTimeoutMs)
    while !view.hasSynced {
      guard ContinuousClock.now < deadline else {
        task.cancel()
        let why = [view.pods, view.servers, view.templates, view.frameworkConfigs].compactMap(\.lastError).first
        throw RegistryStartError(
          description:
            "the registry could not load pods and TServers of namespace \(c.namespace) within \(c.syncTimeoutMs / 1000) s"
            + (why.map { ": \($0)" } ?? "")
            + (why?.code == 404 ? " (are the CRDs in deploy/crds applied?)" : ""))
      }
      try await Task.sleep(for: .milliseconds(20))
    }
    var started: [TarsNIOServer] = []
    do {
      let query = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: c.bindHost, port: c.queryPort, timeout: 60000),
        servants: ["tars.tarsregistry.QueryObj": QueryDispatcher(view: view)], group: group)
      started.append(query)
      let registry = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: c.bindHost, port: c.registryPort, timeout: 60000),
        servants: ["tars.tarsregistry.RegistryObj": RegistryServantImpl(view: view, patcher: patcher)], group: group)
      started.append(registry)
      var metrics: (any Channel)?
      if let port = c.metricsPort {
        metrics = try await MetricsHTTP.start(host: c.bindHost, port: port, group: group) { path in
          switch path {
          case "/metrics": (200, view.metrics.exposition())
          case "/healthz": view.hasSynced ? (200, "ok\n") : (503, "informers not synced\n")
          default: (404, "not found\n")
          }
        }
      }
      return RegistryService(
        store: store, view: view, patcher: patcher, query: query, registry: registry, metricsChannel: metrics,
        task: task)
    } catch {
      task.cancel()
      for server in started { try? await server.close() }
      throw error
    }
  }

  /// Marks the registry's own pod Active (its readiness gate), as K8SFramework's registry does:
  /// three tries, two seconds apart.
  public func activateOwnPod(_ pod: String, log: @Sendable (String) -> Void) async {
    let patch = Patch.strategicMerge(
      .object([
        (
          "status",
          .object([
            (
              "conditions",
              .array([
                .object([
                  ("type", .string("tars.io/active")), ("status", .string("True")),
                  ("reason", .string("Active/Active")),
                ])
              ])
            )
          ])
        )
      ]))
    for attempt in 1...3 {
      do throws(StoreError) {
        _ = try await store.patch(.pods, namespace: view.options.namespace, name: pod, patch, status: true)
        return
      } catch {
        log("registry: cannot mark its own pod \(pod) active (try \(attempt) of 3): \(error)")
        try? await Task.sleep(for: .seconds(2))
      }
    }
  }

  public func stop() async {
    task.cancel()
    try? await query.close()
    try? await registry.close()
    try? await metricsChannel?.close()
  }
}

/// A minimal HTTP/1.1 GET responder for metrics and health (the registry's and the
/// controller's `/metrics` and `/healthz`).
public enum MetricsHTTP {
  /// `service` names the listener in a `ListenError` (which flag to change).
  public static func start(
    host: String, port: Int, group: any EventLoopGroup, service: String = "metrics",
    respond: @escaping @Sendable (String) -> (Int, String)
  ) async throws -> any Channel {
    let bootstrap = ServerBootstrap(group: group)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.pipeline.configureHTTPServerPipeline().flatMap {
          channel.pipeline.addHandler(Handler(respond: respond))
        }
      }
    return try await ListenError.naming(service, host: host, port: port) {
      try await bootstrap.bind(host: host, port: port).get()
    }
  }

  final class Handler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let respond: @Sendable (String) -> (Int, String)

    init(respond: @escaping @Sendable (String) -> (Int, String)) { self.respond = respond }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      guard case .head(let head) = unwrapInboundIn(data) else { return }
      let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
      let (code, body) = head.method == .GET ? respond(path) : (405, "only GET\n")
      var headers = HTTPHeaders()
      headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
      headers.add(name: "Content-Length", value: String(body.utf8.count))
      let response = HTTPResponseHead(
        version: head.version, status: HTTPResponseStatus(statusCode: code), headers: headers)
      context.write(wrapOutboundOut(.head(response)), promise: nil)
      context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
      context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
  }
}

public struct RegistryStartError: Error, CustomStringConvertible {
  public var description: String
}
