import TarsFramework
import TarsKube
import TarsProtocol

/// One servant of a TServer (`spec.tars.servants[]`), with K8SFramework's defaults.
public struct ServantSpec: Sendable, Equatable {
  public var name: String
  public var port: Int32
  public var isTcp: Bool
  public var isTars: Bool
  public var thread: Int32
  public var connection: Int32
  public var capacity: Int32
  public var timeout: Int32

  init(_ json: JSONValue) {
    name = json["name"]?.stringValue ?? ""
    port = Int32(clamping: json["port"]?.intValue ?? 0)
    isTcp = json["isTcp"]?.boolValue ?? true
    isTars = json["isTars"]?.boolValue ?? true
    thread = Int32(clamping: json["thread"]?.intValue ?? 3)
    connection = Int32(clamping: json["connection"]?.intValue ?? 10000)
    capacity = Int32(clamping: json["capacity"]?.intValue ?? 10000)
    timeout = Int32(clamping: json["timeout"]?.intValue ?? 60000)
  }
}

/// What the registry needs of a TServer.
public struct ServerSpec: Sendable, Equatable {
  public var name: String
  public var app: String
  public var server: String
  public var isTars: Bool
  public var servants: [ServantSpec]
  public var template: String
  public var profile: String
  public var asyncThread: Int32
  public var daemonSet: Bool
  public var hostNetwork: Bool

  public init?(_ o: KubeObject) {
    guard let spec = o.spec, let app = spec["app"]?.stringValue, let server = spec["server"]?.stringValue else {
      return nil
    }
    name = o.name
    self.app = app
    self.server = server
    let tars = spec["tars"]
    isTars = (spec["subType"]?.stringValue ?? (tars != nil ? "tars" : "normal")) == "tars"
    servants = tars?["servants"]?.arrayValue?.map(ServantSpec.init) ?? []
    template = tars?["template"]?.stringValue ?? ""
    profile = tars?["profile"]?.stringValue ?? ""
    asyncThread = Int32(clamping: tars?["asyncThread"]?.intValue ?? 3)
    daemonSet = spec[path: ["k8s", "daemonSet"]]?.boolValue ?? false
    hostNetwork = spec[path: ["k8s", "hostNetwork"]]?.boolValue ?? false
  }

  /// `lower(app)-lower(server)`: the TServer's, Service's and StatefulSet's name.
  public static func resourceName(app: String, server: String) -> String {
    "\(app.lowercased())-\(server.lowercased())"
  }
}

/// How endpoints name their host.
public enum HostStyle: String, Sendable, CaseIterable {
  /// The pod's IP (its node's IP for hostNetwork pods): needs no DNS.
  case ip
  /// `<pod>.<service>`, K8SFramework's StatefulSet DNS names (DaemonSet pods, which have no
  /// Service, still get their IP).
  case dns
}

/// A pod as the registry sees it.
public struct PodView: Sendable, Equatable {
  public var name: String
  public var app: String
  public var server: String
  public var ip: String
  public var active: Bool

  public init?(_ o: KubeObject) {
    let labels = o.labels
    guard let app = labels["tars.io/ServerApp"], let server = labels["tars.io/ServerName"] else { return nil }
    name = o.name
    self.app = app
    self.server = server
    let hostNetwork = o.spec?["hostNetwork"]?.boolValue ?? false
    ip = (hostNetwork ? o.status?["hostIP"]?.stringValue : o.status?["podIP"]?.stringValue) ?? ""
    // Active: tarsnode reported Active/Active (condition tars.io/active True), the pod is not
    // being deleted (its preStop hook drains it) and nobody drained it by hand.
    let pod = Pod(o)
    active = pod.isTarsActive && !pod.isTerminating && !pod.isDrained
  }
}

/// Endpoints of one servant id.
public struct EndpointLists: Sendable, Equatable {
  public var active: [EndpointF] = []
  public var inactive: [EndpointF] = []

  public init(active: [EndpointF] = [], inactive: [EndpointF] = []) {
    self.active = active
    self.inactive = inactive
  }
}

/// The registry's answer table, rebuilt from the caches: every `App.Server.Servant` of every
/// TServer, with its pods split into active and inactive.
public struct EndpointTable: Sendable {
  /// Keyed by `lower(app)-lower(server)`, then servant name (case-sensitive, as K8SFramework).
  var servers: [String: [String: EndpointLists]] = [:]

  public init() {}

  public init(servers: [ServerSpec], pods: [PodView], hostStyle: HostStyle) {
    var podsByServer: [String: [PodView]] = [:]
    for p in pods { podsByServer[ServerSpec.resourceName(app: p.app, server: p.server), default: []].append(p) }
    for s in servers where s.isTars {
      let members = (podsByServer[s.name] ?? []).sorted { $0.name < $1.name }
      var servants: [String: EndpointLists] = [:]
      for servant in s.servants {
        var lists = EndpointLists()
        for pod in members {
          var e = EndpointF()
          e.host = hostStyle == .dns && !s.daemonSet && !s.hostNetwork ? "\(pod.name).\(s.name)" : pod.ip
          guard !e.host.isEmpty else { continue }
          e.port = servant.port
          e.timeout = servant.timeout
          e.istcp = servant.isTcp ? 1 : 0
          if pod.active { lists.active.append(e) } else { lists.inactive.append(e) }
        }
        servants[servant.name] = lists
      }
      self.servers[s.name] = servants
    }
  }

  /// The endpoints of `App.Server.Servant`, or nil when no TServer of that name exists (then
  /// the fallback applies). A TServer without the servant answers empty lists.
  public func lookup(_ id: String) -> EndpointLists? {
    let parts = id.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
    guard let servants = servers[ServerSpec.resourceName(app: String(parts[0]), server: String(parts[1]))] else {
      return nil
    }
    return servants[String(parts[2])] ?? EndpointLists()
  }

  public var serverCount: Int { servers.count }
}

/// Upstream endpoints for ids the cluster does not serve: K8SFramework's `upChain` from the
/// TFrameworkConfig `tars-framework` (`customs` per id, else `default`), so servers on
/// Kubernetes can still reach a classic Tars cluster.
public struct UpChain: Sendable, Equatable {
  public var byID: [String: [EndpointF]] = [:]
  public var defaults: [EndpointF] = []

  public init() {}

  /// From a TFrameworkConfig object: `upChain: {<id>: [{host, port, timeout, isTcp}], default: [...]}`.
  public init(frameworkConfig o: KubeObject?) {
    guard let chain = o?.json["upChain"] ?? o?.spec?["upChain"] else { return }
    for (id, list) in chain.members {
      let endpoints = (list.arrayValue ?? []).compactMap { item -> EndpointF? in
        guard let host = item["host"]?.stringValue, let port = item["port"]?.intValue else { return nil }
        var e = EndpointF()
        e.host = host
        e.port = Int32(clamping: port)
        e.timeout = Int32(clamping: item["timeout"]?.intValue ?? 6000)
        e.istcp = (item["isTcp"]?.boolValue ?? true) ? 1 : 0
        return e
      }
      if id == "default" { defaults = endpoints } else { byID[id] = endpoints }
    }
  }

  public func lookup(_ id: String) -> [EndpointF] { byID[id] ?? defaults }
}

/// A template chain problem: reported to the caller, never looped on.
public struct TemplateError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public var description: String { message }
}

/// `getServerDescriptor`: the TServer's adapters and its profile joined onto its template
/// chain (children override parents; the chain ends at a template whose parent is itself).
public enum Descriptors {
  public static func make(server s: ServerSpec, templates: [String: KubeObject]) throws(TemplateError)
    -> ServerDescriptor
  {
    var config: TarsConfig
    do {
      config = try TarsConfig(parsing: s.profile)
    } catch {
      throw TemplateError(message: "the profile of \(s.name) does not parse: \(error)")
    }
    var name = s.template
    var seen: [String] = []
    while !name.isEmpty {
      if seen.contains(name) {
        throw TemplateError(message: "template cycle: \((seen + [name]).joined(separator: " → "))")
      }
      seen.append(name)
      guard let t = templates[name] else {
        throw TemplateError(
          message: seen.count == 1
            ? "template \"\(name)\" of \(s.name) does not exist"
            : "template \"\(seen[seen.count - 2])\" names parent \"\(name)\", which does not exist")
      }
      let content = t.spec?["content"]?.stringValue ?? ""
      do {
        config.join(try TarsConfig(parsing: content), override: false)
      } catch {
        throw TemplateError(message: "template \"\(name)\" does not parse: \(error)")
      }
      let parent = t.spec?["parent"]?.stringValue ?? ""
      name = parent == name ? "" : parent
    }
    var d = ServerDescriptor()
    d.profile = config.description
    d.asyncThreadNum = s.asyncThread
    for servant in s.servants {
      var a = AdapterDescriptor()
      a.adapterName = "\(s.app).\(s.server).\(servant.name)Adapter"
      a.endpoint = "\(servant.isTcp ? "tcp" : "udp") -h ${localip} -p \(servant.port) -t \(servant.timeout)"
      a.threadNum = servant.thread
      a.maxConnections = servant.connection
      a.servant = "\(s.app).\(s.server).\(servant.name)"
      a.queuecap = servant.capacity
      a.queuetimeout = servant.timeout
      a.protocol = servant.isTars ? "tars" : "not_tars"
      d.adapters[a.adapterName] = a
    }
    return d
  }
}
