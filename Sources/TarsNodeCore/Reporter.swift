import TarsFramework
import TarsProtocol
import TarsRPC

/// Reports the server's state to the registry (`updateServerState(podName, setting, present)`
/// with the pid in context "PID"): on every change and again every `intervalMs`, so a registry
/// that restarted or missed a call converges. Calls are asynchronous and coalesced — at most one
/// in flight, the newest state sent next — and retried with backoff; supervision never waits
/// on the registry.
final class StateReporter {
  struct State: Equatable {
    var setting: String
    var present: String
    var pid: Int32
  }

  let loop: TarsEventLoop
  let proxy: TarsProxy
  let podName: String
  let intervalMs: Int
  var latest: State?
  var inFlight = false
  var dirty = false
  var failures = 0
  var unreachable = false
  var retryTimer: TarsEventLoop.TimerID?
  var periodicTimer: TarsEventLoop.TimerID?
  /// Number of reports the registry accepted, for diagnostics and tests.
  private(set) var delivered = 0
  var log: (String) -> Void

  init(loop: TarsEventLoop, proxy: TarsProxy, podName: String, intervalMs: Int, log: @escaping (String) -> Void) {
    self.loop = loop
    self.proxy = proxy
    self.podName = podName
    self.intervalMs = intervalMs
    self.log = log
  }

  func report(setting: String, present: String, pid: Int32) {
    let state = State(setting: setting, present: present, pid: pid)
    latest = state
    dirty = true
    if let t = retryTimer {
      loop.cancel(t)
      retryTimer = nil
      failures = 0
    }
    sendIfIdle()
  }

  func sendIfIdle() {
    guard !inFlight, dirty, let state = latest else { return }
    inFlight = true
    dirty = false
    var options = TarsCallOptions(timeoutMs: 3000)
    options.context["PID"] = String(state.pid)
    proxy.call(
      Registry.UpdateServerState.self,
      .init(podName: podName, settingState: state.setting, presentState: state.present), options: options
    ) { [weak self] result in
      guard let self else { return }
      self.inFlight = false
      switch result {
      case .success:
        if self.unreachable { self.log("the registry is reachable again; state reported") }
        self.unreachable = false
        self.failures = 0
        self.delivered += 1
        self.armPeriodic()
        self.sendIfIdle()
      case .failure(let error):
        self.failures += 1
        if !self.unreachable { self.log("cannot report the state to the registry (will retry): \(error)") }
        self.unreachable = true
        self.dirty = true
        let delay = min(30_000, 500 << min(self.failures, 6))
        self.retryTimer = self.loop.schedule(afterMilliseconds: delay) { [weak self] in
          self?.retryTimer = nil
          self?.sendIfIdle()
        }
      }
    }
  }

  /// The level-triggered re-send: the same state again after the interval.
  func armPeriodic() {
    if let t = periodicTimer { loop.cancel(t) }
    periodicTimer = loop.schedule(afterMilliseconds: intervalMs) { [weak self] in
      guard let self else { return }
      self.periodicTimer = nil
      self.dirty = true
      self.sendIfIdle()
    }
  }
}
