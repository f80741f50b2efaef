import TarsProtocol

extension EndpointF {
  /// The registry's description of an endpoint as written in configs: weight −1 (none) unless
  /// one is set, istcp from the transport.
  public init(_ endpoint: TarsEndpoint, nodeName: String = "") {
    self.init(
      host: endpoint.host, port: Int32(endpoint.port), timeout: Int32(clamping: endpoint.timeout),
      istcp: endpoint.transport.istcp, grid: Int32(clamping: endpoint.grid), setId: endpoint.setId,
      qos: Int32(clamping: endpoint.qos), weight: Int32(clamping: endpoint.weight),
      weightType: Int32(clamping: endpoint.weightType), authType: Int32(clamping: endpoint.authType),
      nodeName: nodeName)
  }
}

extension TarsEndpoint {
  public init(_ endpoint: EndpointF) {
    self.init(
      TarsEndpoint.Transport(istcp: endpoint.istcp), host: endpoint.host, port: Int(endpoint.port),
      timeout: Int(endpoint.timeout), grid: Int(endpoint.grid), qos: Int(endpoint.qos), weight: Int(endpoint.weight),
      weightType: Int(endpoint.weightType), authType: Int(endpoint.authType), setId: endpoint.setId)
  }
}

/// What the locator said about one object, and when.
public struct LocatorEntry: Sendable, Equatable {
  public var active: [TarsEndpoint]
  public var inactive: [TarsEndpoint]
  /// Monotonic milliseconds of the answer.
  public var fetchedAtMs: UInt64
}

/// The client side of name resolution, shared by the POSIX and the SwiftNIO clients: answers
/// cached per object name, refreshed after an interval (TarsCpp's `refresh-endpoint-interval`,
/// 60 s by default), kept when a refresh fails so a registry outage does not stop calls, and a
/// round-robin cursor over the active endpoints.
public struct LocatorCache: Sendable {
  public var refreshIntervalMs: UInt64
  var entries: [String: LocatorEntry] = [:]
  var cursors: [String: Int] = [:]

  public init(refreshIntervalMs: UInt64 = 60_000) { self.refreshIntervalMs = refreshIntervalMs }

  public enum Lookup: Equatable, Sendable {
    /// Use the entry as it is.
    case fresh(LocatorEntry)
    /// Use the entry now and refresh it in the background.
    case stale(LocatorEntry)
    /// Ask the locator and wait for the answer.
    case missing
  }

  public func lookup(_ name: String, nowMs: UInt64) -> Lookup {
    guard let entry = entries[name] else { return .missing }
    return nowMs >= entry.fetchedAtMs + refreshIntervalMs ? .stale(entry) : .fresh(entry)
  }

  @discardableResult
  public mutating func store(_ name: String, active: [TarsEndpoint], inactive: [TarsEndpoint], nowMs: UInt64)
    -> LocatorEntry
  {
    let entry = LocatorEntry(active: active, inactive: inactive, fetchedAtMs: nowMs)
    entries[name] = entry
    return entry
  }

  /// The next active endpoint of `name` in round-robin order, or nil if there is none.
  public mutating func nextEndpoint(_ name: String) -> TarsEndpoint? {
    guard let active = entries[name]?.active, !active.isEmpty else { return nil }
    let i = (cursors[name] ?? -1) &+ 1
    cursors[name] = i % active.count
    return active[i % active.count]
  }
}
