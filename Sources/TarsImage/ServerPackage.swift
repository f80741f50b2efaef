import Glibc

/// What a server package may hold before it is refused: an operator's upload is not trusted
/// to be small or sane.
public struct PackageLimits: Sendable {
  /// The largest single file.
  public var fileBytes: Int64 = 1 << 30
  /// All files together, unpacked.
  public var totalBytes: Int64 = 2 << 30
  public var entries = 100_000

  public init() {}
}

/// A server package: the `.tgz` a Tars operator ships (`tar czf HelloServer.tgz HelloServer/`),
/// unpacked the way K8SFramework's image build does (`tar zxf --strip-components=1` into
/// `/usr/local/server/bin`) — but refusing what a hostile or broken archive could do to the
/// builder or the image: paths that climb out (`..`, absolute), links that point outside the
/// tree, writes through a link, devices and FIFOs, and sizes over the limits.
public enum ServerPackage {
  public struct Unpacked: Sendable {
    /// The digest of the package file itself (the image records it as a label).
    public var digest: Digest
    public var files: Int
    public var bytes: Int64
  }

  /// Unpacks `package` (gzip'd tar) into `directory`, which must exist and be empty.
  public static func unpack(_ package: String, into directory: String, limits: PackageLimits = PackageLimits())
    throws(ImageError) -> Unpacked
  {
    let file = try InputFile(package)
    var packageHash = Hasher256()
    let gunzip = try GzipReader {
      let chunk = try file.read()
      packageHash.update(chunk)
      return chunk
    }
    let (files, total) = try extract(
      TarReader { try gunzip.read(max: $0) }, into: directory, limits: limits, source: package
    ) { entry throws(ImageError) in
      guard let path = try strippedPath(entry.path, package: package) else {
        if entry.kind != .directory {
          throw ImageError(
            "\(entry.path) is at the top of \(package): pack the server's directory (tar czf NAME.tgz NAME/)")
        }
        return nil
      }
      return path
    }
    guard files > 0 else {
      throw ImageError(
        "\(package) holds no file below its top directory: pack the server's directory (tar czf NAME.tgz NAME/)")
    }
    // The rest of the file (the gzip trailer, padding): the digest covers all of it.
    do {
      while case let chunk = try file.read(), !chunk.isEmpty { packageHash.update(chunk) }
    } catch {
      throw ImageError("cannot read \(package): \(error)")
    }
    return Unpacked(digest: packageHash.finish(), files: files, bytes: total)
  }

  /// The files of `reader` that `select` maps to a path (nil: skipped) written below
  /// `directory`, with the package's refusals: nothing climbs out, nothing is written through a
  /// link, no device, nothing over the limits. A `.wh.NAME` entry (an image layer's whiteout)
  /// removes NAME. The number of files and their bytes.
  static func extract(
    _ reader: TarReader, into directory: String, limits: PackageLimits, source: String,
    select: (TarEntry) throws(ImageError) -> String?
  ) throws(ImageError) -> (files: Int, bytes: Int64) {
    var reader = reader
    var files = 0
    var total: Int64 = 0
    var count = 0
    var links: Set<String> = []
    var directories: Set<String> = [""]
    while let entry = try reader.next() {
      count += 1
      guard count <= limits.entries else {
        throw ImageError("\(source) has more than \(limits.entries) entries: over the limit")
      }
      guard let path = try select(entry) else { continue }
      // Nothing may be written through a link the archive made.
      var parent = ""
      for part in path.split(separator: "/").dropLast() {
        parent += parent.isEmpty ? String(part) : "/" + part
        if links.contains(parent) {
          throw ImageError("\(entry.path) would be written through the link \(parent): refused")
        }
      }
      let target = directory + "/" + path
      let name = path.split(separator: "/").last.map(String.init) ?? path
      if name.hasPrefix(".wh.") {
        let parentPath = path.split(separator: "/").dropLast().joined(separator: "/")
        let base = directory + (parentPath.isEmpty ? "" : "/" + parentPath)
        if name == ".wh..wh..opq" {
          for child in (try? Paths.list(base)) ?? [] { Paths.remove(base + "/" + child) }
        } else {
          Paths.remove(base + "/" + name.dropFirst(4))
        }
        continue
      }
      switch entry.kind {
      case .directory:
        try Paths.makeDirectories(target)
        directories.insert(path)
      case .file:
        guard entry.size <= limits.fileBytes else {
          throw ImageError(
            "\(entry.path) is \(entry.size) bytes, over the limit of \(limits.fileBytes) per file: refused")
        }
        total += entry.size
        guard total <= limits.totalBytes else {
          throw ImageError("\(source) unpacks to more than \(limits.totalBytes) bytes: over the limit")
        }
        try makeParent(of: path, in: directory, known: &directories)
        unlink(target)
        let out = try OutputFile(target, mode: entry.mode & 0o111 != 0 ? 0o755 : 0o644, exclusive: true)
        while true {
          let chunk = try reader.read(max: 1 << 16)
          if chunk.isEmpty { break }
          try out.write(chunk)
        }
        try out.flush()
        files += 1
      case .symlink(let linkTarget):
        try checkInside(link: path, target: linkTarget, name: entry.path)
        try makeParent(of: path, in: directory, known: &directories)
        unlink(target)
        guard symlink(linkTarget, target) == 0 else {
          throw ImageError("cannot make the link \(path): \(String(cString: strerror(errno)))")
        }
        links.insert(path)
      case .hardlink(let linkTarget):
        let source = try? select(TarEntry(path: linkTarget, kind: .file, mode: 0o644))
        guard !linkTarget.hasPrefix("/"), let source = source ?? nil, !links.contains(source) else {
          throw ImageError("\(entry.path) is a hard link to \(linkTarget), outside the package's tree: refused")
        }
        try makeParent(of: path, in: directory, known: &directories)
        unlink(target)
        guard link(directory + "/" + source, target) == 0 else {
          throw ImageError("\(entry.path): a hard link to \(linkTarget), which the archive does not hold before it")
        }
      case .other(let flag):
        let what =
          switch flag {
          case UInt8(ascii: "3"): "a character device"
          case UInt8(ascii: "4"): "a block device"
          case UInt8(ascii: "6"): "a FIFO"
          default: "an entry of type '\(Character(UnicodeScalar(flag)))'"
          }
        throw ImageError("\(entry.path) is \(what): a server package holds files, directories and links only")
      }
    }
    return (files, total)
  }

  /// The entry's path below the package's top directory (`HelloServer/`), nil for the top
  /// directory itself; refuses absolute paths, `..`, and files at the top.
  static func strippedPath(_ raw: String, package: String) throws(ImageError) -> String? {
    guard !raw.hasPrefix("/") else {
      throw ImageError("\(raw) is an absolute path: a package's entries are relative (tar czf NAME.tgz NAME/)")
    }
    let parts = raw.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
    guard !parts.contains("..") else { throw ImageError("\(raw) climbs out of the package with '..': refused") }
    // The top directory itself (or what sits beside it, which --strip-components=1 drops).
    guard parts.count > 1 else { return nil }
    return parts.dropFirst().joined(separator: "/")
  }

  /// A symbolic link must resolve inside the tree, relative to where it is.
  static func checkInside(link path: String, target: String, name: String) throws(ImageError) {
    guard !target.hasPrefix("/") else {
      throw ImageError("\(name) links to \(target), an absolute path outside the package: make the link relative")
    }
    var depth = path.split(separator: "/").count - 1
    for part in target.split(separator: "/") where part != "." {
      depth += part == ".." ? -1 : 1
      guard depth >= 0 else {
        throw ImageError("\(name) links to \(target), which leaves the package's tree: refused")
      }
    }
  }

  static func makeParent(of path: String, in directory: String, known: inout Set<String>) throws(ImageError) {
    let parent = path.split(separator: "/").dropLast().joined(separator: "/")
    guard !known.contains(parent) else { return }
    try Paths.makeDirectories(directory + "/" + parent)
    known.insert(parent)
  }
}
