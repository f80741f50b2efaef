import TarsMonitor
import TarsProtocol
import TarsRPC

/// A custom property, as TarsCpp's `PropertyReport`: values reported with `report(_:)` are
/// folded by each policy and sent to PropertyObj every report interval, then start again.
/// Values are TarsCpp's `int`; the texts sent are the ones TarsCpp sends (`Distr` as
/// `bound|count,…,max|count`, `Avg` as a decimal), so the monitor and classic tools read both.
public final class TarsProperty {
  public enum Policy: Sendable, Equatable {
    case sum, avg, max, min, count
    /// Counts per bucket: a value counts under the first bound above it, or under `max`.
    case distr([Int32])

    var name: String {
      switch self {
      case .sum: "Sum"
      case .avg: "Avg"
      case .max: "Max"
      case .min: "Min"
      case .count: "Count"
      case .distr: "Distr"
      }
    }
  }

  public let name: String
  let policies: [Policy]
  let bounds: [Int32]
  var sum: Int64 = 0
  var count: Int64 = 0
  var maximum: Int32?
  var minimum: Int32 = 0
  var buckets: [Int64]
  var over: Int64 = 0

  init(name: String, policies: [Policy]) {
    self.name = name
    self.policies = policies
    var bounds: [Int32] = []
    for case .distr(let b) in policies { bounds = Array(Set(b)).sorted() }
    self.bounds = bounds
    buckets = Array(repeating: 0, count: bounds.count)
  }

  /// One value, e.g. a queue's length or a payment's amount.
  public func report(_ value: Int32) {
    sum += Int64(value)
    count += 1
    maximum = Swift.max(maximum ?? value, value)
    // TarsCpp's Min is the smallest value other than 0.
    if minimum == 0 || (value != 0 && value < minimum) { minimum = value }
    if !bounds.isEmpty {
      if let i = bounds.firstIndex(where: { $0 > value }) { buckets[i] += 1 } else { over += 1 }
    }
  }

  /// Each policy's text for the interval, and a fresh start. `Min` of 0 and `Max` of nothing
  /// are left out, as TarsCpp leaves out `Min` 0.
  func take() -> [StatPropInfo] {
    defer {
      (sum, count, maximum, minimum, over) = (0, 0, nil, 0, 0)
      buckets = Array(repeating: 0, count: bounds.count)
    }
    return policies.compactMap { p -> StatPropInfo? in
      let value: String
      switch p {
      case .sum: value = "\(sum)"
      case .count: value = "\(count)"
      case .avg: value = count == 0 ? "0" : Self.decimal(Double(sum) / Double(count))
      case .max:
        guard let maximum else { return nil }
        value = "\(maximum)"
      case .min:
        guard minimum != 0 else { return nil }
        value = "\(minimum)"
      case .distr:
        value = (zip(bounds, buckets).map { "\($0)|\($1)" } + ["max|\(over)"]).joined(separator: ",")
      }
      return StatPropInfo(policy: p.name, value: value)
    }
  }

  /// A whole number without a fraction, as C++ streams print it.
  static func decimal(_ v: Double) -> String {
    v == v.rounded() && abs(v) < 1e15 ? "\(Int64(v))" : "\(v)"
  }
}

/// Sends the properties every interval as one `reportPropMsg`, head as TarsCpp fills it.
final class PropertyReporter {
  let proxy: TarsProxy
  let module: String
  var properties: [TarsProperty] = []

  init(proxy: TarsProxy, module: String) {
    self.proxy = proxy
    self.module = module
  }

  func report(wait: Bool = false) {
    var msg: [StatPropMsgHead: StatPropMsgBody] = [:]
    for p in properties {
      var head = StatPropMsgHead()
      head.moduleName = module
      head.propertyName = p.name
      head.iPropertyVer = 2
      msg[head] = StatPropMsgBody(vInfo: p.take())
    }
    guard !msg.isEmpty else { return }
    let args = PropertyF.ReportPropMsg.Args(statmsg: msg)
    if wait {
      _ = try? proxy.callBlocking(PropertyF.ReportPropMsg.self, args, options: TarsCallOptions(timeoutMs: 3000))
    } else {
      proxy.oneway(PropertyF.ReportPropMsg.self, args, options: TarsCallOptions(timeoutMs: 5000))
    }
  }
}

extension TarsCommunicator {
  /// The property `name` (created on first use with `policies`); its values go to PropertyObj
  /// once `reportProperties` is called, as TarsCpp's `<client> property=` makes them go.
  public func property(_ name: String, _ policies: [TarsProperty.Policy]) -> TarsProperty {
    if let p = properties.first(where: { $0.name == name }) { return p }
    let p = TarsProperty(name: name, policies: policies)
    properties.append(p)
    propertyReporter?.properties = properties
    return p
  }

  /// Sends every property to `propertyObject` every `intervalMs`, under `module` (`App.Server`).
  public func reportProperties(to propertyObject: String, module: String, intervalMs: Int = 60_000)
    throws(TarsAddressError)
  {
    let reporter = PropertyReporter(proxy: try proxy(propertyObject), module: module)
    reporter.properties = properties
    propertyReporter = reporter
    every(intervalMs) { [weak reporter] in reporter?.report() }
  }

  /// Runs `body` every `intervalMs` (at least a second) while this communicator lives.
  func every(_ intervalMs: Int, _ body: @escaping () -> Void) {
    func tick() {
      _ = loop.schedule(afterMilliseconds: max(1000, intervalMs)) { [weak self] in
        guard self != nil else { return }
        body()
        tick()
      }
    }
    tick()
  }
}
