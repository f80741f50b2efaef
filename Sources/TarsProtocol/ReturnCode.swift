/// Framework return codes (`iRet` of a ResponsePacket, BaseF.tars). Negative codes from −1 to
/// −99 are the server's; TarsCpp clients drop replies with iRet below −99.
public enum TarsReturnCode {
  public static let success: Int32 = 0
  /// The server could not decode the arguments.
  public static let serverDecodeError: Int32 = -1
  public static let serverEncodeError: Int32 = -2
  public static let noSuchFunction: Int32 = -3
  public static let noSuchServant: Int32 = -4
  public static let resetGrid: Int32 = -5
  public static let queueTimeout: Int32 = -6
  /// Client side: no reply within the call's timeout.
  public static let invokeTimeout: Int32 = -7
  /// Client side: could not connect.
  public static let proxyConnectError: Int32 = -8
  public static let serverOverload: Int32 = -9
  /// Client side: no endpoint to send to.
  public static let adapterNull: Int32 = -10
  public static let invokeByInvalidSet: Int32 = -11
  /// Client side: the reply could not be decoded.
  public static let clientDecodeError: Int32 = -12
  /// Client side: the request could not be sent (connection lost).
  public static let sendRequestError: Int32 = -13
  public static let serverUnknownError: Int32 = -99

  /// The constant's name, for messages.
  public static func name(_ code: Int32) -> String {
    switch code {
    case 0: "TARSSERVERSUCCESS"
    case -1: "TARSSERVERDECODEERR"
    case -2: "TARSSERVERENCODEERR"
    case -3: "TARSSERVERNOFUNCERR"
    case -4: "TARSSERVERNOSERVANTERR"
    case -5: "TARSSERVERRESETGRID"
    case -6: "TARSSERVERQUEUETIMEOUT"
    case -7: "TARSINVOKETIMEOUT"
    case -8: "TARSPROXYCONNECTERR"
    case -9: "TARSSERVEROVERLOAD"
    case -10: "TARSADAPTERNULL"
    case -11: "TARSINVOKEBYINVALIDESET"
    case -12: "TARSCLIENTDECODEERR"
    case -13: "TARSSENDREQUESTERR"
    case -99: "TARSSERVERUNKNOWNERR"
    default: "iRet \(code)"
    }
  }
}

/// RequestPacket.cPacketType values.
public enum TarsPacketType {
  public static let normal: Int8 = 0
  public static let oneway: Int8 = 1
}

/// RequestPacket.iVersion values.
public enum TarsVersion {
  public static let tars: Int16 = 1
  public static let tup: Int16 = 3
  public static let json: Int16 = 5
}
