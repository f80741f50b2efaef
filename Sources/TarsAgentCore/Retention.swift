import Glibc
import TarsRPC

/// What the log directory may keep. Each rule deletes oldest first; a file some process has
/// open for writing is never deleted (a server's current log, tarsnode's stdout copy).
public struct RetentionPolicy: Sendable, Equatable {
  /// Files older than this (by modification time) go.
  public var maxAgeSeconds: Int64?
  /// Each server's files together (`<root>/<App>/<Server>/…`) above this: its oldest go.
  public var maxBytesPerServer: Int64?
  /// Free space of the file system below this: the oldest files anywhere go until it is above.
  public var minFreeBytes: Int64?
  /// Names the rules apply to, as the shell matches them (fnmatch: `*` anything, `?` one
  /// character); others are never touched.
  public var patterns = ["*.log", "*.log.*", "core.*", "*.stdout.log*"]

  public init() {}
}

/// A file under the log directory, as retention judges it. A pass holds one of these for every
/// file under the directory, so each is kept small: 48 bytes and no allocation of its own. The
/// directory (and the server it stands for) is shared by the files in it, so is one buffer of
/// their names, and the path is made when asked for.
public struct LogFile: Sendable, Equatable {
  public var directory: LogDirectory
  /// Where the name is in `directory.names`.
  var nameStart: UInt32
  var nameCount: UInt16
  public var name: String { String(decoding: nameBytes, as: UTF8.self) }
  var nameBytes: ArraySlice<UInt8> { directory.names[Int(nameStart)..<Int(nameStart) + Int(nameCount)] }
  public var path: String { directory.path + "/" + name }
  /// `App.Server`: the two directories the file is in (tarsnode writes `<App>/<Server>/…`, under
  /// `<namespace>/<pod>/` when pods share the node's log directory), or "" nearer the root.
  public var server: String { directory.server }
  public var bytes: Int64
  /// Modification time, seconds since the epoch.
  public var modified: Int64
  /// Device and inode: what open descriptors are compared by.
  public var id: FileID

  public static func == (l: LogFile, r: LogFile) -> Bool {
    l.directory.path == r.directory.path && l.nameBytes == r.nameBytes && l.bytes == r.bytes
      && l.modified == r.modified && l.id == r.id
  }

  /// Oldest first; files of the same age by path, so a plan is the same from pass to pass.
  static func older(_ l: LogFile, _ r: LogFile) -> Bool {
    if l.modified != r.modified { return l.modified < r.modified }
    if l.directory !== r.directory { return l.directory.path < r.directory.path }
    return l.nameBytes.lexicographicallyPrecedes(r.nameBytes)
  }
}

/// A directory holding log files, once for all of them.
public final class LogDirectory: Sendable {
  public let path: String
  /// The server its files belong to (see `LogFile.server`).
  public let server: String
  /// Its files' names one after another (UTF-8), each found by `LogFile.nameStart`: one
  /// allocation, not a string each.
  let names: [UInt8]

  init(path: String, server: String, names: [UInt8]) {
    self.path = path
    self.server = server
    self.names = names
  }
}

/// One deletion and why: what the agent logs for every file it removes. The reason's text is
/// made when it is logged, from the two figures kept here: a pass over 10,000 files plans
/// thousands of deletions, and a string each would be most of the agent's peak memory.
public struct Deletion: Sendable, Equatable {
  /// Which rule deleted it (what the metrics count by).
  public enum Rule: String, Sendable, CaseIterable { case age, size, pressure }
  public var file: LogFile
  public var rule: Rule
  /// age: the limit and the file's age (seconds); size: the server's bytes and the limit;
  /// pressure: the free bytes and the floor.
  var figures: (Int64, Int64)

  init(file: LogFile, rule: Rule, _ first: Int64, _ second: Int64) {
    self.file = file
    self.rule = rule
    self.figures = (first, second)
  }

  public var reason: String {
    let (a, b) = figures
    switch rule {
    case .age: return "older than \(a) s (\(b / 86_400) days)"
    case .size: return "\(file.server) keeps \(a) bytes, over \(b) per server"
    case .pressure: return "disk pressure: \(a) bytes free, below \(b)"
    }
  }

  public static func == (l: Deletion, r: Deletion) -> Bool {
    l.file == r.file && l.rule == r.rule && l.figures == r.figures
  }
}

public enum Retention {
  /// Every file under `root` whose name matches a pattern. Reads each directory with readdir and
  /// fstatat on the entry's own name, so the names are copied once, into the directory's buffer.
  public static func scan(_ root: String, patterns: [String]) -> [LogFile] {
    var out: [LogFile] = []
    func walk(_ path: String, _ depth: Int, _ parts: [String]) {
      guard let dir = opendir(path) else { return }
      var names: [UInt8] = []
      var found: [(start: Int, count: Int, bytes: Int64, modified: Int64, id: FileID)] = []
      var subdirectories: [String] = []
      while let entry = readdir(dir) {
        withUnsafeBytes(of: entry.pointee.d_name) { raw in
          let name = raw.prefix { $0 != 0 }
          guard !name.elementsEqual(".".utf8), !name.elementsEqual("..".utf8) else { return }
          var st = stat()
          let cName = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
          guard fstatat(dirfd(dir), cName, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
          if st.st_mode & S_IFMT == S_IFDIR {
            if depth < 16 { subdirectories.append(String(decoding: name, as: UTF8.self)) }
          } else if st.st_mode & S_IFMT == S_IFREG, patterns.contains(where: { fnmatch($0, cName, 0) == 0 }) {
            found.append((names.count, name.count, Int64(st.st_size), Int64(st.st_mtim.tv_sec), FileID(st)))
            names.append(contentsOf: name)
          }
        }
      }
      closedir(dir)
      if !found.isEmpty {
        let directory = LogDirectory(
          path: path, server: parts.count >= 2 ? parts.suffix(2).joined(separator: ".") : "", names: names)
        for f in found {
          out.append(
            LogFile(
              directory: directory, nameStart: UInt32(f.start), nameCount: UInt16(f.count),
              bytes: f.bytes, modified: f.modified, id: f.id))
        }
      }
      for name in subdirectories.sorted() { walk(path + "/" + name, depth + 1, parts + [name]) }
    }
    walk(root, 0, [])
    return out
  }

  /// The files to delete, oldest first within each rule, and why; never one in `open`.
  /// `free` is the file system's free bytes now (statvfs), for the pressure rule. Works on
  /// indices into `files` (8 bytes a file, not a copy of each), since `files` may be 10,000 long.
  public static func plan(
    _ files: [LogFile], policy: RetentionPolicy, now: Int64, free: Int64, open: Set<FileID>
  ) -> [Deletion] {
    var out: [Deletion] = []
    var gone = [Bool](repeating: false, count: files.count)
    let candidates = files.indices.filter { !open.contains(files[$0].id) }
      .sorted { LogFile.older(files[$0], files[$1]) }
    out.reserveCapacity(candidates.count)  // one allocation, not a doubling's two at once
    if let maxAge = policy.maxAgeSeconds {
      for i in candidates where now - files[i].modified > maxAge {
        out.append(Deletion(file: files[i], rule: .age, maxAge, now - files[i].modified))
        gone[i] = true
      }
    }
    if let limit = policy.maxBytesPerServer {
      var total: [String: Int64] = [:]
      for i in files.indices where !gone[i] { total[files[i].server, default: 0] += files[i].bytes }
      for i in candidates where !gone[i] && !files[i].server.isEmpty && total[files[i].server]! > limit {
        out.append(Deletion(file: files[i], rule: .size, total[files[i].server]!, limit))
        total[files[i].server]! -= files[i].bytes
        gone[i] = true
      }
    }
    if let minFree = policy.minFreeBytes {
      var available = free + out.reduce(0) { $0 + $1.file.bytes }
      for i in candidates where !gone[i] && available < minFree {
        out.append(Deletion(file: files[i], rule: .pressure, available, minFree))
        available += files[i].bytes
        gone[i] = true
      }
    }
    return out
  }

  /// Deletes (unless `dryRun`), each with a log line; those deleted (all of them in a dry run).
  @discardableResult
  public static func apply(_ deletions: [Deletion], dryRun: Bool, log: (String) -> Void) -> [Deletion] {
    // Usually every one goes: the result shares `deletions`' storage unless one fails.
    var failed: [Int] = []
    for (i, d) in deletions.enumerated() {
      if dryRun {
        log("retention: would delete \(d.file.path) (\(d.file.bytes) bytes): \(d.reason)")
      } else if unlink(d.file.path) == 0 {
        log("retention: deleted \(d.file.path) (\(d.file.bytes) bytes): \(d.reason)")
      } else {
        log("retention: cannot delete \(d.file.path): \(String(cString: strerror(errno)))")
        failed.append(i)
      }
    }
    guard !failed.isEmpty else { return deletions }
    var done = deletions
    for i in failed.reversed() { done.remove(at: i) }
    return done
  }

  /// Free bytes of the file system holding `path` (for unprivileged users, as df shows them).
  public static func freeBytes(_ path: String) -> Int64? {
    var s = statvfs()
    guard statvfs(path, &s) == 0 else { return nil }
    return Int64(s.f_bavail) * Int64(s.f_frsize)
  }
}

/// A file by device and inode: what open descriptors are compared by.
public struct FileID: Hashable, Sendable {
  public var device: UInt64
  public var inode: UInt64
  public init(device: UInt64, inode: UInt64) {
    self.device = device
    self.inode = inode
  }

  init(_ st: stat) { self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) }
}

extension Proc {
  /// Every file some process has open for writing (`/proc/PID/fdinfo` flags with O_WRONLY or
  /// O_RDWR), by device and inode.
  public func openForWriting() -> Set<FileID> {
    var out: Set<FileID> = []
    for pid in pids() {
      let dir = "\(root)/\(pid)/fd"
      for fd in Files.list(dir) {
        guard let info = try? Files.readText("\(root)/\(pid)/fdinfo/\(fd)"),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags:") }),
          let flags = Int(String(line.dropFirst(6).filter { !$0.isWhitespace }), radix: 8),
          flags & Int(O_ACCMODE) != Int(O_RDONLY)
        else { continue }
        var st = stat()
        guard stat("\(dir)/\(fd)", &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
        out.insert(FileID(st))
      }
    }
    return out
  }
}
