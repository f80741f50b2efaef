import ArgumentParser
import Foundation
import Synchronization
import TarsImage

/// `tarsctl image`: build, inspect (and push) OCI images of Tars servers without a daemon.
struct ImageCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "image",
    abstract: "Build and inspect server images (OCI) without a Docker daemon.",
    subcommands: [ImageBuildCommand.self, ImagePushCommand.self, ImageInspectCommand.self])
}

struct ImageBuildCommand: AsyncParsableCommand {
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

  @Option(
    name: .long,
    help: "scratch (the default), an OCI image layout (oci:DIR[:TAG]), or an image in a registry (REGISTRY/REPO:TAG).")
  var base: String?

  @Option(name: .long, help: "A recipe (docker/*/recipe.yaml) to build; the other flags add to it or override it.")
  var recipe: String?

  @Option(name: .long, help: "Where the recipe's relative paths start (default: the current directory).")
  var context = "."

  @Option(name: .long, help: "A tarball (plain or gzip'd) to add as a layer as it is, before the package (repeatable).")
  var layer: [String] = []

  @OptionGroup var registry: RegistryOptions

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

  func run() async throws {
    let (directory, name) = try Self.destination(tag)
    var build = ImageBuild()
    do {
      var base = self.base ?? "scratch"
      if let recipe {
        guard let text = try? String(contentsOfFile: recipe, encoding: .utf8) else {
          throw ImageError("cannot read --recipe \(recipe)")
        }
        let r = try Recipe(yaml: text, source: recipe)
        build = r.build(context: context)
        base = self.base ?? r.base
      }
      build.tarballs += layer
      // A registry base is pulled into the destination layout (its blobs stay for the next build).
      build.base = try await ImageBuild.Base.resolve(base, cache: directory) { ref throws(ImageError) in
        try registry.client(for: ref)
      }
      build.package = package
      build.server = server
      build.serverType = serverType
      build.tarsnode = tarsnode
      build.env += env
      build.user = user ?? build.user
      build.workingDir = workingDir ?? build.workingDir
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

/// How to reach a registry and prove who we are.
struct RegistryOptions: ParsableArguments {
  @Option(name: .long, help: "The registry user.") var username: String?
  @Option(name: .customLong("password-file"), help: "A file holding the registry password.") var passwordFile: String?
  @Option(
    name: .customLong("docker-config"),
    help: "A docker config (or a dockerconfigjson Secret's content) with credentials (default ~/.docker/config.json).")
  var dockerConfig: String?
  @Flag(name: .customLong("plain-http"), help: "Talk HTTP, not HTTPS (a registry on loopback or a cluster network).")
  var plainHTTP = false
  @Option(name: .customLong("ca-file"), help: "The CA (PEM) that signed the registry's certificate.") var caFile:
    String?

  func client(for ref: ImageReference) throws(ImageError) -> RegistryClient {
    var o = RegistryClient.Options()
    o.plainHTTP = plainHTTP
    o.caFile = caFile
    if let username {
      guard let passwordFile else { throw ImageError("--username needs --password-file") }
      guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
        throw ImageError("cannot read --password-file \(passwordFile)")
      }
      o.credentials = RegistryCredentials(
        username: username, password: text.trimmingCharacters(in: .whitespacesAndNewlines))
    } else {
      let path =
        dockerConfig ?? (ProcessInfo.processInfo.environment["HOME"].map { $0 + "/.docker/config.json" } ?? "")
      if dockerConfig != nil || FileManager.default.fileExists(atPath: path) {
        o.credentials = try RegistryCredentials.fromDockerConfig(path, registry: ref.registry)
      }
    }
    return try RegistryClient(options: o)
  }
}

struct ImagePushCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "push",
    abstract: "Push an image from an OCI layout to a registry: only the blobs it lacks, then the manifest.",
    discussion: """
      Example: tarsctl image push oci:out:hello-1 registry.example.com:5000/test/hello:1 \
                 --username ci --password-file ~/.registry-password
      """)

  @Argument(help: "oci:DIR:TAG") var image: String
  @Argument(help: "REGISTRY/REPOSITORY:TAG") var destination: String
  @OptionGroup var registry: RegistryOptions
  @Option(name: .customLong("mount-from"), help: "A repository of the same registry that may hold the base's layers.")
  var mountFrom: String?
  @Option(name: [.customShort("o"), .customLong("output")], help: "text or json.") var output = "text"

  func run() async throws {
    let (directory, tag) = try ImageBuildCommand.destination(image)
    let json = output == "json"
    do {
      let ref = try ImageReference(parsing: destination)
      let layout = try ImageLayout(path: directory, create: false)
      let client = try registry.client(for: ref)
      let digest: Digest
      do {
        let bars = Mutex<[String: Progress]>([:])
        digest = try await client.push(layout, tag: tag, to: ref, mountFrom: mountFrom) { event in
          guard !json else { return }
          switch event {
          case .exists(let d, let size): print("exists    \(d)  \(size) bytes")
          case .mounted(let d, let size): print("mounted   \(d)  \(size) bytes")
          case .uploading(let d, let sent, let total):
            bars.withLock { b in
              let bar = b[d.description] ?? Progress("pushing   \(d)", total: total)
              b[d.description] = bar
              return bar
            }.update(sent)
          case .uploaded(let d, let size):
            if let bar = bars.withLock({ $0.removeValue(forKey: d.description) }) {
              bar.finish(size)
            } else {
              print("pushed    \(d)  \(size) bytes")
            }
          case .manifest(let d): print("manifest  \(d)")
          }
        }
        await client.shutdown()
      } catch {
        await client.shutdown()
        throw error
      }
      if json {
        print(
          #"{"image": "\#(ref)", "digest": "\#(digest)", "pinned": "\#(ref.registry)/\#(ref.repository)@\#(digest)"}"#)
      } else {
        print("image     \(ref.registry)/\(ref.repository)@\(digest)")
      }
    } catch let error as ImageError {
      throw fail(error.message)
    }
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
