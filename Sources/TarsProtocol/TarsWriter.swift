/// Builds Tars-encoded bytes the way TarsCpp's `TarsOutputStream` does: fields in the order they
/// are written, every integer narrowed to the smallest wire type that holds it.
public struct TarsWriter: Sendable {
  /// The bytes written so far.
  public var bytes: [UInt8]

  /// When true, optional fields equal to their default (and empty optional lists and maps) are
  /// left out, as tars2go-generated code and TarsCpp 3.x replies do. When false every field is
  /// written, as tars2cpp does by default. Readers accept both.
  public var omitsDefaultOptionals: Bool

  public init(capacity: Int = 64, omitsDefaultOptionals: Bool = false) {
    bytes = []
    bytes.reserveCapacity(capacity)
    self.omitsDefaultOptionals = omitsDefaultOptionals
  }

  /// Writes a field head: one byte for tags below 15, two bytes otherwise.
  @inlinable @inline(__always)
  public mutating func writeHead(_ type: TarsWireType, tag: UInt8) {
    if tag < 15 {
      bytes.append(tag << 4 | type.rawValue)
    } else {
      bytes.append(0xF0 | type.rawValue)
      bytes.append(tag)
    }
  }

  @inlinable @inline(__always)
  mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
    withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
  }

  /// Writes any integer with the narrowing chain long → int → short → byte → ZERO_TAG.
  @inlinable
  public mutating func write(_ value: Int64, tag: UInt8) {
    if value == 0 {
      writeHead(.zero, tag: tag)
    } else if value >= -128 && value <= 127 {
      writeHead(.int1, tag: tag)
      bytes.append(UInt8(truncatingIfNeeded: value))
    } else if value >= -32768 && value <= 32767 {
      writeHead(.int2, tag: tag)
      appendBigEndian(Int16(truncatingIfNeeded: value))
    } else if value >= -2_147_483_648 && value <= 2_147_483_647 {
      writeHead(.int4, tag: tag)
      appendBigEndian(Int32(truncatingIfNeeded: value))
    } else {
      writeHead(.int8, tag: tag)
      appendBigEndian(value)
    }
  }

  @inlinable public mutating func write(_ value: Int32, tag: UInt8) { write(Int64(value), tag: tag) }
  @inlinable public mutating func write(_ value: Int16, tag: UInt8) { write(Int64(value), tag: tag) }
  @inlinable public mutating func write(_ value: Int8, tag: UInt8) { write(Int64(value), tag: tag) }
  /// `bool` travels as a byte: true is INT1 1, false is ZERO_TAG.
  @inlinable public mutating func write(_ value: Bool, tag: UInt8) { write(Int64(value ? 1 : 0), tag: tag) }
  /// Unsigned types are promoted to the next wider signed type, as TarsCpp and TarsGo do.
  @inlinable public mutating func write(_ value: UInt8, tag: UInt8) { write(Int64(value), tag: tag) }
  @inlinable public mutating func write(_ value: UInt16, tag: UInt8) { write(Int64(value), tag: tag) }
  @inlinable public mutating func write(_ value: UInt32, tag: UInt8) { write(Int64(value), tag: tag) }

  /// `float` is always FLOAT, even 0.0.
  @inlinable
  public mutating func write(_ value: Float, tag: UInt8) {
    writeHead(.float, tag: tag)
    appendBigEndian(value.bitPattern)
  }

  @inlinable
  public mutating func write(_ value: Double, tag: UInt8) {
    writeHead(.double, tag: tag)
    appendBigEndian(value.bitPattern)
  }

  /// Strings are their UTF-8 bytes: STRING1 up to 255 bytes, STRING4 above.
  @inlinable
  public mutating func write(_ value: String, tag: UInt8) {
    var value = value
    value.withUTF8 { writeString(bytes: $0, tag: tag) }
  }

  @inlinable
  public mutating func writeString(bytes utf8: UnsafeBufferPointer<UInt8>, tag: UInt8) {
    if utf8.count <= 255 {
      writeHead(.string1, tag: tag)
      bytes.append(UInt8(utf8.count))
    } else {
      writeHead(.string4, tag: tag)
      appendBigEndian(UInt32(truncatingIfNeeded: utf8.count))
    }
    bytes.append(contentsOf: utf8)
  }

  /// `vector<byte>` is a SIMPLE_LIST: head, `00`, the length as an int @0, the raw bytes.
  @inlinable
  public mutating func write(bytes value: [UInt8], tag: UInt8) {
    writeHead(.simpleList, tag: tag)
    writeHead(.int1, tag: 0)
    write(Int64(value.count), tag: 0)
    bytes.append(contentsOf: value)
  }

  /// Writes a list: head, element count @0, each element @0.
  @inlinable
  public mutating func write<T: TarsCodable>(list value: [T], tag: UInt8) {
    writeHead(.list, tag: tag)
    write(Int64(value.count), tag: 0)
    for element in value { element.tarsWrite(to: &self, tag: 0) }
  }

  /// Writes a map with keys in ascending order, as TarsCpp's `std::map` does, so the same
  /// dictionary always yields the same bytes.
  @inlinable
  public mutating func write<K: TarsMapKey, V: TarsCodable>(map value: [K: V], tag: UInt8) {
    writeHead(.map, tag: tag)
    write(Int64(value.count), tag: 0)
    if value.count == 1, let (k, v) = value.first {
      k.tarsWrite(to: &self, tag: 0)
      v.tarsWrite(to: &self, tag: 1)
      return
    }
    for (k, v) in value.sorted(by: { K.tarsPrecedes($0.key, $1.key) }) {
      k.tarsWrite(to: &self, tag: 0)
      v.tarsWrite(to: &self, tag: 1)
    }
  }

  /// Writes any codable value as field `tag`.
  @inlinable
  public mutating func write<T: TarsCodable>(_ value: T, tag: UInt8) {
    value.tarsWrite(to: &self, tag: tag)
  }

  /// Writes an optional field, unless this writer omits defaults and the value is the default.
  @inlinable
  public mutating func write<T: TarsCodable>(optional value: T, default defaultValue: T, tag: UInt8) {
    if omitsDefaultOptionals && value.tarsIsOmittable(default: defaultValue) { return }
    value.tarsWrite(to: &self, tag: tag)
  }
}
