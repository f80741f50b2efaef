/// A value with a Tars encoding. The IDL types map as: bool → Bool, byte → Int8,
/// short → Int16, int → Int32, long → Int64, unsigned byte/short/int → UInt8/UInt16/UInt32,
/// float → Float, double → Double, string → String, vector<byte> → [UInt8], vector<T> → [T],
/// map<K,V> → [K: V], struct → a `TarsStruct`, enum → a `TarsEnum`.
public protocol TarsCodable: Equatable, Sendable {
  /// Writes the value as field `tag`: head and payload.
  func tarsWrite(to writer: inout TarsWriter, tag: UInt8)
  /// Reads a value whose head, of wire type `type`, has just been consumed.
  static func tarsRead(from reader: inout TarsReader, type: TarsWireType, tag: UInt8) throws(TarsDecodeError) -> Self
  /// Whether a writer that omits defaults may leave out this optional field (tars2go's rule:
  /// scalars equal to the default, empty lists and maps; structs and enums are always written).
  func tarsIsOmittable(default: Self) -> Bool
}

extension TarsCodable {
  @inlinable public func tarsIsOmittable(default defaultValue: Self) -> Bool { self == defaultValue }
}

/// A type usable as a map key: it knows the order TarsCpp's `std::map` would write keys in.
public protocol TarsMapKey: TarsCodable, Hashable {
  static func tarsPrecedes(_ a: Self, _ b: Self) -> Bool
}

extension TarsMapKey where Self: Comparable {
  @inlinable public static func tarsPrecedes(_ a: Self, _ b: Self) -> Bool { a < b }
}

// MARK: Integers

extension Int64: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> Int64
  {
    try r.readInteger(type: type, maxWidth: 8, expected: "long", tag: tag)
  }
}

extension Int32: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> Int32
  {
    Int32(truncatingIfNeeded: try r.readInteger(type: type, maxWidth: 4, expected: "int", tag: tag))
  }
}

extension Int16: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> Int16
  {
    Int16(truncatingIfNeeded: try r.readInteger(type: type, maxWidth: 2, expected: "short", tag: tag))
  }
}

extension Int8: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> Int8
  {
    Int8(truncatingIfNeeded: try r.readInteger(type: type, maxWidth: 1, expected: "byte", tag: tag))
  }
}

/// `unsigned byte` travels as a short; TarsCpp reads it as a short and truncates.
extension UInt8: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> UInt8
  {
    UInt8(truncatingIfNeeded: try r.readInteger(type: type, maxWidth: 2, expected: "unsigned byte", tag: tag))
  }
}

/// `unsigned short` travels as an int.
extension UInt16: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> UInt16
  {
    UInt16(truncatingIfNeeded: try r.readInteger(type: type, maxWidth: 4, expected: "unsigned short", tag: tag))
  }
}

/// `unsigned int` travels as a long.
extension UInt32: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> UInt32
  {
    UInt32(truncatingIfNeeded: try r.readInteger(type: type, maxWidth: 8, expected: "unsigned int", tag: tag))
  }
}

extension Bool: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> Bool
  {
    try r.readInteger(type: type, maxWidth: 1, expected: "bool", tag: tag) != 0
  }
  @inlinable public static func tarsPrecedes(_ a: Bool, _ b: Bool) -> Bool { !a && b }
}

// MARK: Floating point

extension Float: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> Float
  {
    Float(try r.readFloatingPoint(type: type, allowDouble: false, expected: "float", tag: tag))
  }
}

extension Double: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> Double
  {
    try r.readFloatingPoint(type: type, allowDouble: true, expected: "double", tag: tag)
  }
}

// MARK: Strings

extension String: TarsMapKey {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(self, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> String
  {
    try r.readString(type: type, tag: tag)
  }
  /// `std::map<std::string, …>` orders keys by bytes, not by Unicode collation.
  @inlinable public static func tarsPrecedes(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
  }
}

// MARK: Collections

/// `[UInt8]` (and `[Int8]`) is `vector<byte>`, a SIMPLE_LIST; every other array is a LIST.
extension Array: TarsCodable where Element: TarsCodable {
  @inlinable
  public func tarsWrite(to w: inout TarsWriter, tag: UInt8) {
    if Element.self == UInt8.self {
      w.write(bytes: unsafeBitCast(self, to: [UInt8].self), tag: tag)
    } else if Element.self == Int8.self {
      w.write(bytes: map { UInt8(bitPattern: unsafeBitCast($0, to: Int8.self)) }, tag: tag)
    } else {
      w.write(list: self, tag: tag)
    }
  }

  @inlinable
  public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8) throws(TarsDecodeError)
    -> [Element]
  {
    if Element.self == UInt8.self {
      return unsafeBitCast(try r.readBytes(type: type, tag: tag), to: [Element].self)
    }
    if Element.self == Int8.self {
      return try r.readBytes(type: type, tag: tag).map { unsafeBitCast(Int8(bitPattern: $0), to: Element.self) }
    }
    guard type == .list else {
      throw TarsDecodeError(.typeMismatch(expected: "vector", found: type), tag: tag, offset: r.offset)
    }
    try r.enterNested()
    defer { r.leaveNested() }
    let n = try r.readSize(minBytesPerUnit: 1)
    var out = [Element]()
    // n is bounded by the bytes left, not by element size: reserve a little, let it grow.
    out.reserveCapacity(Swift.min(n, 1024))
    for _ in 0..<n { out.append(try r.read(Element.self, tag: 0)) }
    return out
  }

  @inlinable public func tarsIsOmittable(default: [Element]) -> Bool { isEmpty }
}

extension Dictionary: TarsCodable where Key: TarsMapKey, Value: TarsCodable {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(map: self, tag: tag) }

  @inlinable
  public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8) throws(TarsDecodeError) -> [Key:
    Value]
  {
    guard type == .map else {
      throw TarsDecodeError(.typeMismatch(expected: "map", found: type), tag: tag, offset: r.offset)
    }
    try r.enterNested()
    defer { r.leaveNested() }
    let n = try r.readSize(minBytesPerUnit: 2)
    var out = [Key: Value](minimumCapacity: Swift.min(n, 1024))
    for _ in 0..<n {
      let k = try r.read(Key.self, tag: 0)
      out[k] = try r.read(Value.self, tag: 1)
    }
    return out
  }

  @inlinable public func tarsIsOmittable(default: [Key: Value]) -> Bool { isEmpty }
}

// MARK: Structs and enums

/// A Tars struct. Generated types implement the two field methods; the wrapper (STRUCT_BEGIN,
/// fields, STRUCT_END, skipping unknown trailing fields) is shared here.
public protocol TarsStruct: TarsCodable {
  /// The value with every field at its IDL default; an absent optional field keeps it.
  init()
  /// Writes the fields in ascending tag order, without the STRUCT_BEGIN/END wrapper.
  func tarsWriteFields(to writer: inout TarsWriter)
  /// Reads the fields at the current level, leaving the reader before the closing STRUCT_END.
  mutating func tarsReadFields(from reader: inout TarsReader) throws(TarsDecodeError)
}

extension TarsStruct {
  @inlinable
  public func tarsWrite(to w: inout TarsWriter, tag: UInt8) {
    w.writeHead(.structBegin, tag: tag)
    tarsWriteFields(to: &w)
    w.writeHead(.structEnd, tag: 0)
  }

  @inlinable
  public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8) throws(TarsDecodeError) -> Self
  {
    guard type == .structBegin else {
      throw TarsDecodeError(.typeMismatch(expected: "struct", found: type), tag: tag, offset: r.offset)
    }
    try r.enterNested()
    defer { r.leaveNested() }
    var value = Self()
    try value.tarsReadFields(from: &r)
    try r.skipToStructEnd()
    return value
  }

  @inlinable public func tarsIsOmittable(default: Self) -> Bool { false }

  /// Decodes a top-level struct (TarsCpp `readFrom`: fields only, no wrapper), such as a packet
  /// body. Trailing bytes after the last known field are ignored, as TarsCpp does.
  @inlinable
  public init(tarsBytes bytes: [UInt8]) throws(TarsDecodeError) {
    var r = TarsReader(bytes)
    self.init()
    try tarsReadFields(from: &r)
  }

  /// Encodes a top-level struct (TarsCpp `writeTo`: fields only, no wrapper).
  @inlinable
  public func tarsBytes(omittingDefaults: Bool = false) -> [UInt8] {
    var w = TarsWriter(omitsDefaultOptionals: omittingDefaults)
    tarsWriteFields(to: &w)
    return w.bytes
  }
}

/// A Tars enum: an int on the wire. Generated enums are structs over the raw value, so a value
/// added by a newer peer survives a round trip instead of failing the decode.
public protocol TarsEnum: TarsMapKey, RawRepresentable where RawValue == Int32 {
  init(rawValue: Int32)
}

extension TarsEnum {
  @inlinable public func tarsWrite(to w: inout TarsWriter, tag: UInt8) { w.write(rawValue, tag: tag) }
  @inlinable public static func tarsRead(from r: inout TarsReader, type: TarsWireType, tag: UInt8)
    throws(TarsDecodeError) -> Self
  {
    Self(rawValue: try Int32.tarsRead(from: &r, type: type, tag: tag))
  }
  @inlinable public func tarsIsOmittable(default: Self) -> Bool { false }
  @inlinable public static func tarsPrecedes(_ a: Self, _ b: Self) -> Bool { a.rawValue < b.rawValue }
}
