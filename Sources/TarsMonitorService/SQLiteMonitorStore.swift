import Foundation
import GRDB

/// The monitoring tables in a SQLite file (GRDB), for one-machine mode and tests.
public final class SQLiteMonitorStore: MonitorStore {
  let db: DatabaseQueue
  let sql = MonitorSQL(dialect: .sqlite)

  /// Opens (creating) the file at `path`; nil keeps it in memory.
  public init(path: String?) throws {
    var config = Configuration()
    config.journalMode = .wal
    config.busyMode = .timeout(10)
    db = try path.map { try DatabaseQueue(path: $0, configuration: config) } ?? DatabaseQueue()
  }

  public func migrate() async throws {
    let migrations = sql.migrations
    try await db.write { db in
      try db.execute(sql: "CREATE TABLE IF NOT EXISTS monitor_schema (version INTEGER NOT NULL)")
      let version = try Int.fetchOne(db, sql: "SELECT MAX(version) FROM monitor_schema") ?? 0
      for (i, steps) in migrations.enumerated() where i + 1 > version {
        for step in steps { try db.execute(sql: step) }
        try db.execute(sql: "INSERT INTO monitor_schema VALUES (?)", arguments: [i + 1])
      }
    }
  }

  public func write(_ batch: MinuteBatch) async throws {
    try await db.write { db in
      try db.execute(
        sql: "INSERT OR IGNORE INTO monitor_batch VALUES (?, ?)",
        arguments: [batch.id, Int64(Date().timeIntervalSince1970)])
      guard db.changesCount == 1 else { return }  // written before
      let stat = try db.makeStatement(sql: "INSERT INTO stat_minute VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
      for (k, v) in batch.stats {
        try stat.execute(arguments: [
          k.minute, k.source.rawValue, k.master, k.slave, k.interface, k.masterIP, k.slaveIP, Int64(k.slavePort),
          Int64(k.returnValue), k.slaveSet, v.count, v.timeouts, v.exceptions, v.totalMs, v.maxMs, v.minMs,
          v.intervalsText,
        ])
      }
      let property = try db.makeStatement(sql: "INSERT INTO property_minute VALUES (?,?,?,?,?,?,?,?,?,?)")
      for (k, v) in batch.properties {
        try property.execute(arguments: [
          k.minute, k.server, k.ip, k.property, k.policy.rawValue, v.sum, v.reports, v.max, v.min, v.distrText,
        ])
      }
    }
  }

  static func arguments(_ a: [QueryArgument]) -> StatementArguments {
    StatementArguments(
      a.map { arg -> (any DatabaseValueConvertible)? in
        switch arg {
        case .integer(let i): i
        case .text(let t): t
        }
      })
  }

  public func stats(_ q: StatQuery) async throws -> [StatRow] {
    let (text, args) = sql.stats(q)
    return try await db.read { db in
      try Row.fetchAll(db, sql: text, arguments: Self.arguments(args)).compactMap { row -> StatRow? in
        var i = 0
        var time: Int64?
        if q.bucketSeconds != nil {
          time = row[i]
          i += 1
        }
        var dims: [StatDimension: String] = [:]
        for d in q.groupBy {
          let v: DatabaseValue = row[i]
          dims[d] = String.fromDatabaseValue(v) ?? Int64.fromDatabaseValue(v).map(String.init) ?? ""
          i += 1
        }
        guard let calls: Int64 = row[i] else { return nil }  // no rows at all
        let value = StatValue(
          count: calls, timeouts: row[i + 1], exceptions: row[i + 2], totalMs: row[i + 3], maxMs: row[i + 4],
          minMs: row[i + 5] ?? 0, intervals: StatValue.intervals(parsing: (row[i + 6] as String? ?? "")[...]))
        return StatRow(dimensions: dims, time: time, value: value)
      }
    }
  }

  public func properties(_ q: PropertyQuery) async throws -> [PropertyRow] {
    let (text, args) = sql.properties(q)
    return try await db.read { db in
      try Row.fetchAll(db, sql: text, arguments: Self.arguments(args)).compactMap { row -> PropertyRow? in
        var i = 0
        var time: Int64?
        if q.bucketSeconds != nil {
          time = row[i]
          i += 1
        }
        var dims: [PropertyDimension: String] = [:]
        for d in q.groupBy {
          dims[d] = row[i]
          i += 1
        }
        guard let policyName: String = row[i], let policy = PropertyKey.Policy(rawValue: policyName) else { return nil }
        let value = PropertyValue(
          sum: row[i + 1], reports: row[i + 2], max: row[i + 3], min: row[i + 4],
          distr: PropertyValue.distr(parsing: (row[i + 5] as String? ?? "")[...]) ?? [:])
        return PropertyRow(dimensions: dims, policy: policy, time: time, value: value)
      }
    }
  }

  public func prune(before minute: Int64) async throws -> Int {
    try await db.write { db in
      try db.execute(sql: "DELETE FROM stat_minute WHERE minute < ?", arguments: [minute])
      var n = db.changesCount
      try db.execute(sql: "DELETE FROM property_minute WHERE minute < ?", arguments: [minute])
      n += db.changesCount
      try db.execute(sql: "DELETE FROM monitor_batch WHERE written < ?", arguments: [minute])
      return n
    }
  }

  public func close() async { try? db.close() }
}
