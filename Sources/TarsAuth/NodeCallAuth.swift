import TarsProtocol

/// Signs and checks the NodeObj calls that change state or run a command. The signature is an
/// HMAC-SHA256, under a secret shared by the control plane and every tarsnode (a Kubernetes
/// Secret mounted as a file), over the target pod's name, the servant, the function, a Unix
/// timestamp, a random nonce and the encoded arguments; it travels in the request context, so
/// the wire format stays plain Tars. Because every pod shares the secret, the pod name binds a
/// call to the one pod it was meant for, and the nonce lets each tarsnode accept it only once.
public struct NodeCallAuth: Sendable {
  /// Context key of the signature: `v2:<unix seconds>:<nonce>:<hex HMAC>`.
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

  static func message(
    target: String, servant: String, function: String, timestamp: Int64, nonce: String, arguments: [UInt8]
  ) -> [UInt8] {
    Array("tars-node-v2\n\(target)\n\(servant)\n\(function)\n\(timestamp)\n\(nonce)\n".utf8) + arguments
  }

  func mac(_ request: RequestPacket, target: String, timestamp: Int64, nonce: String) -> [UInt8] {
    HMACSHA256.mac(
      key: secret,
      message: Self.message(
        target: target, servant: request.sServantName, function: request.sFuncName, timestamp: timestamp,
        nonce: nonce, arguments: request.sBuffer))
  }

  static func isHexDigit(_ c: UInt8) -> Bool {
    (48...57).contains(c) || (97...102).contains(c) || (65...70).contains(c)
  }

  /// A fresh nonce: two calls signed in the same second with the same arguments still differ,
  /// so the replay check never refuses a genuine second call.
  public static func nonce() -> String {
    var g = SystemRandomNumberGenerator()
    return Hex.encode((0..<12).map { _ in UInt8.random(in: 0...255, using: &g) })
  }

  /// The context value that authorises `request` for the pod `target` at `timestamp`.
  public func signature(for request: RequestPacket, target: String, timestamp: Int64, nonce: String = nonce()) -> String
  {
    "v2:\(timestamp):\(nonce):\(Hex.encode(mac(request, target: target, timestamp: timestamp, nonce: nonce)))"
  }

  /// Adds the signature for the pod `target` (its name, as tarsnode knows it: `PodName`) to the
  /// request's context. A call signed for one pod is refused by every other, replicas included.
  public func sign(_ request: inout RequestPacket, target: String, timestamp: Int64) {
    request.context[Self.contextKey] = signature(for: request, target: target, timestamp: timestamp)
  }

  /// A checked signature: when it was made and its MAC, which `ReplayGuard` remembers.
  public struct Verified: Sendable, Equatable {
    public var timestamp: Int64
    public var mac: String
  }

  /// Checks that `request` is signed for the pod `target` at a time near `now`; the error says
  /// why it is refused. Replays within the window are `ReplayGuard`'s to catch.
  public func verify(_ request: RequestPacket, target: String, now: Int64) throws(NodeAuthError) -> Verified {
    guard let value = request.context[Self.contextKey] else {
      throw NodeAuthError("unsigned: this call must carry a signature in context '\(Self.contextKey)'")
    }
    let parts = value.split(separator: ":", omittingEmptySubsequences: false)
    if parts.first == "v1" {
      throw NodeAuthError(
        "v1 signature: it names no target pod, so it is refused; sign with this version's tarsctl or control plane")
    }
    // The nonce is hex (no separator can hide in it); the timestamp is compared without
    // arithmetic on it, so no value a caller sends can overflow.
    guard parts.count == 4, parts[0] == "v2", parts[1].count <= 12, let timestamp = Int64(parts[1]),
      (8...64).contains(parts[2].count), parts[2].utf8.allSatisfy(Self.isHexDigit),
      let mac = Hex.decode(String(parts[3]))
    else {
      throw NodeAuthError("malformed signature: expected v2:<unix seconds>:<hex nonce>:<hex>")
    }
    guard timestamp >= now - Self.maxSkewSeconds && timestamp <= now + Self.maxSkewSeconds else {
      throw NodeAuthError(
        "stale signature: signed at \(timestamp), now \(now), more than \(Self.maxSkewSeconds) s apart (check the clocks)"
      )
    }
    guard HMACSHA256.equal(mac, self.mac(request, target: target, timestamp: timestamp, nonce: String(parts[2]))) else {
      throw NodeAuthError(
        "bad signature: not signed for this pod (\(target)) with this node's secret, or the call was altered")
    }
    return Verified(timestamp: timestamp, mac: Hex.encode(mac))  // canonical: no replay in other letter case
  }
}

/// The signatures a tarsnode has accepted within their window, so a captured signed call
/// cannot be sent again: each signature is good once. Entries leave when their timestamp falls
/// out of the window, after which `verify` refuses the call as stale anyway.
public struct ReplayGuard: Sendable {
  /// More accepted calls than this inside one window are refused: only holders of the secret
  /// can add entries, so this bounds memory, not an attacker.
  public static let capacity = 10_000
  var seen: [String: Int64] = [:]

  public init() {}

  /// Accepts a verified signature once; a second use is refused with the reason.
  public mutating func admit(_ v: NodeCallAuth.Verified, now: Int64) throws(NodeAuthError) {
    if seen.count >= Self.capacity / 2 {
      seen = seen.filter { $0.value >= now - NodeCallAuth.maxSkewSeconds }
    }
    guard seen[v.mac] == nil else {
      throw NodeAuthError(
        "replayed signature: this signed call was already used at \(v.timestamp); every signed call is good once")
    }
    guard seen.count < Self.capacity else {
      throw NodeAuthError("too many signed calls within \(NodeCallAuth.maxSkewSeconds) s: try again shortly")
    }
    seen[v.mac] = v.timestamp
  }
}

/// Why a call was refused, or a secret could not be used.
public struct NodeAuthError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
