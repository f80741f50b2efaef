import Glibc

/// A file read in chunks and a file written through a buffer, with POSIX calls: what the
/// builder streams packages and layers through (never a whole file in memory).
final class InputFile {
  let fd: Int32
  let path: String

  init(_ path: String) throws(ImageError) {
    fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ImageError("cannot open \(path): \(String(cString: strerror(errno)))") }
    self.path = path
  }

  deinit { Glibc.close(fd) }

  /// Up to `max` bytes; empty at the end.
  func read(max: Int = 1 << 16) throws -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: max)
    while true {
      let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, max) }
      if n < 0 && errno == EINTR { continue }
      guard n >= 0 else { throw ImageError("cannot read \(path): \(String(cString: strerror(errno)))") }
      buffer.removeSubrange(n...)
      return buffer
    }
  }
}

extension InputFile {
  /// The whole of a small file (an index, a manifest, a config), refused beyond `limit`.
  static func contents(_ path: String, limit: Int) throws(ImageError) -> [UInt8] {
    let file = try InputFile(path)
    var out: [UInt8] = []
    while true {
      let chunk: [UInt8]
      do { chunk = try file.read() } catch { throw ImageError("cannot read \(path): \(error)") }
      if chunk.isEmpty { return out }
      out += chunk
      guard out.count <= limit else { throw ImageError("\(path) is over \(limit) bytes") }
    }
  }
}

final class OutputFile {
  let fd: Int32
  let path: String
  var buffer: [UInt8] = []

  init(_ path: String, mode: mode_t = 0o644, exclusive: Bool = false) throws(ImageError) {
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (exclusive ? O_EXCL : O_TRUNC), mode)
    guard fd >= 0 else { throw ImageError("cannot create \(path): \(String(cString: strerror(errno)))") }
    self.path = path
    buffer.reserveCapacity(1 << 17)
  }

  deinit { Glibc.close(fd) }

  func write(_ bytes: [UInt8]) throws(ImageError) {
    buffer += bytes
    if buffer.count >= 1 << 16 { try flush() }
  }

  func flush() throws(ImageError) {
    var offset = 0
    while offset < buffer.count {
      let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, buffer.count - offset) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { throw ImageError("cannot write \(path): \(String(cString: strerror(errno)))") }
      offset += n
    }
    buffer.removeAll(keepingCapacity: true)
  }

  /// Flushed and on disk.
  func close() throws(ImageError) {
    try flush()
    guard fsync(fd) == 0 else { throw ImageError("cannot sync \(path): \(String(cString: strerror(errno)))") }
  }
}

enum Paths {
  static func exists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
  }

  /// mkdir -p.
  static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(ImageError) {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
      current += "/" + part
      if mkdir(current, mode) != 0 && errno != EEXIST {
        throw ImageError("cannot create \(current): \(String(cString: strerror(errno)))")
      }
    }
  }

  /// rm -rf, not following links.
  static func remove(_ path: String) {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    if (st.st_mode & S_IFMT) == S_IFDIR {
      for name in (try? list(path)) ?? [] { remove(path + "/" + name) }
      rmdir(path)
    } else {
      unlink(path)
    }
  }

  /// The names in a directory, sorted by their bytes (the order layers list them in).
  static func list(_ path: String) throws(ImageError) -> [String] {
    guard let dir = opendir(path) else {
      throw ImageError("cannot list \(path): \(String(cString: strerror(errno)))")
    }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafePointer(to: entry.pointee.d_name) {
        $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
      }
      if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
  }

  static func temporaryDirectory(under base: String = "/tmp", prefix: String = "tars-image") throws(ImageError)
    -> String
  {
    var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      throw ImageError("cannot make a directory under \(base): \(String(cString: strerror(errno)))")
    }
    return String(cString: made)
  }
}
