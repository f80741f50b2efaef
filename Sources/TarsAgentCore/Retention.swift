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
  /// Names the rules apply to (`*` matches anything, `?` one character); others are never touched.
  public var patterns = ["*.log", "*.log.*", "core.*", "*.stdout.log*"]

  public init() {}
}

/// A file under the log directory, as retention judges it. A pass holds one of these for every
/// file under the directory, so each is kept small: the directory (and the server it stands
/// for) is shared by the files in it, and the path is made when asked for.
public struct LogFile: Sendable, Equatable {
  public var directory: LogDirectory
  public var name: String
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
    l.directory.path == r.directory.path && l.name == r.name && l.bytes == r.bytes && l.modified == r.modified
      && l.id == r.id
  }
}

/// A directory holding log files, once for all of them.
public final class LogDirectory: Sendable {
  public let path: String
  /// The server its files belong to (see `LogFile.server`).
  public let server: String

  init(path: String, server: String) {
    self.path = path
    self.server = server
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
  /// Every file under `root` whose name matches a pattern.
  public static func scan(_ root: String, patterns: [String]) -> [LogFile] {
    var out: [LogFile] = []
    func walk(_ dir: String, _ depth: Int, _ parts: [String]) {
      let directory = LogDirectory(path: dir, server: parts.count >= 2 ? parts.suffix(2).joined(separator: ".") : "")
      for name in Files.list(dir) {
        let path = dir + "/" + name
        var st = stat()
        guard lstat(path, &st) == 0 else { continue }
        if st.st_mode & S_IFMT == S_IFDIR {
          if depth < 16 { walk(path, depth + 1, parts + [name]) }
        } else if st.st_mode & S_IFMT == S_IFREG, patterns.contains(where: { glob($0, name) }) {
          out.append(
            LogFile(
              directory: directory, name: name, bytes: Int64(st.st_size),
              modified: Int64(st.st_mtim.tv_sec), id: FileID(st)))
        }
      }
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
      .sorted {
        (files[$0].modified, files[$0].directory.path, files[$0].name)
          < (files[$1].modified, files[$1].directory.path, files[$1].name)
      }
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

  /// `*` and `?` globbing, as the shell matches a file name.
  static func glob(_ pattern: String, _ name: String) -> Bool {
    fnmatch(pattern, name, 0) == 0
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
