import Foundation

/// What the admin API and `/metrics` read: the database's minutes with the ones still in
/// memory added in, so a report shows as soon as it arrives, not only once its minute is written.
extension MonitorService {
  public func stats(_ q: StatQuery) async throws -> [StatRow] {
    var rows = try await store.stats(q)
    let memory = aggregator.peek().stats.filter { k, _ in
      k.minute >= q.from && k.minute < q.to && q.filters.allSatisfy { d, v in Self.value(k, d) == v }
    }
    guard !memory.isEmpty else { return rows }
    func group(_ dims: [StatDimension: String], _ time: Int64?) -> String {
      q.groupBy.map { dims[$0] ?? "" }.joined(separator: "\u{1}") + "\u{1}\(time ?? 0)"
    }
    var index: [String: Int] = [:]
    for (i, r) in rows.enumerated() { index[group(r.dimensions, r.time)] = i }
    for (k, v) in memory {
      let dims = Dictionary(uniqueKeysWithValues: q.groupBy.map { ($0, Self.value(k, $0)) })
      let time = q.bucketSeconds.map { b in k.minute / Swift.max(60, b) * Swift.max(60, b) }
      let g = group(dims, time)
      if let i = index[g] {
        rows[i].value.merge(v)
      } else {
        index[g] = rows.count
        rows.append(StatRow(dimensions: dims, time: time, value: v))
      }
    }
    return rows.sorted { a, b in
      if (a.time ?? 0) != (b.time ?? 0) { return (a.time ?? 0) < (b.time ?? 0) }
      return q.groupBy.map { a.dimensions[$0] ?? "" }.lexicographicallyPrecedes(
        q.groupBy.map { b.dimensions[$0] ?? "" })
    }
  }

  public func properties(_ q: PropertyQuery) async throws -> [PropertyRow] {
    var rows = try await store.properties(q)
    let memory = aggregator.peek().properties.filter { k, _ in
      k.minute >= q.from && k.minute < q.to && q.filters.allSatisfy { d, v in Self.value(k, d) == v }
    }
    func group(_ dims: [PropertyDimension: String], _ policy: PropertyKey.Policy, _ time: Int64?) -> String {
      q.groupBy.map { dims[$0] ?? "" }.joined(separator: "\u{1}") + "\u{1}\(policy.rawValue)\u{1}\(time ?? 0)"
    }
    var index: [String: Int] = [:]
    for (i, r) in rows.enumerated() { index[group(r.dimensions, r.policy, r.time)] = i }
    for (k, v) in memory {
      let dims = Dictionary(uniqueKeysWithValues: q.groupBy.map { ($0, Self.value(k, $0)) })
      let time = q.bucketSeconds.map { b in k.minute / Swift.max(60, b) * Swift.max(60, b) }
      let g = group(dims, k.policy, time)
      if let i = index[g] {
        rows[i].value.merge(v)
      } else {
        index[g] = rows.count
        rows.append(PropertyRow(dimensions: dims, policy: k.policy, time: time, value: v))
      }
    }
    return rows
  }

  static func value(_ k: StatKey, _ d: StatDimension) -> String {
    switch d {
    case .source: k.source.rawValue
    case .master: k.master
    case .slave: k.slave
    case .interface: k.interface
    case .masterIP: k.masterIP
    case .slaveIP: k.slaveIP
    case .slavePort: String(k.slavePort)
    case .returnValue: String(k.returnValue)
    }
  }

  static func value(_ k: PropertyKey, _ d: PropertyDimension) -> String {
    switch d {
    case .server: k.server
    case .ip: k.ip
    case .property: k.property
    }
  }

  /// Prometheus' text format: per caller → callee interface and side (`source`: the caller's
  /// or the callee's view), calls by outcome and the response-time histogram from the
  /// reporters' buckets — counters since this replica started, as Prometheus expects (it
  /// computes rates; several replicas are summed by the query).
  public func exposition() -> String {
    let totals = aggregator.totals.sorted {
      ($0.key.callee, $0.key.interface, $0.key.caller, $0.key.source.rawValue)
        < ($1.key.callee, $1.key.interface, $1.key.caller, $1.key.source.rawValue)
    }
    func label(_ v: String) -> String {
      v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        .replacingOccurrences(of: "\n", with: "\\n")
    }
    func labels(_ s: Aggregator.Series) -> String {
      "caller=\"\(label(s.caller))\",callee=\"\(label(s.callee))\",interface=\"\(label(s.interface))\",source=\"\(s.source.rawValue)\""
    }
    var out = "# HELP tars_calls_total Calls reported to StatObj, by outcome.\n# TYPE tars_calls_total counter\n"
    for (s, v) in totals {
      let l = labels(s)
      out += "tars_calls_total{\(l),result=\"ok\"} \(v.count)\n"
      out += "tars_calls_total{\(l),result=\"timeout\"} \(v.timeouts)\n"
      out += "tars_calls_total{\(l),result=\"exception\"} \(v.exceptions)\n"
    }
    out += "# HELP tars_call_duration_milliseconds Response times of successful calls, in the reporters' buckets.\n"
    out += "# TYPE tars_call_duration_milliseconds histogram\n"
    for (s, v) in totals {
      let l = labels(s)
      var cumulative: Int64 = 0
      for (bound, n) in v.intervals.sorted(by: { $0.key < $1.key }) {
        cumulative += n
        out += "tars_call_duration_milliseconds_bucket{\(l),le=\"\(bound)\"} \(cumulative)\n"
      }
      out += "tars_call_duration_milliseconds_bucket{\(l),le=\"+Inf\"} \(v.count)\n"
      out += "tars_call_duration_milliseconds_sum{\(l)} \(v.totalMs)\n"
      out += "tars_call_duration_milliseconds_count{\(l)} \(v.count)\n"
    }
    let c = aggregator.counters
    out +=
      "# HELP tars_monitor_reports_total Reports StatObj and PropertyObj took.\n# TYPE tars_monitor_reports_total counter\n"
    out += "tars_monitor_reports_total \(c.reports)\n"
    out +=
      "# HELP tars_monitor_refused_total Report entries not counted, by reason.\n# TYPE tars_monitor_refused_total counter\n"
    for r in ReportRefusal.allCases {
      out += "tars_monitor_refused_total{reason=\"\(r.rawValue)\"} \(c.refused[r] ?? 0)\n"
    }
    out +=
      "# HELP tars_monitor_pending_rows Rows of complete minutes waiting for the database.\n# TYPE tars_monitor_pending_rows gauge\n"
    out += "tars_monitor_pending_rows \(pendingRows)\n"
    out +=
      "# HELP tars_monitor_dropped_rows_total Rows dropped while the database was away too long.\n# TYPE tars_monitor_dropped_rows_total counter\n"
    out += "tars_monitor_dropped_rows_total \(droppedRows)\n"
    return out
  }
}
