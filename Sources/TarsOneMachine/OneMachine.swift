import Foundation
import NIOCore
import NIOPosix
import TarsAdmin
import TarsAdminAPI
import TarsAuth
import TarsConfigService
import TarsController
import TarsEmbeddedStore
import TarsFramework
import TarsImageService
import TarsKube
import TarsLocalRuntime
import TarsLogService
import TarsMonitorService
import TarsNIO
import TarsNotifyService
import TarsProtocol
import TarsRegistry

/// The whole framework in one process on one machine: the embedded store under a state
/// directory, the registry, ConfigObj, NotifyObj, the admin API, the controller that turns
/// TServers into StatefulSets and DaemonSets — the same services, on the same store interface,
/// as on Kubernetes — and the local runtime that plays the workload controllers and the kubelet,
/// running each pod as a tarsnode-supervised process.
public final class OneMachine: Sendable {
  public struct Options: Sendable {
    /// Everything that survives a restart: the store, the token, the NodeObj secret, the pods.
    public var stateDirectory = ".tars"
    /// A folder (every *.yaml / *.yml in name order) or one file applied at start.
    public var manifests: String?
    public var namespace = "tars"
    /// The framework's services listen here only.
    public var host = "127.0.0.1"
    public var queryPort = 17890
    public var registryPort = 17891
    public var configPort = 17892
    public var notifyPort = 17893
    /// StatObj and PropertyObj.
    public var monitorPort = 17894
    /// The calls' /metrics (Prometheus), 0: none.
    public var monitorMetricsPort = 17895
    /// LogObj and LogQueryObj: servers' remote logs, under the state directory's `remote-logs`.
    public var logPort = 17896
    public var adminPort = 17880
    /// 0: no metrics listener.
    public var metricsPort = 0
    public var tarsnode: String
    /// Where bare `spec.release.image` names are found (default: tarsnode's directory).
    public var programs: String?
    public var graceSeconds = 10
    public var pidNamespaces = geteuid() == 0
    /// The first pod address; the next pods get the following ones.
    public var firstPodIP = "127.0.100.1"
    /// A docker config with registry credentials, for releases (built, pushed and pulled here).
    public var dockerConfig: String?

    public init(tarsnode: String) { self.tarsnode = tarsnode }
  }

  public let options: Options
  public let store: EmbeddedStore
  public let registry: RegistryService
  public let runtime: LocalRuntime
  public let controller: Controller
  public let admin: AdminServer
  public let notify: NotifyService
  public let monitor: MonitorService
  public let stateDirectory: String
  public let tokenFile: String
  let services: [TarsNIOServer]
  let channels: [any Channel]
  let tasks: [Task<Void, Never>]
  let controllerTask: Task<Void, Never>
  let nodeClient: TarsNIOClient

  init(
    options: Options, store: EmbeddedStore, registry: RegistryService, runtime: LocalRuntime,
    controller: Controller, controllerTask: Task<Void, Never>, admin: AdminServer, notify: NotifyService,
    monitor: MonitorService, stateDirectory: String, tokenFile: String, services: [TarsNIOServer],
    channels: [any Channel], tasks: [Task<Void, Never>], nodeClient: TarsNIOClient
  ) {
    self.options = options
    self.store = store
    self.registry = registry
    self.runtime = runtime
    self.controller = controller
    self.controllerTask = controllerTask
    self.admin = admin
    self.notify = notify
    self.monitor = monitor
    self.stateDirectory = stateDirectory
    self.tokenFile = tokenFile
    self.services = services
    self.channels = channels
    self.tasks = tasks
    self.nodeClient = nodeClient
  }

  public var locator: String { "tars.tarsregistry.QueryObj@tcp -h \(options.host) -p \(registry.query.port)" }
  public var adminURL: String { "http://\(options.host):\(admin.port)" }

  /// Starts everything; on failure whatever started is stopped again and the error says why.
  public static func start(_ o: Options, log: @escaping @Sendable (String) -> Void) async throws -> OneMachine {
    let fm = FileManager.default
    let cwd = fm.currentDirectoryPath
    let state = o.stateDirectory.hasPrefix("/") ? o.stateDirectory : cwd + "/" + o.stateDirectory
    try fm.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    guard fm.isExecutableFile(atPath: o.tarsnode) else {
      throw OneMachineError("tarsnode not found at \(o.tarsnode): build it (swift build) or pass --tarsnode")
    }
    if let manifests = o.manifests, !fm.fileExists(atPath: manifests) {
      throw OneMachineError("no manifests at \(manifests): give a folder of TServer/TTemplate/TConfig YAML or one file")
    }
    let tokenFile = state + "/" + AdminAPI.tokenFileName
    let token = try secretFile(tokenFile)
    let secretPath = state + "/node.secret"
    let nodeAuth = try NodeCallAuth(secret: Array(try secretFile(secretPath).utf8))
    // Checked before anything starts, so a bad value leaves nothing running.
    let octets = o.firstPodIP.split(separator: ".").compactMap { UInt32($0) }
    guard octets.count == 4, octets[0] == 127, octets.allSatisfy({ $0 < 256 }) else {
      throw OneMachineError("--first-pod-ip must be an address in 127.0.0.0/8, not \(o.firstPodIP)")
    }

    let store = try EmbeddedStore(path: state + "/store.sqlite")
    try await prepare(store, namespace: o.namespace, log: log)

    let group = MultiThreadedEventLoopGroup.singleton
    var started: [TarsNIOServer] = []
    var metricsChannels: [any Channel] = []
    var tasks: [Task<Void, Never>] = []
    do {
      // The pods let ConfigObj tell which pod asks (per-pod files).
      let configPods = Informer(
        store: store, resource: .pods, namespace: o.namespace, selector: .tarsServer)
      let config = ConfigService(store: store, namespace: o.namespace, pods: configPods)
      tasks.append(Task { await config.run() })
      tasks.append(Task { await configPods.run() })
      let notify = NotifyService(store: store, namespace: o.namespace, log: log)
      tasks.append(Task { await notify.run() })
      let configServer = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: o.host, port: o.configPort, timeout: 60_000),
        servants: ["tars.tarsconfig.ConfigObj": config], group: group)
      started.append(configServer)
      let notifyServer = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: o.host, port: o.notifyPort, timeout: 60_000),
        servants: ["tars.tarsnotify.NotifyObj": notify], group: group)
      started.append(notifyServer)
      // Call statistics and properties, in a SQLite file beside the store.
      let monitorStore = try SQLiteMonitorStore(path: state + "/monitor.sqlite")
      try await monitorStore.migrate()
      let monitor = MonitorService(store: monitorStore, log: log)
      tasks.append(Task { await monitor.run() })
      let monitorServer = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: o.host, port: o.monitorPort, timeout: 60_000),
        servants: ["tars.tarsstat.StatObj": monitor.stat, "tars.tarsproperty.PropertyObj": monitor.property],
        group: group)
      started.append(monitorServer)
      if o.monitorMetricsPort != 0 {
        metricsChannels.append(
          try await MetricsHTTP.start(
            host: o.host, port: o.monitorMetricsPort, group: group, service: "calls' metrics"
          ) { path in
            path == "/metrics" ? (200, monitor.exposition()) : (404, "not found: GET /metrics\n")
          })
      }
      // Servers' remote logs, in tarslog's files under the state directory.
      let logService = LogService(
        files: try LogFiles(root: state + "/remote-logs", log: log), auth: nodeAuth, log: log)
      tasks.append(Task { await logService.run() })
      let logServer = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: o.host, port: o.logPort, timeout: 60_000),
        servants: ["tars.tarslog.LogObj": logService.logObj, "tars.tarslog.LogQueryObj": logService.queryObj],
        group: group)
      started.append(logServer)

      var rc = RegistryService.Configuration(namespace: o.namespace)
      rc.bindHost = o.host
      rc.queryPort = o.queryPort
      rc.registryPort = o.registryPort
      rc.metricsPort = o.metricsPort == 0 ? nil : o.metricsPort
      rc.advertisedHost = o.host
      rc.extraBuiltins = [
        "tars.tarsconfig.ConfigObj": RegistryView.Options.builtin(host: o.host, port: Int32(configServer.port)),
        "tars.tarsnotify.NotifyObj": RegistryView.Options.builtin(host: o.host, port: Int32(notifyServer.port)),
        "tars.tarsstat.StatObj": RegistryView.Options.builtin(host: o.host, port: Int32(monitorServer.port)),
        "tars.tarsproperty.PropertyObj": RegistryView.Options.builtin(host: o.host, port: Int32(monitorServer.port)),
        "tars.tarslog.LogObj": RegistryView.Options.builtin(host: o.host, port: Int32(logServer.port)),
      ]
      let registry = try await RegistryService.start(store: store, configuration: rc, group: group, log: log)

      var lc = LocalRuntimeConfiguration(
        stateDirectory: state, tarsnode: o.tarsnode,
        registry: "tars.tarsregistry.RegistryObj@tcp -h \(o.host) -p \(registry.registry.port) -t 3000",
        locator: "tars.tarsregistry.QueryObj@tcp -h \(o.host) -p \(registry.query.port)",
        notify: "tars.tarsnotify.NotifyObj@tcp -h \(o.host) -p \(notifyServer.port)", secretFile: secretPath,
        workingDirectory: cwd)
      lc.namespace = o.namespace
      lc.binDirectory = o.programs ?? (o.tarsnode as NSString).deletingLastPathComponent
      lc.graceSeconds = o.graceSeconds
      lc.pidNamespaces = o.pidNamespaces
      lc.dockerConfig = o.dockerConfig
      lc.firstAddress = octets.reduce(0) { $0 << 8 | $1 }
      // The controller of a cluster, unchanged: TServers become StatefulSets and DaemonSets,
      // which the local runtime turns into pods and processes.
      var workload = WorkloadOptions(nodeImage: "local")
      workload.registry = lc.registry
      workload.locator = lc.locator
      workload.notify = lc.notify
      workload.graceSeconds = lc.graceSeconds
      // The local runtime runs no preStop hooks: it stops a pod's tarsnode at once.
      workload.drainSeconds = 0
      let controller = Controller(
        store: store, configuration: Controller.Configuration(namespace: o.namespace, workload: workload), log: log)
      let controllerTask = Task { await controller.run() }
      let runtime = LocalRuntime(store: store, configuration: lc, log: log)
      tasks.append(Task { await runtime.run() })

      let nodeClient = TarsNIOClient(group: group)
      var deps = AdminServer.Dependencies(
        store: store, namespace: o.namespace, tservers: controller.tservers, pods: runtime.pods, nodeAuth: nodeAuth,
        nodeClient: nodeClient)
      deps.processes = { await runtime.runningPIDs() }
      deps.monitor = monitor
      deps.logQuery = TarsEndpoint(host: o.host, port: logServer.port, timeout: 10_000)
      deps.maxReplicas = lc.maxReplicas
      deps.images = ImageService(
        store: store, namespace: o.namespace,
        options: ImageService.Options(identity: "up", workDirectory: state + "/builds", dockerConfig: o.dockerConfig),
        log: log)
      deps.logs = { pod, app, server, tail, node in
        let dir = "\(state)/pods/\(pod)"
        let path =
          node ? dir + "/tarsnode.log" : LocalRuntime.outputLog(podDirectory: dir, app: app, server: server)
        return tailLines(path, tail)
      }
      let admin: AdminServer
      do {
        admin = try await AdminServer.start(
          host: o.host, port: o.adminPort, tokens: AdminTokens(admin: token), dependencies: deps, log: log)
      } catch {
        controllerTask.cancel()
        await registry.stop()
        await runtime.shutdown()
        throw error
      }
      let machine = OneMachine(
        options: o, store: store, registry: registry, runtime: runtime, controller: controller,
        controllerTask: controllerTask, admin: admin, notify: notify, monitor: monitor,
        stateDirectory: state, tokenFile: tokenFile, services: started, channels: metricsChannels, tasks: tasks,
        nodeClient: nodeClient)
      if let manifests = o.manifests {
        do {
          try await machine.apply(path: manifests, log: log)
        } catch {
          await machine.stop()
          throw error
        }
      }
      return machine
    } catch {
      for t in tasks { t.cancel() }
      for s in started { try? await s.close() }
      for c in metricsChannels { try? await c.close() }
      throw error
    }
  }

  /// Applies every manifest file under `path`; rejected objects are reported and skipped.
  @discardableResult
  public func apply(path: String, log: @Sendable (String) -> Void) async throws -> [ApplyRowWithFile] {
    guard let files = AdminAPI.manifestFiles(at: path) else { throw OneMachineError("no manifests at \(path)") }
    var objects: [(String, KubeObject)] = []
    // A file that cannot be read is reported and skipped: the others still apply.
    for file in files {
      do {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        objects += try ManifestApplier.parse(text, source: file).map { (file, $0) }
      } catch {
        log("apply: \(file) skipped: \(error)")
      }
    }
    let rows = await ManifestApplier(
      store: store, namespace: options.namespace, maxReplicas: Int64(runtime.configuration.maxReplicas)
    ).apply(objects.map(\.1))
    var out: [ApplyRowWithFile] = []
    for (row, (file, _)) in zip(rows, objects) {
      let name = (file as NSString).lastPathComponent
      if row.problems.isEmpty {
        log("apply: \(row.kind) \(row.name) \(row.action) (\(name))")
      } else {
        log("apply: \(row.kind) \(row.name) REJECTED (\(name)): \(row.problems.joined(separator: "; "))")
      }
      out.append(ApplyRowWithFile(file: file, row: row))
    }
    return out
  }

  /// Waits until every replica of every TServer is active (what a newcomer waits for after
  /// `up`), and returns how many pods that is; nil on timeout.
  public func waitUntilAllActive(timeout: Duration) async -> Int? {
    let deadline = ContinuousClock.now + timeout
    let most = Int64(runtime.configuration.maxReplicas)
    while ContinuousClock.now < deadline && !Task.isCancelled {
      // A DaemonSet runs one pod here whatever its replicas say; a StatefulSet its replicas.
      let wanted = controller.tservers.objects.values.reduce(0) { sum, t in
        guard !(t.spec?[path: ["release", "image"]]?.stringValue ?? "").isEmpty else { return sum }
        return sum
          + (t.spec?[path: ["k8s", "daemonSet"]]?.boolValue == true ? 1 : Int(max(0, min(TServer(t).replicas, most))))
      }
      let pods = runtime.pods.objects.values
      let active = pods.filter { Pod($0).isTarsActive }.count
      if controller.tservers.hasSynced && active == wanted && pods.count == wanted { return wanted }
      try? await Task.sleep(for: .milliseconds(20))
    }
    return nil
  }

  /// Stops the API, then every pod gracefully (they resume at the next start), then the
  /// framework's services.
  public func stop() async {
    await admin.stop()
    controllerTask.cancel()
    await controllerTask.value
    await runtime.shutdown()
    await registry.stop()
    for s in services { try? await s.close() }
    for c in channels { try? await c.close() }
    for t in tasks { t.cancel() }
    // The monitor writes what it holds, the current minute included, once its task ends.
    for t in tasks { await t.value }
    await monitor.store.close()
    await nodeClient.close()
  }

  /// The namespace and the default template K8SFramework installs with the framework.
  static func prepare(_ store: EmbeddedStore, namespace: String, log: @Sendable (String) -> Void) async throws {
    do {
      _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: namespace))
    } catch  where error.code == 409 {}
    do {
      _ = try await store.create(
        .ttemplates,
        KubeObject(
          .ttemplates, namespace: namespace, name: "tars.default",
          spec: .object([("content", .string(defaultTemplate)), ("parent", .string("tars.default"))])))
      log("created the default template tars.default")
    } catch  where error.code == 409 {}
  }

  /// What every server's config starts from: the locator, and the framework's ConfigObj,
  /// NotifyObj, StatObj, PropertyObj and LogObj by name.
  public static let defaultTemplate = """
    <tars>
      <application>
        enableset=${enableset}
        setdivision=${setdivision}
        <client>
          locator=${locator}
          sync-invoke-timeout=3000
          async-invoke-timeout=5000
          refresh-endpoint-interval=60000
          asyncthread=${asyncthread}
          modulename=${modulename}
          stat=tars.tarsstat.StatObj
          property=tars.tarsproperty.PropertyObj
          report-interval=60000
        </client>
        <server>
          app=${app}
          server=${server}
          localip=${localip}
          local=${local}
          basepath=${basepath}
          datapath=${datapath}
          logpath=${logpath}
          logLevel=INFO
          config=tars.tarsconfig.ConfigObj
          notify=tars.tarsnotify.NotifyObj
          log=tars.tarslog.LogObj
          deactivating-timeout=3000
        </server>
      </application>
    </tars>

    """

  /// Reads a secret file, creating it with 32 random bytes (hex) and mode 0600 the first time.
  static func secretFile(_ path: String) throws -> String {
    if FileManager.default.fileExists(atPath: path) {
      let text: String
      do {
        text = try String(contentsOfFile: path, encoding: .utf8)
      } catch {
        throw OneMachineError("cannot read \(path): \(error)")
      }
      let attributes = try FileManager.default.attributesOfItem(atPath: path)
      if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
        throw OneMachineError("\(path) is readable by others (mode \(String(mode, radix: 8))): chmod 600 it")
      }
      let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
      guard secret.count >= 32 else {
        throw OneMachineError("\(path) holds no usable secret: delete it and start again to generate a new one")
      }
      return secret
    }
    // SystemRandomNumberGenerator is the kernel's CSPRNG (getrandom) on Linux.
    var generator = SystemRandomNumberGenerator()
    let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let text = Hex.encode(bytes)
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw OneMachineError("cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let line = Array((text + "\n").utf8)
    guard write(fd, line, line.count) == line.count else { throw OneMachineError("cannot write \(path)") }
    return text
  }
}

public struct ApplyRowWithFile: Sendable {
  public var file: String
  public var row: ApplyRow
}

public struct OneMachineError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// The last `count` lines of a file (the whole file when it is short), nil when it does not exist.
func tailLines(_ path: String, _ count: Int) -> String? {
  guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
  defer { try? handle.close() }
  let size = (try? handle.seekToEnd()) ?? 0
  let window: UInt64 = min(size, UInt64(max(count, 1)) * 512 + 65536)
  try? handle.seek(toOffset: size - window)
  let data = (try? handle.readToEnd()) ?? Data()
  var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
  if window < size, !lines.isEmpty { lines.removeFirst() }
  if lines.last == "" { lines.removeLast() }
  return lines.suffix(count).joined(separator: "\n") + (lines.isEmpty ? "" : "\n")
}
