import Synchronization

/// One method of a Tars interface: its wire name and the structs its arguments and result
/// travel in. Generated for every IDL operation; clients call `call(Method.self, args)`.
public protocol TarsMethod {
  associatedtype Args: TarsStruct
  associatedtype Result: TarsStruct
  static var name: String { get }
}

/// Something that serves the functions of one servant (object). Generated servant protocols
/// refine it and implement `tarsDispatch`; implementations only write the methods.
public protocol TarsDispatcher: AnyObject {
  /// Decodes the arguments, runs `function` and encodes its result.
  func tarsDispatch(function: String, arguments: [UInt8], current: TarsCurrent) throws -> TarsDispatchOutcome
}

public enum TarsDispatchOutcome: Sendable {
  /// The encoded result (return value @0 and out-parameters).
  case reply([UInt8])
  /// The method called `current.deferReply()` and answers later.
  case deferred
  case noSuchFunction
  case badArguments(TarsDecodeError)
}

/// An error a servant method throws to choose the reply's iRet (codes below −99, which TarsCpp
/// clients refuse, become −99); any other error becomes −99 (TARSSERVERUNKNOWNERR) with its
/// description as sResultDesc.
public struct TarsServantError: Error, Sendable, CustomStringConvertible {
  public var code: Int32
  public var message: String

  public init(code: Int32 = TarsReturnCode.serverUnknownError, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}

/// Where a request came from.
public struct TarsPeer: Sendable, Hashable, CustomStringConvertible {
  public var host: String
  public var port: Int

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  public var description: String { "\(host):\(port)" }
}

/// The request being served, handed to every servant method.
public final class TarsCurrent: Sendable {
  public let request: RequestPacket
  public let peer: TarsPeer?
  let responder: TarsResponder
  let deferred = Atomic<Bool>(false)

  public init(request: RequestPacket, peer: TarsPeer?, responder: TarsResponder) {
    self.request = request
    self.peer = peer
    self.responder = responder
  }

  public var isOneway: Bool { request.cPacketType == TarsPacketType.oneway }
  public var context: [String: String] { request.context }
  public var isDeferred: Bool { deferred.load(ordering: .acquiring) }

  /// Takes over answering this request: the method's return value is ignored and the caller
  /// must answer through the returned responder exactly once (TarsCpp `setResponse(false)`).
  public func deferReply() -> TarsResponder {
    deferred.store(true, ordering: .releasing)
    return responder
  }
}

/// Sends the single reply to one request, now or later, from any thread. ONEWAY requests are
/// never answered; a second reply is dropped.
public struct TarsResponder: Sendable {
  final class Once: Sendable {
    let done = Atomic<Bool>(false)
  }

  let request: RequestPacket
  let send: @Sendable (ResponsePacket) -> Void
  let once = Once()

  public init(request: RequestPacket, send: @escaping @Sendable (ResponsePacket) -> Void) {
    var header = request
    header.sBuffer = []
    self.request = header
    self.send = send
  }

  public func reply<R: TarsStruct>(_ result: R) { reply(code: TarsReturnCode.success, buffer: result.tarsBytes()) }

  public func fail(code: Int32, message: String) { reply(code: code, buffer: [], message: message) }

  func reply(code: Int32, buffer: [UInt8], message: String = "") {
    if request.cPacketType == TarsPacketType.oneway { return }
    guard !once.done.exchange(true, ordering: .acquiringAndReleasing) else { return }
    send(Self.response(to: request, code: code, buffer: buffer, message: message))
  }

  /// The reply TarsCpp clients accept: the request's version, type 0, its id and message type
  /// echoed.
  public static func response(to request: RequestPacket, code: Int32, buffer: [UInt8], message: String = "")
    -> ResponsePacket
  {
    ResponsePacket(
      iVersion: request.iVersion, cPacketType: 0, iRequestId: request.iRequestId, iMessageType: request.iMessageType,
      iRet: code, sBuffer: buffer, status: [:], sResultDesc: message, context: [:])
  }
}

/// The servants bound to one listener and the rules every Tars server applies, whatever its
/// transport: −4 for an unknown servant, built-in `tars_ping`, −3 for an unknown function, −1
/// when the arguments do not decode, −99 (or the servant's code) when the method throws, and
/// no reply at all to ONEWAY requests.
public struct TarsServantTable {
  public let servants: [String: any TarsDispatcher]

  public init(_ servants: [String: any TarsDispatcher]) { self.servants = servants }

  /// Serves one request. `send` runs at most once, on this thread unless a servant defers.
  public func handle(_ request: RequestPacket, peer: TarsPeer?, send: @escaping @Sendable (ResponsePacket) -> Void) {
    let responder = TarsResponder(request: request, send: send)
    guard request.iVersion == TarsVersion.tars else {
      responder.fail(
        code: TarsReturnCode.serverDecodeError,
        message: "unsupported packet version \(request.iVersion): this server speaks TARS (version 1) only")
      return
    }
    guard let servant = servants[request.sServantName] else {
      responder.fail(code: TarsReturnCode.noSuchServant, message: "no such servant: \(request.sServantName)")
      return
    }
    if request.sFuncName == "tars_ping" {
      responder.reply(code: TarsReturnCode.success, buffer: [])
      return
    }
    let current = TarsCurrent(request: request, peer: peer, responder: responder)
    do {
      switch try servant.tarsDispatch(function: request.sFuncName, arguments: request.sBuffer, current: current) {
      case .reply(let bytes):
        responder.reply(code: TarsReturnCode.success, buffer: bytes)
      case .deferred:
        break
      case .noSuchFunction:
        responder.fail(code: TarsReturnCode.noSuchFunction, message: "no such function: \(request.sFuncName)")
      case .badArguments(let error):
        responder.fail(code: TarsReturnCode.serverDecodeError, message: error.description)
      }
    } catch let error as TarsServantError {
      // TarsCpp clients drop the whole connection on an iRet below −99.
      if error.code < TarsReturnCode.serverUnknownError {
        responder.fail(code: TarsReturnCode.serverUnknownError, message: "\(error.message) (code \(error.code))")
      } else {
        responder.fail(code: error.code, message: error.message)
      }
    } catch {
      responder.fail(code: TarsReturnCode.serverUnknownError, message: String(describing: error))
    }
  }
}
