import Glibc
import TarsAuth
import TarsProtocol
import TarsRPC

/// tarsagent's commands:
///
/// - `tarsagent [run] [RETENTION FLAGS] [--every SECONDS]`: log retention now and then every
///   `--every` seconds (default 3600) measured from the last pass's start — a schedule that means
///   what it says (K8SFramework's "every 5 days" cron ran hourly); READY=1 to systemd once the
///   first pass is done, WATCHDOG=1 as often as systemd asks. Between passes it sleeps: no
///   wakeups unless systemd's watchdog asks for them.
///   With `--listen ADDRESS` it serves `tars.tarsagent.AgentObj` (the node's ports, free ports)
///   on its event loop, signed calls only unless on loopback, and `/metrics` beside it.
/// - `tarsagent retention [RETENTION FLAGS] [--dry-run]`: one pass, then exit.
/// - `tarsagent ports [--pid PID]`: the listening ports of every network namespace (or PID's)
///   with their holders.
///
/// With the API (in a pod: its service account; elsewhere `--kube-server URL` with
/// `--kube-token-file` and `--kube-ca-file`) and the node's name (`--node`, or `NODE_NAME` from
/// the downward API), `run` also provisions local volumes under `--volume-root` (default
/// `/usr/local/app/tars/host-mount`) and reports host ports taken from this node's pods.
///
/// Retention flags: `--log-dir DIR` (default `/usr/local/app/tars/app_log`), `--max-age-days N`
/// (default 5, K8SFramework's), `--max-server-mib N`, `--min-free-mib N`, `--pattern GLOB`
/// (repeatable; default `*.log`, `*.log.*`, `core.*`, `*.stdout.log*`).
public enum AgentMain {
  struct Options {
    var command = "run"
    var logDirectory = "/usr/local/app/tars/app_log"
    var policy = RetentionPolicy()
    var every: Int64 = 3600
    var dryRun = false
    var pid: Int32?
    var patterns: [String] = []
    var node: String? = getenv("NODE_NAME").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    var kubeServer: String?
    var kubeTokenFile: String?
    var kubeCAFile: String?
    var volumeRoot = "/usr/local/app/tars/host-mount"
    /// AgentObj's address (nil: not served) and port.
    var listen: String?
    var port = AgentObjServant.defaultPort
    /// `/metrics` on the same address (0: not served).
    var metricsPort = 19389
    var secretFile: String?
  }

  struct UsageError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
  }

  public static func main(_ arguments: [String]) -> Int32 {
    let o: Options
    do {
      o = try parse(arguments)
    } catch {
      printError("tarsagent: \(error.message) (tarsagent --help lists the flags)")
      return 2
    }
    switch o.command {
    case "help":
      print(usage)
      return 0
    case "ports":
      return ports(o)
    case "retention":
      return retentionPass(o) ? 0 : 1
    default:
      return run(o)
    }
  }

  static let usage = """
    tarsagent [run|retention|ports] [flags]
      run        log retention now and every --every seconds (default 3600); READY/WATCHDOG to systemd;
                 with the API (in a pod, or --kube-server) and --node: local volumes and host-port Events
      retention  one retention pass (--dry-run: say what would go)
      ports      listening ports per network namespace, with their holders (--pid PID: its namespace only)
    retention flags: --log-dir DIR  --max-age-days N (default 5)  --max-server-mib N  --min-free-mib N
                     --pattern GLOB (repeatable)  --dry-run
    AgentObj flags:  --listen ADDRESS (serve AgentObj and /metrics there)  --port N (default 19388)
                     --metrics-port N (default 19389; 0: no /metrics)
                     --secret-file FILE (calls must be signed with it; needed off loopback)
    API flags:       --node NAME (default $NODE_NAME)  --kube-server URL  --kube-token-file FILE
                     --kube-ca-file FILE  --volume-root DIR (default /usr/local/app/tars/host-mount)
    """

  static func parse(_ arguments: [String]) throws(UsageError) -> Options {
    var o = Options()
    o.policy.maxAgeSeconds = 5 * 86_400
    var args = arguments[...]
    if let first = args.first, !first.hasPrefix("-") {
      guard ["run", "retention", "ports", "help"].contains(first) else {
        throw UsageError("unknown command \(first): use run, retention or ports")
      }
      o.command = first
      args = args.dropFirst()
    }
    func number(_ flag: String, _ value: String?, _ range: ClosedRange<Int64>) throws(UsageError) -> Int64 {
      guard let value, let n = Int64(value), range.contains(n) else {
        throw UsageError("\(flag) needs a number in \(range.lowerBound)...\(range.upperBound)")
      }
      return n
    }
    while var flag = args.first {
      args = args.dropFirst()
      var value = args.first
      var takes = true
      // `--flag=value` is `--flag value`.
      if flag.hasPrefix("--"), let equals = flag.firstIndex(of: "=") {
        value = String(flag[flag.index(after: equals)...])
        flag = String(flag[..<equals])
        args = ([value!] + args)[...]
      }
      switch flag {
      case "--log-dir":
        guard let value, value.hasPrefix("/") else { throw UsageError("--log-dir needs an absolute directory") }
        o.logDirectory = value
      case "--max-age-days":
        let days = try number(flag, value, 0...36_500)
        o.policy.maxAgeSeconds = days == 0 ? nil : days * 86_400
      case "--max-server-mib": o.policy.maxBytesPerServer = try number(flag, value, 1...(1 << 30)) << 20
      case "--min-free-mib": o.policy.minFreeBytes = try number(flag, value, 1...(1 << 30)) << 20
      case "--every": o.every = try number(flag, value, 60...(366 * 86_400))
      case "--pid": o.pid = Int32(try number(flag, value, 1...Int64(Int32.max)))
      case "--pattern":
        guard let value, !value.isEmpty else { throw UsageError("--pattern needs a file name pattern") }
        o.patterns.append(value)
      case "--node":
        guard let value, !value.isEmpty else { throw UsageError("--node needs the node's name") }
        o.node = value
      case "--kube-server":
        guard let value, value.hasPrefix("https://") || value.hasPrefix("http://") else {
          throw UsageError("--kube-server needs the API server's URL (https://HOST:PORT)")
        }
        o.kubeServer = value
      case "--listen":
        guard let value, !value.isEmpty else {
          throw UsageError("--listen needs an address (the node's, e.g. $HOST_IP)")
        }
        o.listen = value
      case "--port": o.port = Int(try number(flag, value, 0...65535))
      case "--metrics-port": o.metricsPort = Int(try number(flag, value, 0...65535))
      case "--kube-token-file", "--kube-ca-file", "--volume-root", "--secret-file":
        guard let value, value.hasPrefix("/") else { throw UsageError("\(flag) needs an absolute path") }
        if flag == "--kube-token-file" { o.kubeTokenFile = value }
        if flag == "--kube-ca-file" { o.kubeCAFile = value }
        if flag == "--volume-root" { o.volumeRoot = value }
        if flag == "--secret-file" { o.secretFile = value }
      case "--dry-run":
        o.dryRun = true
        takes = false
      case "-h", "--help":
        o.command = "help"
        takes = false
      default: throw UsageError("unknown flag \(flag)")
      }
      if takes { args = args.dropFirst() }
    }
    if !o.patterns.isEmpty { o.policy.patterns = o.patterns }
    return o
  }

  /// One retention pass; false when the log directory cannot be read.
  static func retentionPass(_ o: Options, metrics: AgentMetrics? = nil) -> Bool {
    var st = stat()
    guard stat(o.logDirectory, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
      printError("tarsagent: retention: \(o.logDirectory) is not a directory (--log-dir)")
      return false
    }
    let files = Retention.scan(o.logDirectory, patterns: o.policy.patterns)
    let plan = Retention.plan(
      files, policy: o.policy, now: Int64(time(nil)), free: Retention.freeBytes(o.logDirectory) ?? Int64.max,
      open: Proc().openForWriting())
    let done = Retention.apply(plan, dryRun: o.dryRun) { say($0) }
    metrics?.retention(files: files, deleted: o.dryRun ? [] : done, at: Int64(time(nil)))
    say(
      "tarsagent: retention: \(files.count) files under \(o.logDirectory), \(done.count) \(o.dryRun ? "to delete" : "deleted"), \(done.reduce(0) { $0 + $1.file.bytes }) bytes \(o.dryRun ? "to free" : "freed")"
    )
    return true
  }

  /// The API client, if the agent has one: `--kube-server`, or the pod's service account.
  static func kube(_ o: Options) -> KubeHTTP? {
    if let server = o.kubeServer { return KubeHTTP(server: server, caFile: o.kubeCAFile, tokenFile: o.kubeTokenFile) }
    return KubeHTTP.inCluster()
  }

  static func run(_ o: Options) -> Int32 {
    let api = kube(o)
    if api != nil && o.node == nil {
      printError("tarsagent: the API jobs need this node's name: --node NAME, or NODE_NAME (fieldRef spec.nodeName)")
      return 2
    }
    let metrics = AgentMetrics()
    let loop: TarsEventLoop
    let servant: TarsServer?
    let exposition: MetricsHTTP?
    do {
      loop = try TarsEventLoop()
      servant = try agentObj(o, loop: loop)
      exposition = try o.listen.flatMap { host throws(SystemError) in
        o.metricsPort == 0
          ? nil
          : try MetricsHTTP(loop: loop, host: host, port: o.metricsPort) {
            metrics.render(logDirectory: o.logDirectory, host: PortScanner().namespace(of: getpid()))
          }
      }
    } catch {
      printError("tarsagent: \(error)")
      return 1
    }
    guard retentionPass(o, metrics: metrics) else { return 1 }
    if let api, let node = o.node {
      let volumes = LocalVolumes(node: node, root: o.volumeRoot)
      VolumeJob.start({ VolumeJob(kube: api, volumes: volumes, metrics: metrics, say: say) }, say: say)
      NodePodsJob.start({ NodePodsJob(kube: api, node: node, metrics: metrics, say: say) }, say: say)
      say("tarsagent: on node \(node), API \(api.server): local volumes under \(o.volumeRoot), host-port Events")
    }
    if let servant { say("tarsagent: \(AgentObjServant.name) on \(servant.endpoint)") }
    if let exposition { say("tarsagent: metrics on http://\(o.listen ?? ""):\(exposition.port)/metrics") }
    if let problem = Systemd.problem(Systemd.notify("READY=1")) { say("tarsagent: \(problem)") }
    // Retention every `every` seconds from the last pass's start; a pass longer than the
    // interval starts the next at once, with no burst to catch up.
    func retention(at deadline: UInt64) {
      _ = loop.schedule(at: deadline) {
        _ = retentionPass(o, metrics: metrics)
        retention(at: max(deadline + UInt64(o.every) * 1_000_000_000, TarsEventLoop.now()))
      }
    }
    retention(at: TarsEventLoop.now() + UInt64(o.every) * 1_000_000_000)
    if let watchdog = Systemd.watchdogMicroseconds {
      let period = max(Int(watchdog / 2_000), 1)
      func ping() {
        Systemd.notify("WATCHDOG=1")
        _ = loop.schedule(afterMilliseconds: period) { ping() }
      }
      ping()
    }
    loop.run()
    return 0
  }

  /// AgentObj on `--listen` (nil without it). Without `--secret-file` only on a loopback address:
  /// its answers name the node's processes.
  static func agentObj(_ o: Options, loop: TarsEventLoop) throws -> TarsServer? {
    guard let host = o.listen else { return nil }
    let loopback = host == "127.0.0.1" || host == "::1" || host == "localhost"
    guard o.secretFile != nil || loopback else {
      throw UsageError(
        "AgentObj on \(host) needs --secret-file (the node secret NodeObj calls are signed with), or --listen 127.0.0.1"
      )
    }
    let auth = try o.secretFile.map { path throws(NodeAuthError) in try NodeCallAuth(secretFile: path) }
    let node = o.node ?? "localhost"
    let servant = AgentObjServant(node: node, auth: auth, log: say)
    return try TarsServer(
      loop: loop, endpoint: TarsEndpoint(host: host, port: o.port, timeout: 60_000),
      servants: [AgentObjServant.name: servant])
  }

  static func ports(_ o: Options) -> Int32 {
    let scanner = PortScanner()
    let namespaces = o.pid.map { pid in scanner.namespace(of: pid).map { [$0] } ?? [] } ?? scanner.scan()
    guard !namespaces.isEmpty else {
      printError("tarsagent: ports: no such process \(o.pid ?? 0) (--pid)")
      return 1
    }
    for ns in namespaces where !ns.listening.isEmpty {
      print("net:[\(ns.inode)]\(ns.podUID.map { " pod \($0)" } ?? "") (\(ns.pids.count) processes)")
      for h in ns.listening {
        let who = h.pids.isEmpty ? "?" : "\(h.pids.map(String.init).joined(separator: ",")) \(h.command)"
        print("  \(h.socket.transport.rawValue) \(h.socket.address):\(h.socket.port)  \(who)")
      }
    }
    return 0
  }

  static func printError(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
  }

  /// A line on standard output, written at once (a log collector reads it as it comes).
  static func say(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
  }
}
