import Synchronization
import TarsEmbeddedStore
import TarsKube
import TarsProtocol

/// The embedded store with a look at every request before it runs: to record what the code
/// asks of the API (`group/resource[/status]` and the RBAC verb), or to refuse it as a real
/// client would.
public struct ObservedStore: ObjectStore {
  public let store: EmbeddedStore
  let before: @Sendable (_ verb: String, _ resource: String) throws(StoreError) -> Void

  public init(
    _ store: EmbeddedStore, before: @escaping @Sendable (_ verb: String, _ resource: String) throws(StoreError) -> Void
  ) {
    self.store = store
    self.before = before
  }

  /// Records every request in `recorded`.
  public init(_ store: EmbeddedStore, recording recorded: Recorded) {
    self.init(store) { verb, resource in recorded.calls.withLock { _ = $0.insert("\(verb) \(resource)") } }
  }

  func name(_ r: KubeResource, status: Bool = false) -> String { "\(r.group)/\(r.plural)\(status ? "/status" : "")" }

  public func get(_ r: KubeResource, namespace: String?, name: String) async throws(StoreError) -> KubeObject {
    try before("get", self.name(r))
    return try await store.get(r, namespace: namespace, name: name)
  }
  public func list(_ r: KubeResource, namespace: String?, options: ListOptions) async throws(StoreError) -> ObjectList {
    try before("list", name(r))
    return try await store.list(r, namespace: namespace, options: options)
  }
  public func create(_ r: KubeResource, _ o: KubeObject) async throws(StoreError) -> KubeObject {
    try before("create", name(r))
    return try await store.create(r, o)
  }
  public func update(_ r: KubeResource, _ o: KubeObject, status: Bool) async throws(StoreError) -> KubeObject {
    try before("update", name(r, status: status))
    return try await store.update(r, o, status: status)
  }
  public func patch(_ r: KubeResource, namespace: String?, name: String, _ p: Patch, status: Bool)
    async throws(StoreError) -> KubeObject
  {
    try before("patch", self.name(r, status: status))
    return try await store.patch(r, namespace: namespace, name: name, p, status: status)
  }
  public func delete(_ r: KubeResource, namespace: String?, name: String) async throws(StoreError) {
    try before("delete", self.name(r))
    try await store.delete(r, namespace: namespace, name: name)
  }
  public func podLog(namespace: String, name: String, container: String?, tailLines: Int) async throws(StoreError)
    -> String
  {
    try before("get", "/pods/log")
    return try await store.podLog(namespace: namespace, name: name, container: container, tailLines: tailLines)
  }
  public func watch(_ r: KubeResource, namespace: String?, options: WatchOptions) -> AsyncStream<WatchEvent> {
    try? before("watch", name(r))
    return store.watch(r, namespace: namespace, options: options)
  }
}

/// The API calls a component made, as `verb group/resource`.
public final class Recorded: Sendable {
  public let calls = Mutex<Set<String>>([])
  public init() {}
}
