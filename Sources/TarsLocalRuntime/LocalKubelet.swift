import CTarsSpawn
import Foundation
import TarsKube
import TarsProtocol

/// The kubelet's part of the local runtime: a pod object becomes a tarsnode process on this
/// machine, and the pod's status follows it.
extension LocalRuntime {
  public func podDirectory(_ pod: String) -> String { "\(configuration.stateDirectory)/pods/\(pod)" }

  /// Where the server's own output goes (what `tarsctl logs` shows).
  public nonisolated static func outputLog(podDirectory: String, app: String, server: String) -> String {
    "\(podDirectory)/log/\(app)/\(server)/\(app).\(server).stdout.log"
  }

  /// Starts a pod's tarsnode from what the pod object says, as a kubelet would: the first
  /// container's image (a path here), its args and env (downward-API fields resolved for this
  /// machine), with the pod's own directories standing in for its volumes.
  func start(_ pod: KubeObject) async {
    let name = pod.name
    guard !shuttingDown else { return }
    guard let ip = pod.status?["podIP"]?.stringValue, !ip.isEmpty else { return }
    let app = pod.labels["tars.io/ServerApp"] ?? ""
    let serverName = pod.labels["tars.io/ServerName"] ?? ""
    guard let container = pod.spec?["containers"]?.arrayValue?.first else {
      await failStart(name, "the pod has no container: the workload's template must name one")
      return
    }
    let launch: LocalLaunch
    do {
      launch = try await LocalLaunch(
        pod: pod, container: container, ip: ip, store: store, configuration: configuration)
    } catch {
      await failStart(name, error.message)
      return
    }
    // Resolving left the actor (store reads): a shutdown, or another start, may have run since.
    guard !shuttingDown, processes[name] == nil else { return }
    let image = launch.image
    let dir = podDirectory(name)
    let fm = FileManager.default
    // The "image": a bin directory holding the server binary under its server name, where
    // tarsnode looks for it (`/usr/local/server/bin/<ServerName>` in a real image): a released
    // image's, unpacked, or one made here around the executable a path names.
    var bin = dir + "/image"
    do {
      for d in [dir + "/base", dir + "/log"] {
        try fm.createDirectory(atPath: d, withIntermediateDirectories: true)
      }
    } catch {
      await failStart(name, "cannot prepare \(dir): \(error)")
      return
    }
    if let ref = Self.registryImage(image) {
      let secrets = (pod.spec?["imagePullSecrets"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
      do {
        bin = try await serverFiles(ref, pullSecrets: secrets)
      } catch {
        await failStart(name, "cannot run the image \(image): \(error.message)")
        return
      }
      guard !shuttingDown, processes[name] == nil else { return }
      // A not-tars server names its command after `--`; a Tars one is its server name's binary.
      if !launch.arguments.contains("--"), !fm.isExecutableFile(atPath: bin + "/" + serverName) {
        await failStart(
          name,
          "the image \(image) has no executable /usr/local/server/bin/\(serverName): package the server as \(serverName)/\(serverName)"
        )
        return
      }
    } else {
      var isDirectory: ObjCBool = false
      guard fm.fileExists(atPath: image, isDirectory: &isDirectory), !isDirectory.boolValue,
        fm.isExecutableFile(atPath: image)
      else {
        await failStart(name, "spec.release.image \(image) is not an executable file on this machine")
        return
      }
      do {
        try fm.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try? fm.removeItem(atPath: bin + "/" + serverName)
        try fm.createSymbolicLink(atPath: bin + "/" + serverName, withDestinationPath: image)
      } catch {
        await failStart(name, "cannot prepare \(dir): \(error)")
        return
      }
    }
    // This machine's paths and addresses first; the container's own args (a not-tars
    // server's `-- COMMAND …`) last.
    let arguments =
      [
        configuration.tarsnode, "--image-bin-dir", bin, "--base-dir", "\(dir)/base/\(app).\(serverName)",
        "--log-dir", dir + "/log", "--registry", configuration.registry, "--locator", configuration.locator,
        "--notify", configuration.notify, "--secret-file", configuration.secretFile,
        "--grace", "\(configuration.graceSeconds)", "--no-stdout-copy",
      ] + launch.arguments
    var environment = ProcessInfo.processInfo.environment.filter {
      ["PATH", "HOME", "LANG", "TZ", "USER", "LOGNAME"].contains($0.key)
    }
    environment.merge(launch.environment) { $1 }
    environment["TARS_NODE_SECRET_FILE"] = configuration.secretFile
    environment["HOSTNAME"] = name
    let logFD = open(dir + "/tarsnode.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    defer { if logFD >= 0 { close(logFD) } }
    let nullFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    defer { if nullFD >= 0 { close(nullFD) } }
    var failedStep: UnsafePointer<CChar>?
    let env = environment.map { "\($0.key)=\($0.value)" }
    var pid = Self.spawn(
      arguments, environment: env, cwd: dir, stdin: nullFD, output: logFD, pidNamespace: pidNamespaces,
      failedStep: &failedStep)
    if pid == -EPERM && pidNamespaces {
      // Root without CAP_SYS_ADMIN (a container): subreaper mode still supervises everything.
      pidNamespaces = false
      log("local: this machine refuses new PID namespaces (EPERM); tarsnodes run as subreapers from now on")
      pid = Self.spawn(
        arguments, environment: env, cwd: dir, stdin: nullFD, output: logFD, pidNamespace: false,
        failedStep: &failedStep)
    }
    guard pid > 0 else {
      let step = failedStep.map { String(cString: $0) } ?? "spawn"
      await failStart(name, "cannot start tarsnode: \(step): \(String(cString: strerror(-pid)))")
      return
    }
    processes[name] = PodProcess(pid: pid, started: Date(), uid: pod.uid, ip: ip)
    try? "\(pid)\n".write(toFile: dir + "/tarsnode.pid", atomically: true, encoding: .utf8)
    log("local: \(name): tarsnode pid \(pid) on \(ip)\(pidNamespaces ? " (own PID namespace)" : "")")
    let restarts = backoff[name]?.restarts ?? 0
    await patchStatus(
      name,
      .object([
        ("phase", .string("Running")),
        ("conditions", .array([Self.condition("ContainersReady", true)])),
        (
          "containerStatuses",
          .array([
            .object([
              ("name", .string(launch.containerName)), ("image", .string(image)), ("ready", .bool(true)),
              ("started", .bool(true)), ("restartCount", .integer(Int64(restarts))),
              ("state", .object([("running", .object([("startedAt", .string(kubeTimestamp()))]))])),
            ])
          ])
        ),
      ]))
    await event(name, type: "Normal", reason: "Started", message: "started tarsnode (pid \(pid)) for \(image)")
  }

  static func spawn(
    _ arguments: [String], environment: [String], cwd: String, stdin: Int32, output: Int32, pidNamespace: Bool,
    failedStep: inout UnsafePointer<CChar>?
  ) -> pid_t {
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup($0) } + [nil]
    defer {
      for p in argv { free(p) }
      for p in envp { free(p) }
    }
    return arguments[0].withCString { path in
      cwd.withCString { cwdPath in
        argv.withUnsafeBufferPointer { a in
          envp.withUnsafeBufferPointer { e in
            var o = ctars_spawn_options()
            o.path = path
            o.argv = a.baseAddress
            o.envp = e.baseAddress
            o.cwd = cwdPath
            o.stdin_fd = stdin
            o.stdout_fd = output
            o.stderr_fd = output
            o.new_session = 1
            o.new_pid_namespace = pidNamespace ? 1 : 0
            return ctars_spawn(&o, &failedStep)
          }
        }
      }
    }
  }

  func failStart(_ pod: String, _ message: String) async {
    log("local: \(pod): \(message)")
    var b = backoff[pod] ?? Backoff(failures: 0, restarts: 0, notBefore: Date())
    _ = b.failed()
    backoff[pod] = b
    await patchStatus(
      pod,
      .object([
        ("conditions", .array([Self.condition("ContainersReady", false, reason: "StartFailed", message: message)]))
      ]))
    await event(pod, type: "Warning", reason: "Failed", message: message)
  }

  /// Ready follows the readiness gate: the container runs and tarsnode reported Active.
  func syncReady(_ pod: KubeObject) async {
    let active = Pod(pod).isTarsActive
    let ready = pod.condition("Ready")?["status"]?.stringValue == "True"
    guard active != ready else { return }
    await patchStatus(pod.name, .object([("conditions", .array([Self.condition("Ready", active)]))]))
  }

  /// A pod whose tarsnode is gone: no longer ready, and no longer active — nothing is left to
  /// tell the registry otherwise.
  func markStopped(_ pod: String, reason: String, message: String) async {
    guard pods.object(namespace: configuration.namespace, name: pod) != nil else { return }
    await patchStatus(
      pod,
      .object([
        (
          "conditions",
          .array([
            Self.condition("ContainersReady", false, reason: reason, message: message),
            Self.condition("Ready", false, reason: reason),
            Self.condition("tars.io/active", false, reason: "ContainerNotRunning", message: message),
          ])
        )
      ]))
  }
}
