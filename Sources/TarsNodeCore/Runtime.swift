import CTarsSys
import Glibc
import TarsAuth
import TarsFramework
import TarsProtocol
import TarsRPC

/// tarsnode, wired together: signals blocked before anything else and read from a signalfd on
/// the one event loop, which also carries ServerObj, NodeObj, the registry client, the output
/// pipe and every timer. No Swift concurrency: a PID 1 built on it swallowed signals and left
/// zombies (shared/reference/swift-build-facts.md).
public final class NodeRuntime {
  /// The program: returns tarsnode's exit status.
  public static func main() -> Int32 {
    // 1. Before any thread exists: block every signal an init forwards (threads created later
    //    inherit the mask) and read them from a signalfd. SIGCHLD is tarsnode's own; SIGTERM and
    //    SIGINT begin its stop sequence; every other one goes to the server as it came — job
    //    control (TSTP, TTIN, TTOU, CONT), alarms, PWR, the real-time signals. Only the
    //    synchronous ones (SEGV, BUS, FPE, ILL, TRAP, SYS) keep their default action.
    let signalFD = ctars_block_all_signals_to_fd()
    guard signalFD >= 0 else {
      printError("tarsnode: cannot set up signal handling: \(String(cString: strerror(errno)))")
      return 1
    }

    if let plain = PlainInit.lean() {
      if getpid() != 1 { _ = ctars_set_child_subreaper() }
      return PlainInit.run(command: plain.command, grace: plain.grace, group: plain.group, signalFD: signalFD)
    }
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.count == 2 && arguments[0] == "--resolve" { return resolve(arguments[1]) }
    if arguments.count == 2 && arguments[0] == "--install" { return install(into: arguments[1]) }
    if arguments.count == 2 && arguments[0] == "--drain" { return drain(arguments[1]) }
    let environment = currentEnvironment()
    let settings: NodeSettings
    do {
      settings = try NodeSettings.parse(arguments: arguments, environment: environment)
    } catch {
      if error.message == NodeSettings.usage {
        print(error.message)
        return 0
      }
      printError("tarsnode: \(error.message)")
      return 2
    }
    if getpid() != 1 { _ = ctars_set_child_subreaper() }

    do {
      let runtime = try NodeRuntime(settings: settings, environment: environment, signalFD: signalFD)
      return runtime.run()
    } catch let error as CommandNotFound {
      printError("tarsnode: \(error)")
      return 127
    } catch {
      printError("tarsnode: \(error)")
      return 1
    }
  }

  /// `tarsnode --install DIR`: copies this executable to DIR/tarsnode (mode 0755). The node
  /// image holds nothing but tarsnode — no `cp` — and its init container runs this to put
  /// tarsnode into the pod's shared `emptyDir`, so an unchanged server image runs under it.
  static func install(into directory: String) -> Int32 {
    do {
      let bytes = try Files.read("/proc/self/exe")
      try Files.makeDirectories(directory)
      try Files.writeAtomically(directory + "/tarsnode", bytes, mode: 0o755)
      print("tarsnode: installed \(directory)/tarsnode (\(bytes.count) bytes)")
      return 0
    } catch {
      printError("tarsnode: cannot install into \(directory): \(error)")
      return 1
    }
  }

  /// `tarsnode --drain SECONDS`: the server container's preStop hook. A terminating pod is no
  /// longer among the registry's active endpoints, but clients keep the endpoints they fetched
  /// until their next refresh; waiting here, while the server still serves, lets them move on
  /// before the kubelet sends tarsnode the stop (so a rolling release loses no calls).
  static func drain(_ text: String) -> Int32 {
    guard let seconds = Int(text), (0...3600).contains(seconds) else {
      printError("tarsnode: --drain takes the seconds to wait, 0...3600, not '\(text)'")
      return 2
    }
    print("tarsnode: draining for \(seconds) s: the registry lists this pod inactive; clients move on")
    var left = timespec(tv_sec: seconds, tv_nsec: 0)
    var rest = timespec()
    while nanosleep(&left, &rest) != 0 && errno == EINTR { left = rest }
    return 0
  }

  /// `tarsnode --resolve HOST`: how this container resolves a name (/etc/hosts, then the
  /// nameservers of /etc/resolv.conf), for operators of images that have no nslookup.
  static func resolve(_ host: String) -> Int32 {
    do {
      let address = try SocketAddress(host: host, port: 0)
      print("\(host): \(address.host)")
      return 0
    } catch {
      printError("tarsnode: \(error)")
      return 1
    }
  }

  let settings: NodeSettings
  let environment: [String: String]
  let loop: TarsEventLoop
  let client: TarsClient
  let supervisor: Supervisor
  let signalFD: Int32
  var exitCode: Int32?
  var capture: OutputCapture?
  var servers: [TarsServer] = []
  var reporter: StateReporter?
  var notifySocket: NotifySocket?
  var locator: TarsLocator?
  var devNull: Int32 = -1

  init(settings: NodeSettings, environment: [String: String], signalFD: Int32) throws {
    self.settings = settings
    self.environment = environment
    self.signalFD = signalFD
    loop = try TarsEventLoop()
    client = TarsClient(loop: loop)
    supervisor = Supervisor(settings: settings, loop: loop)
    supervisor.log = { printError("tarsnode: \($0)") }
    if case .server = settings.mode { supervisor.trace = supervisor.log }
    supervisor.exit = { [unowned self] code in
      if self.exitCode == nil { self.exitCode = code }
      self.loop.stop()
    }
    try loop.register(fd: signalFD, events: .readable) { [unowned self] _ in self.handleSignals() }
    switch settings.mode {
    case .plainInit: try setUpPlain()
    case .server: try setUpServer()
    }
  }

  func run() -> Int32 {
    supervisor.begin()
    while exitCode == nil { loop.run() }
    capture?.finish()
    for s in servers { s.close() }
    return exitCode ?? 0
  }

  func handleSignals() {
    var own: Int32 = 0
    while true {
      let sig = ctars_read_signal_from(signalFD, &own)
      if sig == 0 { return }
      if own != 0 { continue }
      switch sig {
      case SIGCHLD: reap()
      case SIGTERM, SIGINT: supervisor.containerStop(signal: sig)
      default: supervisor.forward(sig)
      }
    }
  }

  /// Collects every exited child: the server's exit drives the supervisor, orphans adopted as
  /// PID 1 (or subreaper) are simply reaped.
  func reap() {
    var status: Int32 = 0
    while true {
      let pid = waitpid(-1, &status, WNOHANG)
      if pid <= 0 { return }
      if pid == supervisor.pid { supervisor.exited(ExitStatus(waitStatus: status)) }
    }
  }

  // MARK: Plain init mode

  func setUpPlain() throws {
    if settings.captureOutput { try setUpCapture() }
    let settings = self.settings
    let environment = self.environment
    guard let path = Files.findExecutable(settings.command[0], path: environment["PATH"]) else {
      throw CommandNotFound(command: settings.command[0])
    }
    supervisor.prepare = { [unowned self] completion in
      var request = SpawnRequest(
        path: path, arguments: settings.command, environment: environment.map { "\($0.key)=\($0.value)" }.sorted())
      request.foreground = true
      request.noNewPrivileges = settings.uid != nil || settings.keepCapabilities != nil
      self.applyIdentity(&request)
      if let capture = self.capture {
        request.stdout = capture.writeFD
        request.stderr = capture.writeFD
      }
      completion(.success(Supervisor.Plan(request: request, rendered: nil)))
    }
  }

  // MARK: Server mode

  func setUpServer() throws {
    let s = settings
    for dir in [s.baseDir, s.confDir, s.dataDir, s.serverLogDir] { try Files.makeDirectories(dir) }
    try Files.symlinkIfMissing(s.imageBinDir, at: s.binDir)
    devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    if s.captureOutput { try setUpCapture() }

    let registryAddress = try TarsObjectAddress(parsing: s.registry)
    if let locatorAddress = try? TarsObjectAddress(parsing: s.locator), !locatorAddress.endpoints.isEmpty {
      locator = TarsLocator(client: client, address: locatorAddress)
    }
    let registry = TarsProxy(client: client, address: registryAddress, locator: locator)
    let reporter = StateReporter(
      loop: loop, proxy: registry, podName: s.podName, intervalMs: s.reportIntervalMs,
      log: { printError("tarsnode: \($0)") })
    self.reporter = reporter
    supervisor.report = { setting, present, pid in reporter.report(setting: setting, present: present, pid: pid) }

    if !s.notify.isEmpty {
      let notifyProxy = TarsProxy(client: client, address: try TarsObjectAddress(parsing: s.notify), locator: locator)
      supervisor.notify = { message, isError in
        let info = ReportInfo(
          eType: .REPORT, sApp: s.app, sSet: "", sContainer: s.podName, sServer: s.server, sMessage: message,
          sThreadId: "", eLevel: isError ? .NOTIFYERROR : .NOTIFYNORMAL, sNodeName: s.podName)
        notifyProxy.oneway(Notify.ReportNotifyInfo.self, .init(info: info))
      }
    }
    let client = self.client
    supervisor.sendShutdown = { admin in
      TarsProxy(client: client, address: TarsObjectAddress(name: "AdminObj", endpoints: [admin]))
        .oneway(AdminF.Shutdown.self, .init())
    }
    if let systemd = environment["NOTIFY_SOCKET"], !systemd.isEmpty {
      var told = false
      supervisor.onActive = {
        if !told {
          told = true
          NotifySocket.send("READY=1\nSTATUS=server Active\n", to: systemd)
        }
      }
    }
    if s.readyNotify {
      let socket = try NotifySocket(loop: loop, path: s.baseDir + "/notify.sock")
      socket.onReady = { [unowned self] in self.supervisor.ready() }
      notifySocket = socket
    }
    if let text = s.readyHTTP {
      guard let url = HTTPProbe.URL(text) else {
        throw SpawnError("--ready-http needs http://HOST:PORT/PATH, got '\(text)'")
      }
      supervisor.onStarted = { [unowned self] pid in self.probe(url, pid: pid) }
    }

    let auth = try s.secretFile.map { path throws(NodeAuthError) in try NodeCallAuth(secretFile: path) }
    let serverObj = ServerObjServant(settings: s, supervisor: supervisor)
    let nodeObj = NodeObjServant(
      settings: s, supervisor: supervisor, auth: auth, client: client, locator: locator,
      log: { printError("tarsnode: \($0)") })
    let nodeHost = auth == nil ? s.localHost : s.podIP
    for (name, servant, host, port, flag) in [
      ("ServerObj", serverObj as any TarsDispatcher, s.localHost, s.serverObjPort, "--server-obj-port"),
      ("NodeObj", nodeObj, nodeHost, s.nodeObjPort, "--node-obj-port"),
    ] {
      let endpoint = TarsEndpoint(host: host, port: port, timeout: 60_000)
      do {
        servers.append(try TarsServer(loop: loop, endpoint: endpoint, servants: ["tars.tarsnode.\(name)": servant]))
      } catch {
        throw ListenError(error, service: name, endpoint: endpoint)
          .changing(flag, of: "tarsnode", address: host == s.podIP ? "--pod-ip" : nil)
      }
    }
    printError(
      "tarsnode: supervising \(s.serverID) (\(s.serverType.rawValue)) in pod \(s.podName); ServerObj on \(s.localHost):\(s.serverObjPort), "
        + "NodeObj on \(nodeHost):\(s.nodeObjPort)\(auth == nil ? " (no secret: loopback only)" : " (signed calls)")")

    let renderer = ConfigRenderer(settings: s)
    supervisor.prepare = { [unowned self] completion in
      guard s.serverType.isTars else {
        do {
          completion(.success(Supervisor.Plan(request: try self.request(for: nil), rendered: nil)))
        } catch let e as SpawnError {
          completion(.failure(e))
        } catch {
          completion(.failure(SpawnError("\(error)")))
        }
        return
      }
      self.obtainDescriptor(registry) { result in
        switch result {
        case .failure(let e): completion(.failure(SpawnError("\(e)")))
        case .success(let descriptor):
          do {
            let rendered = try renderer.render(descriptor)
            try Files.writeAtomically(s.configFile, rendered.text)
            completion(.success(Supervisor.Plan(request: try self.request(for: rendered), rendered: rendered)))
          } catch let e as SpawnError {
            completion(.failure(e))
          } catch {
            completion(.failure(SpawnError("\(error)")))
          }
        }
      }
    }
  }

  func setUpCapture() throws {
    try Files.makeDirectories(settings.serverLogDir)
    let log = OutputLog(
      path: settings.outputLog, maxBytes: settings.logMaxBytes, files: settings.logFiles,
      copyToStdout: settings.copyOutputToStdout)
    capture = try OutputCapture(loop: loop, log: log)
  }

  /// The description from `--descriptor`, or from the registry (saved as the last good one),
  /// or — when the registry cannot be reached — the last good one.
  func obtainDescriptor(
    _ registry: TarsProxy, _ completion: @escaping (Result<ServerDescriptor, DescriptorError>) -> Void
  ) {
    let s = settings
    if let file = s.descriptorFile {
      completion(Result { () throws(DescriptorError) in try DescriptorFile.load(file) })
      return
    }
    registry.call(
      Registry.GetServerDescriptor.self, .init(serverApp: s.app, serverName: s.server), options: .init(timeoutMs: 3000)
    ) { result in
      switch result {
      case .success(let r) where r.ret == 0:
        do {
          try Files.writeAtomically(s.descriptorCache, DescriptorFile.json(r.serverDescriptor))
        } catch {
          printError("tarsnode: cannot keep the description for later: \(error)")
        }
        completion(.success(r.serverDescriptor))
      case .success(let r):
        completion(.failure(DescriptorError("the registry answered \(r.ret) for \(s.serverID)")))
      case .failure(let error):
        guard Files.exists(s.descriptorCache) else {
          completion(
            .failure(DescriptorError("the registry is unreachable (\(error)) and no earlier description is kept")))
          return
        }
        printError("tarsnode: the registry is unreachable (\(error)); starting from the last description")
        completion(Result { () throws(DescriptorError) in try DescriptorFile.load(s.descriptorCache) })
      }
    }
  }

  /// How to start the server, by ServerType (K8SFramework's start.sh table).
  func request(for rendered: RenderedConfig?) throws(SpawnError) -> SpawnRequest {
    let s = settings
    let path: String
    var argv: [String]
    func onPath(_ name: String) throws(SpawnError) -> String {
      guard let p = Files.findExecutable(name, path: environment["PATH"]) else {
        throw SpawnError("\(name) is needed to run a \(s.serverType.rawValue) server and is not in PATH")
      }
      return p
    }
    let configArgument = s.configFile
    let jvm = rendered?.jvmParams.split(separator: " ").map(String.init) ?? []
    switch s.serverType {
    case .cpp, .go, .nodejsPackage:
      var binary = s.binDir + "/" + s.server
      if !Files.isExecutable(binary),
        let found = Files.list(s.binDir).first(where: {
          $0.hasSuffix("Server") && Files.isExecutable(s.binDir + "/" + $0)
        })
      {
        binary = s.binDir + "/" + found
      }
      guard Files.isExecutable(binary) else {
        throw SpawnError("no server binary: \(binary) is missing or not executable (image bin dir \(s.imageBinDir))")
      }
      path = binary
      argv = [s.server, "--config=\(configArgument)"]
    case .javaJar:
      path = try onPath("java")
      argv = ["java", "-Dconfig=\(configArgument)"] + jvm + ["-jar", "\(s.binDir)/\(s.server).jar"]
    case .javaWar:
      path = try onPath("java")
      argv =
        ["java", "-Dconfig=\(configArgument)"] + jvm + ["-cp", rendered?.classPath ?? "", rendered?.mainClass ?? ""]
    case .nodejs:
      path = try onPath("node")
      let agent = environment["NODE_AGENT_BIN"] ?? "/usr/local/app/tars/node-agent/bin/node-agent"
      argv = ["node", agent, s.binDir + "/", "-c", configArgument]
    case .notTars:
      path = try onPath(s.command[0])
      argv = s.command
    }
    var env = environment
    env["NOTIFY_SOCKET"] = nil
    let libraries = "\(s.binDir):\(s.binDir)/lib"
    env["LD_LIBRARY_PATH"] = env["LD_LIBRARY_PATH"].map { "\(libraries):\($0)" } ?? libraries
    for (k, v) in rendered?.environment ?? [] { env[k] = v }
    if let socket = notifySocket { env["NOTIFY_SOCKET"] = socket.path }
    var r = SpawnRequest(path: path, arguments: argv, environment: env.map { "\($0.key)=\($0.value)" }.sorted())
    r.workingDirectory = Files.exists(s.binDir) ? s.binDir : s.baseDir
    r.stdin = devNull
    if let capture {
      r.stdout = capture.writeFD
      r.stderr = capture.writeFD
    }
    applyIdentity(&r)
    return r
  }

  func applyIdentity(_ r: inout SpawnRequest) {
    r.uid = settings.uid
    r.gid = settings.gid
    if let names = settings.keepCapabilities { r.keepCapabilities = names.compactMap { Spawner.capability(named: $0) } }
  }

  /// Probes a not-tars server's readiness URL once a second until it answers 2xx.
  func probe(_ url: HTTPProbe.URL, pid: pid_t) {
    guard supervisor.pid == pid, supervisor.present == .activating else { return }
    HTTPProbe.probe(url, on: loop) { [weak self] ready, _ in
      guard let self, self.supervisor.pid == pid else { return }
      if ready {
        self.supervisor.ready()
      } else {
        self.loop.schedule(afterMilliseconds: 1000) { [weak self] in self?.probe(url, pid: pid) }
      }
    }
  }
}

/// Plain init mode's command does not exist: exit 127, as a shell would.
struct CommandNotFound: Error, CustomStringConvertible {
  var command: String
  var description: String { "\(command): not found (or not executable)" }
}

/// One line on stderr.
func printError(_ line: String) {
  let bytes = Array((line + "\n").utf8)
  _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
