import Foundation

/// The admin API's JSON documents, shared by the server (`TarsAdmin`) and `tarsctl`, so the
/// two cannot drift apart. Field names are the JSON keys.
public enum AdminAPI {
  /// Where `tars-controlplane up` serves the API unless told otherwise (loopback only).
  public static let defaultURL = "http://127.0.0.1:17880"
  /// The token file under the state directory (0600), created at first start.
  public static let tokenFileName = "admin.token"
  public static let prefix = "/api/v1"

  /// The manifest files `path` names, the way both `up --manifests` and `tarsctl apply -f`
  /// read them: the file itself, or every `*.yaml` and `*.yml` of a folder in name order. nil
  /// when there is nothing at `path`.
  public static func manifestFiles(at path: String) -> [String]? {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return nil }
    guard isDirectory.boolValue else { return [path] }
    return ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter {
      $0.hasSuffix(".yaml") || $0.hasSuffix(".yml")
    }.sorted().map { path + "/" + $0 }
  }
}

/// One TServer as an operator sees it.
public struct ServerRow: Codable, Sendable, Equatable {
  /// `App.Server`, what every command takes.
  public var id: String
  public var app: String
  public var server: String
  /// `tars` or `normal` (not-tars).
  public var subType: String
  public var replicas: Int
  public var image: String
  public var template: String
  public var pods: Int
  public var activePods: Int

  public init(
    id: String, app: String, server: String, subType: String, replicas: Int, image: String, template: String,
    pods: Int, activePods: Int
  ) {
    self.id = id
    self.app = app
    self.server = server
    self.subType = subType
    self.replicas = replicas
    self.image = image
    self.template = template
    self.pods = pods
    self.activePods = activePods
  }
}

public struct PodRow: Codable, Sendable, Equatable {
  public var name: String
  /// `App.Server`.
  public var server: String
  public var ip: String
  public var phase: String
  public var ready: Bool
  /// The registry hands out its endpoints (`tars.io/active` True).
  public var active: Bool
  /// What tarsnode last reported: `setting/present/pid`, or why the pod is inactive.
  public var state: String
  public var restarts: Int
  public var startTime: String
  /// The pod's tarsnode process on this machine (one-machine mode only).
  public var pid: Int?

  public init(
    name: String, server: String, ip: String, phase: String, ready: Bool, active: Bool, state: String, restarts: Int,
    startTime: String, pid: Int?
  ) {
    self.name = name
    self.server = server
    self.ip = ip
    self.phase = phase
    self.ready = ready
    self.active = active
    self.state = state
    self.restarts = restarts
    self.startTime = startTime
    self.pid = pid
  }
}

/// The answer of one pod's NodeObj to a fanned-out command.
public struct PodCallResult: Codable, Sendable, Equatable {
  public var pod: String
  public var ok: Bool
  public var result: String

  public init(pod: String, ok: Bool, result: String) {
    self.pod = pod
    self.ok = ok
    self.result = result
  }
}

public struct NotificationRow: Codable, Sendable, Equatable {
  public var time: String
  public var server: String
  public var source: String
  public var level: Int
  public var message: String
  public var alarm: Bool

  public init(time: String, server: String, source: String, level: Int, message: String, alarm: Bool) {
    self.time = time
    self.server = server
    self.source = source
    self.level = level
    self.message = message
    self.alarm = alarm
  }
}

public struct EventRow: Codable, Sendable, Equatable {
  public var time: String
  public var object: String
  public var type: String
  public var reason: String
  public var message: String

  public init(time: String, object: String, type: String, reason: String, message: String) {
    self.time = time
    self.object = object
    self.type = type
    self.reason = reason
    self.message = message
  }
}

/// What applying one object of a manifest did: created, configured, unchanged or rejected.
public struct ApplyRow: Codable, Sendable, Equatable {
  public var kind: String
  public var name: String
  public var action: String
  public var problems: [String]

  public init(kind: String, name: String, action: String, problems: [String] = []) {
    self.kind = kind
    self.name = name
    self.action = action
    self.problems = problems
  }
}

public struct NotifyRequest: Codable, Sendable {
  public var command: String
  public init(command: String) { self.command = command }
}

/// `POST /pods/{pod}/drain`: out of (true) or back into (false) the registry's active endpoints.
public struct DrainRequest: Codable, Sendable {
  public var drained: Bool
  public init(drained: Bool) { self.drained = drained }
}

public struct ScaleRequest: Codable, Sendable {
  public var replicas: Int
  public init(replicas: Int) { self.replicas = replicas }
}

/// Every error the API returns: `{"error": {"message": "…"}}` (Hummingbird's shape).
public struct ErrorBody: Codable, Sendable {
  public struct Detail: Codable, Sendable {
    public var message: String?
  }
  public var error: Detail
}

/// A port in use on a node, as its agent's AgentObj saw it (`GET /nodes/NODE/ports`).
public struct NodePortRow: Codable, Sendable, Equatable {
  public var transport: String
  public var address: String
  public var port: Int
  public var pids: [Int]
  public var command: String
  /// The Tars pod holding it, when the admin knows the pod ("" otherwise).
  public var pod: String
  public var podUID: String
  /// "host", or the pod's own network namespace ("net:[INODE]").
  public var namespace: String

  public init(
    transport: String, address: String, port: Int, pids: [Int], command: String, pod: String, podUID: String,
    namespace: String
  ) {
    self.transport = transport
    self.address = address
    self.port = port
    self.pids = pids
    self.command = command
    self.pod = pod
    self.podUID = podUID
    self.namespace = namespace
  }
}

/// Host ports free on a node (`GET /nodes/NODE/ports/free`).
public struct FreePortsRow: Codable, Sendable, Equatable {
  public var node: String
  public var transport: String
  public var ports: [Int]
  public var message: String

  public init(node: String, transport: String, ports: [Int], message: String) {
    self.node = node
    self.transport = transport
    self.ports = ports
    self.message = message
  }
}

/// One interface of a server today beside yesterday at the same time of day, as the classic
/// stat page shows it (`GET /stat?server=App.Server`).
public struct InterfaceStatRow: Codable, Sendable, Equatable {
  public var interface: String
  public var calls: Int64
  public var timeouts: Int64
  public var exceptions: Int64
  /// Mean response time of successful calls, ms.
  public var averageMs: Double
  public var maxMs: Int64
  public var yesterdayCalls: Int64
  public var yesterdayTimeouts: Int64
  public var yesterdayExceptions: Int64
  public var yesterdayAverageMs: Double

  public init(
    interface: String, calls: Int64, timeouts: Int64, exceptions: Int64, averageMs: Double, maxMs: Int64,
    yesterdayCalls: Int64, yesterdayTimeouts: Int64, yesterdayExceptions: Int64, yesterdayAverageMs: Double
  ) {
    self.interface = interface
    self.calls = calls
    self.timeouts = timeouts
    self.exceptions = exceptions
    self.averageMs = averageMs
    self.maxMs = maxMs
    self.yesterdayCalls = yesterdayCalls
    self.yesterdayTimeouts = yesterdayTimeouts
    self.yesterdayExceptions = yesterdayExceptions
    self.yesterdayAverageMs = yesterdayAverageMs
  }
}

/// One property of a server under one policy over the last minutes (`GET /property`).
public struct PropertyStatRow: Codable, Sendable, Equatable {
  public var property: String
  public var policy: String
  /// Sum, Count: the total; Avg: the mean; Max, Min: the extreme; Distr: the buckets.
  public var value: String
  public var ips: [String]

  public init(property: String, policy: String, value: String, ips: [String]) {
    self.property = property
    self.policy = policy
    self.value = value
    self.ips = ips
  }
}

/// A file the log service keeps for a server (`GET /servers/App.Server/remote-logs`); `name`
/// is relative to the app's folder, as `?name=` takes it back.
public struct RemoteLogFileRow: Codable, Sendable, Equatable {
  public var name: String
  public var size: Int64
  /// Seconds since 1970.
  public var modified: Int64

  public init(name: String, size: Int64, modified: Int64) {
    self.name = name
    self.size = size
    self.modified = modified
  }
}
