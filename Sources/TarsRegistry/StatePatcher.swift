import Foundation
import Synchronization
import TarsKube
import TarsProtocol

/// Turns `updateServerState` into the pod's `tars.io/active` condition, off the RPC path:
/// reports are coalesced per pod (only the newest state is written), written one pod at a time
/// by a background task, retried with backoff while the store is unreachable, and skipped when
/// the pod already shows that state (tarsnode re-reports every minute).
public final class StatePatcher: Sendable {
  struct Report: Sendable, Equatable {
    var setting: String
    var present: String
    var pid: String
    var status: String { setting == "Active" && present == "Active" ? "True" : "False" }
    var reason: String { pid.isEmpty ? "\(setting)/\(present)" : "\(setting)/\(present)/\(pid)" }
  }

  let store: any ObjectStore
  let view: RegistryView
  let log: @Sendable (String) -> Void
  let state = Mutex(State())

  struct State {
    var pending: [String: Report] = [:]
    var order: [String] = []
    var running = false
    /// What this patcher last wrote per pod: the informer's copy may not show it yet.
    var written: [String: Report] = [:]
  }

  public init(store: any ObjectStore, view: RegistryView, log: @escaping @Sendable (String) -> Void) {
    self.store = store
    self.view = view
    self.log = log
  }

  /// Queues the state; returns at once.
  public func submit(pod: String, setting: String, present: String, pid: String) {
    view.metrics.stateReports.add(1, ordering: .relaxed)
    let start = state.withLock { s -> Bool in
      if s.pending[pod] == nil { s.order.append(pod) }
      s.pending[pod] = Report(setting: setting, present: present, pid: pid)
      if s.running { return false }
      s.running = true
      return true
    }
    if start { Task { await drain() } }
  }

  /// Pods whose state is queued or being written.
  public var backlog: Int { state.withLock { $0.pending.count } }

  func drain() async {
    var delay = 100
    while true {
      // Exactly one drain runs: it clears `running` only when it finds the queue empty, under
      // the same lock `submit` sets it under.
      let next: (String, Report)? = state.withLock { s in
        while !s.order.isEmpty {
          let pod = s.order.removeFirst()
          if let report = s.pending.removeValue(forKey: pod) { return (pod, report) }
        }
        s.running = false
        return nil
      }
      guard let (pod, report) = next else { return }
      do throws(StoreError) {
        try await write(pod: pod, report)
        delay = 100
      } catch  where error.isTransient {
        view.metrics.patchFailures.add(1, ordering: .relaxed)
        log("registry: cannot record \(pod) \(report.reason) (\(error)); retrying in \(delay) ms")
        // Back in the queue unless a newer report came meanwhile.
        state.withLock { s in
          if s.pending[pod] == nil {
            s.pending[pod] = report
            s.order.append(pod)
          }
        }
        try? await Task.sleep(for: .milliseconds(delay))
        delay = min(delay * 2, 5000)
      } catch {
        view.metrics.patchFailures.add(1, ordering: .relaxed)
        log("registry: cannot record \(pod) \(report.reason): \(error)")
      }
    }
  }

  func write(pod: String, _ report: Report) async throws(StoreError) {
    let ns = view.options.namespace
    // Only the namespace's Tars pods: what the pod informer (selector on the two labels) holds.
    guard let cached = view.pods.object(namespace: ns, name: pod) else {
      if view.pods.hasSynced {
        view.metrics.refusedReports.add(1, ordering: .relaxed)
        log("registry: ignoring a state report for \(pod): not a Tars pod of namespace \(ns)")
        return
      }
      throw StoreError(code: 503, reason: .serviceUnavailable, message: "the pod cache is not synced yet")
    }
    let current = cached.condition("tars.io/active")
    let cacheShows =
      current?["status"]?.stringValue == report.status && current?["reason"]?.stringValue == report.reason
    let lastWritten = state.withLock { $0.written[pod] }
    // tarsnode re-reports every minute: nothing to write when the pod already shows this state
    // and nothing else was written since.
    if cacheShows && (lastWritten == nil || lastWritten == report) { return }
    var condition: [(String, JSONValue)] = [
      ("type", .string("tars.io/active")), ("status", .string(report.status)), ("reason", .string(report.reason)),
    ]
    if current?["status"]?.stringValue != report.status {
      condition.append(("lastTransitionTime", .string(kubeTimestamp())))
    }
    let patch = Patch.strategicMerge(
      .object([("status", .object([("conditions", .array([.object(condition)]))]))]))
    let started = ContinuousClock.now
    _ = try await store.patch(.pods, namespace: ns, name: pod, patch, status: true)
    state.withLock { $0.written[pod] = report }
    let elapsed = ContinuousClock.now - started
    view.metrics.patches.add(1, ordering: .relaxed)
    view.metrics.observePatch(
      seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
  }

}
