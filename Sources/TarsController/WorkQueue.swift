import Synchronization

/// Keys waiting to be reconciled: each key at most once in the queue, never handed to two
/// workers at once (a key added while it is being worked on is handed out again afterwards),
/// failures retried with a per-key exponential delay. client-go's rate-limited work queue, as
/// an actor.
public actor WorkQueue {
  var queue: [String] = [] {
    didSet { waiting.store(queue.count, ordering: .relaxed) }
  }
  /// `queue.count`, readable without awaiting the actor (for /metrics).
  let waiting = Atomic<Int>(0)
  var queued: Set<String> = []
  var processing: Set<String> = []
  /// Added while processing: goes back in the queue when the worker is done.
  var dirty: Set<String> = []
  var failures: [String: Int] = [:]
  var waiters: [CheckedContinuation<String?, Never>] = []
  var stopped = false
  let baseDelayMs: Int
  let maxDelayMs: Int

  public init(baseDelayMs: Int = 5, maxDelayMs: Int = 30_000) {
    self.baseDelayMs = baseDelayMs
    self.maxDelayMs = maxDelayMs
  }

  public func add(_ key: String) {
    guard !stopped else { return }
    if processing.contains(key) {
      dirty.insert(key)
      return
    }
    guard queued.insert(key).inserted else { return }
    if waiters.isEmpty {
      queue.append(key)
    } else {
      queued.remove(key)
      processing.insert(key)
      waiters.removeFirst().resume(returning: key)
    }
  }

  /// The next key to work on, waiting for one; nil once the queue is shut down.
  public func next() async -> String? {
    if stopped { return nil }
    if !queue.isEmpty {
      let key = queue.removeFirst()
      queued.remove(key)
      processing.insert(key)
      return key
    }
    return await withCheckedContinuation { waiters.append($0) }
  }

  /// The worker finished `key`: a failure comes back after a delay that doubles with each
  /// failure in a row (`baseDelayMs` … `maxDelayMs`); a success forgets the failures.
  public func done(_ key: String, failed: Bool) {
    processing.remove(key)
    if failed {
      let n = (failures[key] ?? 0) + 1
      failures[key] = n
      let delay = min(maxDelayMs, baseDelayMs << min(n - 1, 20))
      Task { [weak self] in
        try? await Task.sleep(for: .milliseconds(delay))
        await self?.add(key)
      }
    } else {
      failures[key] = nil
    }
    if dirty.remove(key) != nil { add(key) }
  }

  /// How many keys wait (not counting those being worked on).
  public var depth: Int { queue.count }
  public nonisolated var depthNow: Int { waiting.load(ordering: .relaxed) }
  public func failureCount(_ key: String) -> Int { failures[key] ?? 0 }

  /// Wakes every waiting worker with nil; later adds are ignored.
  public func shutdown() {
    stopped = true
    queue.removeAll()
    queued.removeAll()
    for w in waiters { w.resume(returning: nil) }
    waiters.removeAll()
  }
}
