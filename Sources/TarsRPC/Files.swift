import Glibc

/// A file-system operation that failed, with the path and the reason.
public struct FileError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  init(_ operation: String, _ path: String, errno e: Int32 = errno) {
    message = "\(operation) \(path): \(String(cString: strerror(e)))"
  }
  public var description: String { message }
}

/// The few file operations tarsnode and Swift servers need, on Glibc (no Foundation in a PID 1
/// or a server runtime).
public enum Files {
  public static func read(_ path: String) throws(FileError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileError("open", path) }
    defer { close(fd) }
    var out: [UInt8] = []
    // Not zero-filled: only the bytes a read reaches are touched.
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
    defer { chunk.deallocate() }
    while true {
      let n = Glibc.read(fd, chunk.baseAddress, chunk.count)
      if n < 0 {
        if errno == EINTR { continue }
        throw FileError("read", path)
      }
      if n == 0 { return out }
      out += UnsafeRawBufferPointer(rebasing: chunk[0..<n])
    }
  }

  /// Calls `body` with each line of the file at `path`, without its newline, reading 16 KiB at a
  /// time: a /proc file of thousands of sockets is hundreds of kilobytes, and a caller that keeps
  /// a few of its lines need never hold it whole. A longer line grows the buffer.
  public static func forEachLine(_ path: String, _ body: (UnsafeBufferPointer<UInt8>) -> Void) throws(FileError) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileError("open", path) }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    var used = 0
    while true {
      if used == buffer.count { buffer += repeatElement(0, count: buffer.count) }
      let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + used, $0.count - used) }
      if n < 0 {
        if errno == EINTR { continue }
        throw FileError("read", path)
      }
      if n == 0 {
        if used > 0 { buffer.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[0..<used])) } }
        return
      }
      let scanned = used
      used += n
      let consumed = buffer.withUnsafeBufferPointer { all in
        var start = 0
        for i in scanned..<used where all[i] == UInt8(ascii: "\n") {
          body(UnsafeBufferPointer(rebasing: all[start..<i]))
          start = i + 1
        }
        return start
      }
      if consumed > 0 {
        buffer.withUnsafeMutableBytes { raw in
          _ = memmove(raw.baseAddress!, raw.baseAddress! + consumed, used - consumed)
        }
        used -= consumed
      }
    }
  }

  public static func readText(_ path: String) throws(FileError) -> String {
    String(decoding: try read(path), as: UTF8.self)
  }

  /// Writes through a temporary file and rename, so a reader never sees half a file.
  public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(FileError) {
    let temporary = path + ".tmp.\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw FileError("create", temporary) }
    var offset = 0
    while offset < bytes.count {
      let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
      if n < 0 {
        if errno == EINTR { continue }
        let e = errno
        close(fd)
        unlink(temporary)
        throw FileError("write", temporary, errno: e)
      }
      offset += n
    }
    close(fd)
    guard rename(temporary, path) == 0 else {
      let e = errno
      unlink(temporary)
      throw FileError("rename to", path, errno: e)
    }
  }

  public static func writeAtomically(_ path: String, _ text: String) throws(FileError) {
    try writeAtomically(path, Array(text.utf8))
  }

  /// `mkdir -p`.
  public static func makeDirectories(_ path: String) throws(FileError) {
    var built = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
      built += "/" + part
      if mkdir(built, 0o755) != 0 && errno != EEXIST { throw FileError("mkdir", built) }
    }
  }

  public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

  public static func isExecutable(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
  }

  /// `ln -s target link` unless `link` already exists.
  public static func symlinkIfMissing(_ target: String, at link: String) throws(FileError) {
    var st = stat()
    if lstat(link, &st) == 0 { return }
    guard symlink(target, link) == 0 else { throw FileError("symlink", link) }
  }

  /// The names in a directory (without . and ..), sorted; empty if it cannot be read.
  public static func list(_ directory: String) -> [String] {
    guard let dir = opendir(directory) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
  }

  /// Finds `name` in `PATH` the way execvp does; a name with a '/' is taken as it is.
  public static func findExecutable(_ name: String, path: String?) -> String? {
    if name.contains("/") { return isExecutable(name) ? name : nil }
    for dir in (path ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(separator: ":") {
      let candidate = "\(dir)/\(name)"
      if isExecutable(candidate) { return candidate }
    }
    return nil
  }
}
