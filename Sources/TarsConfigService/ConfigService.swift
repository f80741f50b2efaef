import TarsFramework
import TarsKube
import TarsProtocol

/// `tars.tarsconfig.ConfigObj` from TConfig objects (K8SFramework's fields): a file belongs to
/// an app (`server` empty) or a server, with a master version (`podSeq` "m") and optional
/// per-pod overrides (`podSeq` "<n>" for pod `<app>-<server>-<n>`); the newest activated object
/// of each is the one served. A server's file is its master, then — when the caller's pod has
/// one — its pod's override, joined with "\r\n\r\n" (the classic ConfigServer's host-level
/// rule). Answers come from an informer's cache; a missing file is ret −1 and empty content,
/// which TarsCpp and TarsGo clients treat as failure.
public final class ConfigService: ConfigServant, Sendable {
  public let configs: Informer
  /// Pods, to know which pod a caller's IP is.
  public let pods: Informer?
  let namespace: String

  public init(store: any ObjectStore, namespace: String, pods: Informer? = nil) {
    self.namespace = namespace
    configs = Informer(store: store, resource: .tconfigs, namespace: namespace)
    self.pods = pods
  }

  public func run() async { await configs.run() }

  /// The activated TConfig for (app, server, podSeq, file); if several are, the one written last.
  func file(app: String, server: String, podSeq: String, name: String) -> TConfig? {
    configs.objects.values.map(TConfig.init).filter {
      $0.activated && $0.app == app && $0.server == server && $0.podSeq == podSeq && $0.configName == name
    }.max { (Int64($0.object.resourceVersion) ?? 0) < (Int64($1.object.resourceVersion) ?? 0) }
  }

  func names(app: String, server: String) -> [String] {
    Set(
      configs.objects.values.map(TConfig.init).filter {
        $0.activated && $0.app == app && $0.server == server && $0.podSeq == "m"
      }.map(\.configName)
    ).sorted()
  }

  /// The pod ordinal of a caller: `<app>-<server>-<n>` or `<app>-<server>-<n>.<service>` names,
  /// or a pod IP the pod cache knows.
  func podSeq(app: String, server: String, host: String) -> String? {
    guard !host.isEmpty else { return nil }
    var name = String(host.split(separator: ".", maxSplits: 1).first ?? "")
    if name.allSatisfy({ $0.isNumber || $0 == "." }) || host.allSatisfy({ $0.isNumber || $0 == "." }) {
      guard let pod = pods?.objects.values.first(where: { $0.status?["podIP"]?.stringValue == host }) else {
        return nil
      }
      name = pod.name
    }
    let prefix = "\(app.lowercased())-\(server.lowercased())-"
    guard name.hasPrefix(prefix) else { return nil }
    let seq = name.dropFirst(prefix.count)
    return !seq.isEmpty && seq.allSatisfy(\.isNumber) ? String(seq) : nil
  }

  /// The content a server gets: app-level when `server` is empty, else master plus the pod's
  /// override. nil when there is no such file.
  func content(app: String, server: String, name: String, host: String) -> String? {
    guard let master = file(app: app, server: server, podSeq: "m", name: name) else { return nil }
    guard !server.isEmpty, let seq = podSeq(app: app, server: server, host: host),
      let own = file(app: app, server: server, podSeq: seq, name: name)
    else { return master.configContent }
    return master.configContent + "\r\n\r\n" + own.configContent
  }

  static func split(_ appServer: String) -> (String, String) {
    let parts = appServer.split(separator: ".", maxSplits: 1).map(String.init)
    return (parts.first ?? "", parts.count > 1 ? parts[1] : "")
  }

  func callerHost(_ current: TarsCurrent) -> String { current.peer?.host ?? "" }

  // MARK: ConfigObj

  public func ListConfig(app: String, server: String, current: TarsCurrent) throws -> Config.ListConfig.Result {
    .init(ret: 0, vf: names(app: app, server: server))
  }

  public func loadConfig(app: String, server: String, filename: String, current: TarsCurrent) throws
    -> Config.LoadConfig.Result
  {
    guard let text = content(app: app, server: server, name: filename, host: callerHost(current)) else {
      return .init(ret: -1, config: "")
    }
    return .init(ret: 0, config: text)
  }

  public func loadConfigByHost(appServerName: String, filename: String, host: String, current: TarsCurrent) throws
    -> Config.LoadConfigByHost.Result
  {
    let (app, server) = Self.split(appServerName)
    guard let text = content(app: app, server: server, name: filename, host: host) else {
      return .init(ret: -1, config: "")
    }
    return .init(ret: 0, config: text)
  }

  public func checkConfig(appServerName: String, filename: String, host: String, current: TarsCurrent) throws
    -> Config.CheckConfig.Result
  {
    let (app, server) = Self.split(appServerName)
    return .init(from: Self.check(content(app: app, server: server, name: filename, host: host), filename))
  }

  static func check(_ text: String?, _ name: String) -> (Int32, String) {
    guard let text else { return (-1, "no config file \(name)") }
    do {
      _ = try TarsConfig(parsing: text)
      return (0, "")
    } catch {
      return (-1, "\(name) does not parse: \(error)")
    }
  }

  public func ListConfigByInfo(configInfo: ConfigInfo, current: TarsCurrent) throws -> Config.ListConfigByInfo.Result {
    .init(ret: 0, vf: names(app: configInfo.appname, server: configInfo.bAppOnly ? "" : configInfo.servername))
  }

  public func loadConfigByInfo(configInfo c: ConfigInfo, current: TarsCurrent) throws -> Config.LoadConfigByInfo.Result
  {
    let server = c.bAppOnly ? "" : c.servername
    guard
      let text = content(
        app: c.appname, server: server, name: c.filename, host: c.host.isEmpty ? callerHost(current) : c.host)
    else { return .init(ret: -1, config: "") }
    return .init(ret: 0, config: text)
  }

  public func checkConfigByInfo(configInfo c: ConfigInfo, current: TarsCurrent) throws
    -> Config.CheckConfigByInfo.Result
  {
    let server = c.bAppOnly ? "" : c.servername
    let (ret, result) = Self.check(content(app: c.appname, server: server, name: c.filename, host: c.host), c.filename)
    return .init(ret: ret, result: result)
  }

  public func ListAllConfigByInfo(configInfo c: GetConfigListInfo, current: TarsCurrent) throws
    -> Config.ListAllConfigByInfo.Result
  {
    let server = c.bAppOnly ? "" : c.servername
    return .init(ret: 0, vf: names(app: c.appname, server: server))
  }
}

extension Config.CheckConfig.Result {
  init(from pair: (Int32, String)) { self.init(ret: pair.0, result: pair.1) }
}
