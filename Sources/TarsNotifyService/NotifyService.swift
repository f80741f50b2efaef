import Foundation
import Synchronization
import TarsFramework
import TarsKube
import TarsProtocol

/// One notification: a framework event ("restart", "[alarm] server exit with signal 9") or a
/// business alarm.
public struct NotifyRecord: Sendable, Equatable {
  /// `App.Server`.
  public var server: String
  /// Pod, node or caller address it came from.
  public var source: String
  public var level: Int32
  public var message: String
  public var time: Date
  /// REPORT (framework event) or NOTIFY (business alarm).
  public var isAlarm: Bool

  public init(server: String, source: String, level: Int32, message: String, time: Date, isAlarm: Bool) {
    self.server = server
    self.source = source
    self.level = level
    self.message = message
    self.time = time
    self.isAlarm = isAlarm
  }
}

/// `tars.tarsnotify.NotifyObj`: takes `reportNotifyInfo` (what current servers send, ONEWAY)
/// and the three legacy calls older binaries and K8SFramework's tarsnode still send, and keeps
/// each notification as a Kubernetes Event about the server's TServer — so any number of
/// replicas share one history, `kubectl describe tserver` and `kubectl get events` show it, and
/// the API server expires it (`--event-ttl`, 1 h by default; the embedded store the same).
/// A report costs no round trip: it is queued (up to `capacity`; beyond, dropped and counted)
/// and written by `run()`, which retries while the API is away. A notification repeated within
/// ten minutes raises its Event's count, as Kubernetes' own recorders do.
public final class NotifyService: NotifyServant, Sendable {
  /// Marks a notification's Event: `report` (a framework event) or `alarm` (a business alarm).
  public static let label = "tars.io/notify"
  /// The Events that are notifications.
  public static let selector = LabelSelector([.exists(label)])
  static let serverAnnotation = "tars.io/server"
  static let sourceAnnotation = "tars.io/source"
  static let levelAnnotation = "tars.io/level"
  static let repeatWindow: TimeInterval = 600

  public let store: any ObjectStore
  public let namespace: String
  public let capacity: Int
  /// The notifications of the namespace (`getNotifyInfo` reads them from here).
  public let events: Informer
  let state = Mutex(State())
  let wake: AsyncStream<Void>.Continuation
  let wakes: AsyncStream<Void>
  let log: @Sendable (String) -> Void
  /// `getNotifyInfo` pages.
  public static let pageSize = 20

  struct State {
    var queue: [NotifyRecord] = []
    var dropped = 0
    /// What this replica wrote lately, by repeat key: the Event's name, count and time.
    var written: [String: (name: String, count: Int64, at: Date)] = [:]
  }

  public init(
    store: any ObjectStore, namespace: String, capacity: Int = 10_000,
    log: @escaping @Sendable (String) -> Void = { _ in }
  ) {
    self.store = store
    self.namespace = namespace
    self.capacity = max(1, capacity)
    self.log = log
    events = Informer(store: store, resource: .events, namespace: namespace, selector: Self.selector)
    (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
  }

  /// Notifications dropped because the queue was full (the API away for long).
  public var dropped: Int { state.withLock { $0.dropped } }
  /// Notifications not written yet.
  public var queued: Int { state.withLock { $0.queue.count } }

  public func record(_ n: NotifyRecord) {
    let kept = state.withLock { s in
      guard s.queue.count < capacity else {
        s.dropped += 1
        return false
      }
      s.queue.append(n)
      return true
    }
    if kept { wake.yield() } else { log("notify: queue full (\(capacity)), dropped: \(n.server): \(n.message)") }
  }

  /// Writes queued notifications until cancelled; keeps the informer `getNotifyInfo` reads.
  public func run() async {
    let informer = Task { await events.run() }
    defer { informer.cancel() }
    var backoff = 0.5
    var iterator = wakes.makeAsyncIterator()
    while !Task.isCancelled {
      guard let next = state.withLock({ $0.queue.first }) else {
        guard await iterator.next() != nil else { return }
        continue
      }
      do throws(StoreError) {
        try await write(next)
        _ = state.withLock { $0.queue.removeFirst() }
        backoff = 0.5
      } catch {
        log("notify: cannot record \(next.server): \(next.message): \(error.message); retrying in \(backoff) s")
        try? await Task.sleep(for: .seconds(backoff))
        backoff = min(backoff * 2, 10)
      }
    }
  }

  func write(_ n: NotifyRecord) async throws(StoreError) {
    let key = [n.server, n.source, String(n.level), n.isAlarm ? "1" : "0", n.message].joined(separator: "\u{1F}")
    let now = Date()
    if let seen = state.withLock({ s in
      s.written[key].flatMap { now.timeIntervalSince($0.at) < Self.repeatWindow ? $0 : nil }
    }) {
      do {
        _ = try await store.patch(
          .events, namespace: namespace, name: seen.name,
          .merge(.object([("count", .integer(seen.count + 1)), ("lastTimestamp", .string(kubeTimestamp(now)))])),
          status: false)
        state.withLock { $0.written[key] = (seen.name, seen.count + 1, now) }
        return
      } catch  where error.code == 404 {
        // Expired or deleted: a new Event.
      }
    }
    let event = Self.event(n, namespace: namespace, time: now)
    _ = try await store.create(.events, event)
    state.withLock { s in
      s.written = s.written.filter { now.timeIntervalSince($0.value.at) < Self.repeatWindow }
      s.written[key] = (event.name, 1, now)
    }
  }

  /// The Event of a notification, about the server's TServer (`lower(app)-lower(server)`).
  public static func event(_ n: NotifyRecord, namespace: String, time: Date) -> KubeObject {
    let parts = n.server.split(separator: ".", maxSplits: 1).map(String.init)
    let tserver = parts.count == 2 ? "\(parts[0])-\(parts[1])".lowercased() : n.server.lowercased()
    let suffix = KubeObject.eventSuffix(time)
    var e = KubeObject.event(
      namespace: namespace, kind: "TServer", name: tserver, type: n.isAlarm || n.level >= 1 ? "Warning" : "Normal",
      reason: n.isAlarm ? "TarsAlarm" : "TarsNotify", message: n.message, component: "tars-tarsnotify",
      suffix: suffix)
    e.json.set(["involvedObject", "apiVersion"], .string("k8s.tars.io/v1beta3"))
    e.json.set(["metadata", "labels"], .object([(label, .string(n.isAlarm ? "alarm" : "report"))]))
    e.json.set(
      ["metadata", "annotations"],
      .object([
        (serverAnnotation, .string(n.server)), (sourceAnnotation, .string(n.source)),
        (levelAnnotation, .string(String(n.level))),
      ]))
    let stamp = kubeTimestamp(time)
    e.json.set(["firstTimestamp"], .string(stamp))
    e.json.set(["lastTimestamp"], .string(stamp))
    return e
  }

  /// The notifications among `events`, newest first, of one server (`App.Server`) or all.
  public static func records(_ events: some Sequence<KubeObject>, server: String? = nil, limit: Int = 100)
    -> [NotifyRecord]
  {
    let parser = ISO8601DateFormatter()
    let found = events.compactMap { e -> (NotifyRecord, Int64)? in
      guard let kind = e.labels[label], let name = e.annotations[serverAnnotation],
        server == nil || name == server
      else { return nil }
      let time = parser.date(from: e.json["lastTimestamp"]?.stringValue ?? "") ?? .distantPast
      return (
        NotifyRecord(
          server: name, source: e.annotations[sourceAnnotation] ?? "",
          level: Int32(e.annotations[levelAnnotation] ?? "") ?? 0, message: e.json["message"]?.stringValue ?? "",
          time: time, isAlarm: kind == "alarm"),
        Int64(e.resourceVersion) ?? 0
      )
    }
    return Array(found.sorted { ($0.0.time, $0.1) > ($1.0.time, $1.1) }.prefix(max(0, limit)).map(\.0))
  }

  /// The newest first, of one server (`App.Server`) or all, as this replica's cache has them.
  public func recent(server: String? = nil, limit: Int = 100) -> [NotifyRecord] {
    Self.records(events.objects.values, server: server, limit: limit)
  }

  func source(_ current: TarsCurrent, _ given: String = "") -> String {
    given.isEmpty ? (current.peer?.host ?? "") : given
  }

  // MARK: NotifyObj

  public func reportNotifyInfo(info: ReportInfo, current: TarsCurrent) throws {
    // TarsJava sends "App.Server" as sServer; the others the bare server name.
    let server = info.sServer.contains(".") ? info.sServer : "\(info.sApp).\(info.sServer)"
    record(
      NotifyRecord(
        server: server, source: source(current, info.sNodeName), level: info.eLevel.rawValue,
        message: info.sMessage, time: Date(), isAlarm: info.eType == .NOTIFY))
  }

  public func reportServer(sServerName: String, sThreadId: String, sMessage: String, current: TarsCurrent) throws {
    record(
      NotifyRecord(
        server: sServerName, source: source(current), level: NOTIFYLEVEL.NOTIFYNORMAL.rawValue, message: sMessage,
        time: Date(), isAlarm: false))
  }

  public func notifyServer(sServerName: String, level: NOTIFYLEVEL, sMessage: String, current: TarsCurrent) throws {
    record(
      NotifyRecord(
        server: sServerName, source: source(current), level: level.rawValue, message: sMessage, time: Date(),
        isAlarm: true))
  }

  public func getNotifyInfo(stKey: NotifyKey, current: TarsCurrent) throws -> Notify.GetNotifyInfo.Result {
    let page = max(0, Int(stKey.page))
    let matching = recent(server: stKey.name, limit: (page + 1) * Self.pageSize + 1)
    let slice = matching.dropFirst(page * Self.pageSize).prefix(Self.pageSize)
    var info = NotifyInfo()
    info.nextpage = matching.count > (page + 1) * Self.pageSize ? Int32(page + 1) : -1
    info.notifyItems = slice.map { n in
      var item = NotifyItem()
      item.sTimeStamp = Self.format(n.time)
      item.sServerId = n.source.isEmpty ? n.server : "\(n.server)_\(n.source)"
      item.iLevel = n.level
      item.sMessage = n.message
      return item
    }
    return .init(ret: 0, stInfo: info)
  }

  static func format(_ date: Date) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return f.string(from: date)
  }
}
