import Foundation
import Hummingbird
import TarsAdminAPI
import TarsMonitorService

/// Call statistics and properties from the monitor (StatObj, PropertyObj): a server's
/// interfaces today against yesterday at the same time, and its properties over the last
/// minutes. 503 where no monitor runs.
extension AdminRoutes {
  func registerMonitor(on g: RouterGroup<BasicRequestContext>) {
    g.get("stat") { request, _ in
      let q = request.uri.queryParameters
      guard let monitor = d.monitor else { throw HTTPError(.serviceUnavailable, message: "no monitor runs here") }
      guard let server = q["server"].map(String.init), server.split(separator: ".").count == 2 else {
        throw HTTPError(.badRequest, message: "server=App.Server is needed")
      }
      let source = q["source"].map(String.init) ?? "server"
      guard source == "server" || source == "client" else {
        throw HTTPError(.badRequest, message: "source is server (the callee's view) or client (the callers')")
      }
      let now = Int64(Date().timeIntervalSince1970)
      let midnight = Int64(Calendar.current.startOfDay(for: Date()).timeIntervalSince1970)
      var filters: [StatDimension: String] = [.slave: server, .source: source]
      if let i = q["interface"] { filters[.interface] = String(i) }
      // Minutes [midnight, now] today; the same span 24 hours earlier.
      let today = try await monitor.stats(
        StatQuery(from: midnight, to: now + 60, filters: filters, groupBy: [.interface]))
      let yesterday = try await monitor.stats(
        StatQuery(from: midnight - 86_400, to: now - 86_400 + 60, filters: filters, groupBy: [.interface]))
      let before = Dictionary(uniqueKeysWithValues: yesterday.map { ($0.dimensions[.interface] ?? "", $0.value) })
      let names = Set(today.map { $0.dimensions[.interface] ?? "" }).union(before.keys).sorted()
      let now2 = Dictionary(uniqueKeysWithValues: today.map { ($0.dimensions[.interface] ?? "", $0.value) })
      func average(_ v: StatValue?) -> Double {
        v.map { $0.count > 0 ? Double($0.totalMs) / Double($0.count) : 0 } ?? 0
      }
      return names.map { name in
        let t = now2[name]
        let y = before[name]
        return InterfaceStatRow(
          interface: name, calls: t?.count ?? 0, timeouts: t?.timeouts ?? 0, exceptions: t?.exceptions ?? 0,
          averageMs: average(t), maxMs: t?.maxMs ?? 0, yesterdayCalls: y?.count ?? 0,
          yesterdayTimeouts: y?.timeouts ?? 0, yesterdayExceptions: y?.exceptions ?? 0, yesterdayAverageMs: average(y))
      }
    }
    g.get("property") { request, _ in
      let q = request.uri.queryParameters
      guard let monitor = d.monitor else { throw HTTPError(.serviceUnavailable, message: "no monitor runs here") }
      guard let server = q["server"].map(String.init), server.split(separator: ".").count == 2 else {
        throw HTTPError(.badRequest, message: "server=App.Server is needed")
      }
      guard let minutes = Int64(q["minutes"].map(String.init) ?? "60"), (1...10_080).contains(minutes) else {
        throw HTTPError(.badRequest, message: "minutes is 1 to 10080 (a week)")
      }
      let now = Int64(Date().timeIntervalSince1970) / 60 * 60
      let rows = try await monitor.properties(
        PropertyQuery(
          from: now - (minutes - 1) * 60, to: now + 60, filters: [.server: server], groupBy: [.property, .ip]))
      var merged: [String: (PropertyValue, Set<String>)] = [:]
      for r in rows {
        let key = "\(r.dimensions[.property] ?? "")\u{1}\(r.policy.rawValue)"
        var entry = merged[key] ?? (PropertyValue(), [])
        entry.0.merge(r.value)
        entry.1.insert(r.dimensions[.ip] ?? "")
        merged[key] = entry
      }
      return merged.sorted { $0.key < $1.key }.map { key, entry in
        let parts = key.split(separator: "\u{1}", omittingEmptySubsequences: false)
        let policy = PropertyKey.Policy(rawValue: String(parts[1])) ?? .sum
        let value = policy == .distr ? entry.0.distrText : Self.number(entry.0.value(policy))
        return PropertyStatRow(property: String(parts[0]), policy: policy.rawValue, value: value, ips: entry.1.sorted())
      }
    }
  }

  static func number(_ v: Double) -> String {
    v == v.rounded() && Swift.abs(v) < 1e15 ? String(Int64(v)) : String(format: "%.3f", v)
  }
}
