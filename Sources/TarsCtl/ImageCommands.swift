import ArgumentParser
import Foundation
import TarsImage

/// `tarsctl image`: build, inspect (and push) OCI images of Tars servers without a daemon.
struct ImageCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "image",
    abstract: "Build and inspect server images (OCI) without a Docker daemon.",
    subcommands: [ImageBuildCommand.self, ImageInspectCommand.self])
}

struct ImageBuildCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "build",
    abstract: "Build an image from a server package: unpacked at /usr/local/server/bin on a base.",
    discussion: """
      The package is what Tars servers ship: tar czf HelloServer.tgz HelloServer/. The same
      package, base and flags give the same digest on any machine.
      Example: tarsctl image build HelloServer.tgz --server Test.HelloServer --type cpp \\
                 --base oci:bases/cpp:1 --tarsnode .build-static/tarsnode -t oci:out:hello-1
      """)

  @Argument(help: "The server package (.tgz); leave out to build the base with only the other changes.")
  var package: String?

  @Option(name: .long, help: "scratch, or an OCI image layout: oci:DIR[:TAG].")
  var base = "scratch"

  @Option(name: [.customShort("t"), .customLong("tag")], help: "Where the image goes: oci:DIR:TAG.")
  var tag: String

  @Option(name: .long, help: "App.Server, recorded as labels.")
  var server: String?

  @Option(name: .customLong("type"), help: "cpp, go, java-jar, java-war, nodejs or not-tars (the ServerType env).")
  var serverType: String?

  @Option(name: .long, help: "A static tarsnode to add at /usr/local/bin/tarsnode (and run as the entrypoint).")
  var tarsnode: String?

  @Option(name: .long, help: "IMAGE-PATH=FILE: one more file (repeatable).")
  var add: [String] = []

  @Option(name: .long, help: "NAME=VALUE (repeatable).")
  var env: [String] = []

  @Option(name: .long, help: "KEY=VALUE (repeatable).")
  var label: [String] = []

  @Option(name: .long, help: "The user the image runs as (uid[:gid] or name).")
  var user: String?

  @Option(name: .customLong("workdir"), help: "The working directory.")
  var workingDir: String?

  @Option(
    name: .customLong("entrypoint"), parsing: .upToNextOption,
    help: "The entrypoint, its words (default: tarsnode when added, else the base's).")
  var entrypoint: [String] = []

  @Option(name: [.customShort("o"), .customLong("output")], help: "text or json.")
  var output = "text"

  static let types: Set<String> = ["cpp", "go", "java-jar", "java-war", "nodejs", "not-tars"]

  func validate() throws {
    guard output == "text" || output == "json" else { throw ValidationError("-o must be text or json") }
    if let serverType, !Self.types.contains(serverType) {
      throw ValidationError("--type \(serverType): use one of \(Self.types.sorted().joined(separator: ", "))")
    }
    if let server, server.split(separator: ".").count != 2 {
      throw ValidationError("--server \(server): write App.Server")
    }
  }

  func run() throws {
    let (directory, name) = try Self.destination(tag)
    var build = ImageBuild()
    do {
      build.base = try ImageBuild.Base(parsing: base)
      build.package = package
      build.server = server
      build.serverType = serverType
      build.tarsnode = tarsnode
      build.env = env
      build.user = user
      build.workingDir = workingDir
      if !entrypoint.isEmpty { build.entrypoint = entrypoint }
      for pair in label {
        guard let eq = pair.firstIndex(of: "=") else { throw ImageError("--label \(pair): write KEY=VALUE") }
        build.labels[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
      }
      for pair in add {
        guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
          throw ImageError("--add \(pair): write IMAGE-PATH=FILE")
        }
        let path = pair[..<eq].split(separator: "/").joined(separator: "/")
        build.files.append(.init(path: path, source: .path(String(pair[pair.index(after: eq)...]))))
      }
      let layout = try ImageLayout(path: directory)
      let result = try build.build(into: layout, tag: name)
      if output == "json" {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let summary = BuildSummary(
          image: "oci:\(directory):\(name)", digest: result.manifest.digest, config: result.config.description,
          layers: result.layers.map(\.digest), package: result.package?.digest.description)
        print(String(decoding: try encoder.encode(summary), as: UTF8.self))
      } else {
        if let p = result.package { print("package  \(p.digest)  \(p.files) files, \(p.bytes) bytes") }
        for l in result.layers { print("layer    \(l.digest)  \(l.size) bytes") }
        print("config   \(result.config)")
        print("image    oci:\(directory):\(name)  \(result.manifest.digest)")
      }
    } catch let error as ImageError {
      throw fail(error.message)
    }
  }

  /// `oci:DIR:TAG`.
  static func destination(_ text: String) throws -> (String, String) {
    guard text.hasPrefix("oci:"), let colon = text.lastIndex(of: ":"), colon > text.index(text.startIndex, offsetBy: 4)
    else { throw fail("-t \(text): write oci:DIR:TAG (an OCI image layout directory and a tag)") }
    return (String(text[text.index(text.startIndex, offsetBy: 4)..<colon]), String(text[text.index(after: colon)...]))
  }

  struct BuildSummary: Encodable {
    var image: String
    var digest: String
    var config: String
    var layers: [String]
    var package: String?
  }
}

struct ImageInspectCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inspect", abstract: "Print an image's manifest and config: oci:DIR[:TAG].")

  @Argument(help: "oci:DIR[:TAG]") var image: String

  func run() throws {
    do {
      guard case .layout(let path, let tag) = try ImageBuild.Base(parsing: image) else {
        throw ImageError("\(image): write oci:DIR[:TAG]")
      }
      let layout = try ImageLayout(path: path, create: false)
      let (descriptor, manifest) = try layout.manifest(tag: tag)
      let config = try layout.blobs.read(try manifest.config.parsedDigest)
      print("digest  \(descriptor.digest)")
      for l in manifest.layers { print("layer   \(l.digest)  \(l.size) bytes  \(l.mediaType)") }
      print(String(decoding: config, as: UTF8.self))
    } catch let error as ImageError {
      throw fail(error.message)
    }
  }
}
