import ArgumentParser
import Foundation
import NIOPosix
import TarsControlPlaneCore
import TarsRegistry

@main
struct ControlPlane: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tars-controlplane",
    abstract: "The TarsK8s control plane: one subcommand per service.",
    subcommands: [RegistryCommand.self])
}

struct StoreFlags: ParsableArguments {
  @Option(name: .customLong("store"), help: "Run on the embedded store kept in this SQLite file (one machine).")
  var store: String?

  @Option(name: .customLong("kubeconfig"), help: "A kubeconfig (default: the pod's service account, or $KUBECONFIG).")
  var kubeconfig: String?

  @Option(name: .customLong("context"), help: "The kubeconfig context (default: its current-context).")
  var context: String?

  @Option(
    name: .customLong("namespace"),
    help: "The namespace of the Tars servers (default: $Namespace, the context's, or tars).")
  var namespace: String?

  var selection: StoreSelection { StoreSelection(embeddedPath: store, kubeconfig: kubeconfig, context: context) }
}

struct RegistryCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "registry",
    abstract: "QueryObj (name service) and RegistryObj (tarsnode's descriptor and state reports).",
    discussion: """
      Endpoints come from the namespace's TServers and the pods labelled tars.io/ServerApp and
      tars.io/ServerName; a pod is active while its tars.io/active condition is True.
      Example: tars-controlplane registry --kubeconfig ~/.kube/config --namespace tars
      """)

  @OptionGroup var storeFlags: StoreFlags

  @Option(help: "Address to listen on.") var bind = "0.0.0.0"
  @Option(name: .customLong("query-port"), help: "QueryObj port.") var queryPort = 17890
  @Option(name: .customLong("registry-port"), help: "RegistryObj port.") var registryPort = 17891
  @Option(name: .customLong("metrics-port"), help: "Prometheus /metrics and /healthz (0: off).") var metricsPort = 9464
  @Option(name: .customLong("host-style"), help: "Endpoint hosts: ip (pod IPs) or dns (<pod>.<service>).")
  var hostStyle = "ip"
  @Option(name: .customLong("advertise-host"), help: "The name the registry's own endpoints carry.")
  var advertiseHost = "tars-tarsregistry"

  func run() async throws {
    guard let style = HostStyle(rawValue: hostStyle) else {
      throw ValidationError("--host-style must be ip or dns, not '\(hostStyle)'")
    }
    let opened = try storeFlags.selection.open()
    let namespace =
      storeFlags.namespace ?? ProcessInfo.processInfo.environment["Namespace"] ?? opened.namespace ?? "tars"
    var c = RegistryService.Configuration(namespace: namespace)
    c.bindHost = bind
    c.queryPort = queryPort
    c.registryPort = registryPort
    c.metricsPort = metricsPort == 0 ? nil : metricsPort
    c.hostStyle = style
    c.advertisedHost = advertiseHost
    let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    let service: RegistryService
    do {
      service = try await RegistryService.start(
        store: opened.store, configuration: c, group: MultiThreadedEventLoopGroup.singleton, log: log)
    } catch {
      await opened.close()
      throw error
    }
    log(
      "registry: namespace \(namespace) on \(opened.description); QueryObj \(bind):\(service.query.port), RegistryObj \(bind):\(service.registry.port)"
        + (c.metricsPort.map { ", metrics :\($0)" } ?? ""))
    if let pod = ProcessInfo.processInfo.environment["PodName"], !pod.isEmpty {
      await service.activateOwnPod(pod, log: log)
    }
    let signal = await waitForTermination()
    log("registry: stopping (signal \(signal))")
    await service.stop()
    await opened.close()
  }
}
