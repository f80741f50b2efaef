import Glibc
import Synchronization

/// The server's stdout and stderr, written by a thread of their own into a size-rotated log
/// file (and, if asked, copied to tarsnode's stdout for `kubectl logs`):
///
/// - Only whole lines go into a file; rotation happens between lines, so no line is ever split
///   across two files, whatever block sizes the server writes in.
/// - The event loop only queues what it reads from the pipe. While the writer keeps up nothing
///   is lost: a full queue makes the loop pause reading, and the server waits on the pipe.
/// - A full disk (ENOSPC) or a writer stalled for longer than `stallMs` turns to dropping and
///   counting, so the server is never held up beyond the pipe and the queue.
public final class OutputLog: @unchecked Sendable {
  public let path: String
  public let maxBytes: Int
  public let files: Int
  public let copyToStdout: Bool
  public let queueLimit: Int
  public let stallMs: Int

  struct Shared {
    var queue: [[UInt8]] = []
    var queuedBytes = 0
    var closing = false
    var dropped = 0
    /// Monotonic ms of the writer's last completed batch.
    var lastProgressMs: UInt64 = 0
    var writerBusy = false
  }

  let shared = Mutex(Shared())
  var wakeup = sem_t()
  var finished = sem_t()
  var fd: Int32 = -1
  var size = 0
  var partial: [UInt8] = []
  /// Bytes the writer could not write since it last said so.
  var unreportedDrops = 0
  let maxLine = 1 << 20

  public init(
    path: String, maxBytes: Int, files: Int, copyToStdout: Bool, queueLimit: Int = 8 << 20, stallMs: Int = 2000
  ) {
    self.path = path
    self.maxBytes = maxBytes
    self.files = max(1, files)
    self.copyToStdout = copyToStdout
    self.queueLimit = queueLimit
    self.stallMs = stallMs
    sem_init(&wakeup, 0, 0)
    sem_init(&finished, 0, 0)
  }

  deinit {
    sem_destroy(&wakeup)
    sem_destroy(&finished)
    if fd >= 0 { close(fd) }
  }

  /// Bytes dropped because the disk was full or stalled.
  public var droppedBytes: Int { shared.withLock { $0.dropped } }

  static func nowMs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
  }

  /// Starts the writer thread. Opening the file happens there, so a stalled disk cannot hold
  /// up the caller either.
  public func start() {
    shared.withLock { $0.lastProgressMs = Self.nowMs() }
    runOnThread { [self] in writerLoop() }
  }

  public enum Accepted {
    case queued
    /// The queue is full and the writer is making progress: stop reading for a moment.
    case full
    /// The writer is stalled: the bytes were dropped (and counted).
    case dropped
  }

  /// Hands bytes read from the server's pipe to the writer. Called on the event loop.
  public func append(_ bytes: [UInt8]) -> Accepted {
    let now = Self.nowMs()
    let result: Accepted = shared.withLock { s in
      if s.queuedBytes + bytes.count <= queueLimit || s.queuedBytes == 0 {
        s.queue.append(bytes)
        s.queuedBytes += bytes.count
        return .queued
      }
      if now > s.lastProgressMs + UInt64(stallMs) {
        s.dropped += bytes.count
        return .dropped
      }
      return .full
    }
    if case .queued = result { sem_post(&wakeup) }
    return result
  }

  /// Whether the writer has room again (after `.full`).
  public var hasRoom: Bool { shared.withLock { $0.queuedBytes < queueLimit / 2 } }

  /// Writes what is queued (and the last partial line) and stops the writer; waits at most
  /// `timeoutMs`, since a stalled disk must not keep tarsnode from exiting.
  public func finish(timeoutMs: Int = 2000) {
    shared.withLock { $0.closing = true }
    sem_post(&wakeup)
    var deadline = timespec()
    clock_gettime(CLOCK_REALTIME, &deadline)
    deadline.tv_sec += timeoutMs / 1000
    deadline.tv_nsec += (timeoutMs % 1000) * 1_000_000
    if deadline.tv_nsec >= 1_000_000_000 {
      deadline.tv_sec += 1
      deadline.tv_nsec -= 1_000_000_000
    }
    while sem_timedwait(&finished, &deadline) != 0 && errno == EINTR {}
  }

  // MARK: Writer thread

  func writerLoop() {
    openCurrent()
    while true {
      sem_wait(&wakeup)
      let (batch, closing) = shared.withLock { s -> ([[UInt8]], Bool) in
        defer {
          s.queue.removeAll()
          s.queuedBytes = 0
        }
        return (s.queue, s.closing)
      }
      for chunk in batch { consume(chunk) }
      if closing {
        if !partial.isEmpty {
          emit(partial)
          partial = []
        }
        shared.withLock { $0.lastProgressMs = Self.nowMs() }
        sem_post(&finished)
        return
      }
      shared.withLock { $0.lastProgressMs = Self.nowMs() }
    }
  }

  /// Splits off whole lines; the rest waits for its newline (up to `maxLine`).
  func consume(_ chunk: [UInt8]) {
    guard let lastNewline = chunk.lastIndex(of: 10) else {
      partial += chunk
      if partial.count >= maxLine {
        emit(partial)
        partial = []
      }
      return
    }
    var lines = partial
    lines += chunk[...lastNewline]
    partial = Array(chunk[(lastNewline + 1)...])
    emit(lines)
  }

  /// Writes whole lines, rotating between them when the file would exceed `maxBytes`.
  func emit(_ lines: [UInt8]) {
    if copyToStdout { writeAll(1, lines[...]) }
    var start = 0
    while start < lines.count {
      // How much fits before the limit, cut at a line end; a single line longer than the
      // limit goes alone into a file.
      var end = lines.count
      if size + (end - start) > maxBytes {
        let room = maxBytes - size
        var cut = start
        var i = start
        while i < lines.count, i - start < room {
          if lines[i] == 10 { cut = i + 1 }
          i += 1
        }
        if cut == start {
          if size > 0 {
            rotate()
            continue
          }
          cut = lines[start...].firstIndex(of: 10).map { $0 + 1 } ?? lines.count
        }
        end = cut
      }
      writeToFile(lines[start..<end])
      start = end
      if size >= maxBytes && start < lines.count { rotate() }
    }
  }

  func writeToFile(_ bytes: ArraySlice<UInt8>) {
    if fd < 0 { openCurrent() }
    guard fd >= 0 else {
      note(dropped: bytes.count)
      return
    }
    if unreportedDrops > 0 {
      let message = Array(
        "tarsnode: dropped \(unreportedDrops) bytes of server output (disk full or not writable)\n".utf8)
      unreportedDrops = 0
      if writeAll(fd, message[...]) { size += message.count }
    }
    if writeAll(fd, bytes) {
      size += bytes.count
    } else {
      note(dropped: bytes.count)
    }
  }

  func note(dropped n: Int) {
    unreportedDrops += n
    shared.withLock { $0.dropped += n }
  }

  /// `path` → `path.1` → … → `path.<files-1>`; the oldest goes.
  func rotate() {
    if fd >= 0 { close(fd) }
    fd = -1
    if files > 1 {
      for i in stride(from: files - 1, to: 0, by: -1) {
        let from = i == 1 ? path : "\(path).\(i - 1)"
        rename(from, "\(path).\(i)")
      }
    } else {
      unlink(path)
    }
    openCurrent()
  }

  func openCurrent() {
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    var st = stat()
    size = fd >= 0 && fstat(fd, &st) == 0 ? Int(st.st_size) : 0
  }

  /// Writes everything or reports failure (ENOSPC and other errors).
  @discardableResult
  func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
    var offset = bytes.startIndex
    while offset < bytes.endIndex {
      let n = bytes.withUnsafeBytes { buf in
        Glibc.write(fd, buf.baseAddress! + (offset - bytes.startIndex), bytes.endIndex - offset)
      }
      if n < 0 {
        if errno == EINTR { continue }
        return false
      }
      offset += n
    }
    return true
  }
}

final class ThreadJob {
  let body: () -> Void
  init(_ body: @escaping () -> Void) { self.body = body }
}

/// Runs `body` on a new detached thread (pthreads; the signal mask is inherited, so blocked
/// signals stay with the event loop's signalfd).
func runOnThread(_ body: @escaping () -> Void) {
  var thread = pthread_t()
  let context = Unmanaged.passRetained(ThreadJob(body)).toOpaque()
  let rc = pthread_create(
    &thread, nil,
    { raw in
      Unmanaged<ThreadJob>.fromOpaque(raw!).takeRetainedValue().body()
      return nil
    }, context)
  if rc == 0 {
    pthread_detach(thread)
  } else {
    Unmanaged<ThreadJob>.fromOpaque(context).takeRetainedValue().body()
  }
}
