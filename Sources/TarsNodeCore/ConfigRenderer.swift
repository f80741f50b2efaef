import TarsFramework
import TarsProtocol

/// The server's config file and what tarsnode reads back from it.
public struct RenderedConfig: Sendable {
  /// The file's text, in the portable form TarsCpp and TarsGo read alike.
  public var text: String
  public var config: TarsConfig
  /// Adapters whose heartbeats are expected: every `<server>` sub-domain, plus AdminAdapter.
  public var heartbeatAdapters: [String]
  /// The server's AdminObj (`local=`), if it has one.
  public var adminEndpoint: TarsEndpoint?
  /// `hearttimeout`, seconds.
  public var heartTimeoutSeconds: Int
  /// `deactivating-timeout`: how long AdminObj.shutdown gets before SIGTERM, ms.
  public var deactivatingTimeoutMs: Int
  /// `activating-timeout`: how long the server may stay Activating, ms (default: the heart
  /// timeout).
  public var activatingTimeoutMs: Int
  /// `env`: variables for the server (`A=1;B=2`).
  public var environment: [(String, String)]
  /// Java launchers: `jvmparams`, `mainclass`, `classpath`.
  public var jvmParams: String
  public var mainClass: String
  public var classPath: String
}

/// Renders `<App>.<Server>.config.conf` the way K8SFramework's tarsnode does (original-framework.md
/// §1.2): generated keys and one domain per adapter, then the profile — with its `${…}` variables
/// replaced — joined on top, so the profile overrides what tarsnode generates. tarsnode also
/// generates the keys an unchanged TarsCpp server cannot run without (app, server, local, node,
/// paths, closecout=0), so even an empty profile gives a working file.
public struct ConfigRenderer: Sendable {
  public var settings: NodeSettings

  public init(settings: NodeSettings) { self.settings = settings }

  public var nodeProxy: String {
    "tars.tarsnode.ServerObj@tcp -h \(settings.localHost) -p \(settings.serverObjPort) -t 60000"
  }
  public var localEndpoint: String { "tcp -h \(settings.localHost) -p \(settings.adminPort) -t 3000" }

  /// The `${…}` variables a profile may use.
  public func variables(_ descriptor: ServerDescriptor) -> [(String, String)] {
    let s = settings
    return [
      ("${modulename}", s.serverID), ("${app}", s.app), ("${server}", s.server), ("${basepath}", s.binDir + "/"),
      ("${datapath}", s.dataDir + "/"), ("${logpath}", s.logDir + "/"), ("${localip}", s.podIP),
      ("${locator}", s.locator), ("${local}", localEndpoint), ("${node}", nodeProxy),
      ("${asyncthread}", String(descriptor.asyncThreadNum)),
      ("${mainclass}", "com.qq.\(s.app.lowercased()).\(s.server.lowercased()).\(s.server)"),
      ("${enableset}", "n"), ("${setdivision}", "NULL"),
    ]
  }

  public func render(_ descriptor: ServerDescriptor) throws(DescriptorError) -> RenderedConfig {
    let s = settings
    var config = TarsConfig()
    do {
      try config.set("/tars/application<enableset>", "n")
      try config.set("/tars/application<setdivision>", "NULL")
      try config.set("/tars/application/client<locator>", s.locator)
      try config.set("/tars/application/client<modulename>", s.serverID)
      try config.updateDomain("/tars/application/server") { server in
        server.set("app", s.app)
        server.set("server", s.server)
        server.set("localip", s.podIP)
        server.set("local", localEndpoint)
        server.set("node", nodeProxy)
        server.set("basepath", s.binDir + "/")
        server.set("datapath", s.dataDir + "/")
        server.set("logpath", s.logDir + "/")
        server.set("closecout", "0")
        if !s.notify.isEmpty { server.set("notify", s.notify) }
      }
      for (name, a) in descriptor.adapters.sorted(by: { $0.key < $1.key }) {
        try config.updateDomain("/tars/application/server/\(name)") { d in
          d.set("endpoint", a.endpoint.replacingPlaceholder("${localip}", with: s.podIP))
          d.set("allow", a.allowIp)
          d.set("queuecap", String(a.queuecap))
          d.set("queuetimeout", String(a.queuetimeout))
          d.set("maxconns", String(a.maxConnections))
          d.set("threads", String(a.threadNum))
          d.set("servant", a.servant)
          d.set("protocol", a.protocol.isEmpty ? "tars" : a.protocol)
        }
      }
    } catch {
      throw DescriptorError("cannot build the config: \(error)")
    }

    var profile = descriptor.profile.replacingPlaceholder("\\s", with: " ")
    for (name, value) in variables(descriptor) { profile = profile.replacingPlaceholder(name, with: value) }
    do {
      config.join(try TarsConfig(parsing: profile), override: true)
    } catch {
      throw DescriptorError("the profile does not parse: \(error)")
    }

    let text: String
    do {
      text = try config.renderPortable()
    } catch {
      throw DescriptorError("the config cannot be written so that TarsCpp and TarsGo read it alike: \(error)")
    }

    let server = config.domain("/tars/application/server")
    var adapters = server?.subdomains.map(\.name) ?? []
    var admin: TarsEndpoint?
    if let local = server?["local"], !local.isEmpty {
      admin = try? TarsEndpoint(parsing: local)
      adapters.append("AdminAdapter")
    }
    func number(_ key: String, _ fallback: Int, _ range: ClosedRange<Int>) -> Int {
      guard let text = server?[key], let v = Int(text) else { return fallback }
      return min(max(v, range.lowerBound), range.upperBound)
    }
    var environment: [(String, String)] = []
    for item in (server?["env"] ?? "").split(whereSeparator: { $0 == ";" || $0 == "|" }) {
      guard let eq = item.firstIndex(of: "=") else { continue }
      let key = String(item[..<eq]).trimmingBlanks()
      if !key.isEmpty { environment.append((key, String(item[item.index(after: eq)...]))) }
    }
    return RenderedConfig(
      text: text, config: config, heartbeatAdapters: adapters, adminEndpoint: admin,
      heartTimeoutSeconds: number("hearttimeout", s.heartTimeoutSeconds, 1...86400),
      deactivatingTimeoutMs: number("deactivating-timeout", 3000, 1000...60000),
      activatingTimeoutMs: number(
        "activating-timeout", number("hearttimeout", s.heartTimeoutSeconds, 1...86400) * 1000, 1000...86_400_000),
      environment: environment,
      jvmParams: server?["jvmparams"] ?? "", mainClass: server?["mainclass"] ?? "",
      classPath: server?["classpath"] ?? "")
  }
}
