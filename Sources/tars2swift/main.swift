import ArgumentParser
import Foundation
import TarsIDL

/// Generates Swift from Tars IDL. With `--project` it regenerates this repository's own files
/// (or, with `--check`, fails if they are stale).
struct Tars2Swift: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tars2swift",
    abstract: "Generate Swift types, method descriptors and servant protocols from .tars IDL files.")

  @Option(name: .long, help: "Directory for the generated .swift files.")
  var output: String?

  @Option(name: .customLong("import"), help: "Module the generated code imports (repeatable).")
  var imports: [String] = ["TarsProtocol"]

  @Flag(name: .long, help: "Regenerate this repository's IDL (run from its root).")
  var project = false

  @Flag(name: .long, help: "Only check that the generated files are current; exit 1 if not.")
  var check = false

  @Argument(help: "IDL files to generate.")
  var files: [String] = []

  mutating func run() throws {
    let outputs: [String: String]
    if project {
      outputs = try GenerationPlan.project(root: FileManager.default.currentDirectoryPath).render()
    } else {
      guard let output, !files.isEmpty else {
        throw ValidationError("give --output DIR and at least one .tars file, or --project")
      }
      let plan = GenerationPlan(steps: [.init(idlFiles: files, outputDirectory: output, imports: imports)])
      outputs = try plan.render()
    }
    var stale: [String] = []
    for (path, text) in outputs.sorted(by: { $0.key < $1.key }) {
      let existing = try? String(contentsOfFile: path, encoding: .utf8)
      if existing == text { continue }
      stale.append(path)
      if !check {
        try FileManager.default.createDirectory(
          atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        print("wrote \(path)")
      }
    }
    if check && !stale.isEmpty {
      throw ValidationError(
        "stale generated files (run `swift run tars2swift --project`): \(stale.joined(separator: ", "))")
    }
  }
}

Tars2Swift.main()
