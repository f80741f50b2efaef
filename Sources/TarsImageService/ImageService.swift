import Foundation
import NIOPosix
import TarsImage
import TarsKube
import TarsProtocol

/// Turns uploaded server packages into releases: build on the base for the server's type,
/// push to the registry of the TFrameworkConfig, record the release in the server's TImage,
/// and optionally set the TServer's `spec.release` — K8SFramework's tarsimage, without a
/// Docker daemon or a kaniko pod.
///
/// Builds wait in line for one of `concurrency` slots; a build of a server holds that server's
/// Lease (`tars-image-<app>-<server>`), so two admin replicas (or two uploads to one) never
/// build one server at once, and a build whose replica died is seen as interrupted by the next.
/// Every build has a deadline (`maxBuildTime`), a log readable while it runs, and can be
/// cancelled. Blocking work (unpacking, compressing) runs on NIO's thread pool, not on the
/// cooperative threads the API answers from.
public actor ImageService {
  public struct Options: Sendable {
    /// This replica (the pod's name): who holds a build's Lease, and the `handler` it records.
    public var identity: String
    /// Where uploads and build layouts go; each build's directory is removed when it ends.
    public var workDirectory: String
    /// Builds kept waiting before new ones are refused.
    public var maxQueued = 32
    /// Log lines kept per build.
    public var logLines = 2000
    /// Finished builds remembered (their outcome also stays in the TImage's `build.last`).
    public var keepFinished = 100
    public var lease = LeaderElector.Timing()
    /// Registry credentials when `imageUpload.secret` names none (one-machine mode).
    public var dockerConfig: String?
    public init(identity: String, workDirectory: String, dockerConfig: String? = nil) {
      self.identity = identity
      self.workDirectory = workDirectory
      self.dockerConfig = dockerConfig
    }
  }

  struct Entry {
    var state: BuildState
    var request: BuildRequest
    var settings: ImageSettings
    var task: Task<Void, Never>?
    /// Why it was stopped (cancelled, timed out), when it was.
    var stopReason: String?
    /// How the steps ended: the closing message, or why they failed.
    var result: Result<String, BuildFailure>?
  }

  let store: any ObjectStore
  let namespace: String
  public nonisolated let options: Options
  let say: @Sendable (String) -> Void
  var builds: [String: Entry] = [:]
  var order: [String] = []
  var queue: [String] = []
  var running = 0
  var concurrency = 2

  public init(
    store: any ObjectStore, namespace: String, options: Options, log: @escaping @Sendable (String) -> Void
  ) {
    self.store = store
    self.namespace = namespace
    self.options = options
    self.say = log
  }

  /// Queues a build; errors (no registry configured, no base for the type, a full queue) come
  /// at once, with what to change. The package file is the service's from here on.
  public func submit(_ r: BuildRequest) async throws(ImageServiceError) -> BuildState {
    do throws(ImageServiceError) {
      let parts = r.server.split(separator: ".", omittingEmptySubsequences: false)
      guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty }) else {
        throw ImageServiceError(400, "server \(r.server): write App.Server")
      }
      guard ImageSettings.serverTypes.contains(r.serverType) else {
        throw ImageServiceError(
          400, "type \(r.serverType): one of \(ImageSettings.serverTypes.sorted().joined(separator: ", "))")
      }
      let settings = try await currentSettings()
      let base = try settings.base(for: r.serverType)
      guard queue.count < options.maxQueued else {
        throw ImageServiceError(429, "\(queue.count) builds are waiting already: try again when some have finished")
      }
      let id = Self.makeID()
      let tag = r.tag ?? id
      let image = "\(settings.registry)/\(r.server.lowercased()):\(tag)"
      do {
        _ = try ImageReference(parsing: image)
      } catch {
        throw ImageServiceError(400, "tag \(tag): \(error.message)")
      }
      var state = BuildState(
        id: id, server: r.server, serverType: r.serverType, image: image, createPerson: r.person,
        createTime: kubeTimestamp(), mark: r.mark, handler: options.identity, setRelease: r.setRelease)
      state.baseImage = base
      builds[id] = Entry(state: state, request: r, settings: settings)
      order.append(id)
      queue.append(id)
      concurrency = settings.concurrency
      append(id, "queued by \(r.person): \(r.server) (\(r.serverType)) on \(base) → \(image)")
      pump()
      return builds[id]!.state
    } catch {
      unlink(r.package)
      throw error
    }
  }

  /// A build with its log from line `from` on; nil when unknown here.
  public func state(_ id: String, logFrom from: Int = 0) -> BuildState? {
    guard var s = builds[id]?.state else { return nil }
    let skip = min(max(0, from - s.logStart), s.log.count)
    s.log.removeFirst(skip)
    s.logStart += skip
    return s
  }

  /// Every build this replica knows, oldest first, without their logs.
  public func list() -> [BuildState] {
    order.compactMap { id in
      builds[id].map {
        var s = $0.state
        s.log = []
        return s
      }
    }
  }

  /// Stops a build (a waiting one never starts); nil when unknown here.
  public func cancel(_ id: String, by person: String) -> BuildState? {
    stop(id, reason: "cancelled by \(person)")
    return state(id)
  }

  /// Reads the settings as they are now.
  func currentSettings() async throws(ImageServiceError) -> ImageSettings {
    do {
      let o = try await store.get(.tframeworkconfigs, namespace: namespace, name: "tars-framework")
      return try ImageSettings(frameworkConfig: o)
    } catch let e as StoreError where e.code == 404 {
      return try ImageSettings(frameworkConfig: nil)
    } catch let e as ImageServiceError {
      throw e
    } catch {
      throw ImageServiceError(503, "cannot read the TFrameworkConfig tars-framework: \(error)")
    }
  }

  func stop(_ id: String, reason: String) {
    guard let entry = builds[id], !entry.state.phase.finished, entry.stopReason == nil else { return }
    builds[id]?.stopReason = reason
    append(id, reason)
    if let i = queue.firstIndex(of: id) {
      queue.remove(at: i)
      finish(id, .cancelled, reason)
      unlink(entry.request.package)
    } else {
      entry.task?.cancel()
    }
  }

  func pump() {
    while running < concurrency, !queue.isEmpty {
      let id = queue.removeFirst()
      running += 1
      let deadline = builds[id]!.settings.maxBuildTime
      builds[id]?.task = Task { await self.execute(id) }
      Task {
        try? await Task.sleep(for: deadline)
        self.stop(id, reason: "timed out after \(deadline.components.seconds) s (imageBuild.maxBuildTime)")
      }
    }
  }

  /// One build, start to end: the Lease, the steps, the record.
  func execute(_ id: String) async {
    guard let entry = builds[id] else { return }
    let server = entry.request.server
    let elector = LeaderElector(
      store: store, namespace: namespace, name: "tars-image-" + BuildState.imageName(server),
      identity: "\(options.identity)/\(id)", timing: options.lease, log: { _ in })
    set(id, .waiting, "waiting for the Lease tars-image-\(BuildState.imageName(server))")
    var outcome: Result<String, BuildFailure> = .failure(BuildFailure("never started"))
    let ran = await elector.whileHolding {
      let result = await self.steps(id)
      await self.keep(id, result)
    }
    outcome = builds[id]?.result ?? outcome
    let reason = builds[id]?.stopReason
    if !ran, reason == nil {
      // The Lease could not be renewed in time: another replica may take it, so the build stopped.
      outcome = .failure(
        BuildFailure(
          "lost the Lease \(elector.name) (not renewed within \(options.lease.renewDeadline)): stopped; build it again")
      )
    }
    switch outcome {
    case .success(let message): finish(id, .done, message)
    case .failure(let f): finish(id, reason == nil ? .failed : .cancelled, reason ?? f.message)
    }
    // The record outlives a cancelled task: it is written from a task of its own.
    if let state = builds[id]?.state, ran || reason == nil {
      await Task { await self.recordLast(state) }.value
    }
    unlink(entry.request.package)
    try? FileManager.default.removeItem(atPath: options.workDirectory + "/" + id)
    running -= 1
    pump()
  }

  func keep(_ id: String, _ result: Result<String, BuildFailure>) { builds[id]?.result = result }

  func set(_ id: String, _ phase: BuildPhase, _ message: String) {
    guard builds[id] != nil else { return }
    builds[id]!.state.phase = phase
    builds[id]!.state.message = message
    append(id, message)
  }

  func setImage(_ id: String, _ image: String) { builds[id]?.state.image = image }

  func finish(_ id: String, _ phase: BuildPhase, _ message: String) {
    set(id, phase, message)
    say("image: build \(id) of \(builds[id]?.state.server ?? "?"): \(phase.rawValue): \(message)")
    let finished = order.filter { builds[$0]?.state.phase.finished ?? true }
    for old in finished.dropLast(options.keepFinished) {
      builds[old] = nil
      order.removeAll { $0 == old }
    }
  }

  func append(_ id: String, _ line: String) {
    guard builds[id] != nil else { return }
    let time = kubeTimestamp().dropFirst(11).prefix(8)
    builds[id]!.state.log.append("\(time) \(line)")
    let over = builds[id]!.state.log.count - options.logLines
    if over > 0 {
      builds[id]!.state.log.removeFirst(over)
      builds[id]!.state.logStart += over
    }
  }

  /// `v<YYYYMMDDhhmmss>-<4 hex>`, as K8SFramework names builds.
  static func makeID() -> String {
    let stamp = kubeTimestamp().filter(\.isNumber)
    return "v\(stamp)-\(String(UInt16.random(in: 0x1000...0xffff), radix: 16))"
  }
}

struct BuildFailure: Error, Sendable {
  var message: String
  init(_ message: String) { self.message = message }
}
