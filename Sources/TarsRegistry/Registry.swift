import Synchronization
import TarsFramework
import TarsKube
import TarsProtocol

/// The registry's live view: informers on the namespace's Tars pods, TServers, TTemplates and
/// the framework config, and the endpoint table rebuilt from them after every change. Lookups
/// read the last table and never wait on the store, so while the store is unreachable the
/// registry keeps answering from its last view.
public final class RegistryView: Sendable {
  public struct Options: Sendable {
    public var namespace: String
    public var hostStyle: HostStyle
    /// The registry's own endpoints (`tars.tarsregistry.QueryObj`/`RegistryObj`) and any other
    /// id served outside TServers (the one-machine control plane's config and notify).
    public var builtins: [String: [EndpointF]]

    public init(namespace: String, hostStyle: HostStyle = .ip, builtins: [String: [EndpointF]] = [:]) {
      self.namespace = namespace
      self.hostStyle = hostStyle
      self.builtins = builtins
    }

    /// K8SFramework's answers for the registry's own names: `tars-tarsregistry:17890/17891`.
    public static func registryBuiltins(host: String, queryPort: Int32, registryPort: Int32) -> [String: [EndpointF]] {
      [
        "tars.tarsregistry.QueryObj": builtin(host: host, port: queryPort),
        "tars.tarsregistry.RegistryObj": builtin(host: host, port: registryPort),
      ]
    }

    /// The one endpoint of a framework object the registry answers for itself.
    public static func builtin(host: String, port: Int32) -> [EndpointF] {
      var e = EndpointF()
      e.host = host
      e.port = port
      e.timeout = 6000
      e.istcp = 1
      return [e]
    }
  }

  public let options: Options
  public let pods: Informer
  public let servers: Informer
  public let templates: Informer
  public let frameworkConfigs: Informer
  public let metrics: RegistryMetrics
  let table = Mutex(Snapshot())
  let rebuilding = Mutex(())
  let answers = Mutex<(version: Int, bytes: [String: [UInt8]])>((0, [:]))
  let decoded = Mutex<(pods: [String: (String, PodView?)], servers: [String: (String, ServerSpec?)])>(([:], [:]))
  let rebuildPending = Atomic<Bool>(false)

  struct Snapshot {
    var endpoints = EndpointTable()
    var upChain = UpChain()
    var version = 0
  }

  public init(store: any ObjectStore, options: Options, metrics: RegistryMetrics = RegistryMetrics()) {
    self.options = options
    self.metrics = metrics
    let box = WeakBox()
    let changed: @Sendable () -> Void = { box.view?.scheduleRebuild() }
    pods = Informer(
      store: store, resource: .pods, namespace: options.namespace,
      selector: .tarsServer, onChange: changed)
    servers = Informer(store: store, resource: .tservers, namespace: options.namespace, onChange: changed)
    templates = Informer(store: store, resource: .ttemplates, namespace: options.namespace, onChange: changed)
    frameworkConfigs = Informer(
      store: store, resource: .tframeworkconfigs, namespace: options.namespace, onChange: changed)
    box.view = self
  }

  final class WeakBox: @unchecked Sendable {
    // Set once, before any informer runs.
    weak var view: RegistryView?
  }

  /// Runs the informers until cancelled.
  public func run() async {
    await withTaskGroup(of: Void.self) { group in
      for informer in [pods, servers, templates, frameworkConfigs] {
        group.addTask { await informer.run() }
      }
      group.addTask { [metrics, pods, servers] in
        // Watch restarts, for the metrics.
        while !Task.isCancelled {
          metrics.watchRestarts.store(pods.watchRestarts + servers.watchRestarts, ordering: .relaxed)
          metrics.relists.store(pods.relists + servers.relists, ordering: .relaxed)
          try? await Task.sleep(for: .seconds(1))
        }
      }
    }
  }

  /// True once every informer has listed once.
  public var hasSynced: Bool { [pods, servers, templates, frameworkConfigs].allSatisfy(\.hasSynced) }

  /// Changes come in bursts (a relist, a rollout): one rebuild per burst.
  func scheduleRebuild() {
    guard !rebuildPending.exchange(true, ordering: .acquiringAndReleasing) else { return }
    Task {
      await Task.yield()
      rebuildPending.store(false, ordering: .releasing)
      rebuild()
    }
  }

  /// Rebuilds run one at a time, so a rebuild that read older caches can never store its table
  /// after a newer one.
  public func rebuild() {
    rebuilding.withLock { _ in rebuildLocked() }
  }

  func rebuildLocked() {
    // Objects whose resourceVersion did not change are not decoded again.
    let (specs, views) = decoded.withLock { cache -> ([ServerSpec], [PodView]) in
      var nextPods: [String: (String, PodView?)] = [:]
      var views: [PodView] = []
      for (key, o) in pods.objects {
        let view: PodView?
        if let hit = cache.pods[key], hit.0 == o.resourceVersion { view = hit.1 } else { view = PodView(o) }
        nextPods[key] = (o.resourceVersion, view)
        if let view { views.append(view) }
      }
      var nextServers: [String: (String, ServerSpec?)] = [:]
      var specs: [ServerSpec] = []
      for (key, o) in servers.objects {
        let spec: ServerSpec?
        if let hit = cache.servers[key], hit.0 == o.resourceVersion { spec = hit.1 } else { spec = ServerSpec(o) }
        nextServers[key] = (o.resourceVersion, spec)
        if let spec { specs.append(spec) }
      }
      cache = (nextPods, nextServers)
      return (specs, views)
    }
    let endpoints = EndpointTable(servers: specs, pods: views, hostStyle: options.hostStyle)
    let chain = UpChain(frameworkConfig: frameworkConfigs.object(namespace: options.namespace, name: "tars-framework"))
    table.withLock {
      $0.endpoints = endpoints
      $0.upChain = chain
      $0.version += 1
    }
    metrics.servers.store(endpoints.serverCount, ordering: .relaxed)
    metrics.pods.store(views.count, ordering: .relaxed)
  }

  /// How many times the table was rebuilt.
  public var tableVersion: Int { table.withLock { $0.version } }

  /// The registry's answer for `id`: builtins, then TServers, then the upChain.
  public func lookup(_ id: String) -> EndpointLists {
    metrics.lookups.add(1, ordering: .relaxed)
    return resolve(id).0
  }

  /// The answer, whether it came from the builtins or a TServer (not the upChain), and the
  /// table version it was read from.
  func resolve(_ id: String) -> (EndpointLists, Bool, Int) {
    table.withLock { t in
      if let own = options.builtins[id] { return (EndpointLists(active: own), true, t.version) }
      if let found = t.endpoints.lookup(id) { return (found, true, t.version) }
      return (EndpointLists(active: t.upChain.lookup(id)), false, t.version)
    }
  }

  /// The encoded result of a lookup (`findObjectById`'s vector, or the active/inactive
  /// out-parameters the other lookups share), kept per table version for the ids the table or
  /// the builtins know — a bounded set — and encoded afresh for anything else.
  public func encodedLookup(_ id: String, activeOnly: Bool) -> [UInt8] {
    metrics.lookups.add(1, ordering: .relaxed)
    let key = activeOnly ? "1" + id : "2" + id
    if let cached = answers.withLock({ $0.version == tableVersion ? $0.bytes[key] : nil }) { return cached }
    let (lists, known, version) = resolve(id)
    let bytes =
      activeOnly
      ? QueryF.FindObjectById.Result(ret: lists.active).tarsBytes()
      : QueryF.FindObjectByIdInSameGroup.Result(ret: 0, activeEp: lists.active, inactiveEp: lists.inactive).tarsBytes()
    if known {
      answers.withLock {
        if $0.version != version || $0.bytes.count > 100_000 { $0 = (version, [:]) }
        $0.bytes[key] = bytes
      }
    }
    return bytes
  }

  /// The TServer of `app`/`server`, for getServerDescriptor.
  public func serverSpec(app: String, server: String) -> ServerSpec? {
    servers.object(namespace: options.namespace, name: ServerSpec.resourceName(app: app, server: server)).flatMap(
      ServerSpec.init)
  }

  public func templateObjects() -> [String: KubeObject] {
    var out: [String: KubeObject] = [:]
    for o in templates.objects.values { out[o.name] = o }
    return out
  }
}

/// Counters the registry exposes on `/metrics`.
public final class RegistryMetrics: Sendable {
  public let lookups = Atomic<Int>(0)
  public let watchRestarts = Atomic<Int>(0)
  public let relists = Atomic<Int>(0)
  public let servers = Atomic<Int>(0)
  public let pods = Atomic<Int>(0)
  public let stateReports = Atomic<Int>(0)
  public let patches = Atomic<Int>(0)
  public let patchFailures = Atomic<Int>(0)
  public let refusedReports = Atomic<Int>(0)
  /// Sum and count of patch latencies, microseconds.
  public let patchMicros = Atomic<Int>(0)
  public let patchBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
  let patchBucketCounts = Mutex<[Int]>(Array(repeating: 0, count: 10))

  public init() {}

  func observePatch(seconds: Double) {
    patchMicros.add(Int(seconds * 1_000_000), ordering: .relaxed)
    patchBucketCounts.withLock { counts in
      for (i, le) in patchBuckets.enumerated() where seconds <= le { counts[i] += 1 }
    }
  }

  /// Prometheus text exposition format 0.0.4.
  public func exposition() -> String {
    var out = ""
    func counter(_ name: String, _ help: String, _ v: Int, type: String = "counter") {
      out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(v)\n"
    }
    counter("tars_registry_lookups_total", "QueryObj lookups answered.", lookups.load(ordering: .relaxed))
    counter(
      "tars_registry_watch_restarts_total", "Watches of pods and TServers that ended and were resumed.",
      watchRestarts.load(ordering: .relaxed))
    counter(
      "tars_registry_relists_total", "Full lists of pods and TServers (first sync and after 410).",
      relists.load(ordering: .relaxed))
    counter("tars_registry_servers", "TServers in the cache.", servers.load(ordering: .relaxed), type: "gauge")
    counter("tars_registry_pods", "Tars pods in the cache.", pods.load(ordering: .relaxed), type: "gauge")
    counter(
      "tars_registry_state_reports_total", "updateServerState calls received.", stateReports.load(ordering: .relaxed))
    counter(
      "tars_registry_state_reports_refused_total", "updateServerState calls for pods this registry does not manage.",
      refusedReports.load(ordering: .relaxed))
    counter(
      "tars_registry_pod_patch_failures_total", "Pod status patches that failed.",
      patchFailures.load(ordering: .relaxed))
    let count = patches.load(ordering: .relaxed)
    out += "# HELP tars_registry_pod_patch_seconds Latency of pod status patches.\n"
    out += "# TYPE tars_registry_pod_patch_seconds histogram\n"
    let counts = patchBucketCounts.withLock { $0 }
    for (i, le) in patchBuckets.enumerated() {
      out += "tars_registry_pod_patch_seconds_bucket{le=\"\(le)\"} \(counts[i])\n"
    }
    out += "tars_registry_pod_patch_seconds_bucket{le=\"+Inf\"} \(count)\n"
    out += "tars_registry_pod_patch_seconds_sum \(Double(patchMicros.load(ordering: .relaxed)) / 1_000_000)\n"
    out += "tars_registry_pod_patch_seconds_count \(count)\n"
    return out
  }
}
