import Synchronization
import TarsKube

/// The controller loop: informers on TServers, TTemplates and the workloads and Services
/// TServers own feed a work queue of TServer keys; workers reconcile one key at a time each;
/// every TServer is queued again on a resync period, so a missed event or a restart only delays convergence. What it
/// owns is found by name (a workload is named after its TServer), so an event on a StatefulSet,
/// DaemonSet or Service queues its TServer.
public final class Controller: Sendable {
  public struct Configuration: Sendable {
    public var namespace: String
    public var workload: WorkloadOptions
    public var workers = 2
    public var resyncSeconds = 300
    /// Keep the aggregate node label `tars.io/node` (cluster-wide: needs nodes get, list, watch
    /// and patch).
    public var manageNodeLabels = false
    public init(namespace: String, workload: WorkloadOptions) {
      self.namespace = namespace
      self.workload = workload
    }
  }

  /// Counters for /metrics and tests.
  public struct Counters: Sendable, Equatable {
    public var reconciles = 0
    public var errors = 0
    public var writes = 0
    public var reconcileNanoseconds: UInt64 = 0
  }

  public let configuration: Configuration
  let store: any ObjectStore
  let reconciler: Reconciler
  let queue: WorkQueue
  let counters = Mutex(Counters())
  let log: @Sendable (String) -> Void
  let informers: [Informer]
  /// The nodes informer (with `manageNodeLabels`), kept apart: without its ClusterRole it never
  /// syncs, and that must stop node labels only, not every TServer.
  let nodes: Informer?

  public init(store: any ObjectStore, configuration: Configuration, log: @escaping @Sendable (String) -> Void) {
    self.store = store
    self.configuration = configuration
    self.log = log
    let queue = WorkQueue()
    self.queue = queue
    let enqueue: @Sendable (String?, String) -> Void = { namespace, name in
      Task { await queue.add("\(namespace ?? "")/\(name)") }
    }
    let owned = LabelSelector.tarsServer
    let tservers = Informer(store: store, resource: .tservers, namespace: configuration.namespace, onObject: enqueue)
    // A template that appears (or changes) queues the TServers naming it: one waiting with
    // TemplateMissing goes on without waiting for the resync.
    let templateChanged: @Sendable (String?, String) -> Void = { namespace, template in
      for (key, o) in tservers.objects
      where o.namespace == namespace && o.spec?[path: ["tars", "template"]]?.stringValue == template {
        Task { await queue.add(key) }
      }
    }
    // The TFrameworkConfig's defaults (the node image, the config history) are read from this
    // cache on every pass; a change queues every TServer of its namespace and the history trim.
    let frameworkConfigs = Informer(
      store: store, resource: .tframeworkconfigs, namespace: configuration.namespace,
      onObject: { namespace, name in
        guard name == WorkloadOptions.frameworkConfigName else { return }
        for (key, o) in tservers.objects where o.namespace == namespace { Task { await queue.add(key) } }
        Task { await queue.add("\(namespace ?? "")/\(Controller.configsKey)") }  // a lower history limit
      })
    reconciler = Reconciler(
      store: store, options: configuration.workload,
      frameworkConfig: { namespace in
        frameworkConfigs.object(namespace: namespace, name: WorkloadOptions.frameworkConfigName)
      })
    informers = [
      tservers,
      Informer(
        store: store, resource: .ttemplates, namespace: configuration.namespace, onObject: templateChanged),
      Informer(
        store: store, resource: .statefulSets, namespace: configuration.namespace, selector: owned, onObject: enqueue),
      Informer(
        store: store, resource: .daemonSets, namespace: configuration.namespace, selector: owned, onObject: enqueue),
      Informer(
        store: store, resource: .services, namespace: configuration.namespace, selector: owned, onObject: enqueue),
      frameworkConfigs,
      // A changed TConfig (a new version) queues the namespace's history trim.
      Informer(
        store: store, resource: .tconfigs, namespace: configuration.namespace,
        onObject: { namespace, _ in Task { await queue.add("\(namespace ?? "")/\(Controller.configsKey)") } }),
    ]
    nodes =
      configuration.manageNodeLabels
      ? Informer(
        store: store, resource: .nodes, namespace: nil,
        onObject: { _, name in Task { await queue.add("\(Controller.nodesKey)/\(name)") } }) : nil
  }

  /// The queue key (in place of a TServer's name, which cannot start with "!") of a
  /// namespace's TConfig history trim.
  static let configsKey = "!tconfigs"
  /// The queue key's namespace part for a node (no namespace starts with "!").
  static let nodesKey = "!nodes"

  public var snapshot: Counters { counters.withLock { $0 } }
  /// The TServers the controller sees (the admin API of `up` reads the same cache).
  public var tservers: Informer { informers[0] }

  /// Prometheus text: reconciles, errors, writes, reconcile time, queue depth, cached TServers.
  public func exposition(leader: Bool) -> String {
    let c = snapshot
    let depth = queue.depthNow
    var out = ""
    func metric(_ name: String, _ help: String, _ type: String, _ value: String) {
      out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
    }
    metric("tars_controller_reconciles_total", "Reconcile passes, successful or not.", "counter", "\(c.reconciles)")
    metric("tars_controller_errors_total", "Passes that failed and were queued again.", "counter", "\(c.errors)")
    metric("tars_controller_writes_total", "Objects created, updated or deleted.", "counter", "\(c.writes)")
    metric(
      "tars_controller_reconcile_seconds_total", "Time spent in reconcile passes.", "counter",
      "\(Double(c.reconcileNanoseconds) / 1e9)")
    metric("tars_controller_queue_depth", "TServers waiting to be reconciled.", "gauge", "\(depth)")
    metric("tars_controller_tservers", "TServers in the cache.", "gauge", "\(informers[0].objects.count)")
    metric("tars_controller_leader", "1 while this replica leads.", "gauge", leader ? "1" : "0")
    return out
  }
  public var hasSynced: Bool { informers.allSatisfy(\.hasSynced) }
  public func queueDepth() async -> Int { await queue.depth }

  /// Runs until the task is cancelled; then the workers finish the key in hand and stop.
  public func run() async {
    await withTaskGroup(of: Void.self) { group in
      for informer in informers + (nodes.map { [$0] } ?? []) { group.addTask { await informer.run() } }
      group.addTask { await self.resync() }
      for _ in 0..<max(1, configuration.workers) { group.addTask { await self.work() } }
      group.addTask {
        // Cancellation reaches the informers directly; the workers wait in the queue.
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        await self.queue.shutdown()
      }
      await group.waitForAll()
    }
  }

  /// Every TServer again, every `resyncSeconds` (and once the TServers are first loaded).
  func resync() async {
    while !Task.isCancelled && !informers[0].hasSynced { try? await Task.sleep(for: .milliseconds(20)) }
    while !Task.isCancelled {
      for key in informers[0].objects.keys { await queue.add(key) }
      try? await Task.sleep(for: .seconds(configuration.resyncSeconds))
    }
  }

  func work() async {
    while let key = await queue.next() {
      // Reconcile only on complete caches: a key queued from a half-loaded list waits.
      let slash = key.firstIndex(of: "/") ?? key.startIndex
      let namespace = String(key[..<slash])
      while !(namespace == Self.nodesKey ? nodes?.hasSynced ?? true : hasSynced) && !Task.isCancelled {
        try? await Task.sleep(for: .milliseconds(20))
      }
      let name = String(key[key.index(after: slash)...])
      let started = ContinuousClock.now
      func took() -> UInt64 {
        let d = ContinuousClock.now - started
        return UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
      }
      do {
        let writes: Int
        if namespace == Self.nodesKey {
          let wrote = try await reconciler.reconcileNode(name: name)
          writes = wrote ? 1 : 0
          if wrote {
            log("controller: node \(name): label \(Reconciler.nodeLabel) set to match its tars.io/node.* labels")
          }
        } else if name == Self.configsKey {
          writes = try await reconciler.trimConfigs(namespace: namespace)
          if writes > 0 { log("controller: \(namespace): deleted \(writes) TConfig version(s) beyond the history") }
        } else {
          let report = try await reconciler.reconcile(namespace: namespace, name: name)
          writes = report.actions.count
          for action in report.actions { log("controller: \(key): \(action)") }
          if let invalid = report.invalid { log("controller: \(key): cannot build its workload: \(invalid)") }
        }
        counters.withLock {
          $0.reconciles += 1
          $0.writes += writes
          $0.reconcileNanoseconds += took()
        }
        await queue.done(key, failed: false)
      } catch {
        counters.withLock {
          $0.reconciles += 1
          $0.errors += 1
          $0.reconcileNanoseconds += took()
        }
        log("controller: \(key): \(error) (retrying)")
        await queue.done(key, failed: true)
      }
    }
  }
}
