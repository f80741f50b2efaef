import TarsProtocol

/// Signs and checks the NodeObj calls that change state or run a command. The signature is an
/// HMAC-SHA256, under a secret shared by the control plane and every tarsnode (a Kubernetes
/// Secret mounted as a file), over the servant, the function, a Unix timestamp and the encoded
/// arguments; it travels in the request context, so the wire format stays plain Tars.
public struct NodeCallAuth: Sendable {
  /// Context key of the signature: `v1:<unix seconds>:<hex HMAC>`.
  public static let contextKey = "tars-node-auth"
  /// How far a signature's timestamp may be from the checker's clock.
  public static let maxSkewSeconds: Int64 = 60

  let secret: [UInt8]

  /// A secret must be at least 16 bytes: anything shorter is guessable.
  public init(secret: [UInt8]) throws(NodeAuthError) {
    guard secret.count >= 16 else { throw NodeAuthError("the secret must be at least 16 bytes, found \(secret.count)") }
    self.secret = secret
  }

  /// Reads the secret from a file (trailing whitespace, as editors and `kubectl create secret`
  /// leave it, is not part of the secret).
  public init(secretFile path: String) throws(NodeAuthError) {
    guard let bytes = readWholeFile(path) else { throw NodeAuthError("cannot read the secret file \(path)") }
    var trimmed = bytes[...]
    while let last = trimmed.last, last == 10 || last == 13 || last == 32 || last == 9 { trimmed = trimmed.dropLast() }
    try self.init(secret: Array(trimmed))
  }

  static func message(servant: String, function: String, timestamp: Int64, arguments: [UInt8]) -> [UInt8] {
    Array("tars-node-v1\n\(servant)\n\(function)\n\(timestamp)\n".utf8) + arguments
  }

  /// The context value that authorises `request` at `timestamp`.
  public func signature(for request: RequestPacket, timestamp: Int64) -> String {
    let mac = HMACSHA256.mac(
      key: secret,
      message: Self.message(
        servant: request.sServantName, function: request.sFuncName, timestamp: timestamp, arguments: request.sBuffer))
    return "v1:\(timestamp):\(Hex.encode(mac))"
  }

  /// Adds the signature to the request's context.
  public func sign(_ request: inout RequestPacket, timestamp: Int64) {
    request.context[Self.contextKey] = signature(for: request, timestamp: timestamp)
  }

  /// Checks `request`'s signature at time `now`; the error says why it is refused.
  public func verify(_ request: RequestPacket, now: Int64) throws(NodeAuthError) {
    guard let value = request.context[Self.contextKey] else {
      throw NodeAuthError("unsigned: this call must carry a signature in context '\(Self.contextKey)'")
    }
    let parts = value.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 3, parts[0] == "v1", let timestamp = Int64(parts[1]), let mac = Hex.decode(String(parts[2]))
    else {
      throw NodeAuthError("malformed signature: expected v1:<unix seconds>:<hex>")
    }
    guard abs(now - timestamp) <= Self.maxSkewSeconds else {
      throw NodeAuthError(
        "stale signature: signed at \(timestamp), now \(now), more than \(Self.maxSkewSeconds) s apart (check the clocks)"
      )
    }
    let expected = HMACSHA256.mac(
      key: secret,
      message: Self.message(
        servant: request.sServantName, function: request.sFuncName, timestamp: timestamp, arguments: request.sBuffer))
    guard HMACSHA256.equal(mac, expected) else {
      throw NodeAuthError("bad signature: not signed with this node's secret, or the call was altered")
    }
  }
}

/// Why a call was refused, or a secret could not be used.
public struct NodeAuthError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
