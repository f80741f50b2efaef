import Glibc

/// A layer blob as it was written: its descriptor (compressed digest and size) and its
/// `diff_id` (the digest of the uncompressed tar), which the image config lists.
public struct LayerBlob: Sendable, Equatable {
  public var descriptor: Descriptor
  public var diffID: Digest
}

/// Writes a gzip'd tar layer straight into a blob directory: a tree on disk placed under a
/// prefix in the image, plus single files given by content. Entries are in byte order of
/// their paths, every parent directory listed, owned by 0:0 at time 0 with normalized modes
/// (0755 for directories and executables, 0644 for the rest): the same tree gives the same
/// digest on any machine. The tar passes through gzip and both hashes in one stream.
public struct LayerWriter {
  public struct File: Sendable {
    public var path: String
    public var source: Source
    public var mode: UInt32

    public enum Source: Sendable {
      case bytes([UInt8])
      /// A file on disk, copied in (tarsnode from the build).
      case path(String)
    }

    public init(path: String, source: Source, mode: UInt32 = 0o755) {
      self.path = path
      self.source = source
      self.mode = mode
    }
  }

  let blobs: BlobStore
  var entries: [(path: String, item: Item)] = []

  enum Item {
    case directory
    case file(File.Source, size: Int64, mode: UInt32)
    case symlink(String)
  }

  public init(into blobs: BlobStore) { self.blobs = blobs }

  /// Everything under `tree`, placed at `prefix` (e.g. `usr/local/server/bin`).
  public mutating func add(tree: String, at prefix: String) throws(ImageError) {
    addParents(of: prefix + "/x")
    entries.append((prefix, .directory))
    try walk(tree, relative: "", prefix: prefix)
  }

  public mutating func add(_ file: File) throws(ImageError) {
    addParents(of: file.path)
    let size: Int64
    switch file.source {
    case .bytes(let b): size = Int64(b.count)
    case .path(let p):
      var st = stat()
      guard stat(p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
        throw ImageError("cannot add \(p) to the image: it is not a readable file")
      }
      size = Int64(st.st_size)
    }
    entries.append((file.path, .file(file.source, size: size, mode: file.mode)))
  }

  mutating func addParents(of path: String) {
    var parent = ""
    for part in path.split(separator: "/").dropLast() {
      parent += parent.isEmpty ? String(part) : "/" + part
      entries.append((parent, .directory))
    }
  }

  mutating func walk(_ directory: String, relative: String, prefix: String) throws(ImageError) {
    for name in try Paths.list(directory) {
      let full = directory + "/" + name
      let inImage = prefix + "/" + (relative.isEmpty ? name : relative + "/" + name)
      var st = stat()
      guard lstat(full, &st) == 0 else { throw ImageError("cannot read \(full): \(String(cString: strerror(errno)))") }
      switch st.st_mode & S_IFMT {
      case S_IFDIR:
        entries.append((inImage, .directory))
        try walk(full, relative: relative.isEmpty ? name : relative + "/" + name, prefix: prefix)
      case S_IFREG:
        entries.append(
          (inImage, .file(.path(full), size: Int64(st.st_size), mode: st.st_mode & 0o111 != 0 ? 0o755 : 0o644)))
      case S_IFLNK:
        var buffer = [CChar](repeating: 0, count: 4097)
        let n = readlink(full, &buffer, 4096)
        guard n >= 0 else { throw ImageError("cannot read the link \(full)") }
        entries.append(
          (inImage, .symlink(String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))))
      default:
        throw ImageError("\(full) is neither a file, a directory nor a link: it cannot go into a layer")
      }
    }
  }

  /// Writes the layer and returns its blob. Duplicate paths keep the last one added.
  public func write() throws(ImageError) -> LayerBlob {
    var unique: [String: Item] = [:]
    for (path, item) in entries { unique[path] = item }
    let ordered = unique.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    var tarHash = Hasher256()
    let (digest, size) = try blobs.store("cannot write the layer") { upload in
      let gzip = try GzipWriter { try upload.write($0) }
      var tar = TarWriter { bytes in
        tarHash.update(bytes)
        try gzip.write(bytes)
      }
      for path in ordered {
        switch unique[path]! {
        case .directory:
          try tar.begin(TarEntry(path: path, kind: .directory, mode: 0o755))
        case .symlink(let target):
          try tar.begin(TarEntry(path: path, kind: .symlink(target: target), mode: 0o777))
        case .file(let source, let size, let mode):
          try tar.begin(TarEntry(path: path, kind: .file, mode: mode, size: size))
          switch source {
          case .bytes(let b): try tar.write(b)
          case .path(let p):
            let input = try InputFile(p)
            var left = size
            while left > 0 {
              let chunk = try input.read(max: Int(min(left, 1 << 16)))
              guard !chunk.isEmpty else { throw ImageError("\(p) shrank while it was added to the layer") }
              try tar.write(chunk)
              left -= Int64(chunk.count)
            }
          }
        }
      }
      try tar.finish()
      try gzip.finish()
    }
    return LayerBlob(
      descriptor: Descriptor(mediaType: MediaType.ociLayerGzip, digest: digest, size: size), diffID: tarHash.finish())
  }
}

extension LayerWriter {
  /// A tarball made elsewhere (an OS root file system from mmdebstrap) as a layer, its bytes
  /// unchanged: plain or gzip'd in, gzip'd deterministically out, streamed. Only its being a
  /// tar is checked; what is in it is the image author's, as with Docker's `ADD rootfs.tar /`.
  public static func layer(fromTarball path: String, into blobs: BlobStore) throws(ImageError) -> LayerBlob {
    let file = try InputFile(path)
    var head: [UInt8]
    do { head = try file.read(max: 2) } catch { throw ImageError("cannot read \(path): \(error)") }
    let gzipped = head == [0x1f, 0x8b]
    var pending = head
    let raw: () throws -> [UInt8] = {
      if !pending.isEmpty {
        defer { pending = [] }
        return pending
      }
      return try file.read()
    }
    let next: () throws -> [UInt8]
    if gzipped {
      let reader = try GzipReader(source: raw)
      next = { try reader.read(max: 1 << 16) }
    } else {
      next = raw
    }
    var tarHash = Hasher256()
    let (digest, size) = try blobs.store("cannot read \(path) as a layer") { upload in
      var total = 0
      var firstBlock: [UInt8] = []
      let gzip = try GzipWriter { try upload.write($0) }
      while true {
        let chunk = try next()
        if chunk.isEmpty { break }
        if firstBlock.count < 512 { firstBlock += chunk.prefix(512 - firstBlock.count) }
        tarHash.update(chunk)
        total += chunk.count
        try gzip.write(chunk)
      }
      try gzip.finish()
      // ustar (and GNU) archives carry "ustar" at offset 257 of their first header.
      guard total % 512 == 0, firstBlock.count == 512, Array(firstBlock[257..<262]) == Array("ustar".utf8) else {
        throw ImageError("\(path) is not a tar archive: a layer must be one (mmdebstrap --format=tar makes one)")
      }
    }
    return LayerBlob(
      descriptor: Descriptor(mediaType: MediaType.ociLayerGzip, digest: digest, size: size), diffID: tarHash.finish())
  }
}
