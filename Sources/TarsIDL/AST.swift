/// The parsed form of a `.tars` IDL file: only what the Tars wire format depends on (tags,
/// types, require/optional, defaults, parameter order) plus names.
public indirect enum IDLType: Equatable, Sendable, CustomStringConvertible {
  case bool, byte, short, int, long, float, double, string
  case unsignedByte, unsignedShort, unsignedInt
  case vector(IDLType)
  case map(IDLType, IDLType)
  /// A struct or enum, possibly qualified as `Module::Name`.
  case named(String)

  public var description: String {
    switch self {
    case .bool: "bool"
    case .byte: "byte"
    case .short: "short"
    case .int: "int"
    case .long: "long"
    case .float: "float"
    case .double: "double"
    case .string: "string"
    case .unsignedByte: "unsigned byte"
    case .unsignedShort: "unsigned short"
    case .unsignedInt: "unsigned int"
    case .vector(let t): "vector<\(t)>"
    case .map(let k, let v): "map<\(k), \(v)>"
    case .named(let n): n
    }
  }
}

/// A literal default value as written in the IDL.
public enum IDLLiteral: Equatable, Sendable {
  case integer(Int64)
  case floating(Double)
  case string(String)
  case bool(Bool)
  /// An enum member or constant name.
  case identifier(String)
}

public struct IDLField: Equatable, Sendable {
  public var tag: Int
  public var isRequired: Bool
  public var type: IDLType
  public var name: String
  public var defaultValue: IDLLiteral?
  public var doc: String?
}

public struct IDLStruct: Equatable, Sendable {
  public var name: String
  public var fields: [IDLField]
  /// Fields named in `key[Struct, a, b]`: the order used when the struct is a map key.
  public var keyFields: [String]?
  public var doc: String?
}

public struct IDLEnum: Equatable, Sendable {
  public var name: String
  public var members: [(name: String, value: Int32)]
  public var doc: String?

  public static func == (a: IDLEnum, b: IDLEnum) -> Bool {
    a.name == b.name && a.doc == b.doc && a.members.map(\.name) == b.members.map(\.name)
      && a.members.map(\.value) == b.members.map(\.value)
  }
}

public struct IDLConst: Equatable, Sendable {
  public var type: IDLType
  public var name: String
  public var value: IDLLiteral
  public var doc: String?
}

public struct IDLParameter: Equatable, Sendable {
  public var name: String
  public var type: IDLType
  public var isOut: Bool
  /// The parameter's tag in sBuffer: its 1-based position, in and out params alike.
  public var tag: Int
}

public struct IDLOperation: Equatable, Sendable {
  public var name: String
  /// nil for `void`.
  public var returnType: IDLType?
  public var parameters: [IDLParameter]
  public var doc: String?
}

public struct IDLInterface: Equatable, Sendable {
  public var name: String
  public var operations: [IDLOperation]
  public var doc: String?
}

public enum IDLDefinition: Equatable, Sendable {
  case structure(IDLStruct)
  case enumeration(IDLEnum)
  case constant(IDLConst)
  case interface(IDLInterface)
}

public struct IDLModule: Equatable, Sendable {
  public var name: String
  public var definitions: [IDLDefinition]
}

public struct IDLFile: Equatable, Sendable {
  public var path: String
  public var includes: [String]
  public var modules: [IDLModule]
}
