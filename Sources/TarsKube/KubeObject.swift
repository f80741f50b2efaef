import Foundation
import TarsProtocol

/// A Kubernetes object: its JSON with typed access to the metadata everything uses. Unknown
/// fields stay in `json` untouched.
public struct KubeObject: Sendable, Equatable, CustomStringConvertible {
  public var json: JSONValue

  public init(_ json: JSONValue) { self.json = json }

  public init(
    _ resource: KubeResource, namespace: String?, name: String, labels: [String: String] = [:],
    spec: JSONValue? = nil, status: JSONValue? = nil
  ) {
    var metadata: JSONValue = .object([("name", .string(name))])
    if resource.namespaced, let namespace { metadata = metadata.setting("namespace", .string(namespace)) }
    if !labels.isEmpty { metadata = metadata.setting("labels", .stringMap(labels)) }
    var m: [(String, JSONValue)] = [
      ("apiVersion", .string(resource.apiVersion)), ("kind", .string(resource.kind)), ("metadata", metadata),
    ]
    if let spec { m.append(("spec", spec)) }
    if let status { m.append(("status", status)) }
    json = .object(m)
  }

  public var description: String { json.text }

  var metadata: JSONValue { json["metadata"] ?? .object([]) }

  public var name: String {
    get { metadata["name"]?.stringValue ?? "" }
    set { json.set(["metadata", "name"], .string(newValue)) }
  }
  public var namespace: String? {
    get { metadata["namespace"]?.stringValue }
    set { json.set(["metadata", "namespace"], newValue.map { .string($0) }) }
  }
  public var resourceVersion: String {
    get { metadata["resourceVersion"]?.stringValue ?? "" }
    set { json.set(["metadata", "resourceVersion"], newValue.isEmpty ? nil : .string(newValue)) }
  }
  public var uid: String { metadata["uid"]?.stringValue ?? "" }
  public var generation: Int64 { metadata["generation"]?.intValue ?? 0 }
  public var labels: [String: String] {
    get { metadata["labels"]?.stringMap ?? [:] }
    set { json.set(["metadata", "labels"], newValue.isEmpty ? nil : .stringMap(newValue)) }
  }
  public var annotations: [String: String] {
    get { metadata["annotations"]?.stringMap ?? [:] }
    set { json.set(["metadata", "annotations"], newValue.isEmpty ? nil : .stringMap(newValue)) }
  }
  public var deletionTimestamp: String? { metadata["deletionTimestamp"]?.stringValue }
  /// The uid of the object that controls this one (its controller owner reference).
  public var ownerUID: String? {
    metadata["ownerReferences"]?.arrayValue?.first { $0["controller"]?.boolValue == true }?["uid"]?.stringValue
  }

  /// Makes `owner`, an object of `resource`, this one's controller (the only owner reference),
  /// so deleting it deletes this.
  public mutating func setController(_ owner: KubeObject, _ resource: KubeResource) {
    json.set(
      ["metadata", "ownerReferences"],
      .array([
        .object([
          ("apiVersion", .string(resource.apiVersion)), ("kind", .string(resource.kind)), ("name", .string(owner.name)),
          ("uid", .string(owner.uid)), ("controller", .bool(true)), ("blockOwnerDeletion", .bool(true)),
        ])
      ]))
  }
  public var spec: JSONValue? { json["spec"] }
  public var status: JSONValue? { json["status"] }
  public var kind: String { json["kind"]?.stringValue ?? "" }

  /// The value at a dotted path ("status.podIP").
  public func value(_ dotted: String) -> JSONValue? {
    json[path: dotted.split(separator: ".").map(String.init)]
  }

  /// The condition of `type` in `status.conditions`.
  public func condition(_ type: String) -> JSONValue? {
    status?["conditions"]?.arrayValue?.first { $0["type"]?.stringValue == type }
  }
}

/// One page of a list and the version it was read at.
public struct ObjectList: Sendable {
  public var items: [KubeObject]
  public var resourceVersion: String
  /// Set when more pages follow.
  public var continueToken: String?
  public var remainingItemCount: Int64?

  public init(
    items: [KubeObject], resourceVersion: String, continueToken: String? = nil, remainingItemCount: Int64? = nil
  ) {
    self.items = items
    self.resourceVersion = resourceVersion
    self.continueToken = continueToken
    self.remainingItemCount = remainingItemCount
  }
}

/// Kubernetes' timestamp format (RFC 3339, seconds, UTC): creationTimestamp,
/// deletionTimestamp, lastTransitionTime.
public func kubeTimestamp(_ date: Date = Date()) -> String {
  let f = ISO8601DateFormatter()
  f.formatOptions = [.withInternetDateTime]
  return f.string(from: date)
}

extension KubeObject {
  /// A suffix that makes an Event's name unique (`<object>.<suffix>`), as the API server's
  /// recorders do: the time in microseconds, hex, and a random tail for two in one microsecond.
  public static func eventSuffix(_ time: Date = Date()) -> String {
    String(UInt64(time.timeIntervalSince1970 * 1_000_000), radix: 16)
      + String(UInt16.random(in: 0...UInt16.max), radix: 16)
  }

  /// A core/v1 Event about `kind`/`name` (what `kubectl describe` and `tarsctl events` list).
  /// Its name is the object's plus a unique suffix, as the API server's recorders make them.
  public static func event(
    namespace: String, kind: String, name: String, uid: String? = nil, type: String, reason: String,
    message: String, component: String, suffix: String
  ) -> KubeObject {
    let now = kubeTimestamp()
    var involved: [(String, JSONValue)] = [
      ("kind", .string(kind)), ("name", .string(name)), ("namespace", .string(namespace)),
    ]
    if let uid { involved.append(("uid", .string(uid))) }
    return KubeObject(
      .object([
        ("apiVersion", .string("v1")), ("kind", .string("Event")),
        ("metadata", .object([("name", .string("\(name).\(suffix)")), ("namespace", .string(namespace))])),
        ("involvedObject", .object(involved)), ("reason", .string(reason)), ("message", .string(message)),
        ("type", .string(type)), ("source", .object([("component", .string(component))])),
        ("firstTimestamp", .string(now)), ("lastTimestamp", .string(now)), ("count", .integer(1)),
      ]))
  }
}
