/// The 4-bit type code of a Tars field head. The wire type says how many bytes follow the head,
/// which is all a reader needs to skip a field it does not know.
public enum TarsWireType: UInt8, Sendable, CustomStringConvertible {
  case int1 = 0
  case int2 = 1
  case int4 = 2
  case int8 = 3
  case float = 4
  case double = 5
  case string1 = 6
  case string4 = 7
  case map = 8
  case list = 9
  case structBegin = 10
  case structEnd = 11
  case zero = 12
  case simpleList = 13

  /// The names TarsCpp and the shared vectors use, so error messages and `tarsctl decode`
  /// speak the same language as the rest of the Tars world.
  public var description: String {
    switch self {
    case .int1: "INT1"
    case .int2: "INT2"
    case .int4: "INT4"
    case .int8: "INT8"
    case .float: "FLOAT"
    case .double: "DOUBLE"
    case .string1: "STRING1"
    case .string4: "STRING4"
    case .map: "MAP"
    case .list: "LIST"
    case .structBegin: "STRUCT_BEGIN"
    case .structEnd: "STRUCT_END"
    case .zero: "ZERO_TAG"
    case .simpleList: "SIMPLE_LIST"
    }
  }
}
