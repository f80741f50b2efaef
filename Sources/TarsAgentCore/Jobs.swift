import Glibc
import TarsProtocol

/// The agent's jobs that follow the API: each is a level-triggered loop on its own thread —
/// list everything it looks at, act, then wait for the next change (a watch that ends at the
/// first event or after five minutes) and list again. A missed event, a restart or an API
/// server outage costs one list, never a wrong action; between changes the thread is asleep in
/// the watch.
public protocol KubeJob: SendableMetatype {
  var name: String { get }
  /// One pass; the resourceVersion of the collection whose changes start the next one.
  func reconcile() throws(KubeHTTPError) -> String
  /// The collection watched between passes.
  var watched: String { get }
  var kube: KubeHTTP { get }
}

extension KubeJob {
  /// Runs forever: a pass, a wait for a change, again; after a failure, ten seconds' pause.
  public func run(say: (String) -> Void) -> Never { runJob(self, say: say) }
}

/// The loop of every job, not generic: Swift 6.3's optimizer crashed specializing it per job
/// (SimplifyCFG, Mem2Reg on the never-ending loop).
func runJob(_ job: any KubeJob, say: (String) -> Void) -> Never {
  while true {
    guard let failure = job.cycle() else { continue }
    say("tarsagent: \(job.name): \(failure); again in 10 s")
    var pause = timespec(tv_sec: 10, tv_nsec: 0)
    var left = timespec()
    while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
  }
}

extension KubeJob {
  /// One pass and the wait after it; what failed, or nil.
  func cycle() -> String? {
    do {
      let version = try reconcile()
      try kube.waitForChange(watched, after: version)
      return nil
    } catch {
      return error.message
    }
  }

  /// Starts `run` on a thread of its own.
  public static func start(_ make: @escaping @Sendable () -> Self, say: @escaping @Sendable (String) -> Void) {
    AgentThread.start { make().run(say: say) }
  }
}

/// Local volumes (see `LocalVolumes`): provisions the claims the scheduler placed on this node
/// and reclaims the volumes whose claims are gone.
public final class VolumeJob: KubeJob {
  public let kube: KubeHTTP
  let volumes: LocalVolumes
  let metrics: AgentMetrics
  let say: (String) -> Void
  /// What was already reported, so a claim that stays wrong gets one Event, not one per pass.
  var reported: Set<String> = []
  public let name = "volumes"
  public let watched = "/api/v1/persistentvolumeclaims"

  public init(kube: KubeHTTP, volumes: LocalVolumes, metrics: AgentMetrics, say: @escaping (String) -> Void) {
    self.kube = kube
    self.volumes = volumes
    self.metrics = metrics
    self.say = say
  }

  public func reconcile() throws(KubeHTTPError) -> String {
    let claims = try kube.list(watched)
    let existing = try kube.list("/api/v1/persistentvolumes")
    let actions = volumes.plan(claims: claims.items, volumes: existing.items)
    guard !actions.isEmpty else { return claims.resourceVersion }
    let policy = try reclaimPolicy()
    for action in actions {
      switch action {
      case .provision(let claim, let directory, let owner):
        let who = Self.name(claim)
        if let error = VolumeDirectory.make(directory, owner: owner) {
          report(claim, "cannot make the volume's directory: \(error)")
          continue
        }
        do throws(KubeHTTPError) {
          let pv = volumes.volume(for: claim, directory: directory, reclaimPolicy: policy)
          _ = try kube.json("POST", "/api/v1/persistentvolumes", body: pv)
          metrics.volume(.provisioned)
          say(
            "tarsagent: volumes: provisioned \(pv["metadata"]?["name"]?.stringValue ?? "") for \(who) at \(directory) (uid \(owner.uid), gid \(owner.gid), mode \(String(owner.mode, radix: 8)))"
          )
          try? kube.event(
            about: claim, kind: "PersistentVolumeClaim", type: "Normal", reason: "ProvisioningSucceeded",
            message: "tarsagent on \(volumes.node) made \(directory)", node: volumes.node)
        } catch  where error.status == 409 {
          // Made by an earlier pass whose list this one did not see yet.
        } catch {
          report(claim, "cannot create the volume: \(error.message)")
        }
      case .refuse(let claim, let message):
        report(claim, message)
      case .release(let volume, let directory):
        let pv = volume["metadata"]?["name"]?.stringValue ?? ""
        guard volume["spec"]?["persistentVolumeReclaimPolicy"]?.stringValue != "Retain" else {
          if reported.insert("retain/" + pv).inserted {
            say("tarsagent: volumes: \(pv)'s claim is gone; kept with \(directory) (reclaim policy Retain)")
          }
          continue
        }
        if let error = VolumeDirectory.remove(directory) {
          say("tarsagent: volumes: cannot reclaim \(pv): \(error)")
          metrics.volume(.failed)
          continue
        }
        do throws(KubeHTTPError) {
          _ = try kube.json("DELETE", "/api/v1/persistentvolumes/\(pv)")
        } catch  where error.status == 404 {
        } catch {
          say("tarsagent: volumes: removed \(directory) but cannot delete \(pv): \(error.message)")
          continue
        }
        metrics.volume(.reclaimed)
        say("tarsagent: volumes: reclaimed \(pv): its claim is gone; removed \(directory)")
      }
    }
    return claims.resourceVersion
  }

  /// The class's reclaim policy; `Delete` (Kubernetes' default) when it names none.
  func reclaimPolicy() throws(KubeHTTPError) -> String {
    do throws(KubeHTTPError) {
      let c = try kube.json("GET", "/apis/storage.k8s.io/v1/storageclasses/\(LocalVolumes.storageClass)")
      return c["reclaimPolicy"]?.stringValue ?? "Delete"
    } catch  where error.status == 404 {
      return "Delete"
    }
  }

  /// A Warning Event on the claim, once per claim and message; the line in the log always.
  func report(_ claim: JSONValue, _ message: String) {
    say("tarsagent: volumes: \(Self.name(claim)): \(message)")
    let key = (claim["metadata"]?["uid"]?.stringValue ?? "") + "/" + message
    guard reported.insert(key).inserted else { return }
    metrics.volume(.failed)
    do throws(KubeHTTPError) {
      try kube.event(
        about: claim, kind: "PersistentVolumeClaim", reason: "ProvisioningFailed", message: message,
        node: volumes.node)
    } catch {
      say("tarsagent: volumes: cannot post the Event: \(error.message)")
    }
  }

  static func name(_ o: JSONValue) -> String {
    "\(o["metadata"]?["namespace"]?.stringValue ?? "")/\(o["metadata"]?["name"]?.stringValue ?? "")"
  }
}

/// The pods of this node: the Tars ones and their tarsnode state for the metrics; and host
/// ports — a pod that asks for a host port someone else holds gets a Warning Event naming the
/// holder (pid, command, its pod if any), what the kubelet does not say.
public final class NodePodsJob: KubeJob {
  public let kube: KubeHTTP
  let node: String
  let metrics: AgentMetrics
  let say: (String) -> Void
  let scanner: PortScanner
  var reported: Set<String> = []
  public let name = "pods"
  public var watched: String { "/api/v1/pods?fieldSelector=spec.nodeName%3D\(node)" }

  public init(
    kube: KubeHTTP, node: String, metrics: AgentMetrics, scanner: PortScanner = PortScanner(),
    say: @escaping (String) -> Void
  ) {
    self.kube = kube
    self.node = node
    self.metrics = metrics
    self.scanner = scanner
    self.say = say
  }

  public func reconcile() throws(KubeHTTPError) -> String {
    let list = try kube.json("GET", watched)
    metrics.pods(
      (list["items"]?.arrayValue ?? []).compactMap { p -> AgentMetrics.Pod? in
        let labels = p["metadata"]?["labels"]
        guard let app = labels?["tars.io/ServerApp"]?.stringValue,
          let server = labels?["tars.io/ServerName"]?.stringValue
        else { return nil }
        let active = (p["status"]?["conditions"]?.arrayValue ?? []).contains {
          $0["type"]?.stringValue == "tars.io/active" && $0["status"]?.stringValue == "True"
        }
        return AgentMetrics.Pod(
          namespace: p["metadata"]?["namespace"]?.stringValue ?? "", name: p["metadata"]?["name"]?.stringValue ?? "",
          server: "\(app).\(server)", phase: p["status"]?["phase"]?.stringValue ?? "", active: active)
      })
    let pods = HostPortPod.from(podList: list)
    let version = list["metadata"]?["resourceVersion"]?.stringValue ?? ""
    // The host's network namespace is the agent's own (the DaemonSet runs it on the host's network).
    guard !pods.isEmpty,
      let host = scanner.namespace(of: getpid(), ports: Set(pods.lazy.flatMap { $0.ports.map(\.port) }))
    else { return version }
    let byName = Dictionary(
      (list["items"]?.arrayValue ?? []).map { ($0["metadata"]?["name"]?.stringValue ?? "", $0) },
      uniquingKeysWith: { a, _ in a })
    for conflict in PortScanner.conflicts(pods, host: host) {
      guard let pod = byName[conflict.pod] else { continue }
      let key = "\(pod["metadata"]?["uid"]?.stringValue ?? "")/\(conflict.port)/\(conflict.transport.rawValue)"
      guard reported.insert(key).inserted else { continue }
      metrics.hostPortConflict()
      say("tarsagent: host ports: pod \(conflict.pod): \(conflict.message)")
      do throws(KubeHTTPError) {
        try kube.event(about: pod, kind: "Pod", reason: "HostPortTaken", message: conflict.message, node: node)
      } catch {
        say("tarsagent: host ports: cannot post the Event: \(error.message)")
      }
    }
    return version
  }
}

/// A POSIX thread for a job that blocks (libcurl's watch), beside the agent's main loop.
enum AgentThread {
  final class Box {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
  }

  static func start(_ body: @escaping @Sendable () -> Void) {
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(
      &thread, nil,
      { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
      }, box)
    if rc == 0 { pthread_detach(thread) } else { Unmanaged<Box>.fromOpaque(box).release() }
  }
}
