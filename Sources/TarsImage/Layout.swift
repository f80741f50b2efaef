import Foundation
import Glibc

/// Blobs by digest in a directory (`blobs/sha256/<hex>`): written through a temporary file that
/// becomes its digest's name only once complete, so a blob that is there is whole.
public final class BlobStore: Sendable {
  public let directory: String

  public init(directory: String) throws(ImageError) {
    self.directory = directory
    try Paths.makeDirectories(directory)
  }

  public func path(_ d: Digest) -> String { directory + "/" + d.hex }
  public func has(_ d: Digest) -> Bool { Paths.exists(path(d)) }

  /// A blob `body` writes; abandoned when `body` fails (`what` says what could not be written).
  public func store(_ what: String, _ body: (BlobUpload) throws -> Void) throws(ImageError) -> (Digest, Int64) {
    let upload = try begin()
    do {
      try body(upload)
    } catch let e as ImageError {
      upload.abandon()
      throw e
    } catch {
      upload.abandon()
      throw ImageError("\(what): \(error)")
    }
    return try upload.commit()
  }

  public func begin() throws(ImageError) -> BlobUpload {
    try BlobUpload(store: self)
  }

  /// A small blob (a manifest, a config) from bytes.
  @discardableResult
  public func put(_ bytes: [UInt8]) throws(ImageError) -> (Digest, Int64) {
    let upload = try begin()
    try upload.write(bytes)
    return try upload.commit()
  }

  /// A small blob's bytes, checked against its digest.
  public func read(_ d: Digest, limit: Int = 4 << 20) throws(ImageError) -> [UInt8] {
    let out = try InputFile.contents(path(d), limit: limit)
    guard Digest.of(out) == d else { throw ImageError("blob \(d) does not match its digest: the store is damaged") }
    return out
  }
}

public final class BlobUpload {
  let store: BlobStore
  let temporary: String
  let file: OutputFile
  var hash = Hasher256()

  init(store: BlobStore) throws(ImageError) {
    self.store = store
    temporary = store.directory + "/.upload-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    file = try OutputFile(temporary, exclusive: true)
  }

  public func write(_ bytes: [UInt8]) throws(ImageError) {
    hash.update(bytes)
    try file.write(bytes)
  }

  /// The blob under its digest's name; its digest and size.
  public func commit() throws(ImageError) -> (Digest, Int64) {
    try file.close()
    let digest = hash.finish()
    guard rename(temporary, store.path(digest)) == 0 else {
      unlink(temporary)
      throw ImageError("cannot store blob \(digest): \(String(cString: strerror(errno)))")
    }
    return (digest, hash.count)
  }

  public func abandon() { unlink(temporary) }
}

/// An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/`): what `umoci`, `skopeo`
/// (`oci:DIR:TAG`) and `runc`'s tools read, and where builds go before a push.
public final class ImageLayout: Sendable {
  public let path: String
  public let blobs: BlobStore
  static let refName = "org.opencontainers.image.ref.name"

  /// Opens the layout at `path`, creating it when `create` and absent.
  public init(path: String, create: Bool = true) throws(ImageError) {
    self.path = path
    let marker = path + "/oci-layout"
    if !Paths.exists(marker) {
      guard create else {
        throw ImageError("\(path) is not an OCI image layout (no oci-layout file): build into it first")
      }
      try Paths.makeDirectories(path)
      try Self.writeFile(marker, Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
      try Self.writeFile(path + "/index.json", try CanonicalJSON.encode(Index(manifests: [])))
    }
    blobs = try BlobStore(directory: path + "/blobs/sha256")
  }

  public func index() throws(ImageError) -> Index {
    let bytes = try InputFile.contents(path + "/index.json", limit: 4 << 20)
    return try CanonicalJSON.decode(Index.self, from: bytes, what: "\(path)/index.json")
  }

  /// Names `manifest` `tag` (replacing what had the name).
  public func tag(_ manifest: Descriptor, as tag: String) throws(ImageError) {
    var index = try index()
    index.manifests.removeAll { $0.annotations?[Self.refName] == tag }
    var named = manifest
    named.annotations = [Self.refName: tag]
    index.manifests.append(named)
    try Self.writeFile(path + "/index.json", try CanonicalJSON.encode(index))
  }

  /// The manifest named `tag` (or the only one when nil), for linux/amd64 when it is an index.
  public func manifest(tag: String?) throws(ImageError) -> (Descriptor, Manifest) {
    let all = try index().manifests
    let found = tag.map { t in all.filter { $0.annotations?[Self.refName] == t } } ?? all
    guard found.count == 1, var descriptor = found.first else {
      let names = all.compactMap { $0.annotations?[Self.refName] }.sorted().joined(separator: ", ")
      throw ImageError(
        "\(path) has no image \(tag.map { "tagged \($0)" } ?? "alone") (it has: \(names.isEmpty ? "none" : names))")
    }
    if MediaType.indexes.contains(descriptor.mediaType) {
      let nested = try CanonicalJSON.decode(
        Index.self, from: try blobs.read(try descriptor.parsedDigest), what: "the index \(descriptor.digest)")
      guard let amd64 = nested.manifests.first(where: { $0.platform == nil || $0.platform == Platform() }) else {
        throw ImageError("\(path):\(tag ?? "") has no linux/amd64 image")
      }
      descriptor = amd64
    }
    guard MediaType.manifests.contains(descriptor.mediaType) else {
      throw ImageError("\(path):\(tag ?? ""): \(descriptor.mediaType) is not an image manifest")
    }
    let manifest = try CanonicalJSON.decode(
      Manifest.self, from: try blobs.read(try descriptor.parsedDigest), what: "the manifest \(descriptor.digest)")
    return (descriptor, manifest)
  }

  static func writeFile(_ path: String, _ bytes: [UInt8]) throws(ImageError) {
    let temporary = path + ".tmp"
    let out = try OutputFile(temporary)
    try out.write(bytes)
    try out.close()
    guard rename(temporary, path) == 0 else {
      throw ImageError("cannot write \(path): \(String(cString: strerror(errno)))")
    }
  }
}

extension ImageLayout {
  /// What the image `tag` holds below `prefix` (`usr/local/server/bin`: the server as its
  /// package put it), its layers applied in order into `directory` (whiteouts honoured), with a
  /// package's refusals for anything that would climb out. Entries elsewhere are skipped. The
  /// number of files written.
  public func extract(
    tag: String?, below prefix: String, into directory: String, limits: PackageLimits = PackageLimits()
  )
    throws(ImageError) -> Int
  {
    let (_, manifest) = try manifest(tag: tag)
    let parts = prefix.split(separator: "/").map(String.init)
    var files = 0
    for layer in manifest.layers {
      let digest = try layer.parsedDigest
      let file = try InputFile(blobs.path(digest))
      let gzipped = layer.mediaType.hasSuffix("gzip")
      let gunzip = gzipped ? try GzipReader { try file.read() } : nil
      let reader = TarReader { n in try gunzip?.read(max: n) ?? file.read(max: n) }
      files += try ServerPackage.extract(reader, into: directory, limits: limits, source: "layer \(digest)") {
        entry throws(ImageError) in
        let path = entry.path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        guard path.count > parts.count, path.prefix(parts.count).map(String.init) == parts else { return nil }
        guard !path.contains("..") else { throw ImageError("\(entry.path) in layer \(digest) climbs out with '..'") }
        return path.dropFirst(parts.count).joined(separator: "/")
      }.files
    }
    return files
  }
}
