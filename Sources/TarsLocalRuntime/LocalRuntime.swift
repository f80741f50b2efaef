import CTarsSpawn
import Foundation
import TarsKube
import TarsProtocol

/// Where and how the local pods run.
public struct LocalRuntimeConfiguration: Sendable {
  /// The state directory; pods live under `<state>/pods/<pod>/`.
  public var stateDirectory: String
  public var namespace = "tars"
  /// The tarsnode binary every pod starts with.
  public var tarsnode: String
  /// Framework addresses handed to tarsnode.
  public var registry: String
  public var locator: String
  public var notify: String
  /// The NodeObj shared secret (tarsnode then listens on the pod's address and checks signatures).
  public var secretFile: String
  /// `spec.release.image` paths with a '/' are resolved against this directory.
  public var workingDirectory: String
  /// A bare `spec.release.image` name is a program in this directory (where the framework's
  /// own binaries are installed; the examples are built there).
  public var binDirectory: String
  /// Start each tarsnode as PID 1 of its own PID namespace (needs root); otherwise tarsnode
  /// is a child subreaper.
  public var pidNamespaces = geteuid() == 0
  /// What tarsnode gets to stop its server; the runtime SIGKILLs tarsnode 5 s after that.
  public var graceSeconds = 10
  /// The first address handed out; pods get consecutive 127.x addresses from here.
  public var firstAddress: UInt32 = 0x7F00_6401  // 127.0.100.1
  /// Level-triggered resync period: the runtime looks again even without a change.
  public var resyncMs = 500
  /// Events kept in the store (Kubernetes keeps an hour of them; a store that runs for months
  /// must not grow without bound).
  public var maxEvents = 1000
  /// Replicas of one server this machine runs at most, whatever the TServer asks.
  public var maxReplicas = 100
  /// Registry credentials for images whose pods name no pull Secret (one-machine mode's
  /// `--docker-config`).
  public var dockerConfig: String?

  public init(
    stateDirectory: String, tarsnode: String, registry: String, locator: String, notify: String,
    secretFile: String, workingDirectory: String
  ) {
    self.stateDirectory = stateDirectory
    self.tarsnode = tarsnode
    self.registry = registry
    self.locator = locator
    self.notify = notify
    self.secretFile = secretFile
    self.workingDirectory = workingDirectory
    binDirectory = workingDirectory
  }
}

/// The StatefulSet and DaemonSet controllers and the kubelet of the one-machine mode: the
/// controller (`TarsController`, the same as on a cluster) turns TServers into workloads; this
/// turns each workload's replicas into pod objects made from its template and each pod into a
/// tarsnode process on this machine, on its own 127.x address, and keeps them in step.
/// Level-triggered: each pass compares the workloads and pods in the caches with the processes
/// it runs, so a missed event, a crash of a process or a restart of the control plane converges
/// by itself.
public actor LocalRuntime {
  public nonisolated let configuration: LocalRuntimeConfiguration
  let store: any ObjectStore
  let log: @Sendable (String) -> Void
  nonisolated let statefulSets: Informer
  nonisolated let daemonSets: Informer
  public nonisolated let pods: Informer
  let wake: AsyncStream<Void>.Continuation
  let wakes: AsyncStream<Void>
  var processes: [String: PodProcess] = [:]
  /// Image pulls in flight, by reference (two pods of one release share one).
  var pulls: [String: Task<String, Error>] = [:]
  var backoff: [String: Backoff] = [:]
  /// Pods created but not in the cache yet, with their addresses and when: nothing is
  /// created twice and no address handed out twice in that window.
  var allocated: [String: (ip: String, at: Date)] = [:]
  /// Pods being stopped and deleted to come back with a new template (a new release).
  var replacing: Set<String> = []
  /// Pod objects this runtime deleted, by uid, until the cache lets go of them: never started again.
  var deleted: [String: Date] = [:]
  /// False once the kernel refused a PID namespace (root without CAP_SYS_ADMIN, in a container).
  var pidNamespaces: Bool
  var shuttingDown = false
  var eventCounter = 0

  struct PodProcess {
    var pid: pid_t
    var started: Date
    var stopRequested: Date?
    /// The pod object it runs for, and its address.
    var uid: String
    var ip: String
  }

  struct Backoff {
    /// Failures in a row (the delay's exponent); reset after a minute of running.
    var failures: Int
    /// Restarts ever (the container's restartCount, which Kubernetes never resets).
    var restarts: Int
    var notBefore: Date

    /// One more failure: the next try waits 1, 2, 4 … 30 s. Returns the wait.
    mutating func failed() -> Double {
      let delay = min(30.0, pow(2, Double(min(failures, 10))))
      failures += 1
      notBefore = Date().addingTimeInterval(delay)
      return delay
    }
  }

  public init(
    store: any ObjectStore, configuration: LocalRuntimeConfiguration, log: @escaping @Sendable (String) -> Void
  ) {
    self.store = store
    self.configuration = configuration
    self.log = log
    pidNamespaces = configuration.pidNamespaces
    let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    wakes = stream
    wake = continuation
    statefulSets = Informer(
      store: store, resource: .statefulSets, namespace: configuration.namespace, selector: .tarsServer,
      onChange: { continuation.yield() })
    daemonSets = Informer(
      store: store, resource: .daemonSets, namespace: configuration.namespace, selector: .tarsServer,
      onChange: { continuation.yield() })
    pods = Informer(
      store: store, resource: .pods, namespace: configuration.namespace, selector: .tarsServer,
      onChange: { continuation.yield() })
  }

  /// Runs until `shutdown()`: the informers, then a reconcile pass on every change and every
  /// `resyncMs`.
  public func run() async {
    let informers = Task { [statefulSets, daemonSets, pods] in
      await withTaskGroup(of: Void.self) { group in
        for informer in [statefulSets, daemonSets, pods] { group.addTask { await informer.run() } }
      }
    }
    while !(statefulSets.hasSynced && daemonSets.hasSynced && pods.hasSynced) && !shuttingDown {
      try? await Task.sleep(for: .milliseconds(20))
    }
    await stopLeftovers()
    let ticker = Task { [wake, resync = configuration.resyncMs] in
      while !Task.isCancelled {
        try? await Task.sleep(for: .milliseconds(resync))
        wake.yield()
      }
    }
    for await _ in wakes {
      if shuttingDown { break }
      await reconcile()
    }
    ticker.cancel()
    informers.cancel()
  }

  /// Stops every tarsnode gracefully (pods stay in the store, so the next start resumes them)
  /// and ends `run()`.
  public func shutdown() async {
    shuttingDown = true
    wake.finish()
    for (pod, p) in processes where p.stopRequested == nil {
      kill(p.pid, SIGTERM)
      processes[pod]?.stopRequested = Date()
      log("local: stopping \(pod) (tarsnode pid \(p.pid))")
    }
    let deadline = Date().addingTimeInterval(Double(configuration.graceSeconds + 5))
    while !processes.isEmpty {
      for (pod, p) in processes {
        var status: Int32 = 0
        if waitpid(p.pid, &status, WNOHANG) == p.pid {
          processes[pod] = nil
          removePIDFile(pod)
          await markStopped(pod, reason: "Stopped", message: "the control plane stopped")
        } else if Date() > deadline {
          Self.killTree(p.pid)
        }
      }
      if !processes.isEmpty { try? await Task.sleep(for: .milliseconds(50)) }
    }
  }

  /// The tarsnode process of each running pod (host pids).
  public func runningPIDs() -> [String: Int32] { processes.mapValues(\.pid) }

  // MARK: Reconciling

  func reconcile() async {
    reap()
    if shuttingDown { return }
    let desired = desiredPods()
    var existing: [String: KubeObject] = [:]
    var cachedUIDs: Set<String> = []
    for p in pods.objects.values {
      cachedUIDs.insert(p.uid)
      // Deleted (by us or anyone): only its process, if any, is left to stop.
      if p.deletionTimestamp != nil || deleted[p.uid] != nil { continue }
      existing[p.name] = p
    }
    deleted = deleted.filter { cachedUIDs.contains($0.key) || Date().timeIntervalSince($0.value) < 60 }
    // Kept until the cache shows the pod with its address (creation and status are two writes).
    allocated = allocated.filter {
      existing[$0.key]?.status?["podIP"]?.stringValue == nil && Date().timeIntervalSince($0.value.at) < 10
    }

    func used() -> Set<String> {
      Set(existing.values.compactMap { $0.status?["podIP"]?.stringValue }).union(allocated.values.map(\.ip))
        .union(processes.values.map(\.ip))
    }
    for (name, workload) in desired.sorted(by: { $0.key < $1.key }) where existing[name] == nil {
      guard allocated[name] == nil, !shuttingDown else { continue }
      await createPod(name, workload: workload, used: used())
    }
    // A process whose pod object is gone or was replaced by another of the same name stops.
    for (name, p) in processes where p.stopRequested == nil && existing[name]?.uid != p.uid {
      stop(name, reason: "its pod object was deleted")
    }
    chooseReplacements(desired: desired, existing: existing)
    for (name, pod) in existing {
      if shuttingDown { return }
      if let workload = desired[name], pod.ownerUID == workload.object.uid, !replacing.contains(name) {
        if pod.status?["podIP"]?.stringValue == nil {
          // Created, but its address never recorded (a failed write, a crash in between).
          if allocated[name] == nil { await assignAddress(name, used: used()) }
        } else if processes[name] == nil {
          if let b = backoff[name], b.notBefore > Date() { continue }
          await start(pod)
        } else {
          await syncReady(pod)
        }
      } else {
        await remove(pod)
      }
    }
    await syncWorkloadStatus()
  }

  /// SIGTERM to a pod's tarsnode (it stops its server gracefully); SIGKILL to the whole tree
  /// once the grace period is over.
  func stop(_ name: String, reason: String) {
    guard let p = processes[name] else { return }
    if p.stopRequested == nil {
      kill(p.pid, SIGTERM)
      processes[name]?.stopRequested = Date()
      log("local: stopping \(name): \(reason)")
    } else if Date().timeIntervalSince(p.stopRequested!) > Double(configuration.graceSeconds + 5) {
      Self.killTree(p.pid)
    }
  }

  /// SIGKILL to a process and everything below it. In a PID namespace killing its PID 1 is
  /// enough; a subreaper tarsnode's server runs in its own process group and would outlive it,
  /// keeping its ports.
  static func killTree(_ pid: pid_t) {
    var all: [pid_t] = []
    var queue = [pid]
    while let p = queue.popLast(), all.count < 10_000 {
      all.append(p)
      let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/task")) ?? []
      for t in tasks {
        let text = (try? String(contentsOfFile: "/proc/\(p)/task/\(t)/children", encoding: .utf8)) ?? ""
        queue += text.split(separator: " ").compactMap { pid_t($0) }
      }
    }
    for p in all { kill(p, SIGKILL) }
  }

  /// A workload whose template changed (a new release, say) replaces the pods made from an older
  /// one, as a StatefulSet's rolling update does: highest ordinal first, one at a time while the
  /// others are active; a pod that is not active anyway is replaced at once.
  func chooseReplacements(desired: [String: LocalWorkload], existing: [String: KubeObject]) {
    var started: Set<String> = []
    for (name, pod) in existing.sorted(by: { $0.key > $1.key }) where !replacing.contains(name) {
      guard let workload = desired[name], pod.labels[LocalWorkload.revisionLabel] != workload.revision else {
        continue
      }
      let siblings = existing.values.filter { $0.name != name && $0.ownerUID == workload.object.uid }
      let othersReady = siblings.allSatisfy { Pod($0).isTarsActive && !replacing.contains($0.name) }
      guard !Pod(pod).isTarsActive || (othersReady && !started.contains(workload.object.uid)) else { continue }
      started.insert(workload.object.uid)
      replacing.insert(name)
      log("local: \(name) runs an older template of \(workload.kind) \(workload.object.name): replacing it")
    }
  }

  /// Collects tarsnodes that exited; a pod that should still run is restarted after a
  /// backoff that doubles up to 30 s (kubelet's CrashLoopBackOff).
  func reap() {
    for (pod, p) in processes {
      var status: Int32 = 0
      guard waitpid(p.pid, &status, WNOHANG) == p.pid else { continue }
      processes[pod] = nil
      removePIDFile(pod)
      let how = Self.describe(status)
      if p.stopRequested != nil { continue }
      var b = backoff[pod] ?? Backoff(failures: 0, restarts: 0, notBefore: Date())
      if Date().timeIntervalSince(p.started) > 60 { b.failures = 0 }
      let delay = b.failed()
      b.restarts += 1
      backoff[pod] = b
      log("local: \(pod): tarsnode \(how); restarting in \(Int(delay)) s")
      Task { [self] in
        await markStopped(pod, reason: "Error", message: "tarsnode \(how)")
        await event(pod, type: "Warning", reason: "BackOff", message: "tarsnode \(how); restarting in \(Int(delay)) s")
      }
    }
  }

  static func describe(_ status: Int32) -> String {
    let signal = status & 0x7f
    return signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
  }

  func createPod(_ name: String, workload: LocalWorkload, used: Set<String>) async {
    guard let ip = freeAddress(used) else {
      log("local: no 127.x address left for pod \(name)")
      await event(name, type: "Warning", reason: "FailedScheduling", message: "no 127.x address left on this machine")
      return
    }
    allocated[name] = (ip, Date())
    let pod = workload.pod(name, namespace: configuration.namespace)
    do {
      _ = try await store.create(.pods, pod)
      _ = try await store.patch(
        .pods, namespace: configuration.namespace, name: name,
        .merge(
          .object([
            (
              "status",
              .object(
                Self.addressStatus(ip) + [
                  ("startTime", .string(kubeTimestamp())),
                  (
                    "conditions",
                    .array([
                      Self.condition("PodScheduled", true), Self.condition("Initialized", true),
                      Self.condition("ContainersReady", false), Self.condition("Ready", false),
                    ])
                  ),
                ])
            )
          ])), status: true)
      log("local: created pod \(name) on \(ip)")
      await event(name, type: "Normal", reason: "Scheduled", message: "assigned \(ip) on this machine")
    } catch {
      allocated[name] = nil
      log("local: cannot create pod \(name): \(error)")
    }
  }

  /// The lowest address from `firstAddress` nobody uses (skipping .0 and .255), up to 127.255.255.254.
  func freeAddress(_ used: Set<String>) -> String? {
    var address = configuration.firstAddress
    while address <= 0x7FFF_FFFE {
      let text = Self.dotted(address)
      if !used.contains(text) && address & 0xff != 0 && address & 0xff != 0xff { return text }
      address += 1
    }
    return nil
  }

  /// Gives a pod that has none an address (the second write of `createPod` failed).
  func assignAddress(_ name: String, used: Set<String>) async {
    guard let ip = freeAddress(used) else { return }
    allocated[name] = (ip, Date())
    await patchStatus(name, .object(Self.addressStatus(ip)))
    log("local: gave pod \(name) the address \(ip)")
  }

  /// The status fields that place a pod on this machine at `ip`.
  static func addressStatus(_ ip: String) -> [(String, JSONValue)] {
    [
      ("phase", .string("Pending")), ("hostIP", .string("127.0.0.1")), ("podIP", .string(ip)),
      ("podIPs", .array([.object([("ip", .string(ip))])])),
    ]
  }

  static func dotted(_ a: UInt32) -> String { "\(a >> 24).\((a >> 16) & 0xff).\((a >> 8) & 0xff).\(a & 0xff)" }

  static func condition(_ type: String, _ status: Bool, reason: String? = nil, message: String? = nil) -> JSONValue {
    var m: [(String, JSONValue)] = [
      ("type", .string(type)), ("status", .string(status ? "True" : "False")),
      ("lastTransitionTime", .string(kubeTimestamp())),
    ]
    if let reason { m.append(("reason", .string(reason))) }
    if let message { m.append(("message", .string(message))) }
    return .object(m)
  }

  /// A pod no workload asks for (scaled down, deleted, or made from an older template): its
  /// tarsnode stops gracefully, then the pod and its directory go.
  func remove(_ pod: KubeObject) async {
    let name = pod.name
    if let p = processes[name] {
      let first = p.stopRequested == nil
      stop(name, reason: replacing.contains(name) ? "a new release" : "scaled down or deleted")
      if first { await event(name, type: "Normal", reason: "Killing", message: "stopping tarsnode (pid \(p.pid))") }
      return
    }
    do {
      try await store.delete(.pods, namespace: configuration.namespace, name: name)
    } catch  where error.code == 404 {
    } catch {
      log("local: cannot delete pod \(name): \(error)")
      return
    }
    backoff[name] = nil
    replacing.remove(name)
    deleted[pod.uid] = Date()
    try? FileManager.default.removeItem(atPath: podDirectory(name))
    log("local: deleted pod \(name)")
    await event(name, type: "Normal", reason: "Deleted", message: "pod and its directory removed")
  }

  func patchStatus(_ pod: String, _ status: JSONValue) async {
    do {
      _ = try await store.patch(
        .pods, namespace: configuration.namespace, name: pod, .strategicMerge(.object([("status", status)])),
        status: true)
    } catch  where error.code == 404 {
    } catch {
      log("local: cannot update the status of \(pod): \(error)")
    }
  }

  /// Records a Kubernetes Event about a pod (what `tarsctl events` lists).
  func event(_ pod: String, type: String, reason: String, message: String) async {
    eventCounter += 1
    let o = KubeObject.event(
      namespace: configuration.namespace, kind: "Pod", name: pod, type: type, reason: reason, message: message,
      component: "tars-local",
      suffix: "\(String(UInt64(Date().timeIntervalSince1970 * 1000), radix: 16))\(eventCounter)")
    do {
      _ = try await store.create(.events, o)
    } catch {
      log("local: cannot record event \(reason) for \(pod): \(error)")
    }
    if eventCounter % 100 == 0 { await pruneEvents() }
  }

  /// Keeps the newest `configuration.maxEvents` events.
  func pruneEvents() async {
    guard let list = try? await store.list(.events, namespace: configuration.namespace, options: ListOptions()),
      list.items.count > configuration.maxEvents
    else { return }
    let oldest = list.items.sorted { (Int64($0.resourceVersion) ?? 0) < (Int64($1.resourceVersion) ?? 0) }
    for e in oldest.prefix(list.items.count - configuration.maxEvents) {
      try? await store.delete(.events, namespace: configuration.namespace, name: e.name)
    }
  }

  // MARK: Resuming

  /// tarsnodes a previous control plane left running (it was killed, not stopped): stopped
  /// now, so each pod starts again under this one.
  func stopLeftovers() async {
    let root = configuration.stateDirectory + "/pods"
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return }
    var waiting: [pid_t] = []
    for pod in names {
      guard let text = try? String(contentsOfFile: "\(root)/\(pod)/tarsnode.pid", encoding: .utf8),
        let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
      else { continue }
      let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
      let words = String(decoding: cmdline, as: UTF8.self).split(separator: "\0").map(String.init)
      if words.first.map({ $0.hasSuffix("tarsnode") }) == true, words.contains("\(root)/\(pod)/image") {
        log("local: stopping \(pod)'s tarsnode (pid \(pid)) left by an earlier run")
        kill(pid, SIGTERM)
        waiting.append(pid)
      }
      removePIDFile(pod)
    }
    let deadline = Date().addingTimeInterval(Double(configuration.graceSeconds + 5))
    while !waiting.isEmpty {
      waiting.removeAll { kill($0, 0) != 0 }
      if Date() > deadline { for p in waiting { kill(p, SIGKILL) } }
      if !waiting.isEmpty { try? await Task.sleep(for: .milliseconds(50)) }
    }
    for pod in pods.objects.values { await markStopped(pod.name, reason: "Resuming", message: "not started yet") }
  }

  func removePIDFile(_ pod: String) { unlink(podDirectory(pod) + "/tarsnode.pid") }
}
