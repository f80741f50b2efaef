/// Why a byte sequence could not be decoded. Every decoder failure is one of these, never a
/// crash: the input usually comes from the network and may be hostile.
public struct TarsDecodeError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    /// A field of the expected IDL type cannot be read from this wire type (e.g. `int` ← INT8).
    case typeMismatch(expected: String, found: TarsWireType)
    /// A `require` field is absent.
    case requiredFieldMissing
    /// A length or fixed-size payload runs past the end of the input.
    case truncated(needed: Int, available: Int)
    /// A list, map, string or byte-list length is negative.
    case negativeSize(Int64)
    /// A declared element count cannot fit in the bytes that remain.
    case sizeExceedsInput(Int64)
    /// The head names type 14 or 15, which no Tars writer produces.
    case invalidWireType(UInt8)
    /// A SIMPLE_LIST whose element head is not `INT1 @0`.
    case badSimpleListHead(UInt8)
    /// Structs, lists and maps are nested deeper than the decoder allows.
    case nestingTooDeep(limit: Int)
    /// A value is outside what its type allows (e.g. an unsigned field that is negative).
    case invalidValue(String)
  }

  public var kind: Kind
  /// The tag being read when decoding failed, when one is known.
  public var tag: UInt8?
  /// The byte offset in the input where decoding failed.
  public var offset: Int

  public init(_ kind: Kind, tag: UInt8? = nil, offset: Int) {
    self.kind = kind
    self.tag = tag
    self.offset = offset
  }

  public var description: String {
    let what: String
    switch kind {
    case .typeMismatch(let expected, let found): what = "type mismatch: \(expected) <- \(found)"
    case .requiredFieldMissing: what = "require field not exist"
    case .truncated(let needed, let available):
      what = "buffer overflow: need \(needed) bytes, \(available) left"
    case .negativeSize(let n): what = "negative size \(n)"
    case .sizeExceedsInput(let n): what = "size \(n) exceeds the remaining input"
    case .invalidWireType(let t): what = "invalid wire type \(t)"
    case .badSimpleListHead(let b): what = "SIMPLE_LIST element head must be INT1, got type \(b & 0x0F)"
    case .nestingTooDeep(let limit): what = "nesting deeper than \(limit) levels"
    case .invalidValue(let s): what = "invalid value: \(s)"
    }
    var text = what
    if let tag { text += ", tag: \(tag)" }
    return text + " (at byte \(offset))"
  }
}
