import Yams

/// An image described in a file, as `docker/*/recipe.yaml` describe the framework's images:
/// what `tarsctl image build --recipe FILE` builds, the same on any machine. Paths of files and
/// tarballs are relative to the build context (the repository root for docker/), as in a
/// Dockerfile; each recipe has a Dockerfile twin for those who build with Docker.
///
/// ```yaml
/// base: scratch                       # or oci:DIR[:TAG], or REGISTRY/REPO:TAG
/// tarballs: [.build-images/rootfs/cpp.tar]   # layers as they are (an OS from mmdebstrap)
/// files: {/tarsnode: .build-static/tarsnode}  # image path: source
/// env: {ServerType: cpp}
/// user: "65534:65534"
/// workdir: /usr/local/server/bin
/// entrypoint: [/tarsnode]
/// cmd: [--help]
/// labels: {org.opencontainers.image.title: tarsnode}
/// ```
public struct Recipe: Sendable, Equatable {
  public var base = "scratch"
  public var tarballs: [String] = []
  /// Image path (absolute) → source path.
  public var files: [String: String] = [:]
  public var env: [String: String] = [:]
  public var user: String?
  public var workdir: String?
  public var entrypoint: [String]?
  public var cmd: [String]?
  public var labels: [String: String] = [:]

  public init() {}

  static let keys: Set<String> = ["base", "tarballs", "files", "env", "user", "workdir", "entrypoint", "cmd", "labels"]

  /// Parses a recipe; each error names the file and the key to fix.
  public init(yaml text: String, source: String) throws(ImageError) {
    let node: Node?
    do {
      node = try Yams.compose(yaml: text)
    } catch {
      throw ImageError("\(source) is not YAML: \(error)")
    }
    guard let map = node?.mapping else { throw ImageError("\(source): a recipe is a mapping (base:, files:, …)") }
    for (key, value) in map {
      guard let name = key.string, Self.keys.contains(name) else {
        throw ImageError(
          "\(source): unknown key \(key.string ?? "?"): use \(Self.keys.sorted().joined(separator: ", "))")
      }
      let at = "\(source): \(name)"
      switch name {
      case "base": base = try Self.string(value, at)
      case "tarballs": tarballs = try Self.strings(value, at)
      case "files":
        files = try Self.map(value, at)
        for path in files.keys where !path.hasPrefix("/") {
          throw ImageError("\(at): \(path): image paths are absolute (/usr/local/bin/x)")
        }
      case "env": env = try Self.map(value, at)
      case "user": user = try Self.string(value, at)
      case "workdir": workdir = try Self.string(value, at)
      case "entrypoint": entrypoint = try Self.strings(value, at)
      case "cmd": cmd = try Self.strings(value, at)
      default: labels = try Self.map(value, at)
      }
    }
  }

  static func string(_ node: Node, _ at: String) throws(ImageError) -> String {
    guard node.scalar != nil, let s = node.string else { throw ImageError("\(at): write a string") }
    return s
  }

  static func strings(_ node: Node, _ at: String) throws(ImageError) -> [String] {
    guard let items = node.sequence else { throw ImageError("\(at): write a list of strings") }
    var out: [String] = []
    for item in items { out.append(try string(item, at)) }
    return out
  }

  static func map(_ node: Node, _ at: String) throws(ImageError) -> [String: String] {
    guard let m = node.mapping else { throw ImageError("\(at): write a mapping of strings") }
    var out: [String: String] = [:]
    for (k, v) in m { out[try string(k, at)] = try string(v, at) }
    return out
  }

  /// The build it describes (its base still to be resolved), paths against `context`.
  public func build(context: String) -> ImageBuild {
    func resolved(_ path: String) -> String { path.hasPrefix("/") ? path : context + "/" + path }
    var b = ImageBuild()
    b.tarballs = tarballs.map(resolved)
    b.files = files.keys.sorted().map { path in
      LayerWriter.File(path: String(path.drop { $0 == "/" }), source: .path(resolved(files[path]!)))
    }
    b.env = env.keys.sorted().map { "\($0)=\(env[$0]!)" }
    b.user = user
    b.workingDir = workdir
    b.entrypoint = entrypoint
    b.cmd = cmd
    b.labels = labels
    return b
  }
}
