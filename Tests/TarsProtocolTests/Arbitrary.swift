import TarsFramework
import TarsMonitor
import TarsProtocol
import TarsTestSupport

/// A small seeded generator (SplitMix64), so a failing property prints a seed that reproduces it.
struct Gen: RandomNumberGenerator {
  var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Integers biased towards the narrowing boundaries, where encoders go wrong.
  mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
    switch Int.random(in: 0..<6, using: &self) {
    case 0: return 0
    case 1:
      return [T.min, T.max, T(truncatingIfNeeded: 127), T(truncatingIfNeeded: 128), T(truncatingIfNeeded: -129)]
        .randomElement(using: &self)!
    case 2: return T(truncatingIfNeeded: Int64.random(in: -300...300, using: &self))
    case 3: return T(truncatingIfNeeded: Int64.random(in: -70000...70000, using: &self))
    default: return T(truncatingIfNeeded: next() >> UInt64.random(in: 0...63, using: &self))
    }
  }

  mutating func any<T: Arbitrary>() -> T { T.arbitrary(&self) }

  mutating func count(_ max: Int = 4) -> Int { Int.random(in: 0...max, using: &self) }
}

protocol Arbitrary { static func arbitrary(_ g: inout Gen) -> Self }

extension Int8: Arbitrary { static func arbitrary(_ g: inout Gen) -> Int8 { g.integer() } }
extension Int16: Arbitrary { static func arbitrary(_ g: inout Gen) -> Int16 { g.integer() } }
extension Int32: Arbitrary { static func arbitrary(_ g: inout Gen) -> Int32 { g.integer() } }
extension Int64: Arbitrary { static func arbitrary(_ g: inout Gen) -> Int64 { g.integer() } }
extension UInt8: Arbitrary { static func arbitrary(_ g: inout Gen) -> UInt8 { g.integer() } }
extension UInt16: Arbitrary { static func arbitrary(_ g: inout Gen) -> UInt16 { g.integer() } }
extension UInt32: Arbitrary { static func arbitrary(_ g: inout Gen) -> UInt32 { g.integer() } }
extension Bool: Arbitrary { static func arbitrary(_ g: inout Gen) -> Bool { Bool.random(using: &g) } }

extension Float: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> Float {
    let v =
      Bool.random(using: &g)
      ? Float(bitPattern: UInt32(truncatingIfNeeded: g.next())) : Float(Int.random(in: -9...9, using: &g)) / 4
    return v.isNaN ? 0 : v  // NaN is never equal to itself
  }
}

extension Double: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> Double {
    let v = Bool.random(using: &g) ? Double(bitPattern: g.next()) : Double(Int.random(in: -9...9, using: &g)) / 8
    return v.isNaN ? 0 : v
  }
}

extension String: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> String {
    let alphabet: [Character] = ["a", "Z", "0", " ", ".", "=", "é", "中", "🙂", "\n", "\u{0}"]
    // Sometimes cross the 255-byte STRING1/STRING4 boundary.
    let n = Int.random(in: 0..<8, using: &g) == 0 ? Int.random(in: 240...300, using: &g) : g.count(12)
    return String((0..<n).map { _ in alphabet.randomElement(using: &g)! })
  }
}

extension Array: Arbitrary where Element: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> [Element] {
    if Element.self == UInt8.self {
      let n = Int.random(in: 0..<8, using: &g) == 0 ? Int.random(in: 250...400, using: &g) : g.count(8)
      return (0..<n).map { _ in g.any() }
    }
    return (0..<g.count()).map { _ in g.any() }
  }
}

extension Dictionary: Arbitrary where Key: Arbitrary, Value: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> [Key: Value] {
    var d: [Key: Value] = [:]
    for _ in 0..<g.count() { d[g.any()] = g.any() }
    return d
  }
}

extension Color: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> Color {
    [.Red, .Green, .Blue, Color(rawValue: g.any())].randomElement(using: &g)!
  }
}
extension NOTIFYLEVEL: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> NOTIFYLEVEL { NOTIFYLEVEL(rawValue: g.any()) }
}
extension ReportType: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> ReportType { ReportType(rawValue: g.any()) }
}
extension ServerState: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> ServerState { ServerState(rawValue: g.any()) }
}

extension TestInfo: Arbitrary { static func arbitrary(_ g: inout Gen) -> TestInfo { .init(ii: g.any(), s: g.any()) } }
extension TestInfoV2: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> TestInfoV2 {
    .init(ii: g.any(), s: g.any(), m: g.any(), sub: g.any(), blob: g.any(), far: g.any())
  }
}
extension Everything: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> Everything {
    .init(
      b: g.any(), i8: g.any(), i16: g.any(), i32: g.any(), i64: g.any(), u8: g.any(), u16: g.any(), u32: g.any(),
      f: g.any(), d: g.any(), str: g.any(), bytes: g.any(), strings: g.any(), counts: g.any(), series: g.any(),
      color: g.any(), info: g.any(), infos: g.any(), byId: g.any(), last: g.any())
  }
}

extension RequestPacket: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> RequestPacket {
    .init(
      iVersion: g.any(), cPacketType: g.any(), iMessageType: g.any(), iRequestId: g.any(), sServantName: g.any(),
      sFuncName: g.any(), sBuffer: g.any(), iTimeout: g.any(), context: g.any(), status: g.any())
  }
}
extension ResponsePacket: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> ResponsePacket {
    .init(
      iVersion: g.any(), cPacketType: g.any(), iRequestId: g.any(), iMessageType: g.any(), iRet: g.any(),
      sBuffer: g.any(), status: g.any(), sResultDesc: g.any(), context: g.any())
  }
}
extension EndpointF: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> EndpointF {
    .init(
      host: g.any(), port: g.any(), timeout: g.any(), istcp: g.any(), grid: g.any(), groupworkid: g.any(),
      grouprealid: g.any(), setId: g.any(), qos: g.any(), bakFlag: g.any(), weight: g.any(), weightType: g.any(),
      authType: g.any(), nodeName: g.any())
  }
}
extension ObjectItem: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> ObjectItem { .init(vActiveEndpoints: g.any(), vInactiveEndpoints: g.any()) }
}
extension GetMasterSlaveLock: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> GetMasterSlaveLock {
    .init(
      application: g.any(), server_name: g.any(), node_name: g.any(), isMaster: g.any(), lastErr: g.any(),
      timeout: g.any(), bakType: g.any())
  }
}
extension ServerInfo: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> ServerInfo {
    .init(application: g.any(), serverName: g.any(), pid: g.any(), adapter: g.any())
  }
}
extension ReportInfo: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> ReportInfo {
    .init(
      eType: g.any(), sApp: g.any(), sSet: g.any(), sContainer: g.any(), sServer: g.any(), sMessage: g.any(),
      sThreadId: g.any(), eLevel: g.any(), sNodeName: g.any())
  }
}
extension NotifyKey: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> NotifyKey { .init(name: g.any(), ip: g.any(), page: g.any()) }
}
extension NotifyItem: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> NotifyItem {
    .init(sTimeStamp: g.any(), sServerId: g.any(), iLevel: g.any(), sMessage: g.any())
  }
}
extension NotifyInfo: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> NotifyInfo { .init(nextpage: g.any(), notifyItems: g.any()) }
}
extension ConfigInfo: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> ConfigInfo {
    .init(
      appname: g.any(), servername: g.any(), filename: g.any(), bAppOnly: g.any(), host: g.any(), setdivision: g.any())
  }
}
extension GetConfigListInfo: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> GetConfigListInfo {
    .init(
      appname: g.any(), servername: g.any(), bAppOnly: g.any(), host: g.any(), setdivision: g.any(),
      containername: g.any())
  }
}
extension StatMicMsgHead: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> StatMicMsgHead {
    .init(
      masterName: g.any(), slaveName: g.any(), interfaceName: g.any(), masterIp: g.any(), slaveIp: g.any(),
      slavePort: g.any(), returnValue: g.any(), slaveSetName: g.any(), slaveSetArea: g.any(), slaveSetID: g.any(),
      tarsVersion: g.any())
  }
}
extension StatMicMsgBody: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> StatMicMsgBody {
    .init(
      count: g.any(), timeoutCount: g.any(), execCount: g.any(), intervalCount: g.any(), totalRspTime: g.any(),
      maxRspTime: g.any(), minRspTime: g.any())
  }
}
extension StatSampleMsg: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> StatSampleMsg {
    .init(
      unid: g.any(), masterName: g.any(), slaveName: g.any(), interfaceName: g.any(), masterIp: g.any(),
      slaveIp: g.any(), depth: g.any(), width: g.any(), parentWidth: g.any())
  }
}
extension StatPropMsgHead: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> StatPropMsgHead {
    .init(
      moduleName: g.any(), ip: g.any(), propertyName: g.any(), setName: g.any(), setArea: g.any(), setID: g.any(),
      sContainer: g.any(), iPropertyVer: g.any())
  }
}
extension StatPropInfo: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> StatPropInfo { .init(policy: g.any(), value: g.any()) }
}
extension StatPropMsgBody: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> StatPropMsgBody { .init(vInfo: g.any()) }
}
extension LogInfo: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> LogInfo {
    .init(
      appname: g.any(), servername: g.any(), sFilename: g.any(), sFormat: g.any(), setdivision: g.any(),
      bHasSufix: g.any(), bHasAppNamePrefix: g.any(), bHasSquareBracket: g.any(), sConcatStr: g.any(), sSepar: g.any(),
      sLogType: g.any())
  }
}
extension ServerStateInfo: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> ServerStateInfo {
    .init(
      serverState: g.any(), processId: g.any(), nodeName: g.any(), application: g.any(), serverName: g.any(),
      settingState: g.any(), exState: g.any())
  }
}
extension AdapterDescriptor: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> AdapterDescriptor {
    .init(
      adapterName: g.any(), endpoint: g.any(), threadNum: g.any(), maxConnections: g.any(), allowIp: g.any(),
      servant: g.any(), queuecap: g.any(), queuetimeout: g.any(), protocol: g.any())
  }
}
extension ServerDescriptor: Arbitrary {
  static func arbitrary(_ g: inout Gen) -> ServerDescriptor {
    .init(profile: g.any(), asyncThreadNum: g.any(), adapters: g.any())
  }
}
