import Glibc
import TarsKube
import TarsProtocol

/// Turns a server package into an image: a base (`scratch` or an image in an OCI layout),
/// the package unpacked at `/usr/local/server/bin` (K8SFramework's layout), tarsnode when
/// asked, and the config that runs it — all reproducible: the same inputs give the same
/// manifest digest, on any machine, at any time.
public struct ImageBuild: Sendable {
  public enum Base: Sendable, Equatable {
    case scratch
    /// An image in an OCI layout on disk: `oci:DIR[:TAG]`.
    case layout(path: String, tag: String?)

    /// `scratch` or `oci:DIR[:TAG]`; anything else says what is accepted.
    public init(parsing text: String) throws(ImageError) {
      if text == "scratch" {
        self = .scratch
        return
      }
      guard text.hasPrefix("oci:") else {
        throw ImageError(
          "--base \(text): use scratch or oci:DIR[:TAG] (an OCI image layout, e.g. one skopeo copy made)")
      }
      let rest = String(text.dropFirst(4))
      if let colon = rest.lastIndex(of: ":"), !rest[rest.index(after: colon)...].contains("/") {
        self = .layout(path: String(rest[..<colon]), tag: String(rest[rest.index(after: colon)...]))
      } else {
        self = .layout(path: rest, tag: nil)
      }
    }
  }

  public var base: Base = .scratch
  /// Tarballs added as layers on the base, in order, before the package (an OS root file
  /// system, say).
  public var tarballs: [String] = []
  /// The server package (`.tgz`); nil builds the base with only the other changes.
  public var package: String?
  public var limits = PackageLimits()
  /// `App.Server`, recorded as labels.
  public var server: String?
  /// The Tars server type (`cpp`, `go`, `java-jar`, `java-war`, `nodejs`, `not-tars`), the
  /// `ServerType` env tarsnode reads.
  public var serverType: String?
  /// The static tarsnode to put at `/usr/local/bin/tarsnode` (and run as the entrypoint).
  public var tarsnode: String?
  /// More files, each `IMAGE-PATH` from a file on disk.
  public var files: [LayerWriter.File] = []
  public var entrypoint: [String]?
  public var cmd: [String]?
  public var env: [String] = []
  public var user: String?
  public var workingDir: String?
  public var labels: [String: String] = [:]

  public init() {}

  public static let serverDirectory = "usr/local/server/bin"
  public static let tarsnodePath = "usr/local/bin/tarsnode"
  /// Every build's time: reproducible images carry no clock.
  public static let created = "1970-01-01T00:00:00Z"

  public struct Result: Sendable {
    public var manifest: Descriptor
    public var config: Digest
    public var layers: [Descriptor]
    public var package: ServerPackage.Unpacked?
  }

  /// A layer's diff_id and history entry in the config.
  static func append(_ layer: LayerBlob, to config: inout JSONValue, createdBy: String) {
    var diffIDs = config[path: ["rootfs", "diff_ids"]]?.arrayValue ?? []
    diffIDs.append(.string(layer.diffID.description))
    config.set(["rootfs", "diff_ids"], .array(diffIDs))
    var entries = config["history"]?.arrayValue ?? []
    entries.append(.object([("created", .string(Self.created)), ("created_by", .string(createdBy))]))
    config.set(["history"], .array(entries))
  }

  /// Builds into `layout`, tagged `tag`. Base blobs are copied in (hard-linked when they can be).
  public func build(into layout: ImageLayout, tag: String) throws(ImageError) -> Result {
    var config: JSONValue
    var layers: [Descriptor] = []
    switch base {
    case .scratch:
      config = .object([
        ("architecture", .string("amd64")), ("os", .string("linux")), ("config", .object([])),
        ("rootfs", .object([("type", .string("layers")), ("diff_ids", .array([]))])), ("history", .array([])),
      ])
    case .layout(let path, let tag):
      let source = try ImageLayout(path: path, create: false)
      let (_, manifest) = try source.manifest(tag: tag)
      let configDigest = try manifest.config.parsedDigest
      let bytes = try source.blobs.read(configDigest)
      do {
        config = try JSONValue(bytes: bytes)
      } catch {
        throw ImageError("the base's config \(configDigest) is not JSON: \(error)")
      }
      guard config["architecture"]?.stringValue == "amd64", config["os"]?.stringValue == "linux" else {
        throw ImageError("the base \(path) is not a linux/amd64 image")
      }
      for layer in manifest.layers {
        try Self.copy(try layer.parsedDigest, from: source.blobs, to: layout.blobs)
        var d = layer
        if d.mediaType == MediaType.dockerLayerGzip { d.mediaType = MediaType.ociLayerGzip }
        d.annotations = nil
        layers.append(d)
      }
    }
    for tarball in tarballs {
      let layer = try LayerWriter.layer(fromTarball: tarball, into: layout.blobs)
      layers.append(layer.descriptor)
      Self.append(layer, to: &config, createdBy: "tarsctl image build: \(Self.baseName(tarball))")
    }
    var createdBy = "tarsctl image build"
    var unpacked: ServerPackage.Unpacked?
    var writer = LayerWriter(into: layout.blobs)
    var adds = false
    // The unpacked package lives until the layer is written.
    let scratch = try Paths.temporaryDirectory()
    defer { Paths.remove(scratch) }
    if let package {
      let tree = scratch + "/bin"
      try Paths.makeDirectories(tree)
      unpacked = try ServerPackage.unpack(package, into: tree, limits: limits)
      try writer.add(tree: tree, at: Self.serverDirectory)
      adds = true
      createdBy = "tarsctl image build: server package \(Self.baseName(package))"
    }
    if let tarsnode {
      try writer.add(LayerWriter.File(path: Self.tarsnodePath, source: .path(tarsnode), mode: 0o755))
      adds = true
    }
    for f in files {
      try writer.add(f)
      adds = true
    }
    if adds {
      let layer = try writer.write()
      layers.append(layer.descriptor)
      Self.append(layer, to: &config, createdBy: createdBy)
    }
    config.set(["created"], .string(Self.created))
    try apply(to: &config, package: unpacked)
    let configBytes = Array(config.text.utf8)
    let (configDigest, configSize) = try layout.blobs.put(configBytes)
    let manifest = Manifest(
      config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: configSize), layers: layers)
    let manifestBytes = try CanonicalJSON.encode(manifest)
    let (manifestDigest, manifestSize) = try layout.blobs.put(manifestBytes)
    let descriptor = Descriptor(mediaType: MediaType.ociManifest, digest: manifestDigest, size: manifestSize)
    try layout.tag(descriptor, as: tag)
    return Result(manifest: descriptor, config: configDigest, layers: layers, package: unpacked)
  }

  /// What the image runs: entrypoint (tarsnode when added, unless given), env (replacing a
  /// base's variable of the same name), user, working directory, labels.
  func apply(to config: inout JSONValue, package: ServerPackage.Unpacked?) throws(ImageError) {
    var c = config["config"] ?? .object([])
    let entry = entrypoint ?? (tarsnode != nil ? ["/" + Self.tarsnodePath] : nil)
    if let entry {
      c.set(["Entrypoint"], .array(entry.map { .string($0) }))
      // As in a Dockerfile, a new ENTRYPOINT drops the base's CMD.
      c.set(["Cmd"], cmd.map { .array($0.map { .string($0) }) })
    } else if let cmd {
      c.set(["Cmd"], .array(cmd.map { .string($0) }))
    }
    var variables = (c["Env"]?.arrayValue ?? []).compactMap(\.stringValue)
    var wanted = env
    if let serverType { wanted.append("ServerType=\(serverType)") }
    for v in wanted {
      guard let eq = v.firstIndex(of: "="), eq != v.startIndex else {
        throw ImageError("--env \(v): write NAME=VALUE")
      }
      let name = v[..<eq]
      variables.removeAll { $0.hasPrefix(name + "=") }
      variables.append(v)
    }
    if !variables.isEmpty { c.set(["Env"], .array(variables.map { .string($0) })) }
    if let user { c.set(["User"], .string(user)) }
    if let workingDir { c.set(["WorkingDir"], .string(workingDir)) }
    var allLabels = (c["Labels"]?.members ?? []).reduce(into: [String: String]()) { $0[$1.0] = $1.1.stringValue }
    if let server {
      allLabels["org.opencontainers.image.title"] = server
      allLabels["io.tars.server"] = server
    }
    if let serverType { allLabels["io.tars.server-type"] = serverType }
    if let package, let name = self.package {
      allLabels["io.tars.package"] = Self.baseName(name)
      allLabels["io.tars.package.digest"] = package.digest.description
    }
    allLabels.merge(labels) { $1 }
    if !allLabels.isEmpty {
      c.set(["Labels"], .object(allLabels.keys.sorted().map { ($0, .string(allLabels[$0]!)) }))
    }
    config.set(["config"], c)
  }

  static func baseName(_ path: String) -> String { String(path.split(separator: "/").last ?? Substring(path)) }

  static func copy(_ d: Digest, from source: BlobStore, to target: BlobStore) throws(ImageError) {
    guard !target.has(d) else { return }
    guard source.has(d) else { throw ImageError("the base lacks its layer \(d): the layout is incomplete") }
    if link(source.path(d), target.path(d)) == 0 { return }
    let input = try InputFile(source.path(d))
    let upload = try target.begin()
    do {
      while true {
        let chunk = try input.read()
        if chunk.isEmpty { break }
        try upload.write(chunk)
      }
    } catch {
      upload.abandon()
      throw ImageError("cannot copy the base's layer \(d): \(error)")
    }
    let (written, _) = try upload.commit()
    guard written == d else { throw ImageError("the base's layer \(d) does not match its digest") }
  }
}

extension ImageBuild.Base {
  /// A base named as the operator writes it — `scratch`, `oci:DIR[:TAG]`, or an image in a
  /// registry (`REGISTRY/REPO:TAG`), which is pulled into `cache` first (blobs it already
  /// has are not fetched again) and built on from there.
  public static func resolve(
    _ text: String, cache: String, client: (ImageReference) throws(ImageError) -> RegistryClient
  ) async throws(ImageError) -> ImageBuild.Base {
    if text == "scratch" || text.hasPrefix("oci:") { return try ImageBuild.Base(parsing: text) }
    let ref = try ImageReference(parsing: text)
    let registry = try client(ref)
    let tag = "base-" + String(Digest.of(Array(text.utf8)).hex.prefix(12))
    do {
      _ = try await registry.pull(ref, into: try ImageLayout(path: cache), tag: tag)
    } catch {
      await registry.shutdown()
      throw error
    }
    await registry.shutdown()
    return .layout(path: cache, tag: tag)
  }
}
