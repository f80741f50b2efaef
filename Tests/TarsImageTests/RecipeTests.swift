import Foundation
import Glibc
import TarsImage
import TarsTestSupport
import Testing

/// docker/: each recipe the builder reads, its Dockerfile twin kept equal to it, and the node
/// image built from its recipe and run by runc the way the controller's init container runs it.
@Suite("docker/ recipes")
struct RecipeTests {
  static let docker = Fixtures.repositoryRoot.appendingPathComponent("docker").path
  static let names = ["node", "cpp", "java", "nodejs", "not-tars", "controlplane", "agent"]

  static func recipe(_ name: String) throws -> Recipe {
    let path = docker + "/\(name)/recipe.yaml"
    return try Recipe(yaml: String(contentsOfFile: path, encoding: .utf8), source: path)
  }

  @Test(arguments: names) func theDockerfileSaysWhatTheRecipeSays(_ name: String) throws {
    let path = Self.docker + "/\(name)/Dockerfile"
    let twin = try Dockerfile.recipe(String(contentsOfFile: path, encoding: .utf8), source: path)
    #expect(twin == (try Self.recipe(name)))
  }

  @Test func everyImageIsARecipeWithADockerfileAndEveryPackageListIsUsed() throws {
    let found = try FileManager.default.contentsOfDirectory(atPath: Self.docker).filter {
      var isDirectory: ObjCBool = false
      return FileManager.default.fileExists(atPath: Self.docker + "/" + $0, isDirectory: &isDirectory)
        && isDirectory.boolValue
    }
    #expect(Set(found) == Set(Self.names))
    for name in Self.names where FileManager.default.fileExists(atPath: Self.docker + "/\(name)/packages") {
      #expect(try Self.recipe(name).tarballs == [".build-images/rootfs/\(name).tar"], "\(name)")
    }
    // The deploy/ manifests run the control plane image's entrypoint with a subcommand.
    #expect(try Self.recipe("controlplane").entrypoint == ["/usr/local/bin/tars-controlplane"])
  }

  @Test func recipesRefuseWhatTheyDoNotKnow() {
    #expect(throws: ImageError.self) { try Recipe(yaml: "base: scratch\nfrom: debian\n", source: "r.yaml") }
    let relative = #expect(throws: ImageError.self) { try Recipe(yaml: "files: {bin/x: x}\n", source: "r.yaml") }
    #expect(relative?.message.contains("absolute") == true)
    #expect(throws: ImageError.self) { try Recipe(yaml: "env: [A]\n", source: "r.yaml") }
  }

  @Test(.needs("/usr/bin/umoci")) func tarballsBecomeLayersAsTheyAre() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try FileManager.default.createDirectory(atPath: dir.file("root/etc"), withIntermediateDirectories: true)
    try "debian\n".write(toFile: dir.file("root/etc/os-name"), atomically: true, encoding: .utf8)
    #expect(try Tool.run("/usr/bin/tar", ["cf", dir.file("os.tar"), "-C", dir.file("root"), "."]).status == 0)
    // The same archive gzip'd, under the same name (the name goes into the image's history).
    try FileManager.default.createDirectory(atPath: dir.file("gz"), withIntermediateDirectories: true)
    let gzip = try Tool.run(
      "/usr/bin/python3",
      [
        "-c", "import gzip,sys; open(sys.argv[2],'wb').write(gzip.compress(open(sys.argv[1],'rb').read()))",
        dir.file("os.tar"), dir.file("gz/os.tar"),
      ])
    #expect(gzip.status == 0, "\(gzip.stderr)")
    var digests: [String] = []
    for (tarball, tag) in [("os.tar", "plain"), ("gz/os.tar", "gzip")] {
      var b = ImageBuild()
      b.tarballs = [dir.file(tarball)]
      b.env = ["LANG=C.UTF-8"]
      let result = try b.build(into: try ImageLayout(path: dir.file("layout")), tag: tag)
      digests.append(result.manifest.digest)
    }
    #expect(digests[0] == digests[1], "plain or gzip'd, the same layer")
    let unpack = try Tool.run("/usr/bin/umoci", ["unpack", "--image", dir.file("layout") + ":plain", dir.file("b")])
    #expect(unpack.status == 0, "\(unpack.stderr)")
    #expect(try String(contentsOfFile: dir.file("b/rootfs/etc/os-name"), encoding: .utf8) == "debian\n")

    try "not a tar".write(toFile: dir.file("bad.tar"), atomically: true, encoding: .utf8)
    var bad = ImageBuild()
    bad.tarballs = [dir.file("bad.tar")]
    let error = #expect(throws: ImageError.self) {
      try bad.build(into: try ImageLayout(path: dir.file("layout")), tag: "x")
    }
    #expect(error?.message.contains("not a tar archive") == true, "\(error?.message ?? "")")
  }

  /// `/tarsnode --install DIR` in runc, as the init container runs it: tarsnode copied out.
  @Test(
    .enabled(
      if: RuncTests.ready, "needs root, runc, umoci, and the static builds (scripts/build-tarsnode)"))
  func theNodeImageInstallsTarsnode() async throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    var build = try Self.recipe("node").build(context: Fixtures.repositoryRoot.path)
    build.cmd = ["--install", "/install"]
    _ = try build.build(into: try ImageLayout(path: dir.file("layout")), tag: "node")
    let unpack = try Tool.run(
      "/usr/bin/umoci", ["unpack", "--image", dir.file("layout") + ":node", dir.file("bundle")])
    #expect(unpack.status == 0, "\(unpack.stderr)")
    // The pod's emptyDir, writable by the image's user (65534).
    try FileManager.default.createDirectory(atPath: dir.file("install"), withIntermediateDirectories: true)
    chmod(dir.file("install"), 0o777)
    let configURL = URL(fileURLWithPath: dir.file("bundle/config.json"))
    var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
    var process = try #require(config["process"] as? [String: Any])
    process["terminal"] = false
    process.removeValue(forKey: "oomScoreAdj")
    #expect((process["user"] as? [String: Any])?["uid"] as? Int == 65534)
    config["process"] = process
    var mounts = config["mounts"] as? [[String: Any]] ?? []
    mounts.append([
      "destination": "/install", "type": "bind", "source": dir.file("install"), "options": ["rbind", "rw"],
    ])
    config["mounts"] = mounts
    try JSONSerialization.data(withJSONObject: config).write(to: configURL)

    let id = "tars-node-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
    let run = try Tool.run("/usr/sbin/runc", ["run", "--bundle", dir.file("bundle"), id])
    _ = try? Tool.run("/usr/sbin/runc", ["delete", "--force", id])
    #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
    #expect(run.stdout.contains("installed /install/tarsnode"), "\(run.stdout)")
    let copied = try Data(contentsOf: URL(fileURLWithPath: dir.file("install/tarsnode")))
    #expect(copied == (try Data(contentsOf: URL(fileURLWithPath: RuncTests.tarsnode))))
  }
}

/// The Dockerfile instructions docker/ uses, read into a recipe (anything else is refused):
/// FROM, ADD of a tarball at /, COPY, ENV, USER, WORKDIR, ENTRYPOINT and CMD in JSON form, LABEL.
enum Dockerfile {
  static func recipe(_ text: String, source: String) throws -> Recipe {
    var r = Recipe()
    for raw in text.split(separator: "\n") {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") { continue }
      let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
      let (instruction, rest) = (parts[0], parts.count > 1 ? parts[1] : "")
      switch instruction {
      case "FROM": r.base = rest
      case "ADD":
        let words = rest.split(separator: " ").map(String.init)
        guard words.count == 2, words[1] == "/" else { throw ImageError("\(source): ADD TARBALL / only: \(line)") }
        r.tarballs.append(words[0])
      case "COPY":
        let words = rest.split(separator: " ").map(String.init)
        guard words.count == 2 else { throw ImageError("\(source): COPY SOURCE DESTINATION: \(line)") }
        r.files[words[1]] = words[0]
      case "ENV": r.env.merge(try pairs(rest, line), uniquingKeysWith: { $1 })
      case "LABEL": r.labels.merge(try pairs(rest, line), uniquingKeysWith: { $1 })
      case "USER": r.user = rest
      case "WORKDIR": r.workdir = rest
      case "ENTRYPOINT": r.entrypoint = try JSONDecoder().decode([String].self, from: Data(rest.utf8))
      case "CMD": r.cmd = try JSONDecoder().decode([String].self, from: Data(rest.utf8))
      default: throw ImageError("\(source): \(instruction) is not an instruction the recipes have")
      }
    }
    return r
  }

  /// `K=V K2="V 2"` pairs.
  static func pairs(_ text: String, _ line: String) throws -> [String: String] {
    var out: [String: String] = [:]
    var rest = Substring(text)
    while let eq = rest.firstIndex(of: "=") {
      let key = rest[..<eq].trimmingCharacters(in: .whitespaces)
      rest = rest[rest.index(after: eq)...]
      var value: Substring
      if rest.first == "\"" {
        rest = rest.dropFirst()
        guard let close = rest.firstIndex(of: "\"") else { throw ImageError("unclosed quote: \(line)") }
        value = rest[..<close]
        rest = rest[rest.index(after: close)...]
      } else {
        let end = rest.firstIndex(of: " ") ?? rest.endIndex
        value = rest[..<end]
        rest = rest[end...]
      }
      out[key] = String(value)
    }
    return out
  }
}
