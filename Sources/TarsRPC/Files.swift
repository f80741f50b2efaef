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
