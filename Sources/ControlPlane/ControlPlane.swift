import ArgumentParser
import Foundation
import NIOPosix
import TarsAdminAPI
import TarsControlPlaneCore
import TarsFramework
import TarsOneMachine
import TarsProtocol
import TarsRegistry

@main
struct ControlPlane: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tars-controlplane",
    abstract: "The TarsK8s control plane: one subcommand per service.",
    subcommands: [
      UpCommand.self, RegistryCommand.self, ConfigCommand.self, AdminCommand.self, ControllerCommand.self,
      NotifyCommand.self, MonitorCommand.self, LogCommand.self, SecretsCommand.self,
    ])
}

/// The log line every subcommand writes to stderr.
let stderrLog: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

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

  /// `--namespace`, else the pod's (`$Namespace`), else the store's context's, else `tars`.
  func namespace(of opened: StoreSelection.Opened) -> String {
    namespace ?? ProcessInfo.processInfo.environment["Namespace"] ?? opened.namespace ?? "tars"
  }
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
  @Option(
    name: .customLong("config-obj"),
    help: "HOST:PORT answered for tars.tarsconfig.ConfigObj (tars-controlplane config; empty: none).")
  var configObj = "tars-tarsconfig:17892"
  @Option(
    name: .customLong("notify-obj"),
    help: "HOST:PORT answered for tars.tarsnotify.NotifyObj (tars-controlplane admin; empty: none).")
  var notifyObj = "tars-tarsnotify:17893"
  @Option(
    name: .customLong("monitor-obj"),
    help:
      "HOST:PORT answered for tars.tarsstat.StatObj and tars.tarsproperty.PropertyObj (tars-controlplane monitor; empty: none)."
  )
  var monitorObj = "tars-tarsmonitor:17894"
  @Option(
    name: .customLong("log-obj"),
    help: "HOST:PORT answered for tars.tarslog.LogObj (tars-controlplane log; empty: none).")
  var logObj = "tars-tarslog:17896"

  /// The framework's own servants by their Services' names, as servers' templates name them.
  func builtins() throws -> [String: [EndpointF]] {
    var out: [String: [EndpointF]] = [:]
    for (servant, value, flag) in [
      ("tars.tarsconfig.ConfigObj", configObj, "--config-obj"),
      ("tars.tarsnotify.NotifyObj", notifyObj, "--notify-obj"),
      ("tars.tarsstat.StatObj", monitorObj, "--monitor-obj"),
      ("tars.tarsproperty.PropertyObj", monitorObj, "--monitor-obj"),
      ("tars.tarslog.LogObj", logObj, "--log-obj"),
    ] {
      if let (host, port) = try hostPort(value, flag: flag) {
        out[servant] = RegistryView.Options.builtin(host: host, port: port)
      }
    }
    return out
  }

  /// The flag that sets each listener's port.
  static let listenFlags = ["QueryObj": "--query-port", "RegistryObj": "--registry-port", "metrics": "--metrics-port"]

  func validate() throws { _ = try builtins() }

  func run() async throws {
    guard let style = HostStyle(rawValue: hostStyle) else {
      throw ValidationError("--host-style must be ip or dns, not '\(hostStyle)'")
    }
    let opened = try storeFlags.selection.open()
    let namespace = storeFlags.namespace(of: opened)
    var c = RegistryService.Configuration(namespace: namespace)
    c.bindHost = bind
    c.queryPort = queryPort
    c.registryPort = registryPort
    c.metricsPort = metricsPort == 0 ? nil : metricsPort
    c.hostStyle = style
    c.advertisedHost = advertiseHost
    c.extraBuiltins = try builtins()
    let log = stderrLog
    let service: RegistryService
    do {
      service = try await RegistryService.start(
        store: opened.store, configuration: c, group: MultiThreadedEventLoopGroup.singleton, log: log)
    } catch let error as ListenError {
      await opened.close()
      throw StartError(message: "cannot start: \(error.withFlags(Self.listenFlags, address: "--bind"))")
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

struct UpCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "up",
    abstract: "The whole framework on this machine: registry, ConfigObj, NotifyObj, admin API and local pods.",
    discussion: """
      State (the embedded store, admin.token, the NodeObj secret, each pod's files) lives in --state;
      a second start resumes from it. Each TServer replica runs as a pod: tarsnode supervising the
      binary named by spec.release.image, on its own 127.0.x.y address.
      Example: tars-controlplane up --manifests examples/one-machine
      """)

  @Option(name: .long, help: "The state directory.") var state = ".tars"
  @Option(name: .long, help: "Apply the TServer/TTemplate/TConfig YAML in this folder (or file) at start.")
  var manifests: String?
  @Option(name: .long, help: "The namespace of the servers.") var namespace = "tars"
  @Option(name: .long, help: "The tarsnode binary (default: next to this one).") var tarsnode: String?
  @Option(name: .customLong("query-port"), help: "QueryObj (the locator) port.") var queryPort = 17890
  @Option(name: .customLong("registry-port"), help: "RegistryObj port.") var registryPort = 17891
  @Option(name: .customLong("config-port"), help: "ConfigObj port.") var configPort = 17892
  @Option(name: .customLong("notify-port"), help: "NotifyObj port.") var notifyPort = 17893
  @Option(name: .customLong("monitor-port"), help: "StatObj and PropertyObj port.") var monitorPort = 17894
  @Option(name: .customLong("monitor-metrics-port"), help: "The calls' Prometheus /metrics (0: off).")
  var monitorMetricsPort = 17895
  @Option(name: .customLong("log-port"), help: "LogObj and LogQueryObj port (servers' remote logs).")
  var logPort = 17896
  @Option(name: .customLong("admin-port"), help: "Admin API port.") var adminPort = 17880
  @Option(name: .customLong("metrics-port"), help: "The registry's /metrics (0: off).") var metricsPort = 0
  @Option(name: .long, help: "Seconds a pod's server gets to stop.") var grace = 10
  @Option(name: .customLong("first-pod-ip"), help: "The first pod address (127.x); pods get consecutive ones.")
  var firstPodIP = "127.0.100.1"
  @Flag(name: .customLong("no-pid-namespaces"), help: "Run tarsnodes as subreapers even as root.")
  var noPIDNamespaces = false
  @Option(
    name: .customLong("docker-config"),
    help: "Registry credentials for releases (default: ~/.docker/config.json when it exists).")
  var dockerConfig: String?

  /// The flag that sets each listener's port.
  static let listenFlags = [
    "QueryObj": "--query-port", "RegistryObj": "--registry-port", "ConfigObj": "--config-port",
    "NotifyObj": "--notify-port", "admin API": "--admin-port", "metrics": "--metrics-port",
    "PropertyObj+StatObj": "--monitor-port", "calls' metrics": "--monitor-metrics-port",
    "LogObj+LogQueryObj": "--log-port",
  ]

  func run() async throws {
    let log = stderrLog
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let directory = executable.deletingLastPathComponent()
    var o = OneMachine.Options(tarsnode: tarsnode ?? directory.appendingPathComponent("tarsnode").path)
    o.programs = directory.path
    o.stateDirectory = state
    o.manifests = manifests
    o.namespace = namespace
    o.queryPort = queryPort
    o.registryPort = registryPort
    o.configPort = configPort
    o.notifyPort = notifyPort
    o.monitorPort = monitorPort
    o.monitorMetricsPort = monitorMetricsPort
    o.logPort = logPort
    o.adminPort = adminPort
    o.metricsPort = metricsPort
    o.graceSeconds = grace
    if noPIDNamespaces { o.pidNamespaces = false }
    o.firstPodIP = firstPodIP
    let home = ProcessInfo.processInfo.environment["HOME"].map { $0 + "/.docker/config.json" }
    o.dockerConfig = dockerConfig ?? home.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
    if let path = o.dockerConfig, !FileManager.default.isReadableFile(atPath: path) {
      throw StartError(message: "cannot read --docker-config \(path)")
    }
    let machine: OneMachine
    do {
      machine = try await OneMachine.start(o, log: log)
    } catch let error as ListenError {
      throw StartError(message: "cannot start: \(error.withFlags(Self.listenFlags, address: nil))")
    } catch {
      throw StartError(message: "cannot start: \(error)")
    }
    let started = ContinuousClock.now
    print(
      """
      Tars is up (state in \(machine.stateDirectory); pods in \(o.pidNamespaces ? "their own PID namespaces" : "subreaper mode")).
        locator    \(machine.locator)
        admin API  \(machine.adminURL) (token in \(machine.tokenFile))
      Try, in another terminal here:
        tarsctl servers; tarsctl pods
        tarsctl query Test.HelloServer.HelloObj
        hello-client --count 3 Tars
        tarsctl notify Test.HelloServer tars.viewstatus
        tarsctl events
      Ctrl-C stops everything; starting again resumes.
      """)
    fflush(nil)
    let readiness = Task {
      let count = await machine.waitUntilAllActive(timeout: .seconds(120))
      if Task.isCancelled { return }
      if let count, count > 0 {
        let elapsed = ContinuousClock.now - started
        let ms = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        print("All \(count) pods are active (\(ms) ms after the services started).")
      } else if count == 0 {
        print("No servers yet: tarsctl apply -f SERVER.yaml adds one.")
      } else {
        print("Not every pod is active after 120 s: tarsctl pods and tarsctl events say why.")
      }
      fflush(nil)
    }
    let signal = await waitForTermination()
    readiness.cancel()
    log("up: stopping (signal \(signal)); pods get \(grace) s")
    await machine.stop()
    log("up: stopped")
  }
}

/// `HOST:PORT` from a flag, nil when empty; an error naming the flag otherwise.
func hostPort(_ value: String, flag: String) throws -> (String, Int32)? {
  guard !value.isEmpty else { return nil }
  let parts = value.split(separator: ":")
  guard parts.count == 2, !parts[0].isEmpty, let port = Int32(parts[1]), (1...65535).contains(port) else {
    throw ValidationError("\(flag) must be HOST:PORT (or empty), not '\(value)'")
  }
  return (String(parts[0]), port)
}

/// A failure to start, printed without the usage text (the arguments were fine).
struct StartError: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}

extension ListenError {
  /// This error naming the flag an operator of tars-controlplane changes.
  func withFlags(_ flags: [String: String], address: String?) -> ListenError {
    guard let flag = flags[service] else { return self }
    return changing(flag, of: "tars-controlplane", address: address)
  }
}
