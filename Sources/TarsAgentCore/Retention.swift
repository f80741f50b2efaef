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

/// A file under the log directory, as retention judges it.
public struct LogFile: Sendable, Equatable {
  public var path: String
  /// `App.Server`: the two directories the file is in (tarsnode writes `<App>/<Server>/…`, under
  /// `<namespace>/<pod>/` when pods share the node's log directory), or "" nearer the root.
  public var server: String
  public var bytes: Int64
  /// Modification time, seconds since the epoch.
  public var modified: Int64
  /// Device and inode: what open descriptors are compared by.
  public var id: FileID
}

/// One deletion and why: what the agent logs for every file it removes.
public struct Deletion: Sendable, Equatable {
  /// Which rule deleted it (what the metrics count by).
  public enum Rule: String, Sendable, CaseIterable { case age, size, pressure }
  public var file: LogFile
  public var rule: Rule
  public var reason: String
}

public enum Retention {
  /// Every file under `root` whose name matches a pattern.
  public static func scan(_ root: String, patterns: [String]) -> [LogFile] {
    var out: [LogFile] = []
    func walk(_ dir: String, _ depth: Int, _ parts: [String]) {
      for name in Files.list(dir) {
        let path = dir + "/" + name
        var st = stat()
        guard lstat(path, &st) == 0 else { continue }
        if st.st_mode & S_IFMT == S_IFDIR {
          if depth < 16 { walk(path, depth + 1, parts + [name]) }
        } else if st.st_mode & S_IFMT == S_IFREG, patterns.contains(where: { glob($0, name) }) {
          out.append(
            LogFile(
              path: path, server: parts.count >= 2 ? parts.suffix(2).joined(separator: ".") : "",
              bytes: Int64(st.st_size),
              modified: Int64(st.st_mtim.tv_sec), id: FileID(st)))
        }
      }
    }
    walk(root, 0, [])
    return out
  }

  /// The files to delete, oldest first within each rule, and why; never one in `open`.
  /// `free` is the file system's free bytes now (statvfs), for the pressure rule.
  public static func plan(
    _ files: [LogFile], policy: RetentionPolicy, now: Int64, free: Int64, open: Set<FileID>
  ) -> [Deletion] {
    var out: [Deletion] = []
    var gone: Set<String> = []
    let candidates = files.filter { !open.contains($0.id) }
      .sorted { ($0.modified, $0.path) < ($1.modified, $1.path) }
    if let maxAge = policy.maxAgeSeconds {
      for f in candidates where now - f.modified > maxAge {
        out.append(
          Deletion(file: f, rule: .age, reason: "older than \(maxAge) s (\((now - f.modified) / 86_400) days)"))
        gone.insert(f.path)
      }
    }
    if let limit = policy.maxBytesPerServer {
      var total: [String: Int64] = [:]
      for f in files where !gone.contains(f.path) { total[f.server, default: 0] += f.bytes }
      for f in candidates where !gone.contains(f.path) && !f.server.isEmpty && total[f.server]! > limit {
        out.append(
          Deletion(
            file: f, rule: .size, reason: "\(f.server) keeps \(total[f.server]!) bytes, over \(limit) per server"))
        total[f.server]! -= f.bytes
        gone.insert(f.path)
      }
    }
    if let minFree = policy.minFreeBytes {
      var available = free + out.reduce(0) { $0 + $1.file.bytes }
      for f in candidates where !gone.contains(f.path) && available < minFree {
        out.append(
          Deletion(file: f, rule: .pressure, reason: "disk pressure: \(available) bytes free, below \(minFree)"))
        available += f.bytes
        gone.insert(f.path)
      }
    }
    return out
  }

  /// Deletes (unless `dryRun`), each with a log line; those deleted (all of them in a dry run).
  @discardableResult
  public static func apply(_ deletions: [Deletion], dryRun: Bool, log: (String) -> Void) -> [Deletion] {
    var done: [Deletion] = []
    for d in deletions {
      if dryRun {
        log("retention: would delete \(d.file.path) (\(d.file.bytes) bytes): \(d.reason)")
        done.append(d)
        continue
      }
      if unlink(d.file.path) == 0 {
        done.append(d)
        log("retention: deleted \(d.file.path) (\(d.file.bytes) bytes): \(d.reason)")
      } else {
        log("retention: cannot delete \(d.file.path): \(String(cString: strerror(errno)))")
      }
    }
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
