import CTarsSys
import Glibc
import TarsFramework
import TarsProtocol
import TarsRPC

/// Why a server could not start; the message says what to fix.
public struct TarsApplicationError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// A Tars business server's runtime, what TarsCpp's `Application` is to a C++ server: it reads
/// the config tarsnode rendered (`--config=FILE`), binds `AdminObj` on `local=` first, then the
/// servants of every adapter once `initialize` returns, and talks to the framework the way a
/// TarsCpp server does — keepActiving while starting, `reportVersion`, one ONEWAY keepAlive per
/// adapter every 10 s, `reportNotifyInfo`, the standard admin commands — so tarsnode, the
/// registry and the admin tools cannot tell it from a C++ server.
///
/// Single-threaded: servants, admin commands and timers all run on `loop`. No Foundation, so a
/// Swift server image stays as small as the runtime it carries.
public final class TarsApplication {
  public let config: TarsConfig
  public let app: String
  public let server: String
  /// `<basepath>`: where config files fetched from ConfigObj are written (TarsCpp's BasePath).
  public let basePath: String
  public let dataPath: String
  public let communicator: TarsCommunicator
  public var loop: TarsEventLoop { communicator.loop }
  public private(set) var logLevel: TarsLogLevel
  /// The version sent with `reportVersion` and shown by `tars.viewversion`.
  public var version = "1.0.0"
  /// Heartbeat period; TarsCpp sends one keepAlive per adapter about every 10 s.
  public var heartbeatIntervalMs = 10_000

  let started = TarsEventLoop.now()
  var servants: [String: any TarsDispatcher] = [:]
  var commands: [String: Command] = [:]
  var listeners: [(adapter: String, server: TarsServer, servant: String)] = []
  var nodeProxy: TarsProxy?
  var notifyProxy: TarsProxy?
  var configProxy: TarsProxy?
  var exitCode: Int32?
  var signalFD: Int32 = -1
  var onLoadConfig: [(_ file: String, _ content: String) -> Void] = []

  struct Command {
    var help: String
    var run: (_ arguments: String, _ reply: @escaping (String) -> Void) -> Void
  }

  /// Reads `--config=FILE` (or `--config FILE`) from `arguments`.
  public convenience init(arguments: [String] = CommandLine.arguments) throws(TarsApplicationError) {
    var path: String?
    var i = 1
    while i < arguments.count {
      let a = arguments[i]
      if a.hasPrefix("--config=") {
        path = String(a.dropFirst(9))
      } else if a == "--config", i + 1 < arguments.count {
        path = arguments[i + 1]
        i += 1
      }
      i += 1
    }
    guard let path, !path.isEmpty else {
      throw TarsApplicationError("usage: \(arguments.first ?? "server") --config=FILE (tarsnode passes it)")
    }
    let text: String
    do {
      text = try Files.readText(path)
    } catch {
      throw TarsApplicationError("cannot read the config file: \(error)")
    }
    do {
      try self.init(config: try TarsConfig(parsing: text))
    } catch let e as TarsConfigError {
      throw TarsApplicationError("\(path): \(e)")
    } catch {
      throw error as! TarsApplicationError
    }
  }

  public init(config: TarsConfig) throws(TarsApplicationError) {
    self.config = config
    app = config["/tars/application/server<app>"] ?? ""
    server = config["/tars/application/server<server>"] ?? ""
    guard !app.isEmpty, !server.isEmpty else {
      throw TarsApplicationError("the config names no app and server in <tars><application><server>")
    }
    basePath = config["/tars/application/server<basepath>"] ?? "./"
    dataPath = config["/tars/application/server<datapath>"] ?? "./"
    logLevel = TarsLogLevel(config["/tars/application/server<logLevel>"] ?? "") ?? .info
    do {
      communicator = try TarsCommunicator(locator: config["/tars/application/client<locator>"])
    } catch {
      throw TarsApplicationError("\(error)")
    }
    func proxy(_ key: String) -> TarsProxy? {
      guard let text = config[key], !text.isEmpty else { return nil }
      return try? communicator.proxy(text)
    }
    nodeProxy = proxy("/tars/application/server<node>")
    notifyProxy = proxy("/tars/application/server<notify>")
    configProxy = proxy("/tars/application/server<config>")
    // Call statistics when the config names StatObj, as TarsCpp's <client> stat= does.
    if let stat = config["/tars/application/client<stat>"], !stat.isEmpty {
      let module =
        config["/tars/application/client<modulename>"].flatMap { $0.isEmpty ? nil : $0 } ?? "\(app).\(server)"
      let interval = Int(config["/tars/application/client<report-interval>"] ?? "") ?? 60_000
      try? communicator.reportStats(
        to: stat, module: module, ip: config["/tars/application/server<localip>"] ?? "", intervalMs: interval)
    }
    // Properties when it names PropertyObj (<client> property=), remote logs when LogObj
    // (<server> log=).
    if let property = config["/tars/application/client<property>"], !property.isEmpty {
      let interval = Int(config["/tars/application/client<report-interval>"] ?? "") ?? 60_000
      try? communicator.reportProperties(to: property, module: "\(app).\(server)", intervalMs: interval)
    }
    if let logObj = config["/tars/application/server<log>"], !logObj.isEmpty {
      let local = config["/tars/application/server<localip>"] ?? ""
      let node = config["/tars/application/server<nodename>"].flatMap { $0.isEmpty ? nil : $0 } ?? local
      try? communicator.sendLogs(to: logObj, app: app, server: server, node: node)
    }
    registerBuiltinCommands()
  }

  // MARK: What a server registers

  /// Serves `servant` under `name`: the full name (`Test.HelloServer.HelloObj`) or the object
  /// name alone (`HelloObj`), which the runtime prefixes with `App.Server.`.
  public func addServant(_ name: String, _ servant: any TarsDispatcher) {
    servants[name.contains(".") ? name : "\(app).\(server).\(name)"] = servant
  }

  /// Adds an admin command (what TarsCpp's `TARS_ADD_ADMIN_CMD_NORMAL` does). `run` gets the
  /// text after the command name and answers through `reply`, now or later.
  public func addAdminCommand(
    _ name: String, help: String, _ run: @escaping (_ arguments: String, _ reply: @escaping (String) -> Void) -> Void
  ) {
    commands[name] = Command(help: help, run: run)
  }

  /// Runs after `tars.loadconfig FILE` wrote a fresh copy of FILE into `basePath`.
  public func onConfigLoaded(_ body: @escaping (_ file: String, _ content: String) -> Void) {
    onLoadConfig.append(body)
  }

  /// A proxy to another servant, by name through the locator or with explicit endpoints
  /// (TarsCpp's `stringToProxy`).
  public func proxy(_ text: String) throws(TarsAddressError) -> TarsProxy { try communicator.proxy(text) }

  /// Fetches `filename` from ConfigObj, writes it to `basePath` and returns its content
  /// (TarsCpp's `addConfig`). Blocks, running the loop, so call it from `initialize`, not from
  /// a servant method; admin commands use `fetchConfig`.
  public func loadConfig(_ filename: String) throws(TarsApplicationError) -> String {
    var outcome: Result<String, TarsApplicationError>?
    fetchConfig(filename) { outcome = $0 }
    loop.run(until: { outcome != nil })
    return try outcome!.get()
  }

  /// Fetches `filename` from ConfigObj and writes it to `basePath`, then calls `completion`.
  public func fetchConfig(_ filename: String, completion: @escaping (Result<String, TarsApplicationError>) -> Void) {
    guard let configProxy else {
      completion(.failure(TarsApplicationError("the config names no ConfigObj (<server> config=)")))
      return
    }
    guard !filename.isEmpty, !filename.contains("/") else {
      completion(.failure(TarsApplicationError("'\(filename)' is not a config file name")))
      return
    }
    configProxy.call(
      Config.LoadConfig.self, .init(app: app, server: server, filename: filename),
      options: TarsCallOptions(timeoutMs: 5000)
    ) { [basePath] result in
      switch result {
      case .failure(let e): completion(.failure(TarsApplicationError("ConfigObj: \(e)")))
      case .success(let r) where r.ret != 0:
        completion(.failure(TarsApplicationError("ConfigObj has no \(filename) for \(self.app).\(self.server)")))
      case .success(let r):
        let path = basePath.hasSuffix("/") ? basePath + filename : basePath + "/" + filename
        do {
          try Files.writeAtomically(path, r.config)
          completion(.success(r.config))
        } catch {
          completion(.failure(TarsApplicationError("cannot write the config file: \(error)")))
        }
      }
    }
  }

  /// A custom property (TarsCpp's `createPropertyReport`), sent to PropertyObj every report
  /// interval when the template names it (`<client> property=`); counted either way.
  public func property(_ name: String, _ policies: [TarsProperty.Policy]) -> TarsProperty {
    communicator.property(name, policies)
  }

  /// A remote log file (TarsCpp's `FDLOG(file)`; "" is the server's main one), nil when the
  /// template names no LogObj (`<server> log=`).
  public func remoteLog(_ file: String = "") -> TarsRemoteLog? { communicator.remoteLog(file) }

  /// Sends a business alarm or event to NotifyObj (TarsCpp's `TarsRemoteNotify::report`).
  public func report(_ message: String, level: NOTIFYLEVEL = .NOTIFYNORMAL, type: ReportType = .REPORT) {
    notifyProxy?.oneway(
      Notify.ReportNotifyInfo.self,
      .init(
        info: ReportInfo(
          eType: type, sApp: app, sServer: server, sMessage: message, sThreadId: "\(getpid())", eLevel: level,
          sNodeName: config["/tars/application/server<localip>"] ?? "")),
      options: TarsCallOptions(timeoutMs: 3000))
  }

  public func log(_ level: TarsLogLevel, _ message: String) {
    guard level >= logLevel, level != .none else { return }
    say("\(timestamp())|\(getpid())|\(level)|\(message)")
  }

  // MARK: Running

  /// Binds AdminObj, runs `initialize` while telling tarsnode the server is still starting,
  /// binds the adapters, then serves until AdminObj.shutdown or SIGTERM/SIGINT. Returns the exit
  /// status for `exit()`.
  public func run(initialize: (TarsApplication) throws -> Void = { _ in }) -> Int32 {
    do {
      try bindAdmin()
      var activing = true
      func keepActiving() {
        guard activing else { return }
        send(ServerF.KeepActiving.self, .init(serverInfo: info(adapter: "")))
        _ = loop.schedule(afterMilliseconds: 2000) { keepActiving() }
      }
      keepActiving()
      do {
        try initialize(self)
      } catch {
        activing = false
        log(.error, "initialize failed: \(error)")
        return 1
      }
      activing = false
      try bindAdapters()
    } catch {
      log(.error, "\(error)")
      return 1
    }
    send(ServerF.ReportVersion.self, .init(app: app, serverName: server, version: version))
    send(ServerF.KeepAlive.self, .init(serverInfo: info(adapter: "")))
    report("restart")
    log(
      .info,
      "\(app).\(server) started: "
        + listeners.map { "\($0.adapter) \($0.servant) \($0.server.endpoint)" }.joined(
          separator: ", "))
    _ = loop.schedule(afterMilliseconds: heartbeatIntervalMs) { [unowned self] in heartbeat() }
    loop.run(until: { exitCode != nil })
    for l in listeners { l.server.close() }
    communicator.flushStats()
    log(.info, "\(app).\(server) stopped")
    return exitCode ?? 0
  }

  /// Asks the loop to finish and `run` to return `code`.
  public func terminate(_ code: Int32 = 0) { exitCode = code }

  func info(adapter: String) -> ServerInfo {
    ServerInfo(application: app, serverName: server, pid: getpid(), adapter: adapter)
  }

  func send<M: TarsMethod>(_ m: M.Type, _ args: M.Args) {
    nodeProxy?.oneway(m, args, options: TarsCallOptions(timeoutMs: 5000))
  }

  func heartbeat() {
    for a in ["AdminAdapter"] + listeners.map(\.adapter) {
      send(ServerF.KeepAlive.self, .init(serverInfo: info(adapter: a)))
    }
    _ = loop.schedule(afterMilliseconds: heartbeatIntervalMs) { [unowned self] in heartbeat() }
  }

  func bindAdmin() throws {
    let signals = [SIGTERM, SIGINT]
    signalFD = signals.withUnsafeBufferPointer { ctars_block_signals_to_fd($0.baseAddress, Int32($0.count)) }
    if signalFD >= 0 {
      try loop.register(fd: signalFD, events: .readable) { [unowned self] _ in
        let sig = ctars_read_signal(signalFD)
        if sig != 0 {
          log(.info, "signal \(sig): stopping")
          terminate(0)
        }
      }
    }
    guard let local = config["/tars/application/server<local>"], !local.isEmpty else { return }
    let endpoint: TarsEndpoint
    do {
      endpoint = try TarsEndpoint(parsing: local)
    } catch {
      throw TarsApplicationError("local=\(local): \(error)")
    }
    do {
      let admin = try TarsServer(
        loop: loop, endpoint: endpoint, servants: ["AdminObj": AdminServant(application: self)])
      listeners.append((adapter: "AdminAdapter", server: admin, servant: "AdminObj"))
    } catch {
      throw TarsApplicationError(
        "\(ListenError(error, service: "AdminObj", endpoint: endpoint)) — local= in the config's <server> section")
    }
  }

  func bindAdapters() throws {
    let adapters = (config.domain("/tars/application/server")?.subdomains ?? []).filter {
      $0["endpoint"] != nil && $0["servant"] != nil
    }
    for d in adapters {
      let name = d["servant"]!
      guard let servant = servants[name] else {
        throw TarsApplicationError(
          "adapter \(d.name) serves \(name), but the server registered no such servant (addServant)")
      }
      let endpoint: TarsEndpoint
      do {
        endpoint = try TarsEndpoint(parsing: d["endpoint"]!)
      } catch {
        throw TarsApplicationError("adapter \(d.name): endpoint \(d["endpoint"]!): \(error)")
      }
      do {
        let listener = try TarsServer(loop: loop, endpoint: endpoint, servants: [name: servant])
        if let reporter = communicator.statReporter {
          let me = "\(app).\(server)"
          listener.onServed = { [unowned reporter] request, peer, ret, ns in
            reporter.answered(request, peer, me, ret, ns)
          }
        }
        listeners.append((adapter: d.name, server: listener, servant: name))
      } catch {
        throw TarsApplicationError(
          "\(ListenError(error, service: ListenError.serviceName(servants: [name]), endpoint: endpoint))"
            + " — the endpoint of adapter \(d.name) in the config")
      }
    }
  }

  // MARK: Admin commands

  /// Runs one admin command line and answers through `reply`.
  func runCommand(_ line: String, reply: @escaping (String) -> Void) {
    let trimmed = line.drop { $0 == " " }
    let name = String(trimmed.prefix { $0 != " " })
    let arguments = String(trimmed.dropFirst(name.count).drop { $0 == " " })
    guard let command = commands[name] else {
      reply("unknown command '\(name)'; tars.help lists the commands")
      return
    }
    report("AdminServant::notify:\(line)")
    command.run(arguments, reply)
  }

  func registerBuiltinCommands() {
    addAdminCommand("tars.help", help: "lists the commands") { [unowned self] _, reply in
      reply(commands.keys.sorted().map { "\($0): \(commands[$0]!.help)" }.joined(separator: "\n") + "\n")
    }
    addAdminCommand("tars.viewstatus", help: "the server's identity, adapters and connections") {
      [unowned self] _, reply in
      var lines = [
        "[proxy config]", "app: \(app)", "server: \(server)", "pid: \(getpid())", "version: \(version)",
        "loglevel: \(logLevel)", "uptime: \((TarsEventLoop.now() - started) / 1_000_000_000) s",
      ]
      for l in listeners {
        lines.append(
          "adapter \(l.adapter): servant \(l.servant) on \(l.server.endpoint), \(l.server.connectionCount) connections")
      }
      reply(lines.joined(separator: "\n") + "\n")
    }
    addAdminCommand("tars.viewversion", help: "the server's version") { [unowned self] _, reply in
      reply("\(app).\(server) \(version)")
    }
    addAdminCommand("tars.setloglevel", help: "DEBUG, INFO, WARN, ERROR or NONE") { [unowned self] arguments, reply in
      guard let level = TarsLogLevel(arguments) else {
        reply("set log level [\(arguments)] failed: use DEBUG, INFO, WARN, ERROR or NONE")
        return
      }
      logLevel = level
      reply("set log level [\(level)] ok")
    }
    addAdminCommand("tars.loadconfig", help: "FILE: fetch FILE from ConfigObj again") {
      [unowned self] arguments, reply in
      let file = arguments.trimmingSpaces
      fetchConfig(file) { [unowned self] result in
        switch result {
        case .success(let content):
          for body in onLoadConfig { body(file, content) }
          reply("[succ] get remote config: \(file)")
        case .failure(let e): reply("[fail] get remote config: \(file): \(e)")
        }
      }
    }
  }
}

/// AdminObj: what tarsnode and the admin tools call.
final class AdminServant: AdminFServant {
  unowned let application: TarsApplication

  init(application: TarsApplication) { self.application = application }

  func shutdown(current: TarsCurrent) throws {
    application.log(.info, "shutdown requested through AdminObj")
    application.report("stop")
    application.terminate(0)
  }

  func notify(command: String, current: TarsCurrent) throws -> String {
    let responder = current.deferReply()
    application.runCommand(command) { responder.reply(AdminF.Notify.Result(ret: $0)) }
    return ""
  }

  func getPid(current: TarsCurrent) throws -> Int64 { Int64(getpid()) }
}

/// The client side alone (TarsCpp's `Communicator`): a loop, connections, and a locator that
/// resolves names through the registry. Tools and clients use it without a server around it.
public final class TarsCommunicator {
  public let loop: TarsEventLoop
  public let client: TarsClient
  public let locator: TarsLocator?
  /// Counts calls for StatObj once `reportStats` is called.
  var statReporter: StatReporter?
  /// The properties made with `property(_:_:)`, and who sends them (`reportProperties`).
  var properties: [TarsProperty] = []
  var propertyReporter: PropertyReporter?
  /// The remote log files, once `sendLogs` is called.
  var remoteLogs: RemoteLogs?

  /// `locator` is the registry's QueryObj, e.g. `tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890`.
  public init(locator: String?) throws {
    loop = try TarsEventLoop()
    client = TarsClient(loop: loop)
    if let locator, !locator.isEmpty {
      self.locator = TarsLocator(client: client, address: try TarsObjectAddress(parsing: locator))
    } else {
      self.locator = nil
    }
  }

  public func proxy(_ text: String) throws(TarsAddressError) -> TarsProxy {
    try TarsProxy(client: client, text, locator: locator)
  }
}

public enum TarsLogLevel: Int, Comparable, Sendable, CustomStringConvertible {
  case debug, info, warn, error, none

  public init?(_ text: String) {
    switch text.trimmingSpaces.uppercased() {
    case "DEBUG", "TARS": self = .debug
    case "INFO": self = .info
    case "WARN": self = .warn
    case "ERROR": self = .error
    case "NONE": self = .none
    default: return nil
    }
  }

  public var description: String { ["DEBUG", "INFO", "WARN", "ERROR", "NONE"][rawValue] }
  public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

extension String {
  var trimmingSpaces: String {
    String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\n" }.reversed())
  }
}

func say(_ line: String) {
  let bytes = Array((line + "\n").utf8)
  var offset = 0
  while offset < bytes.count {
    let n = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    if n <= 0 { return }
    offset += n
  }
}

func timestamp() -> String {
  var t = time(nil)
  var parts = tm()
  localtime_r(&t, &parts)
  var buffer = [CChar](repeating: 0, count: 32)
  let n = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
  return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
