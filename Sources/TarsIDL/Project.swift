import Foundation

/// Loads IDL files and the files they `#include`, so a type from an included file resolves
/// without being generated again.
public struct IDLLoader {
  public private(set) var files: [String: IDLFile] = [:]

  public init() {}

  /// Parses `path` and, recursively, what it includes (relative to its own directory).
  @discardableResult
  public mutating func load(_ path: String) throws -> IDLFile {
    let url = URL(fileURLWithPath: path).standardizedFileURL
    if let done = files[url.path] { return done }
    let text: String
    do {
      text = try String(contentsOf: url, encoding: .utf8)
    } catch {
      throw IDLError(file: path, line: 0, column: 0, message: "cannot read file: \(error.localizedDescription)")
    }
    let file = try IDLParser.parse(file: url.path, text: text)
    files[url.path] = file
    for include in file.includes {
      try load(url.deletingLastPathComponent().appendingPathComponent(include).path)
    }
    return file
  }
}

/// The project's own generation plan: which `.tars` files become which Swift files. Both
/// `tars2swift --project` and the test that keeps generated code current use it.
public struct GenerationPlan: Sendable {
  public struct Step: Sendable {
    public var idlFiles: [String]
    public var outputDirectory: String
    public var imports: [String]

    public init(idlFiles: [String], outputDirectory: String, imports: [String]) {
      self.idlFiles = idlFiles
      self.outputDirectory = outputDirectory
      self.imports = imports
    }
  }

  public var steps: [Step]

  public init(steps: [Step]) { self.steps = steps }

  /// The plan for this repository, relative to its root.
  public static func project(root: String) -> GenerationPlan {
    let idl = root + "/idl/"
    return GenerationPlan(steps: [
      Step(idlFiles: [idl + "RequestF.tars"], outputDirectory: root + "/Sources/TarsProtocol/Generated", imports: []),
      Step(
        idlFiles: [
          "EndpointF", "QueryF", "NodeF", "AdminF", "NotifyF", "ConfigF", "NodeDescriptor", "Registry", "Node",
        ].map { idl + $0 + ".tars" },
        outputDirectory: root + "/Sources/TarsFramework/Generated", imports: ["TarsProtocol"]),
      Step(
        idlFiles: ["StatF", "PropertyF", "LogF", "LogQueryF"].map { idl + $0 + ".tars" },
        outputDirectory: root + "/Sources/TarsMonitor/Generated", imports: ["TarsProtocol"]),
      Step(
        idlFiles: [idl + "AgentF.tars"], outputDirectory: root + "/Sources/TarsAgentF/Generated",
        imports: ["TarsProtocol"]),
      Step(
        idlFiles: [root + "/Tests/TarsTestSupport/idl/Test.tars"],
        outputDirectory: root + "/Tests/TarsTestSupport/Generated", imports: ["TarsProtocol"]),
      Step(
        idlFiles: [root + "/Examples/Hello/idl/Hello.tars"], outputDirectory: root + "/Examples/Hello/Generated",
        imports: ["TarsProtocol"]),
    ])
  }

  /// Generates every step and returns output path → Swift source.
  public func render() throws -> [String: String] {
    var out: [String: String] = [:]
    for step in steps {
      var loader = IDLLoader()
      var targets: [IDLFile] = []
      for path in step.idlFiles { targets.append(try loader.load(path)) }
      let generator = try SwiftGenerator(files: Array(loader.files.values), options: .init(imports: step.imports))
      for file in targets {
        let base = URL(fileURLWithPath: file.path).deletingPathExtension().lastPathComponent
        out[step.outputDirectory + "/" + base + ".swift"] = try generator.generate(file)
      }
    }
    return out
  }
}
