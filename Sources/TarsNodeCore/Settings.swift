import Glibc
import TarsProtocol

/// A flag or environment value tarsnode cannot use; the message names it and says what it needs.
public struct NodeSettingsError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// How the server is started, by `ServerType` (K8SFramework's names).
public enum ServerType: String, Sendable, CaseIterable {
  case cpp, go
  case javaJar = "java-jar"
  case javaWar = "java-war"
  case nodejs
  case nodejsPackage = "nodejs-pkg"
  case notTars = "not-tars"

  /// Tars servers heartbeat to ServerObj and have an AdminObj; not-tars ones do neither.
  public var isTars: Bool { self != .notTars }
}

/// Everything tarsnode needs to know, from flags first, then the pod's environment (the
/// K8SFramework pod contract), then defaults.
public struct NodeSettings: Sendable {
  public enum Mode: Sendable, Equatable {
    /// `tarsnode -- COMMAND ARGS`: supervise one command, no control plane (tini's job).
    case plainInit(command: [String])
    /// The business-pod supervisor.
    case server
  }

  public var mode: Mode = .server

  // Identity
  public var app = ""
  public var server = ""
  public var serverType: ServerType = .cpp
  public var podName = ""
  public var podIP = ""
  public var namespace = ""

  // Paths
  /// Where the image keeps the server's files.
  public var imageBinDir = "/usr/local/server/bin"
  /// `<App>.<Server>` work directory: bin (a link to imageBinDir), conf, data.
  public var baseDir = ""
  /// Root of the logs; the server's go to `<logDir>/<App>/<Server>/`.
  public var logDir = "/usr/local/app/tars/app_log"
  /// A description to use instead of asking the registry (JSON or Tars config format).
  public var descriptorFile: String?
  /// For not-tars servers in server mode: the command to run (default: the image's server binary).
  public var command: [String] = []

  // Framework addresses
  public var registry = "tars.tarsregistry.RegistryObj@tcp -h tars-tarsregistry -p 17891 -t 3000"
  public var locator = "tars.tarsregistry.QueryObj@tcp -h tars-tarsregistry -p 17890"
  /// NotifyObj for exit alarms; empty: alarms only go to tarsnode's own log.
  public var notify = ""
  public var serverObjPort = 19386
  public var nodeObjPort = 19385
  /// The server's AdminObj port (`local=`), on 127.0.0.1.
  public var adminPort = 19387

  // Security
  /// The shared secret that authenticates state-changing NodeObj calls; without it NodeObj
  /// listens on 127.0.0.1 only.
  public var secretFile: String?
  public var uid: UInt32?
  public var gid: UInt32?
  /// Capabilities the server keeps (nil: unchanged).
  public var keepCapabilities: [String]?

  // Supervision
  /// Seconds the server gets to stop when the container stops (below Kubernetes' 30 s).
  public var graceSeconds = 25
  /// Send forwarded signals to the server's process group (tini -g).
  public var signalGroup = false
  /// Heartbeat timeout when the profile sets no `hearttimeout` (seconds).
  public var heartTimeoutSeconds = 60
  public var backoffInitialMs = 1000
  public var backoffMaxMs = 30_000
  /// Time Active after which the backoff starts over.
  public var backoffResetMs = 60_000
  /// Exit when the server dies this many times within `crashWindowSeconds` (0: never).
  public var crashLimit = 0
  public var crashWindowSeconds = 60
  /// In plain init mode: restart the command when it exits instead of exiting with it.
  public var restart = false
  /// How often the state is re-sent to the registry even without a change.
  public var reportIntervalMs = 60_000

  // Output
  public var captureOutput = true
  public var copyOutputToStdout = true
  public var logMaxBytes = 10 * 1024 * 1024
  public var logFiles = 5

  // Readiness (not-tars)
  /// Wait for `READY=1` on a NOTIFY_SOCKET tarsnode provides.
  public var readyNotify = false
  /// Wait for this URL to answer 2xx.
  public var readyHTTP: String?

  public init() {}

  /// `<App>.<Server>`.
  public var serverID: String { "\(app).\(server)" }
  public var binDir: String { baseDir + "/bin" }
  public var confDir: String { baseDir + "/conf" }
  public var dataDir: String { baseDir + "/data" }
  public var serverLogDir: String { "\(logDir)/\(app)/\(server)" }
  public var configFile: String { "\(confDir)/\(serverID).config.conf" }
  /// The last description that worked, kept for when the registry is unreachable.
  public var descriptorCache: String { "\(confDir)/\(serverID).descriptor.json" }
  public var outputLog: String { "\(serverLogDir)/\(serverID).stdout.log" }
  /// Where ServerObj and the server's AdminObj listen: 127.0.0.1 in a pod of its own, the pod's
  /// own loopback address when the pod is one of several on one machine (one-machine mode gives
  /// each pod an address in 127.0.0.0/8, so every pod keeps the same well-known ports).
  public var localHost: String { podIP.hasPrefix("127.") ? podIP : "127.0.0.1" }

  /// What `tarsnode --help` prints.
  public static let usage = """
    usage: tarsnode [options]                    supervise the pod's Tars server (K8SFramework pod contract)
           tarsnode [options] -- COMMAND [ARGS]  supervise any command as PID 1 (like tini)
           tarsnode [options] --server-type not-tars -- COMMAND [ARGS]   a not-tars server, argv exactly
           tarsnode --resolve HOST               print the address this container finds for HOST
           tarsnode --install DIR                copy tarsnode to DIR/tarsnode (the node image's init container)
           tarsnode --drain SECONDS              wait while clients leave a terminating pod (its preStop hook)

    identity (default: the environment variable named)
      --app APP                ServerApp
      --server NAME            ServerName
      --server-type TYPE       ServerType: cpp, go, java-jar, java-war, nodejs, nodejs-pkg, not-tars (default cpp)
      --pod-name NAME          PodName
      --pod-ip IP              PodIP (default 127.0.0.1)
      --namespace NS           Namespace
    paths
      --image-bin-dir DIR      the image's server files (default /usr/local/server/bin)
      --base-dir DIR           work dir (default /usr/local/app/tars/tarsnode/data/<App>.<Server>)
      --log-dir DIR            log root (default /usr/local/app/tars/app_log)
      --descriptor FILE        the server's description (JSON or Tars config) instead of the registry's
      --command 'CMD ARGS'     not-tars: what to run (default: <bin>/<ServerName>)
    framework
      --registry OBJ           RegistryObj (default tars.tarsregistry.RegistryObj@tcp -h tars-tarsregistry -p 17891)
      --locator OBJ            QueryObj written into the server's config (default …@tcp -h tars-tarsregistry -p 17890)
      --notify OBJ             NotifyObj for exit alarms (default: none)
      --server-obj-port P      ServerObj on 127.0.0.1, or on PodIP when it is a 127.x address (default 19386)
      --node-obj-port P        NodeObj (default 19385; on PodIP with a secret, else 127.0.0.1)
      --admin-port P           the server's AdminObj, local= (default 19387)
    security
      --secret-file FILE       NodeObj shared secret (env TARS_NODE_SECRET_FILE)
      --uid N --gid N          run the server as this user and group
      --caps LIST              capabilities the server keeps, comma-separated ("" for none)
    supervision
      --grace SECONDS          time to stop the server when the container stops (default 25)
      --signal-group           forward signals to the server's process group (tini -g)
      --heart-timeout SECONDS  heartbeat timeout when the profile sets none (default 60)
      --backoff-initial MS --backoff-max MS --backoff-reset MS   restart backoff (1000, 30000, 60000)
      --crash-limit N --crash-window SECONDS   exit when the server dies N times in the window (off)
      --restart                plain init mode: restart the command instead of exiting with it
      --report-interval MS     re-send the state to the registry this often (default 60000)
    output
      --no-capture             let the server write to tarsnode's stdout/stderr directly
      --no-stdout-copy         keep the server's output in the log file only
      --log-max-bytes N        rotate the output log at this size (default 10485760)
      --log-files N            files kept, the current one included (default 5)
    readiness (not-tars)
      --ready-notify           Active after READY=1 on the NOTIFY_SOCKET tarsnode provides
      --ready-http URL         Active once http://HOST:PORT/PATH answers 2xx
    """

  /// Reads flags, then the environment. `--help` is reported as an error whose message is the usage.
  public static func parse(arguments: [String], environment: [String: String]) throws(NodeSettingsError) -> NodeSettings
  {
    var s = NodeSettings()
    var flags: [String: String] = [:]
    var switches = Set<String>()
    let valueFlags: Set<String> = [
      "--app", "--server", "--server-type", "--pod-name", "--pod-ip", "--namespace", "--image-bin-dir", "--base-dir",
      "--log-dir", "--descriptor", "--command", "--registry", "--locator", "--notify", "--server-obj-port",
      "--node-obj-port", "--admin-port", "--secret-file", "--uid", "--gid", "--caps", "--grace", "--heart-timeout",
      "--backoff-initial", "--backoff-max", "--backoff-reset", "--crash-limit", "--crash-window", "--report-interval",
      "--log-max-bytes", "--log-files", "--ready-http",
    ]
    let switchFlags: Set<String> = [
      "--signal-group", "--restart", "--no-capture", "--no-stdout-copy", "--ready-notify",
    ]
    var trailing: [String]?
    var i = 0
    while i < arguments.count {
      let a = arguments[i]
      if a == "--" {
        let command = Array(arguments[(i + 1)...])
        guard !command.isEmpty else { throw NodeSettingsError("nothing to run after '--'") }
        // With --server-type not-tars it is the server's exact argv (spaces kept) in server
        // mode; otherwise tarsnode is a plain init.
        if flags["--server-type"] == ServerType.notTars.rawValue {
          trailing = command
        } else {
          s.mode = .plainInit(command: command)
        }
        break
      }
      if a == "--help" || a == "-h" { throw NodeSettingsError(usage) }
      var name = a
      var inline: String?
      if let eq = a.firstIndex(of: "="), a.hasPrefix("--") {
        name = String(a[..<eq])
        inline = String(a[a.index(after: eq)...])
      }
      if switchFlags.contains(name) {
        guard inline == nil else { throw NodeSettingsError("\(name) takes no value") }
        switches.insert(name)
      } else if valueFlags.contains(name) {
        if let inline {
          flags[name] = inline
        } else {
          guard i + 1 < arguments.count else { throw NodeSettingsError("\(name) needs a value") }
          i += 1
          flags[name] = arguments[i]
        }
      } else {
        throw NodeSettingsError("unknown option '\(a)' (see tarsnode --help)")
      }
      i += 1
    }

    func value(_ flag: String, _ env: String? = nil) -> String? {
      if let v = flags[flag] { return v }
      if let env, let v = environment[env], !v.isEmpty { return v }
      return nil
    }
    func int(_ flag: String, _ range: ClosedRange<Int>) throws(NodeSettingsError) -> Int? {
      guard let text = flags[flag] else { return nil }
      guard let v = Int(text), range.contains(v) else {
        throw NodeSettingsError(
          "\(flag) needs a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
      }
      return v
    }

    s.app = value("--app", "ServerApp") ?? ""
    s.server = value("--server", "ServerName") ?? ""
    s.podName = value("--pod-name", "PodName") ?? ""
    s.podIP = value("--pod-ip", "PodIP") ?? "127.0.0.1"
    s.namespace = value("--namespace", "Namespace") ?? ""
    if let t = value("--server-type", "ServerType") {
      guard let type = ServerType(rawValue: t) else {
        throw NodeSettingsError(
          "unknown server type '\(t)': use one of \(ServerType.allCases.map(\.rawValue).joined(separator: ", "))")
      }
      s.serverType = type
    }
    if case .plainInit = s.mode { s.serverType = .notTars }

    if let v = value("--image-bin-dir") { s.imageBinDir = v }
    if let v = value("--log-dir") { s.logDir = v }
    s.descriptorFile = value("--descriptor")
    if let v = value("--command") { s.command = v.split(separator: " ").map(String.init) }
    if let trailing {
      guard flags["--command"] == nil else {
        throw NodeSettingsError("give the server's command with --command or after --, not both")
      }
      s.command = trailing
    }
    if let v = value("--registry", "TarsRegistry") { s.registry = v }
    if let v = value("--locator", "TarsLocator") { s.locator = v }
    if let v = value("--notify", "TarsNotify") { s.notify = v }
    s.secretFile = value("--secret-file", "TARS_NODE_SECRET_FILE")
    if let v = try int("--server-obj-port", 1...65535) { s.serverObjPort = v }
    if let v = try int("--node-obj-port", 1...65535) { s.nodeObjPort = v }
    if let v = try int("--admin-port", 1...65535) { s.adminPort = v }
    if let v = try int("--uid", 0...Int(UInt32.max)) { s.uid = UInt32(v) }
    if let v = try int("--gid", 0...Int(UInt32.max)) { s.gid = UInt32(v) }
    if let v = flags["--caps"] {
      let names = v.split(separator: ",").map { String($0).trimmingBlanks() }.filter { !$0.isEmpty }
      if let unknown = names.first(where: { Spawner.capability(named: $0) == nil }) {
        throw NodeSettingsError(
          "--caps: unknown capability '\(unknown)' (use names like NET_BIND_SERVICE or CAP_CHOWN)")
      }
      s.keepCapabilities = names
    }
    if let v = try int("--grace", 1...3600) { s.graceSeconds = v }
    if let v = try int("--heart-timeout", 1...86400) { s.heartTimeoutSeconds = v }
    if let v = try int("--backoff-initial", 0...3_600_000) { s.backoffInitialMs = v }
    if let v = try int("--backoff-max", 0...3_600_000) { s.backoffMaxMs = v }
    if let v = try int("--backoff-reset", 0...86_400_000) { s.backoffResetMs = v }
    if let v = try int("--crash-limit", 0...1_000_000) { s.crashLimit = v }
    if let v = try int("--crash-window", 1...86400) { s.crashWindowSeconds = v }
    if let v = try int("--report-interval", 100...86_400_000) { s.reportIntervalMs = v }
    if let v = try int("--log-max-bytes", 4096...Int(Int32.max)) { s.logMaxBytes = v }
    if let v = try int("--log-files", 1...1000) { s.logFiles = v }
    s.readyHTTP = value("--ready-http")
    s.signalGroup = switches.contains("--signal-group")
    s.restart = switches.contains("--restart")
    s.captureOutput = !switches.contains("--no-capture")
    s.copyOutputToStdout = !switches.contains("--no-stdout-copy")
    s.readyNotify = switches.contains("--ready-notify")

    switch s.mode {
    case .plainInit(let command):
      s.command = command
      // Plain init mode is tini: output goes where it went, unless logs are asked for.
      if flags["--log-dir"] == nil { s.captureOutput = false }
      if s.app.isEmpty { s.app = "plain" }
      if s.server.isEmpty { s.server = lastPathComponent(command[0]) }
    case .server:
      var missing: [String] = []
      if s.app.isEmpty { missing.append("ServerApp (--app)") }
      if s.server.isEmpty { missing.append("ServerName (--server)") }
      if s.podName.isEmpty { missing.append("PodName (--pod-name)") }
      guard missing.isEmpty else {
        throw NodeSettingsError(
          "missing identity: set \(missing.joined(separator: ", ")), or run 'tarsnode -- COMMAND'")
      }
      // ASCII names (all of K8SFramework's) are checked byte by byte, which leaves the Unicode
      // property tables untouched; anything else gets the full Character check.
      for (name, part) in [("ServerApp", s.app), ("ServerName", s.server)]
      where !part.utf8.allSatisfy(isASCIINameByte)
        && !part.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
      {
        throw NodeSettingsError("\(name) '\(part)' may hold only letters, digits, '_' and '-'")
      }
    }
    s.baseDir = value("--base-dir") ?? "/usr/local/app/tars/tarsnode/data/\(s.serverID)"
    if s.serverType == .notTars && s.command.isEmpty { s.command = [s.imageBinDir + "/" + s.server] }
    if s.readyNotify && s.readyHTTP != nil { throw NodeSettingsError("use --ready-notify or --ready-http, not both") }
    return s
  }
}

/// A-Z, a-z, 0-9, '_' or '-'.
func isASCIINameByte(_ b: UInt8) -> Bool {
  (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D
}

func lastPathComponent(_ path: String) -> String {
  path.split(separator: "/").last.map(String.init) ?? path
}

extension String {
  func trimmingBlanks() -> String {
    var s = Substring(self)
    while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" || f == "\r\n" { s = s.dropFirst() }
    while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" || l == "\r\n" { s = s.dropLast() }
    return String(s)
  }
}

/// The process environment as a dictionary (Glibc's `environ`, no Foundation).
public func currentEnvironment() -> [String: String] {
  var out: [String: String] = [:]
  var p = environ
  while let entry = p.pointee {
    let text = String(cString: entry)
    if let eq = text.firstIndex(of: "=") { out[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
    p += 1
  }
  return out
}
