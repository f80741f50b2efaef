import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TarsAdminAPI
import TarsAuth
import TarsFramework
import TarsImageService
import TarsKube
import TarsMonitorService
import TarsNIO
import TarsNotifyService
import TarsProtocol

extension ServerRow: ResponseEncodable {}
extension PodRow: ResponseEncodable {}
extension PodCallResult: ResponseEncodable {}
extension NotificationRow: ResponseEncodable {}
extension EventRow: ResponseEncodable {}
extension ApplyRow: ResponseEncodable {}
extension NodePortRow: ResponseEncodable {}
extension FreePortsRow: ResponseEncodable {}
extension InterfaceStatRow: ResponseEncodable {}
extension PropertyStatRow: ResponseEncodable {}

/// The admin HTTP API: what the operator (through `tarsctl`) sees and does — servers, pods and
/// their states, notifications, events; start, stop, restart and commands fanned out to each
/// pod's NodeObj; applying manifests, scaling and deleting servers. Every request needs the
/// bearer token; it listens where it is told (loopback in one-machine mode).
public final class AdminServer: Sendable {
  public struct Dependencies: Sendable {
    public var store: any ObjectStore
    public var namespace: String
    public var tservers: Informer
    public var pods: Informer
    /// Signs NodeObj calls (the secret every tarsnode checks).
    public var nodeAuth: NodeCallAuth
    public var nodeObjPort = 19385
    /// Where each node's tarsagent serves AgentObj (its node's address).
    public var agentPort = 19388
    /// Call statistics and properties (nil: the monitor routes answer 503).
    public var monitor: MonitorService? = nil
    /// The log service's LogQueryObj (nil: the remote-log routes answer 503).
    public var logQuery: TarsEndpoint? = nil
    /// The most replicas `apply` and `scale` accept (nil: no limit).
    public var maxReplicas: Int? = nil
    public var nodeClient: TarsNIOClient
    /// Builds releases from uploaded packages (nil: the image routes answer 503).
    public var images: ImageService? = nil
    /// The largest package an upload may carry.
    public var maxUploadBytes: Int64 = 1 << 30
    /// The tarsnode pid of each pod, where the control plane runs them itself.
    public var processes: @Sendable () async -> [String: Int32] = { [:] }
    /// The last `tail` lines of a pod's server output (or tarsnode's own log), nil if unknown.
    /// By default the store's `pods/log` of the server container (on a cluster tarsnode is that
    /// container's PID 1 and copies the server's output to its own, so both are there).
    public var logs:
      @Sendable (_ pod: String, _ app: String, _ server: String, _ tail: Int, _ node: Bool) async throws -> String?

    public init(
      store: any ObjectStore, namespace: String, tservers: Informer, pods: Informer, nodeAuth: NodeCallAuth,
      nodeClient: TarsNIOClient
    ) {
      self.store = store
      self.namespace = namespace
      self.tservers = tservers
      self.pods = pods
      self.nodeAuth = nodeAuth
      self.nodeClient = nodeClient
      self.logs = { pod, app, server, tail, _ in
        try await store.podLog(
          namespace: namespace, name: pod, container: "\(app)-\(server)".lowercased(), tailLines: tail)
      }
    }
  }

  let http: HTTPService
  public var port: Int { http.port }

  /// Binds `host:port` (0: any free port) and serves until `stop()`.
  public static func start(
    host: String, port: Int, tokens: AdminTokens, dependencies d: Dependencies,
    log: @escaping @Sendable (String) -> Void
  ) async throws -> AdminServer {
    let router = Router()
    router.add(
      middleware: AccessMiddleware(tokens: tokens) { entry in
        log(entry.line)
        do throws(StoreError) {
          _ = try await d.store.create(.events, entry.event(namespace: d.namespace))
        } catch {
          log("admin: cannot record the audit Event (\(error.message)); the line above stands")
        }
      })
    let routes = AdminRoutes(d: d)
    let group = router.group(RouterPath(AdminAPI.prefix))
    routes.register(on: group)
    routes.registerImages(on: group)
    routes.registerNodes(on: group)
    routes.registerMonitor(on: group)
    routes.registerRemoteLogs(on: group)
    return AdminServer(
      http: try await HTTPService.start(router: router, host: host, port: port, name: "admin API", log: log))
  }

  init(http: HTTPService) { self.http = http }

  /// Lets requests in flight finish, then closes the listener.
  public func stop() async { await http.stop() }
}

/// A Hummingbird application on its own task: started once it listens (or the reason it could
/// not), stopped gracefully. The admin API and the Kubernetes API front both run this way.
struct HTTPService: Sendable {
  let port: Int
  let task: Task<Void, Never>
  let group: ServiceGroup

  /// Binds `host:port` (0: any free port); returns once listening, or throws a `ListenError`.
  static func start(
    router: Router<BasicRequestContext>, host: String, port: Int, name: String,
    log: @escaping @Sendable (String) -> Void
  ) async throws -> HTTPService {
    var logger = Logger(label: "tars.\(name)")
    logger.logLevel = .warning
    let (bound, boundContinuation) = AsyncStream<Int>.makeStream()
    let running = RunningFlag()
    let app = Application(
      router: router, configuration: .init(address: .hostname(host, port: port), serverName: "tars"),
      onServerRunning: { channel in
        running.value.store(true, ordering: .relaxed)
        boundContinuation.yield(channel.localAddress?.port ?? port)
      }, logger: logger)
    let (failed, failedContinuation) = AsyncStream<AdminStartError>.makeStream()
    // Its own service group without signal handlers: the control plane decides when to stop.
    let serviceGroup = ServiceGroup(
      configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
    let task = Task {
      do {
        try await serviceGroup.run()
      } catch {
        failedContinuation.yield(
          (error as? IOError).map {
            AdminStartError(listen: ListenError(service: name, host: host, port: port, io: $0))
          } ?? AdminStartError(message: "\(error)"))
        // A failure to start is the caller's to say (as a ListenError); a stop once running is ours.
        if running.value.load(ordering: .relaxed) { log("\(name): stopped: \(error)") }
      }
      failedContinuation.finish()
      boundContinuation.finish()
    }
    // Whichever comes first: the port, or the reason it could not bind.
    let outcome = await withTaskGroup(of: Result<Int, AdminStartError>?.self) { group in
      group.addTask {
        for await p in bound { return .success(p) }
        return nil
      }
      group.addTask {
        for await failure in failed { return .failure(failure) }
        return nil
      }
      var result: Result<Int, AdminStartError>?
      for await r in group where r != nil {
        result = r
        break
      }
      group.cancelAll()
      return result ?? .failure(AdminStartError(message: "the \(name) did not start"))
    }
    switch outcome {
    case .success(let p): return HTTPService(port: p, task: task, group: serviceGroup)
    case .failure(let e):
      task.cancel()
      if let listen = e.listen { throw listen }
      throw AdminStartError(message: "cannot serve the \(name) on \(host):\(port): \(e.message)")
    }
  }

  /// Lets requests in flight finish, then closes the listener.
  func stop() async {
    await group.triggerGracefulShutdown()
    await task.value
  }
}

/// Whether the API got as far as listening.
final class RunningFlag: Sendable {
  let value = Atomic<Bool>(false)
}

public struct AdminStartError: Error, Sendable, CustomStringConvertible {
  public var message: String
  /// Set when the API could not listen.
  public var listen: ListenError?

  init(message: String) { self.message = message }
  init(listen: ListenError) {
    message = listen.description
    self.listen = listen
  }

  public var description: String { message }
}

struct AdminRoutes: Sendable {
  let d: AdminServer.Dependencies

  func register(on g: RouterGroup<BasicRequestContext>) {
    g.get("servers") { _, _ in await servers() }
    g.get("pods") { request, _ in await pods(server: request.uri.queryParameters["server"].map(String.init)) }
    for action in ["start", "stop", "restart"] {
      g.post("servers/:id/\(action)") { _, context in
        try await fanOut(try server(context), action: action, command: nil)
      }
    }
    g.post("servers/:id/notify") { request, context in
      let body = try await request.decode(as: NotifyRequest.self, context: context)
      guard !body.command.trimmingCharacters(in: .whitespaces).isEmpty else {
        throw HTTPError(.badRequest, message: "command is empty: e.g. tars.viewstatus")
      }
      return try await fanOut(try server(context), action: "notify", command: body.command)
    }
    g.post("pods/:pod/drain") { request, context in
      let body = try await request.decode(as: DrainRequest.self, context: context)
      let name = try context.parameters.require("pod")
      guard d.pods.object(namespace: d.namespace, name: name) != nil else {
        throw HTTPError(.notFound, message: "no pod \(name): tarsctl pods lists them")
      }
      let value: JSONValue = body.drained ? .string(kubeTimestamp()) : .null
      _ = try await storeCall {
        try await d.store.patch(
          .pods, namespace: d.namespace, name: name,
          .merge(.object([("metadata", .object([("annotations", .object([(Pod.drainedAnnotation, value)]))]))])),
          status: false)
      }
      return ApplyRow(kind: "Pod", name: name, action: body.drained ? "drained" : "undrained")
    }
    g.post("servers/:id/scale") { request, context in
      let body = try await request.decode(as: ScaleRequest.self, context: context)
      let most = d.maxReplicas ?? Int(Int32.max)
      guard (0...most).contains(body.replicas) else {
        throw HTTPError(.badRequest, message: "replicas must be 0-\(most), not \(body.replicas)")
      }
      let t = try server(context)
      _ = try await storeCall {
        try await d.store.patch(
          .tservers, namespace: d.namespace, name: t.name,
          .merge(.object([("spec", .object([("k8s", .object([("replicas", .integer(Int64(body.replicas)))]))]))])),
          status: false)
      }
      return ApplyRow(kind: "TServer", name: t.name, action: "scaled to \(body.replicas)")
    }
    g.delete("servers/:id") { _, context in
      let t = try server(context)
      _ = try await storeCall { try await d.store.delete(.tservers, namespace: d.namespace, name: t.name) }
      return ApplyRow(kind: "TServer", name: t.name, action: "deleted")
    }
    g.post("apply") { request, context in
      var request = request
      let buffer = try await request.collectBody(upTo: 4 << 20)
      let text = String(buffer: buffer)
      let objects: [KubeObject]
      do {
        objects = try ManifestApplier.parse(text, source: "the manifest")
      } catch {
        throw HTTPError(.badRequest, message: "\(error)")
      }
      return await ManifestApplier(store: d.store, namespace: d.namespace, maxReplicas: d.maxReplicas.map(Int64.init))
        .apply(objects)
    }
    g.get("notifications") { request, _ in
      let server = request.uri.queryParameters["server"].map(String.init)
      let limit = request.uri.queryParameters["limit"].flatMap { Int($0) } ?? 100
      let events = try await storeCall {
        try await d.store.list(
          .events, namespace: d.namespace, options: ListOptions(labelSelector: NotifyService.selector))
      }
      return NotifyService.records(events.items, server: server, limit: max(1, min(limit, 10_000))).map {
        NotificationRow(
          time: kubeTimestamp($0.time), server: $0.server, source: $0.source, level: Int($0.level),
          message: $0.message, alarm: $0.isAlarm)
      }
    }
    g.get("events") { request, _ in
      let limit = request.uri.queryParameters["limit"].flatMap { Int($0) } ?? 200
      let list = try await storeCall { try await d.store.list(.events, namespace: d.namespace, options: ListOptions()) }
      let ordered = list.items.sorted { (Int64($0.resourceVersion) ?? 0) < (Int64($1.resourceVersion) ?? 0) }
      let rows = ordered.map { e in
        EventRow(
          time: e.json["lastTimestamp"]?.stringValue ?? "",
          object: e.json[path: ["involvedObject", "name"]]?.stringValue ?? "",
          type: e.json["type"]?.stringValue ?? "", reason: e.json["reason"]?.stringValue ?? "",
          message: e.json["message"]?.stringValue ?? "")
      }
      return Array(rows.suffix(max(1, limit)))
    }
    g.get("pods/:pod/logs") { request, context in
      let name = try context.parameters.require("pod")
      guard let pod = d.pods.object(namespace: d.namespace, name: name) else {
        throw HTTPError(.notFound, message: "no pod \(name): tarsctl pods lists them")
      }
      let tail = min(100_000, request.uri.queryParameters["tail"].flatMap { Int($0) } ?? 100)
      let node = request.uri.queryParameters["node"].map { $0 == "1" || $0 == "true" } ?? false
      guard
        let text = try await storeCall({
          try await d.logs(
            name, pod.labels["tars.io/ServerApp"] ?? "", pod.labels["tars.io/ServerName"] ?? "", max(1, tail), node)
        })
      else {
        throw HTTPError(.notFound, message: "no log for \(name) yet")
      }
      return text
    }
  }

  /// The TServer named by `:id`: `App.Server` (what operators type) or its object name.
  func server(_ context: BasicRequestContext) throws -> KubeObject {
    let id = try context.parameters.require("id")
    guard let found = tserver(id) else {
      throw HTTPError(.notFound, message: "no server \(id): tarsctl servers lists them")
    }
    return found
  }

  /// The TServer `id` names: `App.Server` (what operators type) or its object name.
  func tserver(_ id: String) -> KubeObject? {
    let all = d.tservers.objects.values
    return all.first { "\($0.spec?["app"]?.stringValue ?? "").\($0.spec?["server"]?.stringValue ?? "")" == id }
      ?? all.first { $0.name == id }
  }

  func servers() async -> [ServerRow] {
    let pods = d.pods.objects.values
    return d.tservers.objects.values.sorted { $0.name < $1.name }.map { t in
      let app = t.spec?["app"]?.stringValue ?? ""
      let server = t.spec?["server"]?.stringValue ?? ""
      let mine = pods.filter { $0.labels["tars.io/ServerApp"] == app && $0.labels["tars.io/ServerName"] == server }
      return ServerRow(
        id: "\(app).\(server)", app: app, server: server, subType: t.spec?["subType"]?.stringValue ?? "",
        replicas: Int(TServer(t).replicas), image: t.spec?[path: ["release", "image"]]?.stringValue ?? "",
        template: TServer(t).template ?? "", pods: mine.count,
        activePods: mine.filter { Pod($0).isTarsActive }.count)
    }
  }

  func pods(server: String?) async -> [PodRow] {
    let pids = await d.processes()
    return d.pods.objects.values.sorted { $0.name < $1.name }.compactMap { p in
      let id = "\(p.labels["tars.io/ServerApp"] ?? "").\(p.labels["tars.io/ServerName"] ?? "")"
      if let server, server != id { return nil }
      let active = p.condition("tars.io/active")
      return PodRow(
        name: p.name, server: id, ip: p.status?["podIP"]?.stringValue ?? "",
        phase: p.status?["phase"]?.stringValue ?? "", ready: p.condition("Ready")?["status"]?.stringValue == "True",
        active: active?["status"]?.stringValue == "True", state: active?["reason"]?.stringValue ?? "",
        restarts: Int(p.status?["containerStatuses"]?.arrayValue?.first?["restartCount"]?.intValue ?? 0),
        startTime: p.status?["startTime"]?.stringValue ?? "", pid: pids[p.name].map(Int.init))
    }
  }

  /// Calls every pod's NodeObj at once, each call signed, and collects the answers.
  func fanOut(_ t: KubeObject, action: String, command: String?) async throws -> [PodCallResult] {
    let app = t.spec?["app"]?.stringValue ?? ""
    let server = t.spec?["server"]?.stringValue ?? ""
    let targets = d.pods.objects.values.filter {
      $0.labels["tars.io/ServerApp"] == app && $0.labels["tars.io/ServerName"] == server
    }.sorted { $0.name < $1.name }
    guard !targets.isEmpty else { throw HTTPError(.conflict, message: "\(app).\(server) has no pods") }
    return await withTaskGroup(of: PodCallResult.self) { group in
      for pod in targets {
        group.addTask {
          guard let ip = pod.status?["podIP"]?.stringValue, !ip.isEmpty else {
            return PodCallResult(pod: pod.name, ok: false, result: "the pod has no address yet")
          }
          return await call(pod: pod.name, ip: ip, app: app, server: server, action: action, command: command)
        }
      }
      var out: [PodCallResult] = []
      for await r in group { out.append(r) }
      return out.sorted { $0.pod < $1.pod }
    }
  }

  func call(pod: String, ip: String, app: String, server: String, action: String, command: String?) async
    -> PodCallResult
  {
    let servant = "tars.tarsnode.NodeObj"
    let options = TarsCallOptions(timeoutMs: 30_000)
    var request: RequestPacket
    switch action {
    case "start":
      request = TarsFramework.Node.StartServer.request(
        servant: servant, .init(application: app, serverName: server), options: options)
    case "stop":
      request = TarsFramework.Node.StopServer.request(
        servant: servant, .init(application: app, serverName: server), options: options)
    case "restart":
      request = TarsFramework.Node.RestartServer.request(
        servant: servant, .init(application: app, serverName: server), options: options)
    default:
      request = TarsFramework.Node.NotifyServer.request(
        servant: servant, .init(application: app, serverName: server, command: command ?? ""), options: options)
    }
    d.nodeAuth.sign(&request, target: pod, timestamp: unixTimeSeconds())
    do {
      let response = try await d.nodeClient.invoke(
        request, to: TarsEndpoint(host: ip, port: d.nodeObjPort, timeout: 30_000), timeoutMs: 30_000)
      let (ret, result): (Int32, String)
      switch action {
      case "start": (ret, result) = try TarsFramework.Node.StartServer.result(from: response).pair
      case "stop": (ret, result) = try TarsFramework.Node.StopServer.result(from: response).pair
      case "restart": (ret, result) = try TarsFramework.Node.RestartServer.result(from: response).pair
      default: (ret, result) = try TarsFramework.Node.NotifyServer.result(from: response).pair
      }
      return PodCallResult(pod: pod, ok: ret == 0, result: result)
    } catch {
      return PodCallResult(pod: pod, ok: false, result: "NodeObj at \(ip):\(d.nodeObjPort): \(error)")
    }
  }

  /// Store errors as HTTP errors with the API's status code and message.
  func storeCall<T>(_ body: () async throws -> T) async throws -> T {
    do {
      return try await body()
    } catch let error as StoreError {
      throw HTTPError(HTTPResponse.Status(code: error.code), message: error.message)
    }
  }
}

protocol NodeResult {
  var ret: Int32 { get }
  var result: String { get }
}
extension NodeResult {
  var pair: (Int32, String) { (ret, result) }
}
extension TarsFramework.Node.StartServer.Result: NodeResult {}
extension TarsFramework.Node.StopServer.Result: NodeResult {}
extension TarsFramework.Node.RestartServer.Result: NodeResult {}
extension TarsFramework.Node.NotifyServer.Result: NodeResult {}
