import Glibc
import TarsFramework
import TarsProtocol
import TarsRPC

/// The server's lifecycle: setting {Active, Inactive} × present {Inactive, Activating, Active,
/// Deactivating}, driven by events on the event loop — process exits, heartbeats, commands,
/// timers — never by polling. Crashed servers restart with exponential backoff (explicit
/// start/restart bypass it); a silent adapter or a server that never leaves Activating is
/// restarted after `hearttimeout`; stopping is AdminObj.shutdown → SIGTERM → SIGKILL.
public final class Supervisor {
  public enum Present: String, Sendable {
    case inactive = "Inactive"
    case activating = "Activating"
    case active = "Active"
    case deactivating = "Deactivating"

    /// The classic `ServerState` numbering getStateInfo answers with.
    var serverState: ServerState {
      switch self {
      case .inactive: .Inactive
      case .activating: .Activating
      case .active: .Active
      case .deactivating: .Deactivating
      }
    }
  }

  /// How the server gets what it needs to start: the description, the config file, argv.
  public struct Plan {
    public var request: SpawnRequest
    public var rendered: RenderedConfig?
  }

  struct StopPlan {
    var thenStart: Bool
    var timers: [TarsEventLoop.TimerID] = []
  }

  let settings: NodeSettings
  let loop: TarsEventLoop
  /// Prepares a launch (asynchronously, e.g. after asking the registry).
  var prepare: (@escaping (Result<Plan, SpawnError>) -> Void) -> Void = { $0(.failure(SpawnError("nothing to run"))) }
  var report: (_ setting: String, _ present: String, _ pid: Int32) -> Void = { _, _, _ in }
  var notify: (_ message: String, _ isError: Bool) -> Void = { _, _ in }
  var sendShutdown: (TarsEndpoint) -> Void = { _ in }
  var onStarted: (pid_t) -> Void = { _ in }
  var onActive: () -> Void = {}
  /// Ends tarsnode with this status.
  var exit: (Int32) -> Void = { _ in }
  var log: (String) -> Void = { _ in }
  /// Routine events (starts, exits); silent in plain init mode, where tarsnode is tini.
  var trace: (String) -> Void = { _ in }

  public private(set) var settingActive = false
  public private(set) var present = Present.inactive
  public private(set) var pid: pid_t = 0
  public private(set) var restarts = 0
  public private(set) var lastExit: ExitStatus?
  public var version = ""
  var rendered: RenderedConfig?
  var heartbeats: [String: UInt64] = [:]
  var heartbeatTimer: TarsEventLoop.TimerID?
  var activatingTimer: TarsEventLoop.TimerID?
  var relaunchTimer: TarsEventLoop.TimerID?
  var launching = false
  /// Why the last launch failed, while it keeps failing for that reason.
  var lastLaunchFailure: String?
  /// When and how the current (or last) process was started.
  var startedAt: UInt64?
  var lastRequest: SpawnRequest?
  /// Set for the first 2 s of a start that follows quiet retries.
  var probation: TarsEventLoop.TimerID?
  var consecutiveFailures = 0
  var crashTimes: [UInt64] = []
  var activeSince: UInt64?
  var stopPlan: StopPlan?
  var containerStopping = false
  var containerSignal: Int32 = SIGTERM

  init(settings: NodeSettings, loop: TarsEventLoop) {
    self.settings = settings
    self.loop = loop
  }

  var now: UInt64 { TarsEventLoop.now() }

  /// Plain init mode without --restart: tarsnode lives and dies with the command, like tini.
  var exitsWithServer: Bool {
    if case .plainInit = settings.mode { return !settings.restart }
    return false
  }
  var waitsForReadiness: Bool { settings.serverType.isTars || settings.readyNotify || settings.readyHTTP != nil }

  func set(_ p: Present) {
    guard p != present else { return }
    present = p
    if p == .active {
      activeSince = now
      if let t = activatingTimer {
        loop.cancel(t)
        activatingTimer = nil
      }
      onActive()
    }
    publish()
  }

  /// Sends the current state to whoever listens (the registry reporter); not while a start that
  /// follows quiet retries is on probation.
  func publish() {
    guard probation == nil else { return }
    report(settingActive ? "Active" : "Inactive", present.rawValue, pid)
  }

  // MARK: Commands

  /// The initial start.
  public func begin() {
    settingActive = true
    publish()
    launch()
  }

  /// NodeObj.startServer: bypasses the backoff.
  public func start() -> String {
    settingActive = true
    consecutiveFailures = 0
    lastLaunchFailure = nil
    if let t = relaunchTimer {
      loop.cancel(t)
      relaunchTimer = nil
    }
    if stopPlan != nil {
      stopPlan?.thenStart = true
      return "Success: the server is stopping and will start again"
    }
    if pid != 0 || launching { return "Success: the server is already \(present.rawValue)" }
    launch()
    return "Success"
  }

  /// NodeObj.stopServer.
  public func stop() -> String {
    settingActive = false
    if let t = relaunchTimer {
      loop.cancel(t)
      relaunchTimer = nil
    }
    if pid != 0 {
      if stopPlan == nil { beginStop(thenStart: false, firstSignal: SIGTERM) } else { stopPlan?.thenStart = false }
    } else {
      publish()
    }
    return "Success"
  }

  /// NodeObj.restartServer: stop, then start without backoff.
  public func restart() -> String {
    settingActive = true
    consecutiveFailures = 0
    lastLaunchFailure = nil
    if pid == 0 { return start() }
    if stopPlan == nil { beginStop(thenStart: true, firstSignal: SIGTERM) } else { stopPlan?.thenStart = true }
    return "Success"
  }

  /// The container is stopping (SIGTERM/SIGINT to tarsnode): stop the server within the grace
  /// budget and exit with its status.
  public func containerStop(signal: Int32) {
    if containerStopping {
      // Asked again: pass it on at once, keep the deadline.
      self.signal(signal)
      return
    }
    containerSignal = signal
    containerStopping = true
    settingActive = false
    if let t = relaunchTimer {
      loop.cancel(t)
      relaunchTimer = nil
    }
    guard pid != 0 else {
      exit(lastExit?.shellCode ?? 0)
      return
    }
    if let plan = stopPlan { for t in plan.timers { loop.cancel(t) } }
    stopPlan = nil
    beginStop(thenStart: false, firstSignal: signal)
  }

  /// Passes a signal on to the server.
  public func forward(_ signal: Int32) {
    guard pid != 0 else { return }
    kill(settings.signalGroup ? -pid : pid, signal)
  }

  // MARK: Launching

  func launch() {
    guard settingActive, pid == 0, !launching, stopPlan == nil else { return }
    if let t = relaunchTimer {
      loop.cancel(t)
      relaunchTimer = nil
    }
    launching = true
    prepare { [weak self] result in
      guard let self else { return }
      self.launching = false
      guard self.settingActive, !self.containerStopping, self.pid == 0 else { return }
      switch result {
      case .failure(let error): self.launchFailed("cannot start the server: \(error)")
      case .success(let plan):
        do {
          self.pid = try Spawner.spawn(plan.request)
        } catch {
          self.launchFailed("\(error)")
          return
        }
        self.startedAt = self.now
        self.lastRequest = plan.request
        self.rendered = plan.rendered
        if self.lastLaunchFailure == nil {
          self.trace("started \(plan.request.path) as pid \(self.pid)")
        } else {
          // Retrying quietly: no state goes out until this start has lasted, so a loader that
          // fails every time is not an Activating/Inactive flap at the registry every step.
          let launched = self.pid
          self.probation = self.loop.schedule(afterMilliseconds: 2000) { [weak self] in
            guard let self else { return }
            self.probation = nil
            guard self.pid == launched else { return }
            self.lastLaunchFailure = nil
            self.log("started \(plan.request.path) as pid \(launched) after all (it has run for 2 s)")
            self.publish()
          }
        }
        let t = self.now
        self.heartbeats = [:]
        for a in plan.rendered?.heartbeatAdapters ?? [] { self.heartbeats[a] = t }
        if self.waitsForReadiness {
          self.present = .activating
          self.publish()
        } else {
          self.set(.active)
        }
        self.armHeartbeatTimer()
        if self.present == .activating { self.armActivatingTimer() }
        self.onStarted(self.pid)
      }
    }
  }

  /// The server could not be started: said (and alarmed) once per reason, then retried with
  /// backoff quietly while the reason stays the same — a missing library is not news every step.
  func launchFailed(_ message: String) {
    let repeated = message == lastLaunchFailure
    lastLaunchFailure = message
    if !repeated {
      log(message)
      notify("[alarm] \(message)", true)
    }
    if exitsWithServer {
      exit(127)
      return
    }
    scheduleRelaunch(quiet: repeated)
    if !repeated { log("retrying quietly while the reason stays the same") }
  }

  func scheduleRelaunch(quiet: Bool = false) {
    consecutiveFailures += 1
    let shift = min(consecutiveFailures - 1, 20)
    let delay = min(settings.backoffMaxMs, settings.backoffInitialMs << shift)
    if !quiet { log("restarting the server in \(delay) ms") }
    relaunchTimer = loop.schedule(afterMilliseconds: delay) { [weak self] in
      self?.relaunchTimer = nil
      self?.launch()
    }
  }

  // MARK: Exits

  /// The supervised process ended (reaped by the runtime).
  func exited(_ status: ExitStatus) {
    pid = 0
    lastExit = status
    if let t = heartbeatTimer {
      loop.cancel(t)
      heartbeatTimer = nil
    }
    let planned = stopPlan != nil
    let quiet = probation != nil
    if let p = probation {
      loop.cancel(p)
      probation = nil
    }
    // 127 at once, unplanned: the loader could not start the program (a missing library). Say
    // what is missing, once, and retry quietly like any other start failure.
    if !planned, !containerStopping, status == .exited(127), let started = startedAt,
      now - started < 2_000_000_000, let request = lastRequest,
      let why = ExecDiagnosis.missingLibrary(request.path, libraryPath: request.libraryPath)
    {
      activeSince = nil
      if quiet { present = .inactive } else { set(.inactive) }
      launchFailed("cannot start \(request.path): \(why)")
      return
    }
    trace("server \(status)\(planned ? "" : " (unexpected)")")
    notify("[alarm] server \(status)", !planned)
    let wasSteady = activeSince.map { now >= $0 + UInt64(settings.backoffResetMs) * 1_000_000 } ?? false
    activeSince = nil
    if let plan = stopPlan {
      for t in plan.timers { loop.cancel(t) }
      stopPlan = nil
      if containerStopping {
        exit(status.shellCode)
        return
      }
      set(.inactive)
      if plan.thenStart && settingActive {
        restarts += 1
        launch()
      }
      return
    }
    if containerStopping {
      exit(status.shellCode)
      return
    }
    set(.inactive)
    if exitsWithServer {
      exit(status.shellCode)
      return
    }
    guard settingActive else { return }
    if wasSteady { consecutiveFailures = 0 }
    let t = now
    crashTimes.append(t)
    crashTimes.removeAll { $0 + UInt64(settings.crashWindowSeconds) * 1_000_000_000 < t }
    if settings.crashLimit > 0 && crashTimes.count >= settings.crashLimit {
      log("the server died \(crashTimes.count) times within \(settings.crashWindowSeconds) s: giving up")
      exit(max(status.shellCode, 1))
      return
    }
    restarts += 1
    scheduleRelaunch()
  }

  // MARK: Stopping

  func beginStop(thenStart: Bool, firstSignal: Int32) {
    var plan = StopPlan(thenStart: thenStart)
    set(.deactivating)
    let budgetMs = containerStopping ? settings.graceSeconds * 1000 : nil
    if settings.serverType.isTars, let admin = rendered?.adminEndpoint {
      sendShutdown(admin)
      var termAfter = rendered?.deactivatingTimeoutMs ?? 3000
      if let budgetMs { termAfter = min(termAfter, budgetMs / 2) }
      plan.timers.append(
        loop.schedule(afterMilliseconds: termAfter) { [weak self] in
          guard let self, self.pid != 0 else { return }
          self.log("still running \(termAfter) ms after AdminObj.shutdown: SIGTERM")
          self.signal(SIGTERM)
        })
    } else {
      signal(firstSignal)
    }
    let killAfter = budgetMs ?? ((rendered?.deactivatingTimeoutMs ?? 0) + 10_000)
    plan.timers.append(
      loop.schedule(afterMilliseconds: killAfter) { [weak self] in
        guard let self, self.pid != 0 else { return }
        self.log("still running \(killAfter) ms after the stop began: SIGKILL")
        kill(-self.pid, SIGKILL)
        kill(self.pid, SIGKILL)
        self.stopPlan?.timers.append(
          self.loop.schedule(afterMilliseconds: 3000) { [weak self] in
            guard let self, self.pid != 0 else { return }
            self.log("pid \(self.pid) survived SIGKILL for 3 s: exiting so the container restarts")
            self.exit(1)
          })
      })
    stopPlan = plan
  }

  func signal(_ sig: Int32) {
    guard pid != 0 else { return }
    kill(settings.signalGroup ? -pid : pid, sig)
  }

  // MARK: Heartbeats (ServerObj)

  /// keepAlive from the server: `adapter` "" refreshes every adapter.
  public func keepAlive(adapter: String, pid reported: Int32) {
    guard pid != 0 else { return }
    if stopPlan != nil { return }
    if !settingActive {
      // A server that should be stopped is still heartbeating: stop it again.
      beginStop(thenStart: false, firstSignal: SIGTERM)
      return
    }
    if reported != pid && reported != 0 {
      log("heartbeat from pid \(reported), supervising pid \(pid) (a launcher process?); keeping \(pid)")
    }
    let t = now
    if adapter.isEmpty {
      for k in heartbeats.keys { heartbeats[k] = t }
    } else if heartbeats[adapter] != nil {
      heartbeats[adapter] = t
    }
    if present == .activating { set(.active) }
    armHeartbeatTimer()
  }

  /// keepActiving: still initialising.
  public func keepActiving(pid reported: Int32) {
    guard pid != 0, stopPlan == nil else { return }
    if !settingActive {
      beginStop(thenStart: false, firstSignal: SIGTERM)
      return
    }
    let t = now
    for k in heartbeats.keys { heartbeats[k] = t }
    if present == .active {
      activeSince = nil
      set(.activating)
      armActivatingTimer()
    }
    armHeartbeatTimer()
  }

  /// A not-tars server said it is ready (NOTIFY_SOCKET or its HTTP probe).
  func ready() {
    if pid != 0 && present == .activating && stopPlan == nil { set(.active) }
  }

  var heartTimeoutNs: UInt64 { UInt64(rendered?.heartTimeoutSeconds ?? settings.heartTimeoutSeconds) * 1_000_000_000 }

  /// One timer at the earliest moment a heartbeat can go stale.
  func armHeartbeatTimer() {
    guard settings.serverType.isTars, let oldest = heartbeats.values.min() else { return }
    if let t = heartbeatTimer { loop.cancel(t) }
    heartbeatTimer = loop.schedule(at: oldest + heartTimeoutNs) { [weak self] in
      self?.heartbeatTimer = nil
      self?.checkHeartbeats()
    }
  }

  /// A server still Activating after `activating-timeout` — stuck in initialisation however
  /// often it sends keepActiving, or a not-tars server whose readiness never came — is
  /// restarted like a hung one.
  func armActivatingTimer() {
    if let t = activatingTimer { loop.cancel(t) }
    let ms = rendered?.activatingTimeoutMs ?? settings.heartTimeoutSeconds * 1000
    let launched = pid
    activatingTimer = loop.schedule(afterMilliseconds: ms) { [weak self] in
      guard let self else { return }
      self.activatingTimer = nil
      guard self.pid == launched, self.pid != 0, self.present == .activating, self.stopPlan == nil else { return }
      self.log("still Activating \(ms) ms after the start: restarting the server")
      self.notify("[alarm] the server did not become Active within \(ms) ms, restarting it", true)
      self.beginStop(thenStart: true, firstSignal: SIGTERM)
    }
  }

  func checkHeartbeats() {
    guard pid != 0, stopPlan == nil, present == .active || present == .activating else { return }
    let t = now
    let stale = heartbeats.filter { t >= $0.value + heartTimeoutNs }.map(\.key).sorted()
    guard !stale.isEmpty else {
      armHeartbeatTimer()
      return
    }
    let seconds = heartTimeoutNs / 1_000_000_000
    let what = present == .activating ? "never became Active" : "no heartbeat from \(stale.joined(separator: ", "))"
    log("\(what) for \(seconds) s: restarting the server")
    notify("[alarm] heartbeat overtime (\(what) for \(seconds) s), restarting the server", true)
    beginStop(thenStart: true, firstSignal: SIGTERM)
  }

  // MARK: State for NodeObj

  func stateInfo() -> ServerStateInfo {
    var ex: [String: String] = ["restarts": String(restarts)]
    if !version.isEmpty { ex["version"] = version }
    if let lastExit { ex["lastExit"] = lastExit.description }
    return ServerStateInfo(
      serverState: present.serverState, processId: Int32(pid), nodeName: settings.podName, application: settings.app,
      serverName: settings.server, settingState: settingActive ? .Active : .Inactive, exState: ex)
  }
}
