import TarsProtocol

/// What went wrong, in Kubernetes' terms: the embedded store raises exactly the errors the API
/// server would, and the client turns every `Status` body into one of these, so callers handle
/// both the same way.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Reason: String, Sendable {
    case notFound = "NotFound"
    case alreadyExists = "AlreadyExists"
    case conflict = "Conflict"
    /// 410: the version asked for was compacted; relist.
    case expired = "Expired"
    case gone = "Gone"
    case invalid = "Invalid"
    case badRequest = "BadRequest"
    case unauthorized = "Unauthorized"
    case forbidden = "Forbidden"
    case notAcceptable = "NotAcceptable"
    case unsupportedMediaType = "UnsupportedMediaType"
    case methodNotAllowed = "MethodNotAllowed"
    case timeout = "Timeout"
    case tooManyRequests = "TooManyRequests"
    case internalError = "InternalError"
    case serviceUnavailable = "ServiceUnavailable"
    /// The store could not be reached at all (connection refused, TLS, DNS).
    case unreachable = "Unreachable"
    case unknown = ""
  }

  public var code: Int
  public var reason: Reason
  public var message: String
  /// Seconds to wait before retrying (504 and 429 carry it).
  public var retryAfterSeconds: Int?
  /// The continue token a 410 on an expired continue hands out.
  public var continueToken: String?
  /// `details` of the Status (`{name, group?, kind}` for NotFound, Conflict, AlreadyExists).
  public var details: JSONValue?

  public init(
    code: Int, reason: Reason, message: String, retryAfterSeconds: Int? = nil, continueToken: String? = nil
  ) {
    self.code = code
    self.reason = reason
    self.message = message
    self.retryAfterSeconds = retryAfterSeconds
    self.continueToken = continueToken
  }

  public var description: String { "\(code) \(reason.rawValue): \(message)" }

  /// A Status's `details` for one object: `{name, group?, kind}` (`kind` is the plural).
  public static func details(_ r: KubeResource, _ name: String) -> JSONValue {
    var m: [(String, JSONValue)] = [("name", .string(name))]
    if !r.group.isEmpty { m.append(("group", .string(r.group))) }
    m.append(("kind", .string(r.plural)))
    return .object(m)
  }
  public static func notFound(_ r: KubeResource, _ name: String) -> StoreError {
    var e = StoreError(code: 404, reason: .notFound, message: "\(r.description) \"\(name)\" not found")
    e.details = details(r, name)
    return e
  }
  public static func alreadyExists(_ r: KubeResource, _ name: String) -> StoreError {
    var e = StoreError(code: 409, reason: .alreadyExists, message: "\(r.description) \"\(name)\" already exists")
    e.details = details(r, name)
    return e
  }
  public static func conflict(_ r: KubeResource, _ name: String) -> StoreError {
    var e = StoreError(
      code: 409, reason: .conflict,
      message:
        "Operation cannot be fulfilled on \(r.description) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again"
    )
    e.details = details(r, name)
    return e
  }
  public static func expired(_ message: String) -> StoreError {
    StoreError(code: 410, reason: .expired, message: message)
  }
  public static func invalid(_ message: String) -> StoreError {
    StoreError(code: 422, reason: .invalid, message: message)
  }
  public static func badRequest(_ message: String) -> StoreError {
    StoreError(code: 400, reason: .badRequest, message: message)
  }
  public static func unsupportedMediaType(_ message: String) -> StoreError {
    StoreError(code: 415, reason: .unsupportedMediaType, message: message)
  }
  public static func unreachable(_ message: String) -> StoreError {
    StoreError(code: 0, reason: .unreachable, message: message)
  }
  public static func internalError(_ message: String) -> StoreError {
    StoreError(code: 500, reason: .internalError, message: message)
  }

  /// Worth retrying as is (after a pause): the store is away or busy, not the request wrong.
  public var isTransient: Bool {
    [.unreachable, .timeout, .tooManyRequests, .serviceUnavailable, .internalError].contains(reason)
      || code >= 500
  }

  /// From a `Status` body and its HTTP status.
  public init(status json: JSONValue?, httpCode: Int, retryAfter: Int? = nil) {
    let code = json?["code"]?.intValue.map(Int.init) ?? httpCode
    let reasonText = json?["reason"]?.stringValue ?? ""
    var reason = Reason(rawValue: reasonText) ?? .unknown
    if reason == .unknown {
      switch code {
      case 400: reason = .badRequest
      case 401: reason = .unauthorized
      case 403: reason = .forbidden
      case 404: reason = .notFound
      case 409: reason = .conflict
      case 410: reason = .gone
      case 415: reason = .unsupportedMediaType
      case 422: reason = .invalid
      case 429: reason = .tooManyRequests
      case 503: reason = .serviceUnavailable
      case 504: reason = .timeout
      default: reason = code >= 500 ? .internalError : .unknown
      }
    }
    let message = json?["message"]?.stringValue ?? "HTTP \(httpCode)"
    let retry = json?[path: ["details", "retryAfterSeconds"]]?.intValue.map(Int.init) ?? retryAfter
    self.init(
      code: code, reason: reason, message: message, retryAfterSeconds: retry,
      continueToken: json?[path: ["metadata", "continue"]]?.stringValue)
    details = json?["details"]
  }

  /// The `Status` object the API server would send.
  public var status: JSONValue {
    var m: [(String, JSONValue)] = [
      ("kind", .string("Status")), ("apiVersion", .string("v1")),
      ("metadata", continueToken.map { .object([("continue", .string($0))]) } ?? .object([])),
      ("status", .string("Failure")), ("message", .string(message)), ("reason", .string(reason.rawValue)),
    ]
    if let details {
      m.append(("details", details))
    } else if let retryAfterSeconds {
      m.append(("details", .object([("retryAfterSeconds", .integer(Int64(retryAfterSeconds)))])))
    }
    m.append(("code", .integer(Int64(code))))
    return .object(m)
  }
}
