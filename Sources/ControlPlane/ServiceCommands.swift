import ArgumentParser
import Foundation
import NIOPosix
import TarsAdmin
import TarsAuth
import TarsConfigService
import TarsControlPlaneCore
import TarsImageService
import TarsKube
import TarsMonitorService
import TarsNIO
import TarsNotifyService
import TarsProtocol

struct ConfigCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "config",
    abstract: "ConfigObj: the TConfig files servers load (loadConfig, addConfig), per server and per pod.",
    discussion: """
      Files come from the namespace's active TConfigs; a pod-level file (podSeq) is found from the
      caller's address among the Tars pods. The registry names it tars.tarsconfig.ConfigObj.
      Example: tars-controlplane config --kubeconfig ~/.kube/config --namespace tars
      """)

  @OptionGroup var storeFlags: StoreFlags
  @Option(help: "Address to listen on.") var bind = "0.0.0.0"
  @Option(name: .customLong("config-port"), help: "ConfigObj port.") var port = 17892

  func run() async throws {
    let opened = try storeFlags.selection.open()
    let namespace = storeFlags.namespace(of: opened)
    let pods = Informer(store: opened.store, resource: .pods, namespace: namespace, selector: .tarsServer)
    let config = ConfigService(store: opened.store, namespace: namespace, pods: pods)
    let tasks = [Task { await pods.run() }, Task { await config.run() }]
    let server: TarsNIOServer
    do {
      server = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: bind, port: port, timeout: 60_000),
        servants: ["tars.tarsconfig.ConfigObj": config], group: MultiThreadedEventLoopGroup.singleton)
    } catch let error as ListenError {
      for t in tasks { t.cancel() }
      await opened.close()
      throw StartError(message: "cannot start: \(error.withFlags(["ConfigObj": "--config-port"], address: "--bind"))")
    }
    stderrLog("config: namespace \(namespace) on \(opened.description); ConfigObj \(bind):\(server.port)")
    let signal = await waitForTermination()
    stderrLog("config: stopping (signal \(signal))")
    try? await server.close()
    for t in tasks { t.cancel() }
    await opened.close()
  }
}

struct AdminCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "admin",
    abstract: "The admin API tarsctl talks to.",
    discussion: """
      Every request needs a bearer token of --token-file, whose role allows it (viewer: reads;
      operator: commands, scale, drain; admin: apply, delete); every change is logged with who
      made it. Commands reach each pod's NodeObj
      signed with the secret in --node-secret-file (the Secret every tarsnode mounts).
      Notifications are the Events NotifyObj (tars-controlplane notify) writes.
      Example: tars-controlplane admin --kubeconfig ~/.kube/config --token-file token --node-secret-file secret
      """)

  @OptionGroup var storeFlags: StoreFlags
  @Option(help: "Address to listen on.") var bind = "0.0.0.0"
  @Option(name: .customLong("admin-port"), help: "Admin API port.") var adminPort = 17880
  @Option(
    name: .customLong("token-file"),
    help: "The tokens, a line each: TOKEN ROLE NAME, ROLE viewer, operator or admin (a bare TOKEN: an admin).")
  var tokenFile = "/etc/tars/admin-token/token"
  @Option(name: .customLong("node-secret-file"), help: "The NodeObj secret, as every tarsnode has it.")
  var nodeSecretFile = "/etc/tars/node-secret/secret"
  @Option(name: .customLong("max-replicas"), help: "The most replicas apply and scale accept.")
  var maxReplicas = 1000
  @Option(
    name: .customLong("image-work-dir"),
    help: "Where uploaded packages are built into images (empty: no image service).")
  var imageWorkDir = "/var/lib/tars-images"
  @Option(name: .customLong("max-upload-mib"), help: "The largest package an upload may carry, in MiB.")
  var maxUploadMiB = 1024
  @Option(
    name: .customLong("log-query"),
    help: "HOST:PORT of the log service's LogQueryObj, for tarsctl logs --remote (empty: none).")
  var logQuery = "tars-tarslog:17896"

  /// The tokens (`TOKEN ROLE NAME` lines, or one bare admin token), refused when others may
  /// read the file or a token is too short to be a secret.
  static func tokens(_ path: String) throws -> AdminTokens {
    var info = stat()
    guard stat(path, &info) == 0, let text = try? String(contentsOfFile: path, encoding: .utf8) else {
      throw StartError(
        message: "cannot read the admin token \(path): mount the Secret tars-admin-token or pass --token-file")
    }
    guard info.st_mode & 0o004 == 0 else {
      throw StartError(message: "the admin token \(path) is readable by anyone: give it mode 0440 or stricter")
    }
    do {
      return try AdminTokens(file: text)
    } catch {
      throw StartError(message: "the admin tokens in \(path): \(error)")
    }
  }

  func validate() throws {
    guard (0...100_000).contains(maxReplicas) else {
      throw ValidationError("--max-replicas must be 0...100000, not \(maxReplicas)")
    }
    guard (1...16_384).contains(maxUploadMiB) else {
      throw ValidationError("--max-upload-mib must be 1...16384, not \(maxUploadMiB)")
    }
  }

  func run() async throws {
    let tokens = try Self.tokens(tokenFile)
    let nodeAuth: NodeCallAuth
    do {
      nodeAuth = try NodeCallAuth(secretFile: nodeSecretFile)
    } catch {
      throw StartError(message: "cannot use the NodeObj secret \(nodeSecretFile): \(error) (--node-secret-file)")
    }
    let opened = try storeFlags.selection.open()
    let namespace = storeFlags.namespace(of: opened)
    let group = MultiThreadedEventLoopGroup.singleton
    let tservers = Informer(store: opened.store, resource: .tservers, namespace: namespace)
    let pods = Informer(store: opened.store, resource: .pods, namespace: namespace, selector: .tarsServer)
    let tasks = [Task { await tservers.run() }, Task { await pods.run() }]
    let nodeClient = TarsNIOClient(group: group)
    var deps = AdminServer.Dependencies(
      store: opened.store, namespace: namespace, tservers: tservers, pods: pods, nodeAuth: nodeAuth,
      nodeClient: nodeClient)
    deps.maxReplicas = maxReplicas
    deps.maxUploadBytes = Int64(maxUploadMiB) << 20
    // The monitor's database, for tarsctl stat and property (the Secret tars-monitor-database).
    if let url = ProcessInfo.processInfo.environment[MonitorDatabase.environment], !url.isEmpty {
      deps.monitor = MonitorService(store: try MonitorDatabase.open(url), log: stderrLog)
    }
    if let (host, port) = try hostPort(logQuery, flag: "--log-query") {
      deps.logQuery = TarsEndpoint(host: host, port: Int(port), timeout: 10_000)
    }
    if !imageWorkDir.isEmpty {
      // The pod's name holds a build's Lease; two replicas never build one server at once.
      let identity = ProcessInfo.processInfo.environment["PodName"] ?? ProcessInfo.processInfo.hostName
      deps.images = ImageService(
        store: opened.store, namespace: namespace,
        options: ImageService.Options(identity: identity, workDirectory: imageWorkDir), log: stderrLog)
    }
    let admin: AdminServer
    do {
      admin = try await AdminServer.start(
        host: bind, port: adminPort, tokens: tokens, dependencies: deps, log: stderrLog)
    } catch {
      for t in tasks { t.cancel() }
      await nodeClient.close()
      await opened.close()
      if let error = error as? ListenError {
        throw StartError(message: "cannot start: \(error.withFlags(["admin API": "--admin-port"], address: "--bind"))")
      }
      throw StartError(message: "cannot start: \(error)")
    }
    stderrLog("admin: namespace \(namespace) on \(opened.description); admin API \(bind):\(admin.port)")
    let signal = await waitForTermination()
    stderrLog("admin: stopping (signal \(signal))")
    await admin.stop()
    for t in tasks { t.cancel() }
    await nodeClient.close()
    await opened.close()
  }
}

struct NotifyCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "notify",
    abstract: "NotifyObj: where servers and tarsnodes report (restarts, exits, alarms), kept as Events.",
    discussion: """
      Each notification becomes a Kubernetes Event about the server's TServer, labelled
      tars.io/notify (kubectl describe tserver shows them; tarsctl notifications lists them), so
      replicas share one history; the API server's --event-ttl (1 h by default) bounds it.
      Example: tars-controlplane notify --kubeconfig ~/.kube/config --namespace tars
      """)

  @OptionGroup var storeFlags: StoreFlags
  @Option(help: "Address to listen on.") var bind = "0.0.0.0"
  @Option(name: .customLong("notify-port"), help: "NotifyObj port.") var port = 17893
  @Option(name: .customLong("queue"), help: "Notifications held while the API is away; beyond, dropped and counted.")
  var queue = 10_000

  func validate() throws {
    guard (1...1_000_000).contains(queue) else { throw ValidationError("--queue must be 1...1000000, not \(queue)") }
  }

  func run() async throws {
    let opened = try storeFlags.selection.open()
    let namespace = storeFlags.namespace(of: opened)
    let notify = NotifyService(store: opened.store, namespace: namespace, capacity: queue, log: stderrLog)
    let task = Task { await notify.run() }
    let server: TarsNIOServer
    do {
      server = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: bind, port: port, timeout: 60_000),
        servants: ["tars.tarsnotify.NotifyObj": notify], group: MultiThreadedEventLoopGroup.singleton)
    } catch let error as ListenError {
      task.cancel()
      await opened.close()
      throw StartError(message: "cannot start: \(error.withFlags(["NotifyObj": "--notify-port"], address: "--bind"))")
    }
    stderrLog("notify: namespace \(namespace) on \(opened.description); NotifyObj \(bind):\(server.port)")
    let signal = await waitForTermination()
    stderrLog("notify: stopping (signal \(signal)); \(notify.queued) notifications not written")
    try? await server.close()
    task.cancel()
    await opened.close()
  }
}

struct SecretsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "secrets",
    abstract: "Creates the NodeObj secret and the admin token Secrets if they do not exist (the install Job).",
    discussion: """
      tars-node-secret (key secret) and tars-admin-token (key token, one admin token), 32 random
      bytes each; a Secret that exists is kept. Read the token with
      kubectl -n tars get secret tars-admin-token -o jsonpath='{.data.token}' | base64 -d
      """)

  @OptionGroup var storeFlags: StoreFlags

  func run() async throws {
    let opened = try storeFlags.selection.open()
    let namespace = storeFlags.namespace(of: opened)
    do {
      for outcome in try await InstallSecrets.ensure(store: opened.store, namespace: namespace) {
        stderrLog("secrets: \(namespace)/\(outcome.name) \(outcome.created ? "created" : "exists, kept")")
      }
      await opened.close()
    } catch {
      await opened.close()
      throw StartError(message: "cannot create the Secrets in namespace \(namespace): \(error.message)")
    }
  }
}
