import CTarsSys
import Glibc
import TarsRPC

/// The pipe the server's stdout and stderr share, drained on the event loop into `OutputLog`.
/// One pipe for both keeps their lines in the order the server wrote them. tarsnode keeps the
/// write end, so every restart of the server writes into the same pipe.
final class OutputCapture {
  let loop: TarsEventLoop
  let log: OutputLog
  let readFD: Int32
  /// Given to the server as its fds 1 and 2.
  let writeFD: Int32
  var held: [UInt8]?
  var paused = false
  var dropping = false
  /// Never zero-filled, so only the part reads reach is resident.
  let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

  init(loop: TarsEventLoop, log: OutputLog) throws(SpawnError) {
    var fds: [Int32] = [0, 0]
    guard ctars_pipe_cloexec(&fds) == 0 else {
      throw SpawnError("cannot create the output pipe: \(String(cString: strerror(errno)))")
    }
    readFD = fds[0]
    writeFD = fds[1]
    _ = ctars_set_nonblocking(readFD)
    self.loop = loop
    self.log = log
    log.start()
    do {
      try loop.register(fd: readFD, events: .readable) { [unowned self] _ in self.drain() }
    } catch {
      throw SpawnError("cannot watch the output pipe: \(error)")
    }
  }

  deinit { buffer.deallocate() }

  func drain() {
    while !paused {
      let n = read(readFD, buffer.baseAddress, buffer.count)
      if n <= 0 {
        if n < 0 && errno == EINTR { continue }
        return  // EAGAIN, or EOF (we hold the write end, so only at exit)
      }
      offer(Array(UnsafeRawBufferPointer(rebasing: buffer[0..<n])))
    }
  }

  /// Queues a chunk; when the writer is behind, keeps it and stops reading until there is room.
  func offer(_ chunk: [UInt8]) {
    switch log.append(chunk) {
    case .queued:
      if dropping {
        dropping = false
        printError("tarsnode: the output log is being written again")
      }
    case .dropped:
      if !dropping {
        dropping = true
        printError(
          "tarsnode: the output log is not being written (disk stalled or full): server output is dropped until it is")
      }
    case .full:
      held = chunk
      paused = true
      loop.modify(fd: readFD, events: [])
      loop.schedule(afterMilliseconds: 20) { [weak self] in self?.retry() }
    }
  }

  func retry() {
    guard let chunk = held else { return }
    switch log.append(chunk) {
    case .full:
      loop.schedule(afterMilliseconds: 20) { [weak self] in self?.retry() }
    case .queued, .dropped:
      held = nil
      paused = false
      loop.modify(fd: readFD, events: .readable)
      drain()
    }
  }

  /// Reads what is left in the pipe and lets the writer finish.
  func finish() {
    if let chunk = held {
      _ = log.append(chunk)
      held = nil
    }
    paused = false
    drain()
    log.finish()
    if log.droppedBytes > 0 {
      printError("tarsnode: \(log.droppedBytes) bytes of server output were dropped (disk stalled or full)")
    }
  }
}
