import Foundation
import Synchronization
import TarsProtocol

/// Leader election on a `coordination.k8s.io` Lease, as client-go does it: the leader renews
/// the lease every `retry`; another replica takes it once it has seen no renewal for
/// `leaseDuration` by its own clock (timestamps of other machines are never compared), and every
/// write is conditional on the lease's resourceVersion, so two replicas never both win. A
/// leader that cannot renew within `renewDeadline` stops its work before anyone else may start;
/// one that stops releases the lease, so a rolling update hands over at once.
public final class LeaderElector: Sendable {
  /// The defaults hand over within 15 s of a leader's death: another replica waits out
  /// `leaseDuration` from the last renewal it saw (at most `retry` late) and looks every `retry`,
  /// 10 + 2 + 2 s at worst. A leader steps down once `renewDeadline` has passed since its last
  /// renewal — a hanging renewal is cut off there — so it has stopped its work before anyone may
  /// start (by up to `retry` later, plus the reconcile in hand).
  public struct Timing: Sendable {
    public var leaseDuration: Duration = .seconds(10)
    public var renewDeadline: Duration = .seconds(7)
    public var retry: Duration = .seconds(2)
    public init() {}
  }

  /// The lease's resourceVersion and when this replica first saw it (expiry is judged by it).
  typealias Observed = (resourceVersion: String, at: ContinuousClock.Instant)

  let store: any ObjectStore
  let namespace: String
  public let name: String
  public let identity: String
  let timing: Timing
  let log: @Sendable (String) -> Void
  let leading = Atomic<Bool>(false)

  public init(
    store: any ObjectStore, namespace: String, name: String, identity: String, timing: Timing = Timing(),
    log: @escaping @Sendable (String) -> Void
  ) {
    self.store = store
    self.namespace = namespace
    self.name = name
    self.identity = identity
    self.timing = timing
    self.log = log
  }

  public var isLeader: Bool { leading.load(ordering: .relaxed) }

  /// Takes turns until cancelled: `work` runs (as a task of its own) while this replica leads,
  /// and is cancelled when the lease is lost. `release` (the default) gives the lease up on
  /// cancellation.
  public func run(release: Bool = true, _ work: @escaping @Sendable () async -> Void) async {
    var observed: Observed?
    while !Task.isCancelled {
      if await tryAcquireOrRenew(&observed) {
        leading.store(true, ordering: .relaxed)
        log("leader: \(identity) leads \(namespace)/\(name)")
        let task = Task { await work() }
        await keepRenewing(&observed)
        task.cancel()
        await task.value
        leading.store(false, ordering: .relaxed)
        if Task.isCancelled {
          // In a task of its own: this one is cancelled, and a client that honours
          // cancellation (AsyncHTTPClient does) would refuse the release's requests.
          if release { await Task { await self.release() }.value }
          return
        }
      } else {
        try? await Task.sleep(for: timing.retry)
      }
    }
  }

  /// Waits for the lease, runs `work` while holding it (cancelled if the lease is lost), then
  /// gives the lease up: one holder at a time for a job that ends (an image build). Whether
  /// `work` ran to its end with the lease held; false when cancelled before or while waiting.
  public func whileHolding(_ work: @escaping @Sendable () async -> Void) async -> Bool {
    var observed: Observed?
    while !(await tryAcquireOrRenew(&observed)) {
      if Task.isCancelled { return false }
      try? await Task.sleep(for: timing.retry)
    }
    leading.store(true, ordering: .relaxed)
    let acquired = observed
    let finished = await withTaskGroup(of: Bool.self) { group in
      group.addTask {
        await work()
        return true
      }
      group.addTask {
        var seen = acquired
        await self.keepRenewing(&seen)
        return false
      }
      let first = await group.next() ?? false
      group.cancelAll()
      await group.waitForAll()
      return first
    }
    leading.store(false, ordering: .relaxed)
    await Task { await self.release() }.value
    return finished
  }

  /// Renews every `retry` until the task is cancelled or a renewal misses `renewDeadline`.
  func keepRenewing(_ observed: inout Observed?) async {
    var lastRenew = ContinuousClock.now
    while !Task.isCancelled {
      try? await Task.sleep(for: timing.retry)
      if Task.isCancelled { break }
      // A renewal that hangs (a stalled connection) must not outlast the deadline: another
      // replica may take the lease `leaseDuration` after the last renewal it saw.
      let left = timing.renewDeadline - (ContinuousClock.now - lastRenew)
      if left > .zero, let renewed = await renew(observed, within: left) {
        observed = renewed.observed
        if renewed.held { lastRenew = .now }
      }
      if ContinuousClock.now - lastRenew > timing.renewDeadline {
        log("leader: \(identity) could not renew \(namespace)/\(name) in time: stepping down")
        break
      }
    }
  }

  /// One attempt to renew, given up after `limit` (nil then): the request is cancelled.
  func renew(_ observed: Observed?, within limit: Duration) async
    -> (held: Bool, observed: Observed?)?
  {
    await withTaskGroup(
      of: (held: Bool, observed: Observed?)?.self
    ) { group in
      group.addTask {
        var seen = observed
        let held = await self.tryAcquireOrRenew(&seen)
        return (held, seen)
      }
      group.addTask {
        try? await Task.sleep(for: limit)
        return nil
      }
      let first = await group.next() ?? nil
      group.cancelAll()
      return first
    }
  }

  /// One attempt: create the lease, renew ours, or take one whose holder has not renewed for a
  /// lease duration as observed here. Whether this replica holds it now.
  func tryAcquireOrRenew(_ observed: inout Observed?) async -> Bool {
    let now = Self.microTime()
    let current: KubeObject
    do {
      current = try await store.get(.leases, namespace: namespace, name: name)
    } catch  where error.code == 404 {
      var lease = KubeObject(.leases, namespace: namespace, name: name)
      lease.json.set(["spec"], spec(acquired: now, renewed: now, transitions: 0))
      return (try? await store.create(.leases, lease)) != nil
    } catch {
      return false
    }
    if observed?.resourceVersion != current.resourceVersion { observed = (current.resourceVersion, .now) }
    let holder = current.spec?["holderIdentity"]?.stringValue ?? ""
    let seconds = current.spec?["leaseDurationSeconds"]?.intValue ?? 10
    let expired = observed.map { ContinuousClock.now - $0.at > .seconds(seconds) } ?? false
    guard holder == identity || holder.isEmpty || expired else { return false }
    var next = current
    let transitions = current.spec?["leaseTransitions"]?.intValue ?? 0
    next.json.set(
      ["spec"],
      holder == identity
        ? spec(
          acquired: current.spec?["acquireTime"]?.stringValue ?? now, renewed: now, transitions: transitions)
        : spec(acquired: now, renewed: now, transitions: transitions + 1))
    guard let written = try? await store.update(.leases, next, status: false) else { return false }
    observed = (written.resourceVersion, .now)
    return true
  }

  func spec(acquired: String, renewed: String, transitions: Int64) -> JSONValue {
    .object([
      ("holderIdentity", .string(identity)),
      ("leaseDurationSeconds", .integer(Int64(timing.leaseDuration.components.seconds))),
      ("acquireTime", .string(acquired)), ("renewTime", .string(renewed)), ("leaseTransitions", .integer(transitions)),
    ])
  }

  /// Gives the lease up (holder empty), so the next replica need not wait out the duration.
  func release() async {
    guard var lease = try? await store.get(.leases, namespace: namespace, name: name),
      lease.spec?["holderIdentity"]?.stringValue == identity
    else { return }
    lease.json.set(["spec", "holderIdentity"], .string(""))
    lease.json.set(["spec", "leaseDurationSeconds"], .integer(1))
    _ = try? await store.update(.leases, lease, status: false)
    log("leader: \(identity) released \(namespace)/\(name)")
  }

  /// A Lease's MicroTime: RFC 3339 with exactly six fractional digits, UTC.
  static func microTime(_ date: Date = Date()) -> String {
    let seconds = kubeTimestamp(date)
    let micros = Int((date.timeIntervalSince1970 - date.timeIntervalSince1970.rounded(.down)) * 1_000_000)
    let digits = String(min(max(micros, 0), 999_999))
    return seconds.dropLast() + "." + String(repeating: "0", count: 6 - digits.count) + digits + "Z"
  }
}
