/// Where complete minutes go: SQLite in one-machine mode, PostgreSQL on a cluster, the same
/// tables on both. Rows are only appended — a minute two replicas (or one replica before and
/// after a restart) both saw is two rows that queries add up — so a write never reads, and
/// nothing written is lost by a restart.
public protocol MonitorStore: Sendable {
  /// Creates or upgrades the tables (`monitor_schema` records the version).
  func migrate() async throws
  /// Writes the batch unless one with its `id` was written before (then nothing).
  func write(_ batch: MinuteBatch) async throws
  func stats(_ query: StatQuery) async throws -> [StatRow]
  func properties(_ query: PropertyQuery) async throws -> [PropertyRow]
  /// Deletes minutes before `minute`; how many rows went.
  func prune(before minute: Int64) async throws -> Int
  func close() async
}

/// A stat row's dimensions, as columns.
public enum StatDimension: String, Sendable, CaseIterable, Codable {
  case source, master, slave, interface
  case masterIP = "master_ip"
  case slaveIP = "slave_ip"
  case slavePort = "slave_port"
  case returnValue = "return_value"
}

public enum PropertyDimension: String, Sendable, CaseIterable, Codable {
  case server, ip, property
}

/// Minutes `[from, to)` (unix seconds), rows matching every filter, added up per distinct
/// value of `groupBy` and, with `bucketSeconds`, per bucket of time (a chart's points).
public struct MonitorQuery<Dimension: Hashable & Sendable>: Sendable, Equatable {
  public var from: Int64
  public var to: Int64
  public var filters: [Dimension: String]
  public var groupBy: [Dimension]
  public var bucketSeconds: Int64?

  public init(
    from: Int64, to: Int64, filters: [Dimension: String] = [:], groupBy: [Dimension] = [], bucketSeconds: Int64? = nil
  ) {
    self.from = from
    self.to = to
    self.filters = filters
    self.groupBy = groupBy
    self.bucketSeconds = bucketSeconds
  }
}

public typealias StatQuery = MonitorQuery<StatDimension>
/// Its rows are always per policy as well (values of different policies do not add).
public typealias PropertyQuery = MonitorQuery<PropertyDimension>

public struct StatRow: Sendable, Equatable {
  public var dimensions: [StatDimension: String]
  /// The bucket's start, with `bucketSeconds`.
  public var time: Int64?
  public var value: StatValue
}

public struct PropertyRow: Sendable, Equatable {
  public var dimensions: [PropertyDimension: String]
  public var policy: PropertyKey.Policy
  public var time: Int64?
  public var value: PropertyValue
}

/// The SQL both stores run, in their dialects (placeholders, string aggregation).
struct MonitorSQL {
  enum Dialect { case sqlite, postgres }
  let dialect: Dialect

  var text: String { "TEXT" }
  var big: String { dialect == .sqlite ? "INTEGER" : "BIGINT" }
  var real: String { dialect == .sqlite ? "REAL" : "DOUBLE PRECISION" }

  /// Version 1: the two minute tables and their indexes; each later one what it adds.
  var migrations: [[String]] {
    [
      [
        """
        CREATE TABLE stat_minute (minute \(big) NOT NULL, source \(text) NOT NULL, master \(text) NOT NULL,
          slave \(text) NOT NULL, interface \(text) NOT NULL, master_ip \(text) NOT NULL, slave_ip \(text) NOT NULL,
          slave_port \(big) NOT NULL, return_value \(big) NOT NULL, slave_set \(text) NOT NULL,
          calls \(big) NOT NULL, timeouts \(big) NOT NULL, exceptions \(big) NOT NULL, total_ms \(big) NOT NULL,
          max_ms \(big) NOT NULL, min_ms \(big) NOT NULL, intervals \(text) NOT NULL)
        """,
        "CREATE INDEX stat_minute_slave ON stat_minute (slave, minute)",
        "CREATE INDEX stat_minute_master ON stat_minute (master, minute)",
        "CREATE INDEX stat_minute_minute ON stat_minute (minute)",
        """
        CREATE TABLE property_minute (minute \(big) NOT NULL, server \(text) NOT NULL, ip \(text) NOT NULL,
          property \(text) NOT NULL, policy \(text) NOT NULL, value_sum \(real) NOT NULL, reports \(big) NOT NULL,
          value_max \(real) NOT NULL, value_min \(real) NOT NULL, distr \(text) NOT NULL)
        """,
        "CREATE INDEX property_minute_server ON property_minute (server, minute)",
        "CREATE INDEX property_minute_minute ON property_minute (minute)",
      ],
      // Version 2: the batches written, so a retried write is not counted twice.
      ["CREATE TABLE monitor_batch (id \(text) PRIMARY KEY, written \(big) NOT NULL)"],
    ]
  }

  func placeholder(_ i: Int) -> String { dialect == .sqlite ? "?" : "$\(i)" }

  func concat(_ column: String) -> String {
    dialect == .sqlite ? "group_concat(\(column), ';')" : "string_agg(\(column), ';')"
  }

  /// An integer aggregate as a 64-bit integer (PostgreSQL's SUM of bigint is numeric).
  func integer(_ expression: String) -> String { dialect == .sqlite ? expression : "(\(expression))::bigint" }

  /// A dimension as text (PostgreSQL does not turn integers into text by itself).
  func asText(_ column: String) -> String { dialect == .sqlite ? column : "\(column)::text" }

  /// The query and its arguments (all text or integers, in order).
  func stats(_ q: StatQuery) -> (sql: String, arguments: [QueryArgument]) {
    var args: [QueryArgument] = [.integer(q.from), .integer(q.to)]
    var conditions = ["minute >= \(placeholder(1))", "minute < \(placeholder(2))"]
    for d in StatDimension.allCases {
      guard let v = q.filters[d] else { continue }
      args.append(d == .slavePort || d == .returnValue ? .integer(Int64(v) ?? Int64.min) : .text(v))
      conditions.append("\(d.rawValue) = \(placeholder(args.count))")
    }
    var groups = q.groupBy.map(\.rawValue)
    var selected = q.groupBy.map { asText($0.rawValue) }
    if let b = q.bucketSeconds {
      groups.insert("(minute / \(max(60, b))) * \(max(60, b))", at: 0)
      selected.insert(groups[0], at: 0)
    }
    let sql = """
      SELECT \(selected.map { $0 + ", " }.joined())\(integer("SUM(calls)")), \(integer("SUM(timeouts)")),
        \(integer("SUM(exceptions)")), \(integer("SUM(total_ms)")), MAX(max_ms),
        MIN(CASE WHEN calls > 0 THEN min_ms END), \(concat("intervals"))
      FROM stat_minute WHERE \(conditions.joined(separator: " AND "))
      \(groups.isEmpty ? "" : "GROUP BY " + groups.joined(separator: ", ") + " ORDER BY " + groups.joined(separator: ", "))
      """
    return (sql, args)
  }

  func properties(_ q: PropertyQuery) -> (sql: String, arguments: [QueryArgument]) {
    var args: [QueryArgument] = [.integer(q.from), .integer(q.to)]
    var conditions = ["minute >= \(placeholder(1))", "minute < \(placeholder(2))"]
    for d in PropertyDimension.allCases {
      guard let v = q.filters[d] else { continue }
      args.append(.text(v))
      conditions.append("\(d.rawValue) = \(placeholder(args.count))")
    }
    var groups = q.groupBy.map(\.rawValue) + ["policy"]
    if let b = q.bucketSeconds { groups.insert("(minute / \(max(60, b))) * \(max(60, b))", at: 0) }
    let sql = """
      SELECT \(groups.joined(separator: ", ")), SUM(value_sum), \(integer("SUM(reports)")), MAX(value_max), MIN(value_min),
        \(concat("distr"))
      FROM property_minute WHERE \(conditions.joined(separator: " AND "))
      GROUP BY \(groups.joined(separator: ", ")) ORDER BY \(groups.joined(separator: ", "))
      """
    return (sql, args)
  }
}

enum QueryArgument: Sendable, Equatable {
  case integer(Int64)
  case text(String)
}
