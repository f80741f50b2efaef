import Synchronization
import TarsProtocol

/// A local cache of one resource, kept level-triggered: list, then watch from the list's
/// version; a watch that ends is resumed from the last version seen; a 410 relists into a new
/// cache that replaces the old one only when complete (readers never see it empty); an
/// unreachable store is retried with backoff while the last view keeps being served.
public final class Informer: Sendable {
  public let resource: KubeResource
  public let namespace: String?
  let store: any ObjectStore
  let selector: LabelSelector?
  let pageSize: Int
  let onChange: @Sendable () -> Void
  /// Called with each object that was added, changed or deleted (a relist reports every object
  /// and every one that vanished), so a controller can queue exactly what changed.
  let onObject: @Sendable (_ namespace: String?, _ name: String) -> Void
  let state = Mutex(State())

  struct State {
    var objects: [String: KubeObject] = [:]
    var resourceVersion = ""
    var synced = false
    var relists = 0
    var watchRestarts = 0
    var lastError: StoreError?
  }

  /// `onChange` runs after every change of the cache (from the informer's task).
  public init(
    store: any ObjectStore, resource: KubeResource, namespace: String?, selector: LabelSelector? = nil,
    pageSize: Int = 500, onChange: @escaping @Sendable () -> Void = {},
    onObject: @escaping @Sendable (_ namespace: String?, _ name: String) -> Void = { _, _ in }
  ) {
    self.onObject = onObject
    self.store = store
    self.resource = resource
    self.namespace = namespace
    self.selector = selector
    self.pageSize = pageSize
    self.onChange = onChange
  }

  /// The cached objects by `namespace/name`.
  public var objects: [String: KubeObject] { state.withLock { $0.objects } }
  public var hasSynced: Bool { state.withLock { $0.synced } }
  public var resourceVersion: String { state.withLock { $0.resourceVersion } }
  /// How often the cache was rebuilt by a full list (1 after the first sync).
  public var relists: Int { state.withLock { $0.relists } }
  public var watchRestarts: Int { state.withLock { $0.watchRestarts } }
  public var lastError: StoreError? { state.withLock { $0.lastError } }

  public func object(namespace: String?, name: String) -> KubeObject? {
    state.withLock { $0.objects[Self.key(namespace, name)] }
  }

  static func key(_ namespace: String?, _ name: String) -> String { "\(namespace ?? "")/\(name)" }

  /// Runs until the task is cancelled.
  public func run(backoffMs: (initial: Int, max: Int) = (200, 10_000)) async {
    var delay = backoffMs.initial
    var needList = true
    while !Task.isCancelled {
      do throws(StoreError) {
        if needList {
          try await relist()
          needList = false
        }
        let from = resourceVersion
        let stream = store.watch(
          resource, namespace: namespace, options: WatchOptions(labelSelector: selector, resourceVersion: from))
        for await event in stream {
          if Task.isCancelled { return }
          // The store answered: the next failure starts the backoff afresh.
          if case .error = event {} else { delay = backoffMs.initial }
          switch event {
          case .added(let o), .modified(let o):
            state.withLock {
              $0.objects[Self.key(o.namespace, o.name)] = o
              $0.resourceVersion = o.resourceVersion
            }
            onChange()
            onObject(o.namespace, o.name)
          case .deleted(let o):
            state.withLock {
              $0.objects[Self.key(o.namespace, o.name)] = nil
              $0.resourceVersion = o.resourceVersion
            }
            onChange()
            onObject(o.namespace, o.name)
          case .bookmark(let rv):
            state.withLock { $0.resourceVersion = rv }
          case .error(let e):
            throw e
          }
        }
        state.withLock { $0.watchRestarts += 1 }
      } catch {
        state.withLock {
          $0.lastError = error
          $0.watchRestarts += 1
        }
        if error.code == 410 {
          needList = true
          continue
        }
        try? await Task.sleep(for: .milliseconds(delay))
        delay = min(delay * 2, backoffMs.max)
      }
    }
  }

  /// Lists every page into a new cache, then swaps it in.
  func relist() async throws(StoreError) {
    var fresh: [String: KubeObject] = [:]
    var token: String?
    var version = ""
    repeat {
      let page = try await store.list(
        resource, namespace: namespace,
        options: ListOptions(labelSelector: selector, limit: pageSize, continueToken: token))
      for o in page.items { fresh[Self.key(o.namespace, o.name)] = o }
      if version.isEmpty { version = page.resourceVersion }
      token = page.continueToken
    } while token != nil
    let before = state.withLock {
      let before = $0.objects
      $0.objects = fresh
      $0.resourceVersion = version
      $0.synced = true
      $0.relists += 1
      $0.lastError = nil
      return before
    }
    onChange()
    for (key, o) in fresh where before[key]?.resourceVersion != o.resourceVersion { onObject(o.namespace, o.name) }
    for (key, o) in before where fresh[key] == nil { onObject(o.namespace, o.name) }
  }
}
