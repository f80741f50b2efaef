import TarsMonitor
import TarsProtocol
import TarsRPC

/// Call statistics, as TarsCpp's `StatReport` keeps and sends them: every call this process
/// made (the caller's view, `bFromClient`) and every request it served (the callee's, under
/// the master `stat_from_server`), summed per interface and return code with TarsCpp's latency
/// buckets, sent to StatObj every report interval and once more at the end.
final class StatReporter {
  /// TarsCpp's default buckets, ms: a call counts in the first it does not exceed (the last
  /// takes the rest).
  static let bounds: [Int32] = [5, 10, 50, 100, 200, 500, 1000, 2000, 3000]

  let proxy: TarsProxy
  /// This process as a caller (`App.Server`, or a client's module name).
  let module: String
  let ip: String
  var calls: [StatMicMsgHead: StatMicMsgBody] = [:]
  var served: [StatMicMsgHead: StatMicMsgBody] = [:]

  init(proxy: TarsProxy, module: String, ip: String) {
    self.proxy = proxy
    self.module = module
    self.ip = ip
  }

  /// A call this process made.
  func called(
    _ request: RequestPacket, _ endpoint: TarsEndpoint, _ result: Result<ResponsePacket, TarsCallError>, _ ns: UInt64
  ) {
    let servant = request.sServantName
    // The reports themselves, and the node's bookkeeping, are not business calls.
    guard !servant.hasPrefix("tars.tarsstat."), !servant.hasPrefix("tars.tarsproperty.") else { return }
    var h = StatMicMsgHead()
    h.masterName = module
    h.slaveName = servant.split(separator: ".").prefix(2).joined(separator: ".")
    h.interfaceName = request.sFuncName
    h.masterIp = ip
    h.slaveIp = endpoint.host
    h.slavePort = Int32(endpoint.port)
    switch result {
    case .success(let r):
      h.returnValue = r.iRet
      Self.add(&calls, h, outcome: r.iRet == 0 ? .success : .exception, ns: ns)
    case .failure(let e):
      h.returnValue = e.code
      Self.add(&calls, h, outcome: e.code == TarsReturnCode.invokeTimeout ? .timeout : .exception, ns: ns)
    }
  }

  /// A request this process answered.
  func answered(_ request: RequestPacket, _ peer: TarsPeer?, _ slave: String, _ ret: Int32, _ ns: UInt64) {
    var h = StatMicMsgHead()
    h.masterName = "stat_from_server"
    h.slaveName = slave
    h.interfaceName = request.sFuncName
    h.masterIp = peer?.host ?? ""
    h.returnValue = ret
    Self.add(&served, h, outcome: ret == 0 ? .success : .exception, ns: ns)
  }

  enum Outcome { case success, timeout, exception }

  static func add(_ map: inout [StatMicMsgHead: StatMicMsgBody], _ h: StatMicMsgHead, outcome: Outcome, ns: UInt64) {
    var b =
      map[h]
      ?? {
        var b = StatMicMsgBody()
        b.intervalCount = Dictionary(uniqueKeysWithValues: bounds.map { ($0, 0) })
        return b
      }()
    switch outcome {
    case .success:
      let ms = Int32(clamping: ns / 1_000_000)
      b.minRspTime = b.count == 0 ? ms : min(b.minRspTime, ms)
      b.maxRspTime = max(b.maxRspTime, ms)
      b.count += 1
      b.totalRspTime += Int64(ms)
      let bound = bounds.first { ms <= $0 } ?? bounds[bounds.count - 1]
      b.intervalCount[bound, default: 0] += 1
    case .timeout: b.timeoutCount += 1
    case .exception: b.execCount += 1
    }
    map[h] = b
  }

  /// Sends what was counted since the last report: ONEWAY as TarsCpp does, or (`wait`) as a
  /// call answered before returning — for a process about to exit.
  func report(wait: Bool = false) {
    for (map, fromClient) in [(calls, true), (served, false)] where !map.isEmpty {
      let args = StatF.ReportMicMsg.Args(msg: map, bFromClient: fromClient)
      if wait {
        _ = try? proxy.callBlocking(StatF.ReportMicMsg.self, args, options: TarsCallOptions(timeoutMs: 3000))
      } else {
        proxy.oneway(StatF.ReportMicMsg.self, args, options: TarsCallOptions(timeoutMs: 5000))
      }
    }
    calls = [:]
    served = [:]
  }
}

extension TarsCommunicator {
  /// Counts every call this communicator makes and sends the counts to `statObject` (e.g.
  /// `tars.tarsstat.StatObj`, found through the locator) every `intervalMs`; `module` names
  /// this process as the caller. A process that exits calls `flushStats()` first.
  public func reportStats(to statObject: String, module: String, ip: String = "", intervalMs: Int = 60_000)
    throws(TarsAddressError)
  {
    let reporter = StatReporter(proxy: try proxy(statObject), module: module, ip: ip)
    statReporter = reporter
    client.onCompleted = { [unowned reporter] request, endpoint, result, ns in
      reporter.called(request, endpoint, result, ns)
    }
    every(intervalMs) { [weak reporter] in reporter?.report() }
  }

  /// Sends what is counted now (calls, properties, remote log lines) and waits for the
  /// services to take it: for a process about to exit.
  public func flushStats() {
    statReporter?.report(wait: true)
    propertyReporter?.report(wait: true)
    for log in remoteLogs?.files.values.map({ $0 }) ?? [] { log.flush() }
  }
}
