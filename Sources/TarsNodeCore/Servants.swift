import Glibc
import TarsAuth
import TarsFramework
import TarsProtocol
import TarsRPC

/// `tars.tarsnode.ServerObj` on 127.0.0.1: the heartbeats of the supervised server. TarsCpp
/// sends these ONEWAY (the serving rules never answer those); TarsGo's normal calls get 0.
final class ServerObjServant: ServerFServant {
  let settings: NodeSettings
  unowned let supervisor: Supervisor

  init(settings: NodeSettings, supervisor: Supervisor) {
    self.settings = settings
    self.supervisor = supervisor
  }

  /// Only this pod's server may heartbeat (K8SFramework compared with `&&` where `||` was meant).
  func matches(_ info: ServerInfo) -> Bool { info.application == settings.app && info.serverName == settings.server }

  func keepAlive(serverInfo: ServerInfo, current: TarsCurrent) throws -> Int32 {
    guard matches(serverInfo) else { return -1 }
    supervisor.keepAlive(adapter: serverInfo.adapter, pid: serverInfo.pid)
    return 0
  }

  func keepActiving(serverInfo: ServerInfo, current: TarsCurrent) throws -> Int32 {
    guard matches(serverInfo) else { return -1 }
    supervisor.keepActiving(pid: serverInfo.pid)
    return 0
  }

  func reportVersion(app: String, serverName: String, version: String, current: TarsCurrent) throws -> Int32 {
    guard app == settings.app && serverName == settings.server else { return -1 }
    supervisor.version = version
    return 0
  }

  func getLatestKeepAliveTime(current: TarsCurrent) throws -> UInt32 { UInt32(truncatingIfNeeded: unixTimeSeconds()) }
}

/// `tars.tarsnode.NodeObj`: commands from the control plane and operators. Calls that change
/// state or run something must carry a valid signature when a secret is configured (without
/// one NodeObj is bound to loopback only); refusals say why in `result`.
final class NodeObjServant: NodeServant {
  let settings: NodeSettings
  unowned let supervisor: Supervisor
  let auth: NodeCallAuth?
  let client: TarsClient
  let locator: TarsLocator?
  let log: (String) -> Void
  /// Signed calls already accepted: each is good once.
  var replays = ReplayGuard()

  init(
    settings: NodeSettings, supervisor: Supervisor, auth: NodeCallAuth?, client: TarsClient, locator: TarsLocator?,
    log: @escaping (String) -> Void
  ) {
    self.settings = settings
    self.supervisor = supervisor
    self.auth = auth
    self.client = client
    self.locator = locator
    self.log = log
  }

  /// Why the call is refused, or nil. Empty application and server name mean "this node's".
  func refusal(_ application: String, _ serverName: String, _ current: TarsCurrent, signed: Bool) -> String? {
    if !(application.isEmpty && serverName.isEmpty) && (application != settings.app || serverName != settings.server) {
      return "refused: this node supervises \(settings.serverID), not \(application).\(serverName)"
    }
    if signed, let auth {
      do {
        let now = unixTimeSeconds()
        try replays.admit(try auth.verify(current.request, target: settings.podName, now: now), now: now)
      } catch {
        log("refused \(current.request.sFuncName) from \(current.peer.map(\.description) ?? "?"): \(error)")
        return "refused: \(error)"
      }
    }
    return nil
  }

  func startServer(application: String, serverName: String, current: TarsCurrent) throws -> Node.StartServer.Result {
    if let why = refusal(application, serverName, current, signed: true) { return .init(ret: -1, result: why) }
    return .init(ret: 0, result: supervisor.start())
  }

  func stopServer(application: String, serverName: String, current: TarsCurrent) throws -> Node.StopServer.Result {
    if let why = refusal(application, serverName, current, signed: true) { return .init(ret: -1, result: why) }
    return .init(ret: 0, result: supervisor.stop())
  }

  func restartServer(application: String, serverName: String, current: TarsCurrent) throws -> Node.RestartServer.Result
  {
    if let why = refusal(application, serverName, current, signed: true) { return .init(ret: -1, result: why) }
    return .init(ret: 0, result: supervisor.restart())
  }

  func notifyServer(application: String, serverName: String, command: String, current: TarsCurrent) throws
    -> Node.NotifyServer.Result
  {
    if let why = refusal(application, serverName, current, signed: true) { return .init(ret: -1, result: why) }
    guard supervisor.pid != 0, let admin = supervisor.rendered?.adminEndpoint else {
      return .init(ret: -1, result: "error: the server is not running (\(supervisor.present.rawValue))")
    }
    let responder = current.deferReply()
    let proxy = TarsProxy(client: client, address: TarsObjectAddress(name: "AdminObj", endpoints: [admin]))
    proxy.call(AdminF.Notify.self, .init(command: command), options: .init(timeoutMs: 10_000)) { result in
      switch result {
      case .success(let reply): responder.reply(Node.NotifyServer.Result(ret: 0, result: reply.ret))
      case .failure(let e): responder.reply(Node.NotifyServer.Result(ret: -1, result: "error: \(e)"))
      }
    }
    return .init()
  }

  func getStateInfo(application: String, serverName: String, current: TarsCurrent) throws -> Node.GetStateInfo.Result {
    if let why = refusal(application, serverName, current, signed: false) {
      return .init(ret: -1, info: .init(), result: why)
    }
    return .init(ret: 0, info: supervisor.stateInfo(), result: "")
  }

  /// Fetches a config file from ConfigObj into the server's bin directory (and returns the
  /// result, which K8SFramework lost).
  func addFile(application: String, serverName: String, file: String, current: TarsCurrent) throws
    -> Node.AddFile.Result
  {
    if let why = refusal(application, serverName, current, signed: true) { return .init(ret: -1, result: why) }
    let name = lastPathComponent(file)
    guard !name.isEmpty, name != ".", name != "..", !file.hasSuffix("/") else {
      return .init(ret: -1, result: "error: '\(file)' is not a file name")
    }
    guard let locator else { return .init(ret: -1, result: "error: no locator to find ConfigObj") }
    let responder = current.deferReply()
    let proxy = TarsProxy(
      client: client, address: TarsObjectAddress(name: "tars.tarsconfig.ConfigObj"), locator: locator)
    let path = settings.binDir + "/" + name
    proxy.call(Config.LoadConfig.self, .init(app: settings.app, server: settings.server, filename: name)) { result in
      switch result {
      case .success(let r) where r.ret == 0:
        do {
          try Files.writeAtomically(path, r.config)
          responder.reply(Node.AddFile.Result(ret: 0, result: "[succ] get remote config: \(name)"))
        } catch {
          responder.reply(Node.AddFile.Result(ret: -1, result: "[fail] \(error)"))
        }
      case .success(let r): responder.reply(Node.AddFile.Result(ret: -1, result: "[fail] ConfigObj answered \(r.ret)"))
      case .failure(let e): responder.reply(Node.AddFile.Result(ret: -1, result: "[fail] \(e)"))
      }
    }
    return .init()
  }
}
