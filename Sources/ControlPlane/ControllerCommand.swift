import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import TarsControlPlaneCore
import TarsController
import TarsKube
import TarsProtocol
import TarsRegistry

struct ControllerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "controller",
    abstract: "Turns the namespace's TServers into StatefulSets, DaemonSets and headless Services.",
    discussion: """
      Level-triggered: every TServer is reconciled on each change of it or of what it owns, and
      again every --resync seconds. Each pod gets tarsnode from --node-image (an init container
      copies it), so the release image needs no framework base.
      Example: tars-controlplane controller --kubeconfig ~/.kube/config --node-image registry/tars/node:1
      """)

  @OptionGroup var storeFlags: StoreFlags

  @Option(name: .customLong("node-image"), help: "The image holding the static tarsnode at /tarsnode.")
  var nodeImage: String

  @Option(name: .customLong("node-image-secret"), help: "The pull secret of --node-image.")
  var nodeImageSecret: String?

  @Option(name: .customLong("node-secret"), help: "The Secret holding the NodeObj secret (key: secret).")
  var nodeSecret = "tars-node-secret"

  @Option(help: "RegistryObj, as each pod's tarsnode reaches it.")
  var registry = "tars.tarsregistry.RegistryObj@tcp -h tars-tarsregistry -p 17891"

  @Option(help: "QueryObj, the locator written into each server's config.")
  var locator = "tars.tarsregistry.QueryObj@tcp -h tars-tarsregistry -p 17890"

  @Option(help: "NotifyObj, where tarsnode reports exits.")
  var notify = "tars.tarsnotify.NotifyObj@tcp -h tars-tarsnotify -p 17893"

  @Option(help: "Seconds tarsnode gets to stop a server (the pod gets 5 more).")
  var grace = 25

  @Option(help: "Seconds a terminating pod keeps serving before its stop (its preStop hook; 0: none).")
  var drain = 10

  @Option(help: "Reconciles run at once.")
  var workers = 2

  @Option(help: "Seconds between full resyncs.")
  var resync = 300

  @Option(help: "Address of /metrics and /healthz.")
  var bind = "0.0.0.0"

  @Option(name: .customLong("metrics-port"), help: "Prometheus /metrics and /healthz (0: off).")
  var metricsPort = 9465

  @Flag(
    name: .customLong("node-labels"),
    help:
      "Keep the aggregate label tars.io/node on nodes labelled tars.io/node.<namespace> (cluster-wide: deploy/controller/nodes.yaml)."
  )
  var nodeLabels = false

  @Flag(
    name: .customLong("leader-elect"), inversion: .prefixedNo,
    help: "Take turns with other replicas through the Lease tars-controller (a replica that stops hands over at once).")
  var leaderElect = true

  func validate() throws {
    guard (1...3600).contains(grace) else { throw ValidationError("--grace must be 1...3600 seconds, not \(grace)") }
    guard (0...3600).contains(drain) else { throw ValidationError("--drain must be 0...3600 seconds, not \(drain)") }
    guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1...64, not \(workers)") }
    guard resync >= 1 else { throw ValidationError("--resync must be at least 1 second, not \(resync)") }
    guard !nodeImage.trimmingCharacters(in: .whitespaces).isEmpty else {
      throw ValidationError("--node-image must name the image that holds tarsnode")
    }
  }

  func run() async throws {
    let log = stderrLog
    let opened = try storeFlags.selection.open()
    let namespace = storeFlags.namespace(of: opened)
    var workload = WorkloadOptions(nodeImage: nodeImage)
    workload.nodeImagePullSecret = nodeImageSecret
    workload.nodeSecretName = nodeSecret
    workload.registry = registry
    workload.locator = locator
    workload.notify = notify
    workload.graceSeconds = grace
    workload.drainSeconds = drain
    var c = Controller.Configuration(namespace: namespace, workload: workload)
    c.workers = workers
    c.resyncSeconds = resync
    c.manageNodeLabels = nodeLabels
    let controller = Controller(store: opened.store, configuration: c, log: log)
    let environment = ProcessInfo.processInfo.environment
    let identity = environment["PodName"] ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
    let elector = LeaderElector(
      store: opened.store, namespace: namespace, name: "tars-controller", identity: identity, log: log)
    let elect = leaderElect
    var metrics: (any Channel)?
    if metricsPort != 0 {
      do {
        metrics = try await MetricsHTTP.start(
          host: bind, port: metricsPort, group: MultiThreadedEventLoopGroup.singleton
        ) { path in
          switch path {
          case "/metrics": return (200, controller.exposition(leader: !elect || elector.isLeader))
          case "/healthz":
            return controller.hasSynced || (elect && !elector.isLeader) ? (200, "ok\n") : (503, "not synced\n")
          default: return (404, "not found\n")
          }
        }
      } catch let error as ListenError {
        await opened.close()
        throw StartError(
          message: "cannot start: \(error.withFlags(["metrics": "--metrics-port"], address: "--bind"))")
      }
    }
    let task = Task {
      if elect { await elector.run { await controller.run() } } else { await controller.run() }
    }
    log("controller: namespace \(namespace) on \(opened.description); node image \(nodeImage)")
    let signal = await waitForTermination()
    log("controller: stopping (signal \(signal))")
    task.cancel()
    await task.value
    try? await metrics?.close()
    await opened.close()
  }
}
