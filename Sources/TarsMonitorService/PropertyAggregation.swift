import TarsMonitor

/// One minute of one property under one policy: `moduleName` (the reporting `App.Server`), the
/// reporter's address, the property's name and the policy it was computed with.
public struct PropertyKey: Hashable, Sendable {
  public var minute: Int64
  public var server: String
  public var ip: String
  public var property: String
  public var policy: Policy

  /// The policies TarsCpp's `PropertyReport` computes over each report interval.
  public enum Policy: String, Sendable, CaseIterable {
    case sum = "Sum"
    case avg = "Avg"
    case distr = "Distr"
    case count = "Count"
    case max = "Max"
    case min = "Min"
  }

  public init(minute: Int64, server: String, ip: String, property: String, policy: Policy) {
    self.minute = minute
    self.server = server
    self.ip = ip
    self.property = property
    self.policy = policy
  }
}

/// A minute of reports of one property and policy. Sum and Count add up; Max and Min keep the
/// extreme; Avg is the mean of the reported averages (a report says its interval's average, not
/// how many samples made it, as classic tarsproperty also had it); Distr adds each bucket's
/// count (`5|0,10|2,…,max|0`).
public struct PropertyValue: Equatable, Sendable {
  public var sum: Double = 0
  /// Reports merged (Avg divides by it).
  public var reports: Int64 = 0
  public var max: Double = 0
  public var min: Double = 0
  /// Bucket label ("5", "max") → count.
  public var distr: [String: Int64] = [:]

  public init() {}

  public init(sum: Double, reports: Int64, max: Double, min: Double, distr: [String: Int64]) {
    self.sum = sum
    self.reports = reports
    self.max = max
    self.min = min
    self.distr = distr
  }

  /// What the policy says the minute's value is (Distr: the total count).
  public func value(_ policy: PropertyKey.Policy) -> Double {
    switch policy {
    case .sum, .count: sum
    case .avg: reports > 0 ? sum / Double(reports) : 0
    case .max: max
    case .min: min
    case .distr: Double(distr.values.reduce(0, +))
    }
  }

  public mutating func merge(_ o: PropertyValue) {
    if o.reports > 0 {
      max = reports > 0 ? Swift.max(max, o.max) : o.max
      min = reports > 0 ? Swift.min(min, o.min) : o.min
    }
    sum += o.sum
    reports += o.reports
    for (bucket, n) in o.distr { distr[bucket, default: 0] += n }
  }

  /// `5|0,10|2,…,max|0` in bucket order: how Distr is stored and shown.
  public var distrText: String {
    distr.sorted { Self.order($0.key) < Self.order($1.key) }.map { "\($0.key)|\($0.value)" }
      .joined(separator: ",")
  }

  static func order(_ bucket: String) -> Double { Double(bucket) ?? .infinity }

  /// Parses a Distr value (several joined by `;` add up); nil when it is not one.
  public static func distr(parsing text: Substring) -> [String: Int64]? {
    var out: [String: Int64] = [:]
    for part in text.split(whereSeparator: { $0 == "," || $0 == ";" }) {
      let pair = part.split(separator: "|")
      guard pair.count == 2, let n = Int64(pair[1]), n >= 0, pair[0] == "max" || Double(pair[0]) != nil else {
        return nil
      }
      out[String(pair[0]), default: 0] += n
    }
    return out
  }

  /// A reported value under `policy`, or why it cannot be counted.
  static func reported(_ policy: String, _ text: String) throws(RefusalError) -> (PropertyKey.Policy, PropertyValue) {
    guard let p = PropertyKey.Policy(rawValue: policy) else { throw RefusalError(.unknownPolicy) }
    if p == .distr {
      guard let d = distr(parsing: text[...]) else { throw RefusalError(.unknownPolicy) }
      return (p, PropertyValue(sum: 0, reports: 1, max: 0, min: 0, distr: d))
    }
    guard let v = Double(text), v.isFinite else { throw RefusalError(.unknownPolicy) }
    guard Swift.abs(v) < 1e15, p != .count || v >= 0 else { throw RefusalError(.absurd) }
    return (p, PropertyValue(sum: v, reports: 1, max: v, min: v, distr: [:]))
  }
}
