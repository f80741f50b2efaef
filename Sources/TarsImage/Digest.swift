import Crypto
import TarsProtocol

/// A content digest as OCI writes it, `sha256:<64 hex>`: what names every blob, what a
/// manifest lists, and what a pull checks the bytes against.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
  public let hex: String

  public init(hex: String) { self.hex = hex }

  /// Parses `sha256:<64 lower-case hex>`; anything else (another algorithm, a short or
  /// upper-case digest) is refused, as registries refuse it.
  public init(parsing text: String) throws(ImageError) {
    let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
    guard parts.count == 2, parts[0] == "sha256", parts[1].count == 64,
      parts[1].utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) })
    else { throw ImageError("'\(text)' is not a digest: write sha256: and 64 lower-case hex digits") }
    hex = parts[1]
  }

  public var description: String { "sha256:\(hex)" }
  public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

  public static func of(_ bytes: some Sequence<UInt8>) -> Digest {
    var h = Hasher256()
    h.update(Array(bytes))
    return h.finish()
  }
}

/// SHA-256 over a stream, with the byte count: a layer's digest and size (or its diff_id) are
/// known when its last byte is written, without holding it.
public struct Hasher256 {
  var sha = SHA256()
  public private(set) var count: Int64 = 0

  public init() {}

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    sha.update(bufferPointer: bytes)
    count += Int64(bytes.count)
  }

  public mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }

  public func finish() -> Digest {
    Digest(hex: Hex.encode(Array(sha.finalize())))
  }
}

extension String {
  func leftPadded(_ width: Int, with pad: Character = "0") -> String {
    count >= width ? self : String(repeating: pad, count: width - count) + self
  }
}

/// Why an image could not be built, read or pushed, said so the operator knows what to change.
public struct ImageError: Error, Sendable, CustomStringConvertible, Equatable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
