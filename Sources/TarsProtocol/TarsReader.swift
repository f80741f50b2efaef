/// Reads Tars-encoded bytes forward-only, the way TarsCpp's `TarsInputStream` does: a field is
/// found by skipping lower tags, an absent field is detected when a higher tag or a STRUCT_END
/// comes first. Every length is checked against the bytes that remain and nesting is bounded,
/// so hostile input ends in a `TarsDecodeError`, never a crash or a huge allocation.
public struct TarsReader: Sendable {
  /// Structs, lists and maps may nest this deep. The framework's own types nest four levels.
  public static let maxDepth = 100

  @usableFromInline let base: [UInt8]
  @usableFromInline let end: Int
  @usableFromInline var pos: Int
  /// The offset of the next unread byte.
  @inlinable public var offset: Int { pos }
  @usableFromInline var depth = 0

  public init(_ bytes: [UInt8]) {
    base = bytes
    pos = 0
    end = bytes.count
  }

  /// Reads `bytes[range]` only.
  public init(_ bytes: [UInt8], range: Range<Int>) {
    precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count)
    base = bytes
    pos = range.lowerBound
    end = range.upperBound
  }

  /// Bytes not yet read.
  @inlinable public var remaining: Int { end - pos }
  @inlinable public var isAtEnd: Bool { pos >= end }

  @inlinable
  func fail(_ kind: TarsDecodeError.Kind, tag: UInt8? = nil) -> TarsDecodeError {
    TarsDecodeError(kind, tag: tag, offset: pos)
  }

  @inlinable @inline(__always)
  mutating func need(_ count: Int) throws(TarsDecodeError) {
    if count > end - pos { throw fail(.truncated(needed: count, available: end - pos)) }
  }

  // MARK: Heads

  /// Decodes the head at the current pos without consuming it.
  @inlinable @inline(__always)
  public func peekHead() throws(TarsDecodeError) -> (type: TarsWireType, tag: UInt8, size: Int) {
    guard pos < end else { throw fail(.truncated(needed: 1, available: 0)) }
    let b = base[pos]
    guard let type = TarsWireType(rawValue: b & 0x0F) else { throw fail(.invalidWireType(b & 0x0F)) }
    let tag = b >> 4
    if tag < 15 { return (type, tag, 1) }
    guard pos + 1 < end else { throw fail(.truncated(needed: 2, available: end - pos)) }
    return (type, base[pos + 1], 2)
  }

  /// Decodes and consumes one head.
  @inlinable
  public mutating func readHead() throws(TarsDecodeError) -> (type: TarsWireType, tag: UInt8) {
    let h = try peekHead()
    pos += h.size
    return (h.type, h.tag)
  }

  /// Moves to field `tag` at the current nesting level. Returns its wire type with the head
  /// consumed, or nil (consuming nothing) if the field is absent: a higher tag, a STRUCT_END or
  /// the end of input comes first. Lower tags are skipped, which is how old readers ignore
  /// fields added by newer writers.
  @inlinable
  public mutating func seek(tag: UInt8) throws(TarsDecodeError) -> TarsWireType? {
    while pos < end {
      let h = try peekHead()
      if h.type == .structEnd || h.tag > tag { return nil }
      pos += h.size
      if h.tag == tag { return h.type }
      try skipPayload(h.type)
    }
    return nil
  }

  // MARK: Field-level reads, used by generated code

  /// Reads a `require` field.
  @inlinable
  public mutating func read<T: TarsCodable>(_: T.Type = T.self, tag: UInt8) throws(TarsDecodeError) -> T {
    guard let type = try seek(tag: tag) else { throw fail(.requiredFieldMissing, tag: tag) }
    return try T.tarsRead(from: &self, type: type, tag: tag)
  }

  /// Reads an `optional` field, or returns `defaultValue` when it is absent.
  @inlinable
  public mutating func read<T: TarsCodable>(tag: UInt8, default defaultValue: T) throws(TarsDecodeError) -> T {
    guard let type = try seek(tag: tag) else { return defaultValue }
    return try T.tarsRead(from: &self, type: type, tag: tag)
  }

  // MARK: Payload reads, after the head

  /// Reads an integer payload, accepting wire types up to `maxWidth` bytes (1, 2, 4 or 8).
  @inlinable
  public mutating func readInteger(
    type: TarsWireType, maxWidth: Int, expected: @autoclosure () -> String, tag: UInt8
  ) throws(TarsDecodeError) -> Int64 {
    switch type {
    case .zero:
      return 0
    case .int1 where maxWidth >= 1:
      try need(1)
      defer { pos += 1 }
      return Int64(Int8(bitPattern: base[pos]))
    case .int2 where maxWidth >= 2:
      return Int64(Int16(bitPattern: UInt16(try readBigEndian(2))))
    case .int4 where maxWidth >= 4:
      return Int64(Int32(bitPattern: UInt32(try readBigEndian(4))))
    case .int8 where maxWidth >= 8:
      return Int64(bitPattern: try readBigEndian(8))
    default:
      throw fail(.typeMismatch(expected: expected(), found: type), tag: tag)
    }
  }

  @inlinable @inline(__always)
  mutating func readBigEndian(_ count: Int) throws(TarsDecodeError) -> UInt64 {
    try need(count)
    var v: UInt64 = 0
    for i in pos..<pos + count { v = v << 8 | UInt64(base[i]) }
    pos += count
    return v
  }

  /// Reads a FLOAT or DOUBLE payload (ZERO_TAG is 0.0); `allowDouble` is false for `float`.
  @inlinable
  public mutating func readFloatingPoint(
    type: TarsWireType, allowDouble: Bool, expected: @autoclosure () -> String, tag: UInt8
  ) throws(TarsDecodeError) -> Double {
    switch type {
    case .zero: return 0
    case .float: return Double(Float(bitPattern: UInt32(try readBigEndian(4))))
    case .double where allowDouble: return Double(bitPattern: try readBigEndian(8))
    default: throw fail(.typeMismatch(expected: expected(), found: type), tag: tag)
    }
  }

  /// Reads a length (list/map size, byte-list length): an int @0 that must be non-negative
  /// and, times `minBytesPerUnit`, fit in what remains.
  @inlinable
  public mutating func readSize(minBytesPerUnit: Int) throws(TarsDecodeError) -> Int {
    let h = try readHead()
    guard h.tag == 0, h.type != .structEnd else { throw fail(.requiredFieldMissing, tag: 0) }
    let n = try readInteger(type: h.type, maxWidth: 4, expected: "size", tag: 0)
    if n < 0 { throw fail(.negativeSize(n)) }
    if n * Int64(minBytesPerUnit) > Int64(end - pos) { throw fail(.sizeExceedsInput(n)) }
    return Int(n)
  }

  /// Reads a STRING1/STRING4 payload as raw bytes.
  @inlinable
  public mutating func readStringBytes(type: TarsWireType, tag: UInt8) throws(TarsDecodeError) -> Range<Int> {
    let count: Int
    switch type {
    case .string1: count = Int(try readBigEndian(1))
    case .string4: count = Int(try readBigEndian(4))
    default: throw fail(.typeMismatch(expected: "string", found: type), tag: tag)
    }
    try need(count)
    defer { pos += count }
    return pos..<pos + count
  }

  /// Reads a STRING1/STRING4 payload. Tars does not validate UTF-8; invalid sequences become
  /// U+FFFD rather than failing the whole message.
  @inlinable
  public mutating func readString(type: TarsWireType, tag: UInt8) throws(TarsDecodeError) -> String {
    let range = try readStringBytes(type: type, tag: tag)
    return base.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[range]), as: UTF8.self) }
  }

  /// Reads a SIMPLE_LIST payload (or, as TarsCpp also accepts, a LIST of bytes).
  @inlinable
  public mutating func readBytes(type: TarsWireType, tag: UInt8) throws(TarsDecodeError) -> [UInt8] {
    switch type {
    case .simpleList:
      let range = try readSimpleListRange()
      return Array(base[range])
    case .list:
      try enterNested()
      defer { leaveNested() }
      let n = try readSize(minBytesPerUnit: 1)
      var out = [UInt8]()
      out.reserveCapacity(n)
      for _ in 0..<n {
        let h = try readHead()
        guard h.tag == 0, h.type != .structEnd else { throw fail(.requiredFieldMissing, tag: 0) }
        let v = try readInteger(type: h.type, maxWidth: 1, expected: "byte", tag: 0)
        out.append(UInt8(truncatingIfNeeded: v))
      }
      return out
    default:
      throw fail(.typeMismatch(expected: "vector<byte>", found: type), tag: tag)
    }
  }

  @inlinable
  mutating func readSimpleListRange() throws(TarsDecodeError) -> Range<Int> {
    try need(1)
    let head = base[pos]
    guard head == 0x00 else { throw fail(.badSimpleListHead(head)) }
    pos += 1
    let n = try readSize(minBytesPerUnit: 1)
    defer { pos += n }
    return pos..<pos + n
  }

  // MARK: Nesting and skipping

  @inlinable
  public mutating func enterNested() throws(TarsDecodeError) {
    depth += 1
    if depth > Self.maxDepth { throw fail(.nestingTooDeep(limit: Self.maxDepth)) }
  }

  @inlinable
  public mutating func leaveNested() { depth -= 1 }

  /// Skips one field's payload of wire type `type` (its head already consumed).
  @inlinable
  public mutating func skipPayload(_ type: TarsWireType) throws(TarsDecodeError) {
    switch type {
    case .zero, .structEnd: return
    case .int1: try need(1); pos += 1
    case .int2: try need(2); pos += 2
    case .int4, .float: try need(4); pos += 4
    case .int8, .double: try need(8); pos += 8
    case .string1, .string4: _ = try readStringBytes(type: type, tag: 0)
    case .simpleList: _ = try readSimpleListRange()
    case .list, .map:
      try enterNested()
      defer { leaveNested() }
      let perEntry = type == .map ? 2 : 1
      let n = try readSize(minBytesPerUnit: perEntry)
      for _ in 0..<(n * perEntry) {
        let h = try readHead()
        try skipPayload(h.type)
      }
    case .structBegin:
      try enterNested()
      defer { leaveNested() }
      try skipToStructEnd()
    }
  }

  /// Consumes everything up to and including the STRUCT_END that closes the current struct,
  /// nested structs included. This is what lets an old reader accept a newer struct.
  @inlinable
  public mutating func skipToStructEnd() throws(TarsDecodeError) {
    while true {
      let h = try readHead()
      if h.type == .structEnd { return }
      try skipPayload(h.type)
    }
  }
}
