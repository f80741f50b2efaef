import Foundation
import Logging
import PostgresNIO

/// The monitoring tables in PostgreSQL (postgres-nio's pooled client), for a cluster: every
/// replica of the monitor writes here, and a minute's rows from several replicas add up.
/// A minute is written with one statement per table (arrays `unnest`ed into rows), so 10,000
/// keys cost one round trip each, not 10,000.
public final class PostgresMonitorStore: MonitorStore {
  public let client: PostgresClient
  let runner: Task<Void, Never>
  let sql = MonitorSQL(dialect: .postgres)
  let logger = Logger(label: "tars.monitor.postgres")

  /// Connects with `configuration` (the pool runs until `close()`).
  public init(configuration: PostgresClient.Configuration) {
    let client = PostgresClient(configuration: configuration)
    self.client = client
    runner = Task { await client.run() }
  }

  /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|require]`, the form a
  /// connection Secret holds.
  public static func configuration(url text: String) throws -> PostgresClient.Configuration {
    guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql",
      let host = url.host, !host.isEmpty, let user = url.user, !user.isEmpty
    else {
      throw MonitorStoreError(
        "the database URL must look like postgres://USER:PASSWORD@HOST:5432/DATABASE, not \(Self.redacted(text))")
    }
    let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
    let mode = url.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
    let tls: PostgresClient.Configuration.TLS
    switch mode {
    case "disable": tls = .disable
    case "prefer": tls = .prefer(.makeClientConfiguration())
    case "require": tls = .require(.makeClientConfiguration())
    default: throw MonitorStoreError("sslmode=\(mode): use disable, prefer or require")
    }
    return PostgresClient.Configuration(
      host: host, port: url.port ?? 5432, username: user, password: url.password,
      database: database.isEmpty ? nil : database, tls: tls)
  }

  /// The URL with its password replaced, for messages.
  static func redacted(_ text: String) -> String {
    guard var url = URLComponents(string: text), url.password != nil else { return text }
    url.password = "…"
    return url.string ?? "(a URL)"
  }

  public func migrate() async throws {
    let migrations = sql.migrations
    try await client.withTransaction(logger: logger) { c in
      // One migrator at a time across replicas.
      try await c.query("SELECT pg_advisory_xact_lock(7346110)", logger: logger)
      try await c.query("CREATE TABLE IF NOT EXISTS monitor_schema (version BIGINT NOT NULL)", logger: logger)
      var version = 0
      for try await v in try await c.query("SELECT COALESCE(MAX(version), 0) FROM monitor_schema", logger: logger)
        .decode(Int64.self)
      {
        version = Int(v)
      }
      for (i, steps) in migrations.enumerated() where i + 1 > version {
        for step in steps { try await c.query(PostgresQuery(unsafeSQL: step), logger: logger) }
        try await c.query("INSERT INTO monitor_schema VALUES (\(Int64(i + 1)))", logger: logger)
      }
    }
  }

  public func write(_ batch: MinuteBatch) async throws {
    let s = batch.stats
    let p = batch.properties
    let id = batch.id
    let now = Int64(Date().timeIntervalSince1970)
    try await client.withTransaction(logger: logger) { c in
      // A batch written before (its answer lost) is not written again; a retry of one still
      // being committed waits here for it.
      var fresh = false
      for try await _ in try await c.query(
        "INSERT INTO monitor_batch VALUES (\(id), \(now)) ON CONFLICT DO NOTHING RETURNING 1", logger: logger
      ).decode(Int32.self) {
        fresh = true
      }
      guard fresh else { return }
      if !s.isEmpty {
        try await c.query(
          """
          INSERT INTO stat_minute SELECT * FROM unnest(\(s.map { $0.0.minute })::bigint[],
            \(s.map { $0.0.source.rawValue })::text[], \(s.map { $0.0.master })::text[], \(s.map { $0.0.slave })::text[],
            \(s.map { $0.0.interface })::text[], \(s.map { $0.0.masterIP })::text[], \(s.map { $0.0.slaveIP })::text[],
            \(s.map { Int64($0.0.slavePort) })::bigint[], \(s.map { Int64($0.0.returnValue) })::bigint[],
            \(s.map { $0.0.slaveSet })::text[], \(s.map { $0.1.count })::bigint[], \(s.map { $0.1.timeouts })::bigint[],
            \(s.map { $0.1.exceptions })::bigint[], \(s.map { $0.1.totalMs })::bigint[], \(s.map { $0.1.maxMs })::bigint[],
            \(s.map { $0.1.minMs })::bigint[], \(s.map { $0.1.intervalsText })::text[])
          """, logger: logger)
      }
      if !p.isEmpty {
        try await c.query(
          """
          INSERT INTO property_minute SELECT * FROM unnest(\(p.map { $0.0.minute })::bigint[],
            \(p.map { $0.0.server })::text[], \(p.map { $0.0.ip })::text[], \(p.map { $0.0.property })::text[],
            \(p.map { $0.0.policy.rawValue })::text[], \(p.map { $0.1.sum })::float8[], \(p.map { $0.1.reports })::bigint[],
            \(p.map { $0.1.max })::float8[], \(p.map { $0.1.min })::float8[], \(p.map { $0.1.distrText })::text[])
          """, logger: logger)
      }
    }
  }

  static func query(_ text: String, _ args: [QueryArgument]) throws -> PostgresQuery {
    var binds = PostgresBindings()
    for a in args {
      switch a {
      case .integer(let i): binds.append(i)
      case .text(let t): binds.append(t)
      }
    }
    return PostgresQuery(unsafeSQL: text, binds: binds)
  }

  public func stats(_ q: StatQuery) async throws -> [StatRow] {
    let (text, args) = sql.stats(q)
    var out: [StatRow] = []
    for try await row in try await client.query(try Self.query(text, args), logger: logger) {
      let r = row.makeRandomAccess()
      var i = 0
      var time: Int64?
      if q.bucketSeconds != nil {
        time = try r[0].decode(Int64.self)
        i = 1
      }
      var dims: [StatDimension: String] = [:]
      for d in q.groupBy {
        dims[d] = try r[i].decode(String.self)
        i += 1
      }
      guard let calls = try r[i].decode(Int64?.self) else { continue }
      out.append(
        StatRow(
          dimensions: dims, time: time,
          value: StatValue(
            count: calls, timeouts: try r[i + 1].decode(Int64.self), exceptions: try r[i + 2].decode(Int64.self),
            totalMs: try r[i + 3].decode(Int64.self), maxMs: try r[i + 4].decode(Int64.self),
            minMs: try r[i + 5].decode(Int64?.self) ?? 0,
            intervals: StatValue.intervals(parsing: (try r[i + 6].decode(String?.self) ?? "")[...]))))
    }
    return out
  }

  public func properties(_ q: PropertyQuery) async throws -> [PropertyRow] {
    let (text, args) = sql.properties(q)
    var out: [PropertyRow] = []
    for try await row in try await client.query(try Self.query(text, args), logger: logger) {
      let r = row.makeRandomAccess()
      var i = 0
      var time: Int64?
      if q.bucketSeconds != nil {
        time = try r[0].decode(Int64.self)
        i = 1
      }
      var dims: [PropertyDimension: String] = [:]
      for d in q.groupBy {
        dims[d] = try r[i].decode(String.self)
        i += 1
      }
      guard let policy = PropertyKey.Policy(rawValue: try r[i].decode(String.self)) else { continue }
      out.append(
        PropertyRow(
          dimensions: dims, policy: policy, time: time,
          value: PropertyValue(
            sum: try r[i + 1].decode(Double.self), reports: try r[i + 2].decode(Int64.self),
            max: try r[i + 3].decode(Double.self), min: try r[i + 4].decode(Double.self),
            distr: PropertyValue.distr(parsing: (try r[i + 5].decode(String?.self) ?? "")[...]) ?? [:])))
    }
    return out
  }

  public func prune(before minute: Int64) async throws -> Int {
    try await client.query("DELETE FROM monitor_batch WHERE written < \(minute)", logger: logger)
    var n = 0
    for table in ["stat_minute", "property_minute"] {
      for try await count in try await client.query(
        PostgresQuery(
          unsafeSQL: "WITH gone AS (DELETE FROM \(table) WHERE minute < $1 RETURNING 1) SELECT COUNT(*) FROM gone",
          binds: {
            var b = PostgresBindings(); b.append(minute); return b
          }()), logger: logger
      ).decode(Int64.self) {
        n += Int(count)
      }
    }
    return n
  }

  public func close() async {
    runner.cancel()
    await runner.value
  }
}

public struct MonitorStoreError: Error, CustomStringConvertible, Sendable {
  public var description: String
  public init(_ description: String) { self.description = description }
}
