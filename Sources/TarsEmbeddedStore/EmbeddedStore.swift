import Foundation
import GRDB
import Synchronization
import TarsKube
import TarsProtocol

/// The store of one-machine mode and of fast tests: SQLite (through GRDB) with the API server's
/// semantics — one global resourceVersion, an event history that watches replay from and that
/// is compacted (older versions answer 410), selectors applied to the old and new state (an
/// object whose labels stop matching is DELETED for that watch), the status subresource,
/// strategic merge of conditions by type, and the exact errors (see
/// Tests/Fixtures/kube/INDEX.md). A conformance suite runs the same assertions here and on a
/// real cluster.
public final class EmbeddedStore: ObjectStore {
  let db: DatabaseQueue
  /// Writes and watcher registration happen under this lock, so a new watch never misses or
  /// repeats an event between its replay and the live stream.
  let live = Mutex(Live())
  /// Events kept for watches to resume from; older ones are compacted.
  public let historyLimit: Int
  let bookmarkIntervalMs: Int
  let crdRules: Bool
  /// How long a core/v1 Event lives after its last write, as the API server's `--event-ttl`
  /// (default 1 h): Events are a log, not state, and must not grow the store without end.
  public let eventTTLSeconds: Int
  /// The least time between two sweeps for expired Events.
  let eventSweepSeconds: Int
  let lastEventSweep = Mutex<Date>(.distantPast)

  struct Live {
    var watchers: [Int: Watcher] = [:]
    var nextID = 0
  }

  struct Watcher {
    var resource: KubeResource
    var namespace: String?
    var labels: LabelSelector?
    var fields: FieldSelector?
    var continuation: AsyncStream<WatchEvent>.Continuation
  }

  struct Change {
    var resource: KubeResource
    var type: String
    var object: KubeObject
    var old: KubeObject?
  }

  /// Opens (creating if needed) the store at `path`; nil keeps it in memory. `crdRules: false`
  /// leaves out the Tars CRDs' CEL rules, as an API server whose CRDs predate them would.
  public init(
    path: String?, historyLimit: Int = 10_000, bookmarkIntervalMs: Int = 60_000, crdRules: Bool = true,
    eventTTLSeconds: Int = 3600, eventSweepSeconds: Int = 60
  ) throws(StoreError) {
    self.crdRules = crdRules
    self.eventTTLSeconds = eventTTLSeconds
    self.eventSweepSeconds = eventSweepSeconds
    self.historyLimit = historyLimit
    self.bookmarkIntervalMs = bookmarkIntervalMs
    do {
      var config = Configuration()
      config.journalMode = .wal
      // Another process on the same file (a service beside `up`, a test) waits its turn.
      config.busyMode = .timeout(10)
      db = try path.map { try DatabaseQueue(path: $0, configuration: config) } ?? DatabaseQueue()
      try db.write { db in
        try db.execute(
          sql: """
            CREATE TABLE IF NOT EXISTS objects (
              resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
              rv INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (resource, namespace, name));
            CREATE TABLE IF NOT EXISTS events (
              rv INTEGER PRIMARY KEY, resource TEXT NOT NULL, namespace TEXT NOT NULL,
              type TEXT NOT NULL, body TEXT NOT NULL, old TEXT);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT OR IGNORE INTO meta VALUES ('rv', 1), ('compacted', 0);
            """)
      }
    } catch {
      throw .internalError("cannot open the embedded store at \(path ?? ":memory:"): \(error)")
    }
  }

  // MARK: Reading

  public func get(_ resource: KubeResource, namespace: String?, name: String) async throws(StoreError) -> KubeObject {
    let ns = key(resource, namespace)
    let body = try read { db in
      try String.fetchOne(
        db, sql: "SELECT body FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
        arguments: [resource.description, ns, name])
    }
    guard let body else { throw .notFound(resource, name) }
    return try decode(body)
  }

  public func list(_ resource: KubeResource, namespace: String?, options: ListOptions) async throws(StoreError)
    -> ObjectList
  {
    let fields = try options.fieldSelector.map { (t: String) throws(StoreError) in
      try FieldSelector(parsing: t, resource: resource)
    }
    var start = ""
    var tokenRV: Int64?
    if let token = options.continueToken {
      guard let (rv, s) = ContinueToken.decode(token) else { throw .badRequest("continue key is not valid") }
      if rv < compactedRV {
        throw .expired(
          "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
        )
      }
      (tokenRV, start) = (rv, s)
    }
    if options.resourceVersionMatch == "Exact", let v = options.resourceVersion, let asked = Int64(v),
      asked != currentRV
    {
      if asked <= compactedRV { throw .expired("The resourceVersion for the provided list is too old.") }
      throw .badRequest(
        "resourceVersionMatch=Exact for a version other than the newest (\(currentRV)) is not served by the embedded store"
      )
    }
    if let v = options.resourceVersion, v != "0", let asked = Int64(v), asked > currentRV {
      throw StoreError(
        code: 504, reason: .timeout, message: "Too large resource version: \(asked), current: \(currentRV)",
        retryAfterSeconds: 1)
    }
    let (rows, rv) = try read { db -> ([String], Int64) in
      let rv = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'rv'") ?? 1
      // Pages continue after the last (namespace, name), in the order they are listed.
      let cut = start.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
      var sql = "SELECT body FROM objects WHERE resource = ? AND (namespace, name) > (?, ?)"
      var args: [any DatabaseValueConvertible] = [
        resource.description, cut.first ?? "", cut.count > 1 ? cut[1] : "",
      ]
      if resource.namespaced, let namespace {
        sql += " AND namespace = ?"
        args.append(namespace)
      }
      sql += " ORDER BY namespace, name"
      return (try String.fetchAll(db, sql: sql, arguments: StatementArguments(args)), rv)
    }
    // resourceVersion=0 is served from the cache and ignores limit (fixture 016).
    let limit = options.resourceVersion == "0" ? nil : options.limit.flatMap { $0 > 0 ? $0 : nil }
    var items: [KubeObject] = []
    var next: String?
    var remaining: Int64 = 0
    for body in rows {
      let o = try decode(body)
      guard options.labelSelector?.matches(o.labels) ?? true, fields?.matches(o) ?? true else { continue }
      if let limit, items.count >= limit {
        if next == nil { next = ContinueToken.encode(rv: tokenRV ?? rv, start: Self.position(items.last!)) }
        remaining += 1
        continue
      }
      items.append(o)
    }
    let noSelector = options.labelSelector == nil && options.fieldSelector == nil
    return ObjectList(
      items: items, resourceVersion: String(tokenRV ?? rv), continueToken: next,
      remainingItemCount: next != nil && noSelector ? remaining : nil)
  }

  static func position(_ o: KubeObject) -> String { "\(o.namespace ?? "")/\(o.name)" }

  var currentRV: Int64 { (try? read { try Int64.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'rv'") }) ?? 1 }
  var compactedRV: Int64 {
    (try? read { try Int64.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'compacted'") }) ?? 0
  }

  // MARK: Writing

  public func create(_ resource: KubeResource, _ object: KubeObject) async throws(StoreError) -> KubeObject {
    var o = object
    guard o.resourceVersion.isEmpty else {
      throw .badRequest("resourceVersion should not be set on objects to be created")
    }
    if o.name.isEmpty, let prefix = o.json[path: ["metadata", "generateName"]]?.stringValue, !prefix.isEmpty {
      o.name = prefix + Self.randomSuffix()
    }
    try Validation.check(resource, o)
    if crdRules { try Validation.checkRules(resource, o, old: nil) }
    o.json = o.json.setting("apiVersion", .string(resource.apiVersion)).setting("kind", .string(resource.kind))
    let now = kubeTimestamp()
    o.json.set(["metadata", "uid"], .string(UUID().uuidString.lowercased()))
    o.json.set(["metadata", "creationTimestamp"], .string(now))
    if Self.hasGeneration(resource) { o.json.set(["metadata", "generation"], .integer(1)) }
    if resource.hasStatusSubresource && resource.isCustom { o.json.set(["status"], nil) }
    if resource == .pods && o.status?["phase"] == nil {
      o.json.set(["status", "phase"], .string("Pending"))
      o.json.set(["status", "qosClass"], .string("BestEffort"))
    }
    let result = o
    if resource == .events { await sweepEvents() }
    return try write { db, rv in
      if resource.namespaced {
        let ns = result.namespace ?? ""
        guard
          try Int.fetchOne(
            db, sql: "SELECT 1 FROM objects WHERE resource = 'namespaces' AND name = ?", arguments: [ns]) != nil
        else { throw StoreError.notFound(.namespaces, ns) }
      }
      if try self.fetch(db, resource, result.namespace, result.name) != nil {
        throw StoreError.alreadyExists(resource, result.name)
      }
      var stored = result
      stored.resourceVersion = String(rv)
      return (stored, [Change(resource: resource, type: "ADDED", object: stored, old: nil)])
    }
  }

  public func update(_ resource: KubeResource, _ object: KubeObject, status: Bool) async throws(StoreError)
    -> KubeObject
  {
    try Validation.check(resource, object)
    return try write { db, rv in
      guard let current = try self.fetch(db, resource, object.namespace, object.name) else {
        throw StoreError.notFound(resource, object.name)
      }
      if !object.resourceVersion.isEmpty && object.resourceVersion != current.resourceVersion {
        throw StoreError.conflict(resource, object.name)
      }
      let next = self.merged(resource, current: current, proposed: object.json, status: status)
      if self.crdRules && !status { try Validation.checkRules(resource, KubeObject(next), old: current) }
      return try self.commitChange(resource, current: current, next: next, rv: rv)
    }
  }

  public func patch(_ resource: KubeResource, namespace: String?, name: String, _ patch: Patch, status: Bool)
    async throws(StoreError) -> KubeObject
  {
    try write { db, rv in
      guard let current = try self.fetch(db, resource, namespace, name) else {
        throw StoreError.notFound(resource, name)
      }
      let patched = try patch.apply(to: current.json, resource: resource)
      let proposed = KubeObject(patched)
      if !proposed.resourceVersion.isEmpty && proposed.resourceVersion != current.resourceVersion {
        throw StoreError.conflict(resource, name)
      }
      guard proposed.name == name else { throw StoreError.invalid("metadata.name: Invalid value: field is immutable") }
      guard proposed.namespace == current.namespace else {
        throw StoreError.invalid("metadata.namespace: Invalid value: field is immutable")
      }
      try Validation.check(resource, proposed)
      let next = self.merged(resource, current: current, proposed: patched, status: status)
      if self.crdRules && !status { try Validation.checkRules(resource, KubeObject(next), old: current) }
      return try self.commitChange(resource, current: current, next: next, rv: rv)
    }
  }

  public func delete(_ resource: KubeResource, namespace: String?, name: String) async throws(StoreError) {
    _ = try write { db, rv in
      guard let current = try self.fetch(db, resource, namespace, name) else {
        throw StoreError.notFound(resource, name)
      }
      var changes: [Change] = []
      var last = current
      if resource == .pods {
        // A pod deleted with grace 0 is first MODIFIED with its deletion timestamp (fixture 020).
        last.json.set(["metadata", "deletionTimestamp"], .string(kubeTimestamp()))
        last.json.set(["metadata", "deletionGracePeriodSeconds"], .integer(0))
        last.resourceVersion = String(rv)
        changes.append(Change(resource: resource, type: "MODIFIED", object: last, old: current))
        last.resourceVersion = String(rv + 1)
      } else {
        last.resourceVersion = String(rv)
      }
      changes.append(Change(resource: resource, type: "DELETED", object: last, old: nil))
      return (last, changes)
    }
  }

  /// Deletes the Events whose last write (`lastTimestamp`, else `creationTimestamp`) is older
  /// than the TTL; when an Event is created, at most once per `eventSweepSeconds`.
  func sweepEvents() async {
    let now = Date()
    let due = lastEventSweep.withLock { last in
      guard now.timeIntervalSince(last) >= Double(eventSweepSeconds) else { return false }
      last = now
      return true
    }
    guard due, let all = try? await list(.events, namespace: nil, options: ListOptions()) else { return }
    let parser = ISO8601DateFormatter()
    let cutoff = now.addingTimeInterval(-Double(eventTTLSeconds))
    for e in all.items {
      let stamp =
        e.json["lastTimestamp"]?.stringValue ?? e.json[path: ["metadata", "creationTimestamp"]]?.stringValue ?? ""
      guard let written = parser.date(from: stamp), written < cutoff else { continue }
      try? await delete(.events, namespace: e.namespace, name: e.name)
    }
  }

  /// What an update or patch makes of the stored object.
  func merged(_ resource: KubeResource, current: KubeObject, proposed: JSONValue, status: Bool) -> JSONValue {
    var next: JSONValue
    if status {
      next = current.json.setting("status", proposed["status"])
    } else {
      next = proposed
      if resource.hasStatusSubresource { next = next.setting("status", current.json["status"]) }
    }
    // The server owns these.
    for key in ["uid", "creationTimestamp", "generation", "deletionTimestamp"] {
      next.set(["metadata", key], current.json[path: ["metadata", key]])
    }
    next = next.setting("apiVersion", .string(resource.apiVersion)).setting("kind", .string(resource.kind))
    if next["metadata"]?["managedFields"] == nil, let kept = current.json[path: ["metadata", "managedFields"]] {
      next.set(["metadata", "managedFields"], kept)
    }
    return next
  }

  func commitChange(_ resource: KubeResource, current: KubeObject, next proposed: JSONValue, rv: Int64) throws
    -> (KubeObject, [Change])
  {
    var next = KubeObject(proposed)
    next.resourceVersion = current.resourceVersion
    // A change that changes nothing writes nothing: same version, no event (fixture 090).
    if next.json.sameContent(as: current.json) { return (current, []) }
    if Self.hasGeneration(resource) && next.spec != current.spec {
      next.json.set(["metadata", "generation"], .integer(current.generation + 1))
    }
    next.resourceVersion = String(rv)
    return (next, [Change(resource: resource, type: "MODIFIED", object: next, old: current)])
  }

  static func hasGeneration(_ r: KubeResource) -> Bool { r.isCustom || r.group == "apps" }

  // MARK: Transactions

  func key(_ resource: KubeResource, _ namespace: String?) -> String { resource.namespaced ? (namespace ?? "") : "" }

  func fetch(_ db: Database, _ resource: KubeResource, _ namespace: String?, _ name: String) throws -> KubeObject? {
    try String.fetchOne(
      db, sql: "SELECT body FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
      arguments: [resource.description, key(resource, namespace), name]
    ).map { try decode($0) }
  }

  func read<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
    do {
      return try db.read(body)
    } catch let e as StoreError {
      throw e
    } catch {
      throw .internalError("embedded store: \(error)")
    }
  }

  /// Runs a change at the next version(s), records its events, compacts, then tells the
  /// watchers — all under the lock, so events reach watchers in version order.
  func write(_ body: @escaping (Database, Int64) throws -> (KubeObject, [Change])) throws(StoreError) -> KubeObject {
    do {
      return try live.withLock { live in
        let (result, changes) = try db.write { db -> (KubeObject, [Change]) in
          let rv = (try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'rv'") ?? 1) + 1
          let (result, changes) = try body(db, rv)
          guard !changes.isEmpty else { return (result, []) }
          for c in changes {
            let ns = key(c.resource, c.object.namespace)
            if c.type == "DELETED" {
              try db.execute(
                sql: "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
                arguments: [c.resource.description, ns, c.object.name])
            } else {
              try db.execute(
                sql: "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
                arguments: [
                  c.resource.description, ns, c.object.name, Int64(c.object.resourceVersion), c.object.json.text,
                ])
            }
            try db.execute(
              sql: "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
              arguments: [
                Int64(c.object.resourceVersion), c.resource.description, ns, c.type, c.object.json.text,
                c.old?.json.text,
              ])
          }
          let last = changes.compactMap { Int64($0.object.resourceVersion) }.max() ?? rv
          try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'rv'", arguments: [last])
          try compact(db, newest: last)
          return (result, changes)
        }
        for c in changes {
          for w in live.watchers.values { deliver(c, to: w) }
        }
        return result
      }
    } catch let e as StoreError {
      throw e
    } catch {
      throw .internalError("embedded store: \(error)")
    }
  }

  func compact(_ db: Database, newest: Int64) throws {
    let floor = newest - Int64(historyLimit)
    guard floor > 0 else { return }
    let compacted = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'compacted'") ?? 0
    guard floor > compacted + Int64(max(historyLimit / 10, 1)) else { return }
    try db.execute(sql: "DELETE FROM events WHERE rv <= ?", arguments: [floor])
    try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'compacted'", arguments: [floor])
  }

  /// Drops every event up to `rv` (what etcd compaction does); watches and continues from
  /// before it answer 410. For tests and maintenance.
  public func compact(upTo rv: Int64) throws(StoreError) {
    do {
      try live.withLock { _ in
        try db.write { db in
          try db.execute(sql: "DELETE FROM events WHERE rv <= ?", arguments: [rv])
          try db.execute(sql: "UPDATE meta SET value = max(value, ?) WHERE key = 'compacted'", arguments: [rv])
        }
      }
    } catch {
      throw .internalError("embedded store: \(error)")
    }
  }

  // MARK: Watching

  public func watch(_ resource: KubeResource, namespace: String?, options: WatchOptions) -> AsyncStream<WatchEvent> {
    let (stream, continuation) = AsyncStream<WatchEvent>.makeStream()
    let fields: FieldSelector?
    do throws(StoreError) {
      fields = try options.fieldSelector.map { (t: String) throws(StoreError) in
        try FieldSelector(parsing: t, resource: resource)
      }
    } catch {
      continuation.yield(.error(error))
      continuation.finish()
      return stream
    }
    let watcher = Watcher(
      resource: resource, namespace: resource.namespaced ? namespace : nil, labels: options.labelSelector,
      fields: fields, continuation: continuation)
    var startRV: Int64 = 0
    let id: Int? = live.withLock { live -> Int? in
      do {
        let from = options.resourceVersion.flatMap { $0 == "0" ? nil : Int64($0) }
        let (current, compacted) = try db.read { db in
          (
            try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'rv'") ?? 1,
            try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'compacted'") ?? 0
          )
        }
        startRV = from ?? current
        if let from {
          if from < compacted {
            continuation.yield(.error(.expired("too old resource version: \(from) (\(compacted + 1))")))
            continuation.finish()
            return nil
          }
          let rows = try db.read { db in
            try Row.fetchAll(
              db, sql: "SELECT type, body, old FROM events WHERE rv > ? AND resource = ? ORDER BY rv",
              arguments: [from, resource.description])
          }
          for row in rows {
            let type: String = row["type"]
            let object = try decode(row["body"] as String)
            let old = try (row["old"] as String?).map { try decode($0) }
            deliver(Change(resource: resource, type: type, object: object, old: old), to: watcher)
          }
        } else {
          // No version: the current objects first, as ADDED (fixtures 028, 029).
          let bodies = try db.read { db in
            try String.fetchAll(
              db, sql: "SELECT body FROM objects WHERE resource = ? ORDER BY namespace, name",
              arguments: [resource.description])
          }
          for body in bodies {
            deliver(Change(resource: resource, type: "ADDED", object: try decode(body), old: nil), to: watcher)
          }
        }
      } catch {
        continuation.yield(.error(.internalError("embedded store: \(error)")))
        continuation.finish()
        return nil
      }
      let id = live.nextID
      live.nextID += 1
      live.watchers[id] = watcher
      return id
    }
    guard let id else { return stream }
    let timer = Task { [weak self, bookmarkIntervalMs] in
      let deadline = options.timeoutSeconds.map { ContinuousClock.now + .seconds($0) }
      while !Task.isCancelled {
        let wait = min(
          Duration.milliseconds(bookmarkIntervalMs),
          deadline.map { $0 - ContinuousClock.now } ?? .milliseconds(bookmarkIntervalMs))
        try? await Task.sleep(for: wait)
        guard let self, !Task.isCancelled else { return }
        // Under the writers' lock: every event up to this version has been delivered already.
        // Also before a timeout closes the watch, so a timer that woke late (a busy pool)
        // still tells the client how far it got.
        self.live.withLock { _ in
          let rv = self.currentRV
          if options.allowBookmarks && rv > startRV { continuation.yield(.bookmark(resourceVersion: String(rv))) }
        }
        if let deadline, ContinuousClock.now >= deadline {
          // Not under the lock: finishing runs onTermination, which takes it.
          continuation.finish()
          return
        }
      }
    }
    continuation.onTermination = { [weak self] _ in
      timer.cancel()
      _ = self?.live.withLock { $0.watchers.removeValue(forKey: id) }
    }
    return stream
  }

  /// One change as this watcher sees it: through its namespace and selectors, judged on the
  /// old and the new state (fixture 025).
  func deliver(_ c: Change, to w: Watcher) {
    guard c.resource == w.resource else { return }
    func matches(_ o: KubeObject) -> Bool {
      if let ns = w.namespace, o.namespace != ns { return false }
      return (w.labels?.matches(o.labels) ?? true) && (w.fields?.matches(o) ?? true)
    }
    let now = matches(c.object)
    switch c.type {
    case "ADDED":
      if now { w.continuation.yield(.added(c.object)) }
    case "DELETED":
      if now { w.continuation.yield(.deleted(c.object)) }
    default:
      let before = c.old.map(matches) ?? now
      if before && now {
        w.continuation.yield(.modified(c.object))
      } else if now {
        w.continuation.yield(.added(c.object))
      } else if before, var old = c.old {
        old.resourceVersion = c.object.resourceVersion
        w.continuation.yield(.deleted(old))
      }
    }
  }

  // MARK: Helpers

  func decode(_ body: String) throws(StoreError) -> KubeObject {
    do {
      return KubeObject(try JSONValue(parsing: body))
    } catch {
      throw .internalError("embedded store holds an unreadable object: \(error)")
    }
  }

  static func randomSuffix() -> String {
    let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
    return String((0..<5).map { _ in alphabet.randomElement()! })
  }
}

/// Continue tokens in the API server's format: base64url of
/// `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}`.
enum ContinueToken {
  static func encode(rv: Int64, start: String) -> String {
    let json = JSONValue.object([
      ("v", .string("meta.k8s.io/v1")), ("rv", .integer(rv)), ("start", .string(start + "\u{0}")),
    ])
    return Data(json.text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
  }

  static func decode(_ token: String) -> (Int64, String)? {
    var b = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while b.count % 4 != 0 { b += "=" }
    guard let data = Data(base64Encoded: b), let json = try? JSONValue(parsing: String(decoding: data, as: UTF8.self)),
      let rv = json["rv"]?.intValue, var start = json["start"]?.stringValue
    else { return nil }
    if start.hasSuffix("\u{0}") { start.removeLast() }
    return (rv, start)
  }
}
