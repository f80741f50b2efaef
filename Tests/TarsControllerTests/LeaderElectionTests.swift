import Foundation
import Synchronization
import TarsController
import TarsEmbeddedStore
import TarsKube
import TarsStoreTestSupport
import Testing

@Suite("Leader election on a Lease", .serialized)
struct LeaderElectionTests {
  static var fast: LeaderElector.Timing {
    var t = LeaderElector.Timing()
    t.leaseDuration = .seconds(1)
    t.renewDeadline = .milliseconds(700)
    t.retry = .milliseconds(100)
    return t
  }

  final class Running: Sendable {
    let names = Mutex<Set<String>>([])
    var current: Set<String> { names.withLock { $0 } }
  }

  func elect(
    _ store: EmbeddedStore, _ id: String, _ running: Running, release: Bool = true,
    timing: LeaderElector.Timing = fast
  ) -> (LeaderElector, Task<Void, Never>) {
    let elector = LeaderElector(
      store: store, namespace: "tars", name: "tars-controller", identity: id, timing: timing, log: { _ in })
    let task = Task {
      await elector.run(release: release) {
        running.names.withLock { _ = $0.insert(id) }
        while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
        running.names.withLock { _ = $0.remove(id) }
      }
    }
    return (elector, task)
  }

  @Test func oneLeadsAndTheOtherTakesOverWhenItStops() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    let running = Running()
    // A lease far longer than the test: b can only lead through a's release.
    // (and a renew deadline long enough that a loaded machine never makes a step down).
    var long = Self.fast
    long.leaseDuration = .seconds(120)
    long.renewDeadline = .seconds(100)
    let (a, ta) = elect(store, "a", running, timing: long)
    #expect(await eventually { a.isLeader })
    let (b, tb) = elect(store, "b", running, timing: long)
    defer { tb.cancel() }
    try await Task.sleep(for: .milliseconds(1500))
    #expect(running.current == ["a"], "never two at once, and b waits while a renews")
    #expect(!b.isLeader)
    let lease = try await store.get(.leases, namespace: "tars", name: "tars-controller")
    #expect(lease.spec?["holderIdentity"]?.stringValue == "a")
    let renew = lease.spec?["renewTime"]?.stringValue ?? ""
    #expect(
      renew.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"#, options: .regularExpression) != nil, "\(renew)")

    // A graceful stop releases the lease: b leads long before the 120 s lease would run out.
    ta.cancel()
    await ta.value
    #expect(await eventually(30) { b.isLeader })
    #expect(await eventually { running.current == ["b"] }, "b's work starts (in a task of its own) once it leads")
    #expect(
      try await store.get(.leases, namespace: "tars", name: "tars-controller").spec?["leaseTransitions"]?.intValue == 1)
  }

  @Test func aStoppingLeaderReleasesThroughAClientThatHonoursCancellation() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    let elector = LeaderElector(
      store: ObservedStore(store) { _, _ throws(StoreError) in
        // As the real API client does (AsyncHTTPClient honours cancellation).
        if Task.isCancelled { throw .unreachable("the task was cancelled") }
      }, namespace: "tars", name: "tars-controller", identity: "a",
      timing: Self.fast, log: { _ in })
    let task = Task { await elector.run { while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) } } }
    #expect(await eventually { elector.isLeader })
    task.cancel()
    await task.value
    let lease = try await store.get(.leases, namespace: "tars", name: "tars-controller")
    #expect(lease.spec?["holderIdentity"]?.stringValue == "", "released: \(lease.spec?.description ?? "")")
  }

  @Test func aLeaderThatVanishesIsReplacedAfterTheLeaseDuration() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    let running = Running()
    let (a, ta) = elect(store, "a", running, release: false)
    #expect(await eventually { a.isLeader })
    let (b, tb) = elect(store, "b", running)
    defer { tb.cancel() }
    try await Task.sleep(for: .milliseconds(300))
    let gone = ContinuousClock.now
    ta.cancel()  // killed: no release
    await ta.value
    #expect(await eventually { b.isLeader })
    #expect(ContinuousClock.now - gone >= .milliseconds(900), "b waited out the lease it last saw renewed")
  }
}
