/// TCP framing: a 4-byte big-endian total length that counts itself, then the packet.
public enum TarsFrame {
  public static let headerSize = 4
  /// TarsCpp rejects anything shorter (TARS_NET_MIN_PACKAGE_SIZE).
  public static let minLength = 5
  /// TarsGo's default maximum; TarsCpp allows 100 MiB.
  public static let defaultMaxLength = 10 * 1024 * 1024

  /// Frames an encoded packet body.
  public static func frame(_ body: [UInt8]) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(body.count + headerSize)
    appendLength(body.count + headerSize, to: &out)
    out.append(contentsOf: body)
    return out
  }

  /// Encodes and frames a packet in one buffer.
  public static func encode<P: TarsStruct>(_ packet: P, omittingDefaults: Bool = false) -> [UInt8] {
    var w = TarsWriter(capacity: 128, omitsDefaultOptionals: omittingDefaults)
    w.bytes.append(contentsOf: [0, 0, 0, 0])
    packet.tarsWriteFields(to: &w)
    let n = UInt32(truncatingIfNeeded: w.bytes.count)
    w.bytes[0] = UInt8(n >> 24)
    w.bytes[1] = UInt8(n >> 16 & 0xFF)
    w.bytes[2] = UInt8(n >> 8 & 0xFF)
    w.bytes[3] = UInt8(n & 0xFF)
    return w.bytes
  }

  static func appendLength(_ n: Int, to out: inout [UInt8]) {
    let v = UInt32(truncatingIfNeeded: n)
    out.append(UInt8(v >> 24))
    out.append(UInt8(v >> 16 & 0xFF))
    out.append(UInt8(v >> 8 & 0xFF))
    out.append(UInt8(v & 0xFF))
  }
}

/// A frame length the peer should never have sent. The connection cannot be resynchronised,
/// so servers and clients close it.
public struct TarsFrameError: Error, Sendable, Equatable, CustomStringConvertible {
  public var length: Int
  public var maxLength: Int

  public init(length: Int, maxLength: Int) {
    self.length = length
    self.maxLength = maxLength
  }

  public var description: String {
    length < TarsFrame.minLength
      ? "frame length \(length) is below the minimum of \(TarsFrame.minLength)"
      : "frame length \(length) exceeds the maximum of \(maxLength)"
  }
}

/// Cuts a byte stream into frames: feed it whatever the socket returned, then take complete
/// packet bodies out until it says it needs more. Handles partial and pipelined frames.
public struct TarsFrameSplitter: Sendable {
  public let maxFrameLength: Int
  var buffer: [UInt8] = []
  var start = 0

  public init(maxFrameLength: Int = TarsFrame.defaultMaxLength) {
    self.maxFrameLength = maxFrameLength
  }

  /// Bytes received but not yet returned as frames.
  public var bufferedCount: Int { buffer.count - start }

  public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
    compact()
    buffer.append(contentsOf: bytes)
  }

  public mutating func append(_ bytes: UnsafeRawBufferPointer) {
    compact()
    buffer.append(contentsOf: bytes)
  }

  mutating func compact() {
    if start == buffer.count {
      buffer.removeAll(keepingCapacity: true)
      start = 0
    } else if start > 4096 && start * 2 > buffer.count {
      buffer.removeSubrange(0..<start)
      start = 0
    }
  }

  /// The next packet body (the frame without its length), nil if more bytes are needed, or an
  /// error for a length that can never be valid — checked as soon as the 4 length bytes are in,
  /// before any of the body is buffered.
  public mutating func next() throws(TarsFrameError) -> [UInt8]? {
    let available = buffer.count - start
    guard available >= TarsFrame.headerSize else { return nil }
    let length =
      Int(buffer[start]) << 24 | Int(buffer[start + 1]) << 16 | Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
    guard length >= TarsFrame.minLength, length <= maxFrameLength else {
      throw TarsFrameError(length: length, maxLength: maxFrameLength)
    }
    guard available >= length else { return nil }
    let body = Array(buffer[(start + TarsFrame.headerSize)..<(start + length)])
    start += length
    return body
  }
}
