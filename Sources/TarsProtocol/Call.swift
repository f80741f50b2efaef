/// Why a client call failed: a framework code (timeouts, connect errors and the server's iRet)
/// and what happened.
public struct TarsCallError: Error, Sendable, Equatable, CustomStringConvertible {
  public var code: Int32
  public var message: String

  public init(code: Int32, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { "\(message) (\(TarsReturnCode.name(code)))" }

  public static func timeout(_ ms: Int, _ what: String) -> TarsCallError {
    TarsCallError(code: TarsReturnCode.invokeTimeout, "\(what): no reply within \(ms) ms")
  }
}

/// Settings of a client (either transport): how large a reply may be and how long connecting
/// may take.
public struct TarsClientOptions: Sendable {
  public var maxFrameLength: Int
  public var connectTimeoutMs: Int

  public init(maxFrameLength: Int = TarsFrame.defaultMaxLength, connectTimeoutMs: Int = 3000) {
    self.maxFrameLength = maxFrameLength
    self.connectTimeoutMs = connectTimeoutMs
  }
}

/// Per-call settings.
public struct TarsCallOptions: Sendable {
  /// Milliseconds to wait for the reply; also sent as iTimeout.
  public var timeoutMs: Int
  public var context: [String: String]
  public var status: [String: String]

  public init(timeoutMs: Int = 3000, context: [String: String] = [:], status: [String: String] = [:]) {
    self.timeoutMs = timeoutMs
    self.context = context
    self.status = status
  }
}

extension TarsMethod {
  /// The request for a call of this method; the transport fills in iRequestId.
  public static func request(
    servant: String, _ args: Args, oneway: Bool = false, options: TarsCallOptions = TarsCallOptions()
  ) -> RequestPacket {
    RequestPacket(
      iVersion: TarsVersion.tars, cPacketType: oneway ? TarsPacketType.oneway : TarsPacketType.normal,
      iMessageType: 0, iRequestId: 0, sServantName: servant, sFuncName: name, sBuffer: args.tarsBytes(),
      iTimeout: Int32(clamping: options.timeoutMs), context: options.context, status: options.status)
  }

  /// The call's result, or the server's error code as a `TarsCallError`.
  public static func result(from response: ResponsePacket) throws(TarsCallError) -> Result {
    try response.checkSuccess()
    do {
      return try Result(tarsBytes: response.sBuffer)
    } catch {
      throw TarsCallError(code: TarsReturnCode.clientDecodeError, "cannot decode the reply of \(name): \(error)")
    }
  }
}

extension ResponsePacket {
  /// Throws the server's error if the reply carries one.
  public func checkSuccess() throws(TarsCallError) {
    guard iRet == TarsReturnCode.success else {
      let desc = sResultDesc.isEmpty ? TarsReturnCode.name(iRet) : sResultDesc
      throw TarsCallError(code: iRet, "server replied \(iRet): \(desc)")
    }
  }
}
