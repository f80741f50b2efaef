import TarsProtocol

/// Typed views of the kinds the control plane uses. Each wraps the object's JSON: reading and
/// setting a typed field touches only that field, so whatever else the object holds — newer
/// Kubernetes fields, other controllers' annotations — goes back unchanged on update.
public protocol KubeModel: Sendable {
  static var resource: KubeResource { get }
  var object: KubeObject { get set }
  init(_ object: KubeObject)
}

extension KubeModel {
  public var name: String { object.name }
  public var namespace: String? { object.namespace }
  public var labels: [String: String] {
    get { object.labels }
    set { object.labels = newValue }
  }
  public var annotations: [String: String] {
    get { object.annotations }
    set { object.annotations = newValue }
  }
  public var resourceVersion: String { object.resourceVersion }

  func string(_ path: [String]) -> String? { object.json[path: path]?.stringValue }
  func int(_ path: [String]) -> Int64? { object.json[path: path]?.intValue }
  func bool(_ path: [String]) -> Bool? { object.json[path: path]?.boolValue }
  mutating func set(_ path: [String], _ value: JSONValue?) { object.json.set(path, value) }
}

/// A pod condition (`status.conditions[]`).
public struct Condition: Sendable, Equatable {
  public var type: String
  public var status: String
  public var reason: String?
  public var message: String?
  public var lastTransitionTime: String?

  public init(_ json: JSONValue) {
    type = json["type"]?.stringValue ?? ""
    status = json["status"]?.stringValue ?? ""
    reason = json["reason"]?.stringValue
    message = json["message"]?.stringValue
    lastTransitionTime = json["lastTransitionTime"]?.stringValue
  }
}

public struct Pod: KubeModel {
  public static let resource = KubeResource.pods
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var phase: String? { string(["status", "phase"]) }
  public var podIP: String? { string(["status", "podIP"]) }
  public var hostIP: String? { string(["status", "hostIP"]) }
  public var nodeName: String? { string(["spec", "nodeName"]) }
  public var hostNetwork: Bool { bool(["spec", "hostNetwork"]) ?? false }
  public var isTerminating: Bool { object.deletionTimestamp != nil }
  /// Taken out of the registry's active endpoints by hand (`tarsctl drain POD`), its server
  /// left running: the annotation `tars.io/drained` is set.
  public var isDrained: Bool { object.annotations[Self.drainedAnnotation] != nil }
  public static let drainedAnnotation = "tars.io/drained"
  /// tarsnode reported the server Active/Active: the `tars.io/active` readiness gate is True.
  public var isTarsActive: Bool { object.condition("tars.io/active")?["status"]?.stringValue == "True" }
  public var conditions: [Condition] { object.status?["conditions"]?.arrayValue?.map(Condition.init) ?? [] }
  public func condition(_ type: String) -> Condition? { conditions.first { $0.type == type } }
}

public struct Node: KubeModel {
  public static let resource = KubeResource.nodes
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var isReady: Bool {
    object.status?["conditions"]?.arrayValue?.contains {
      $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True"
    } ?? false
  }
  public var internalIP: String? {
    object.status?["addresses"]?.arrayValue?.first { $0["type"]?.stringValue == "InternalIP" }?["address"]?.stringValue
  }
}

public struct Service: KubeModel {
  public static let resource = KubeResource.services
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var clusterIP: String? { string(["spec", "clusterIP"]) }
  public var isHeadless: Bool { clusterIP == "None" }
  public var ports: [(name: String, port: Int64)] {
    object.spec?["ports"]?.arrayValue?.map { ($0["name"]?.stringValue ?? "", $0["port"]?.intValue ?? 0) } ?? []
  }
}

public struct StatefulSet: KubeModel {
  public static let resource = KubeResource.statefulSets
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var replicas: Int64 {
    get { int(["spec", "replicas"]) ?? 1 }
    set { set(["spec", "replicas"], .integer(newValue)) }
  }
  public var readyReplicas: Int64 { int(["status", "readyReplicas"]) ?? 0 }
}

public struct DaemonSet: KubeModel {
  public static let resource = KubeResource.daemonSets
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var desiredNumberScheduled: Int64 { int(["status", "desiredNumberScheduled"]) ?? 0 }
  public var numberReady: Int64 { int(["status", "numberReady"]) ?? 0 }
}

public struct ConfigMap: KubeModel {
  public static let resource = KubeResource.configMaps
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var data: [String: String] {
    get { object.json["data"]?.stringMap ?? [:] }
    set { set(["data"], .stringMap(newValue)) }
  }
}

public struct Secret: KubeModel {
  public static let resource = KubeResource.secrets
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  /// Base64 values as stored.
  public var data: [String: String] { object.json["data"]?.stringMap ?? [:] }
  public var type: String? { string(["type"]) }
}

public struct Event: KubeModel {
  public static let resource = KubeResource.events
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var reason: String? { string(["reason"]) }
  public var message: String? { string(["message"]) }
  public var type: String? { string(["type"]) }
  public var involvedObjectName: String? { string(["involvedObject", "name"]) }
}

public struct TServer: KubeModel {
  public static let resource = KubeResource.tservers
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var app: String? { string(["spec", "app"]) }
  public var server: String? { string(["spec", "server"]) }
  public var subType: String? { string(["spec", "subType"]) }
  public var template: String? { string(["spec", "tars", "template"]) }
  public var replicas: Int64 {
    get { int(["spec", "k8s", "replicas"]) ?? 0 }
    set { set(["spec", "k8s", "replicas"], .integer(newValue)) }
  }
  public var readyReplicas: Int64 { int(["status", "readyReplicas"]) ?? 0 }
}

public struct TTemplate: KubeModel {
  public static let resource = KubeResource.ttemplates
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var content: String { string(["spec", "content"]) ?? "" }
  public var parent: String { string(["spec", "parent"]) ?? "" }
}

public struct TConfig: KubeModel {
  public static let resource = KubeResource.tconfigs
  public var object: KubeObject
  public init(_ object: KubeObject) { self.object = object }

  public var app: String { string(["app"]) ?? "" }
  public var server: String { string(["server"]) ?? "" }
  public var podSeq: String { string(["podSeq"]) ?? "m" }
  public var configName: String { string(["configName"]) ?? "" }
  public var configContent: String { string(["configContent"]) ?? "" }
  public var version: String { string(["version"]) ?? "" }
  public var activated: Bool { bool(["activated"]) ?? false }

  /// The inactive versions of each file (app, server, podSeq, configName) beyond its newest
  /// `keep`, oldest first: what the controller deletes under TFrameworkConfig
  /// `recordLimit.tconfigHistory`. Activated versions are never among them.
  public static func beyondHistory(_ configs: [TConfig], keep: Int) -> [TConfig] {
    var files: [[String]: [TConfig]] = [:]
    for c in configs where !c.activated { files[[c.app, c.server, c.podSeq, c.configName], default: []].append(c) }
    var out: [TConfig] = []
    for key in files.keys.sorted(by: { $0.joined(separator: "\u{0}") < $1.joined(separator: "\u{0}") }) {
      let byAge = files[key]!.sorted {
        (Int64($0.object.resourceVersion) ?? 0) < (Int64($1.object.resourceVersion) ?? 0)
      }
      out += byAge.dropLast(max(0, keep))
    }
    return out
  }
}
