import TarsProtocol

/// What the control plane's logic talks to: Kubernetes semantics (resource versions, list and
/// watch from a version, selectors, optimistic concurrency, the status subresource, 410 after
/// compaction). Two implementations: the real API (`KubeClient`) and the embedded SQLite store
/// (`EmbeddedStore`) that one-machine mode and fast tests use. Code written against this
/// protocol runs unchanged on both.
public protocol ObjectStore: Sendable {
  func get(_ resource: KubeResource, namespace: String?, name: String) async throws(StoreError) -> KubeObject
  func list(_ resource: KubeResource, namespace: String?, options: ListOptions) async throws(StoreError) -> ObjectList
  /// Creates the object; `metadata.resourceVersion` must be empty.
  func create(_ resource: KubeResource, _ object: KubeObject) async throws(StoreError) -> KubeObject
  /// Replaces the object when its `resourceVersion` is current (409 otherwise; an empty one
  /// means unconditionally). With `status: true` only the status changes (the `/status`
  /// subresource); without it the status is kept.
  func update(_ resource: KubeResource, _ object: KubeObject, status: Bool) async throws(StoreError) -> KubeObject
  func patch(_ resource: KubeResource, namespace: String?, name: String, _ patch: Patch, status: Bool)
    async throws(StoreError) -> KubeObject
  /// Deletes at once (grace period 0).
  func delete(_ resource: KubeResource, namespace: String?, name: String) async throws(StoreError)
  /// Events after `options.resourceVersion` (or the current objects as ADDED first when it is
  /// nil or "0"), ending with one `.error` when the version is too old (410) or the stream fails.
  func watch(_ resource: KubeResource, namespace: String?, options: WatchOptions) -> AsyncStream<WatchEvent>
  /// The last `tailLines` lines a container wrote (the `pods/log` subresource, what `kubectl
  /// logs` reads).
  func podLog(namespace: String, name: String, container: String?, tailLines: Int) async throws(StoreError) -> String
}

extension ObjectStore {
  /// A store without kubelets keeps no container output: in one-machine mode tarsnode's log
  /// files are read where they are.
  public func podLog(namespace: String, name: String, container: String?, tailLines: Int) async throws(StoreError)
    -> String
  {
    var e = StoreError.notFound(.pods, name)
    e.message = "no log of pod \(name) in this store: it runs no kubelet"
    throw e
  }
}

public struct ListOptions: Sendable {
  public var labelSelector: LabelSelector?
  public var fieldSelector: String?
  public var limit: Int?
  public var continueToken: String?
  /// nil: the newest state.
  public var resourceVersion: String?
  /// `Exact` or `NotOlderThan` (with `resourceVersion`).
  public var resourceVersionMatch: String?

  public init(
    labelSelector: LabelSelector? = nil, fieldSelector: String? = nil, limit: Int? = nil, continueToken: String? = nil,
    resourceVersion: String? = nil, resourceVersionMatch: String? = nil
  ) {
    self.resourceVersionMatch = resourceVersionMatch
    self.labelSelector = labelSelector
    self.fieldSelector = fieldSelector
    self.limit = limit
    self.continueToken = continueToken
    self.resourceVersion = resourceVersion
  }
}

public struct WatchOptions: Sendable {
  public var labelSelector: LabelSelector?
  public var fieldSelector: String?
  public var resourceVersion: String?
  public var allowBookmarks: Bool
  /// The server ends the stream after this long (nil: the store's choice).
  public var timeoutSeconds: Int?

  public init(
    labelSelector: LabelSelector? = nil, fieldSelector: String? = nil, resourceVersion: String? = nil,
    allowBookmarks: Bool = true, timeoutSeconds: Int? = nil
  ) {
    self.labelSelector = labelSelector
    self.fieldSelector = fieldSelector
    self.resourceVersion = resourceVersion
    self.allowBookmarks = allowBookmarks
    self.timeoutSeconds = timeoutSeconds
  }
}

public enum WatchEvent: Sendable, Equatable {
  case added(KubeObject)
  case modified(KubeObject)
  case deleted(KubeObject)
  /// Nothing changed for this watch up to this version.
  case bookmark(resourceVersion: String)
  case error(StoreError)

  public var typeName: String {
    switch self {
    case .added: "ADDED"
    case .modified: "MODIFIED"
    case .deleted: "DELETED"
    case .bookmark: "BOOKMARK"
    case .error: "ERROR"
    }
  }

  public var object: KubeObject? {
    switch self {
    case .added(let o), .modified(let o), .deleted(let o): o
    default: nil
    }
  }

  /// One line of a watch stream: `{"type":…,"object":…}`.
  public init(line json: JSONValue) throws(StoreError) {
    guard let type = json["type"]?.stringValue, let object = json["object"] else {
      throw .internalError("a watch event without type or object: \(json.text.prefix(200))")
    }
    switch type {
    case "ADDED": self = .added(KubeObject(object))
    case "MODIFIED": self = .modified(KubeObject(object))
    case "DELETED": self = .deleted(KubeObject(object))
    case "BOOKMARK": self = .bookmark(resourceVersion: KubeObject(object).resourceVersion)
    case "ERROR": self = .error(StoreError(status: object, httpCode: 500))
    default: throw .internalError("unknown watch event type '\(type)'")
    }
  }
}
