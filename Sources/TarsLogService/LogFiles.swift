import Foundation
import Synchronization

/// The files of the log service under one root, bounded by age and by size per server.
///
/// Writes append to the current file of each target through descriptors kept open (at most
/// `maxOpenFiles`, least recently used closed first), so a steady stream costs one `write` per
/// report. Each server's folder has a byte budget: when a write would pass it, that server's
/// oldest files go first; when only the file being written is left and it is full, the lines
/// are dropped and counted rather than grow the disk without end. Files not written for
/// `retentionDays` are deleted by `prune`. Every deletion is logged with its reason.
public final class LogFiles: Sendable {
  public struct Limits: Sendable {
    /// Files not written for this many days are deleted.
    public var retentionDays = 7
    /// Bytes kept per server (all its files); beyond, its oldest files are deleted.
    public var maxBytesPerServer: Int64 = 1 << 30
    /// A longer line is refused (TarsCpp's tarslog refuses trace lines over 1,000,000 bytes).
    public var maxLineBytes = 1_000_000
    public var maxOpenFiles = 128
    public init() {}
  }

  /// What the service did, for `/metrics`.
  public struct Counters: Sendable, Equatable {
    public var lines = 0
    public var bytes: Int64 = 0
    public var droppedLines = 0
    public var longLines = 0
    public var writeErrors = 0
    public var deletedForAge = 0
    public var deletedForSize = 0
    public var freedBytes: Int64 = 0
  }

  public let root: String
  public let limits: Limits
  let log: @Sendable (String) -> Void
  let state = Mutex(State())

  struct State {
    /// Open descriptors by path relative to the root, with the time of their last write.
    var open: [String: (fd: Int32, used: Int64)] = [:]
    /// Bytes in each server folder (relative path), counted on its first write.
    var sizes: [String: Int64] = [:]
    /// Servers whose lines are being dropped (logged once until a write succeeds again).
    var full: Set<String> = []
    var counters = Counters()
  }

  public init(root: String, limits: Limits = Limits(), log: @escaping @Sendable (String) -> Void = { _ in }) throws {
    self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
    self.limits = limits
    self.log = log
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
  }

  deinit {
    state.withLock { s in for (_, f) in s.open { close(f.fd) } }
  }

  public var counters: Counters { state.withLock { $0.counters } }

  /// Appends `lines` to `target`'s file for `time`, each after `prefix` and ending in a newline.
  public func write(_ lines: [String], to target: LogTarget, at time: Int64, prefix: String) {
    var data: [UInt8] = []
    var long = 0
    var count = 0
    for line in lines {
      guard line.utf8.count <= limits.maxLineBytes else {
        long += 1
        continue
      }
      data += prefix.utf8
      data += line.utf8
      if data.last != 0x0A { data.append(0x0A) }
      count += 1
    }
    let file = target.directory + "/" + target.fileName(at: time)
    state.withLock { s in
      s.counters.longLines += long
      guard !data.isEmpty else { return }
      guard makeRoom(Int64(data.count), in: target.directory, keeping: file, &s) else {
        s.counters.droppedLines += count
        if s.full.insert(target.directory).inserted {
          log(
            "log: \(target.server) is at its \(limits.maxBytesPerServer) bytes (--max-bytes-per-server) with only the current file left; dropping its lines until the next file"
          )
        }
        return
      }
      s.full.remove(target.directory)
      guard let fd = descriptor(for: file, directory: target.directory, at: time, &s) else {
        s.counters.writeErrors += 1
        return
      }
      let written = data.withUnsafeBytes { buffer -> Int in
        var done = 0
        while done < buffer.count {
          let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
          if n < 0, errno == EINTR { continue }
          if n <= 0 { break }
          done += n
        }
        return done
      }
      s.sizes[target.directory, default: 0] += Int64(written)
      if written < data.count {
        s.counters.writeErrors += 1
        log("log: cannot write \(file): \(String(cString: strerror(errno)))")
      } else {
        s.counters.lines += count
        s.counters.bytes += Int64(written)
      }
    }
  }

  /// True when `bytes` more fit in `directory`'s budget, after deleting its oldest files
  /// other than `keeping` as needed.
  func makeRoom(_ bytes: Int64, in directory: String, keeping: String, _ s: inout State) -> Bool {
    if s.sizes[directory] == nil {
      s.sizes[directory] = files(in: directory).reduce(0) { $0 + $1.size }
    }
    guard s.sizes[directory]! + bytes > limits.maxBytesPerServer else { return true }
    for f in files(in: directory) where directory + "/" + f.name != keeping {
      remove(directory + "/" + f.name, size: f.size, reason: "over --max-bytes-per-server", &s)
      s.counters.deletedForSize += 1
      s.sizes[directory]! -= f.size
      if s.sizes[directory]! + bytes <= limits.maxBytesPerServer { return true }
    }
    return false
  }

  func descriptor(for file: String, directory: String, at time: Int64, _ s: inout State) -> Int32? {
    if let open = s.open[file] {
      s.open[file] = (open.fd, time)
      return open.fd
    }
    do {
      try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
    } catch {
      log("log: cannot make \(root)/\(directory): \(error)")
      return nil
    }
    let fd = open(root + "/" + file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
    guard fd >= 0 else {
      log("log: cannot open \(root)/\(file): \(String(cString: strerror(errno)))")
      return nil
    }
    if s.open.count >= limits.maxOpenFiles, let oldest = s.open.min(by: { $0.value.used < $1.value.used }) {
      close(oldest.value.fd)
      s.open[oldest.key] = nil
    }
    s.open[file] = (fd, time)
    return fd
  }

  func remove(_ file: String, size: Int64, reason: String, _ s: inout State) {
    if let open = s.open.removeValue(forKey: file) { close(open.fd) }
    if unlink(root + "/" + file) == 0 {
      s.counters.freedBytes += size
      log("log: deleted \(file) (\(size) bytes): \(reason)")
    }
  }

  /// Deletes the files not written for `retentionDays`, closes descriptors idle for five
  /// minutes (the last period's files), and recounts each server's bytes. Returns the files
  /// deleted.
  @discardableResult
  public func prune(now: Int64) -> Int {
    let cutoff = now - Int64(limits.retentionDays) * 86_400
    return state.withLock { s in
      for (file, f) in s.open where now - f.used > 300 {
        close(f.fd)
        s.open[file] = nil
      }
      var deleted = 0
      s.sizes = [:]
      for directory in serverDirectories() {
        var size: Int64 = 0
        for f in files(in: directory) {
          if f.modified < cutoff {
            remove(directory + "/" + f.name, size: f.size, reason: "older than \(limits.retentionDays) days", &s)
            s.counters.deletedForAge += 1
            deleted += 1
          } else {
            size += f.size
          }
        }
        s.sizes[directory] = size
      }
      return deleted
    }
  }

  /// Every folder holding files: `app/server` and `app/set/server`.
  func serverDirectories() -> [String] {
    var out: [String] = []
    for app in entries(root) where isDirectory(root + "/" + app) {
      for second in entries(root + "/" + app) where isDirectory(root + "/" + app + "/" + second) {
        let path = app + "/" + second
        if files(in: path).isEmpty == false { out.append(path) }
        for third in entries(root + "/" + path) where isDirectory(root + "/" + path + "/" + third) {
          out.append(path + "/" + third)
        }
      }
    }
    return out
  }

  /// The regular files directly in `directory` (relative), oldest first.
  func files(in directory: String) -> [RemoteFile] {
    entries(root + "/" + directory).compactMap { name -> RemoteFile? in
      var st = stat()
      guard lstat(root + "/" + directory + "/" + name, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
      return RemoteFile(name: name, size: Int64(st.st_size), modified: Int64(st.st_mtim.tv_sec))
    }.sorted { ($0.modified, $0.name) < ($1.modified, $1.name) }
  }

  func entries(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
  }

  func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
  }

  /// A file kept for a server, named relative to its app's folder.
  public struct RemoteFile: Sendable, Equatable {
    public var name: String
    public var size: Int64
    public var modified: Int64
  }

  /// The files kept for `app.server` (in its folder and in each set's), oldest first, named
  /// relative to the app's folder.
  public func list(app: String, server: String) throws(LogRequestError) -> [RemoteFile] {
    try LogTarget.check(app, "app")
    try LogTarget.check(server, "server")
    var out: [RemoteFile] = []
    for entry in entries(root + "/" + app) {
      let folder = entry == server ? server : entry + "/" + server
      guard isDirectory(root + "/" + app + "/" + folder) else { continue }
      out += files(in: app + "/" + folder).map {
        RemoteFile(name: folder + "/" + $0.name, size: $0.size, modified: $0.modified)
      }
    }
    return out.sorted { ($0.modified, $0.name) < ($1.modified, $1.name) }
  }

  /// The last `maxBytes` of a file `list` named, from the first whole line.
  public func tail(app: String, server: String, name: String, maxBytes: Int) throws(LogRequestError) -> String {
    try LogTarget.check(app, "app")
    try LogTarget.check(server, "server")
    let parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    guard (2...3).contains(parts.count), parts[parts.count - 2] == server else {
      throw LogRequestError("name '\(name)' is not one of \(app).\(server)'s files: tarsctl logs --remote lists them")
    }
    for p in parts { try LogTarget.check(p, "name") }
    let path = root + "/" + app + "/" + name
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else {
      throw LogRequestError("no file \(name) for \(app).\(server): tarsctl logs --remote lists them")
    }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { throw LogRequestError("\(name) is not a file") }
    let start = max(0, Int64(st.st_size) - Int64(maxBytes))
    var bytes = [UInt8](repeating: 0, count: Int(Int64(st.st_size) - start))
    let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
    guard n >= 0 else { throw LogRequestError("cannot read \(name): \(String(cString: strerror(errno)))") }
    var text = bytes.prefix(n)
    if start > 0, let newline = text.firstIndex(of: 0x0A) { text = text[(newline + 1)...] }
    return String(decoding: text, as: UTF8.self)
  }
}
