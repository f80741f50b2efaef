import CTarsSys
import Glibc
import TarsProtocol

/// Why a connection ended.
enum CloseReason: Sendable {
  case peerClosed
  case local
  case idle
  case failed(SystemError)
  case connectFailed(SystemError)
  case badFrame(TarsFrameError)
  case badPacket(TarsDecodeError)
}

/// One TCP connection carrying Tars frames on an event loop: reads until the socket is dry,
/// cuts frames, buffers what the socket cannot take yet, and stops reading from a peer that
/// does not read its replies (so a slow client cannot grow our memory without bound).
final class FramedConnection {
  static let pauseReadingAbove = 4 * 1024 * 1024

  let loop: TarsEventLoop
  let fd: Int32
  let peer: SocketAddress
  var splitter: TarsFrameSplitter
  var outbound: [UInt8] = []
  var outboundOffset = 0
  var connecting: Bool
  private(set) var closed = false
  var registered = false
  var interest: TarsEventLoop.Events = []
  /// The peer as servants see it, formatted once.
  lazy var tarsPeer = TarsPeer(host: peer.host, port: peer.port)
  /// Monotonic nanoseconds of the last byte received or sent.
  var lastActivity = TarsEventLoop.now()

  var onConnected: (() -> Void)?
  var onFrame: (([UInt8]) -> Void)?
  var onClose: ((CloseReason) -> Void)?

  init(loop: TarsEventLoop, fd: Int32, peer: SocketAddress, connecting: Bool, maxFrameLength: Int) {
    self.loop = loop
    self.fd = fd
    self.peer = peer
    self.connecting = connecting
    splitter = TarsFrameSplitter(maxFrameLength: maxFrameLength)
  }

  func start() throws(SystemError) {
    interest = connecting ? [.writable] : [.readable]
    try loop.register(fd: fd, events: interest) { [unowned self] events in self.handle(events) }
    registered = true
  }

  var pendingOutput: Int { outbound.count - outboundOffset }

  func updateInterest() {
    guard !closed else { return }
    var wanted: TarsEventLoop.Events = []
    if connecting {
      wanted = [.writable]
    } else {
      if pendingOutput < Self.pauseReadingAbove { wanted.insert(.readable) }
      if pendingOutput > 0 { wanted.insert(.writable) }
    }
    if wanted != interest {
      interest = wanted
      loop.modify(fd: fd, events: wanted)
    }
  }

  /// Queues bytes and writes as much as the socket takes now.
  func send(_ bytes: [UInt8]) {
    guard !closed else { return }
    if pendingOutput == 0 {
      outbound = bytes
      outboundOffset = 0
    } else {
      outbound.append(contentsOf: bytes)
    }
    if !connecting { flush() }
  }

  func flush() {
    while pendingOutput > 0 {
      let n = outbound.withUnsafeBytes { buf in
        Glibc.send(fd, buf.baseAddress! + outboundOffset, pendingOutput, Int32(MSG_NOSIGNAL))
      }
      if n > 0 {
        outboundOffset += n
        lastActivity = TarsEventLoop.now()
        continue
      }
      let e = ctars_errno()
      if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { break }
      if n < 0 && e == EINTR { continue }
      close(.failed(SystemError("send to \(peer)", errno: e)))
      return
    }
    if pendingOutput == 0 {
      outbound.removeAll(keepingCapacity: outbound.capacity <= 64 * 1024)
      outboundOffset = 0
    } else if outboundOffset > 1024 * 1024 {
      outbound.removeSubrange(0..<outboundOffset)
      outboundOffset = 0
    }
    updateInterest()
  }

  func handle(_ events: TarsEventLoop.Events) {
    if connecting {
      guard !events.isDisjoint(with: [.writable, .error, .hangup]) else { return }
      let error = Socket.pendingError(fd)
      if error != 0 {
        close(.connectFailed(SystemError("connect to \(peer)", errno: error)))
        return
      }
      connecting = false
      lastActivity = TarsEventLoop.now()
      onConnected?()
      flush()
      return
    }
    if !events.isDisjoint(with: [.readable, .hangup, .error]) { readAvailable() }
    if !closed && events.contains(.writable) { flush() }
  }

  func readAvailable() {
    while !closed {
      let buffer = loop.readBuffer
      let n = recv(fd, buffer.baseAddress, buffer.count, 0)
      if n > 0 {
        lastActivity = TarsEventLoop.now()
        splitter.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        deliverFrames()
        if n < buffer.count { return }
        continue
      }
      if n == 0 {
        close(.peerClosed)
        return
      }
      let e = ctars_errno()
      if e == EAGAIN || e == EWOULDBLOCK { return }
      if e == EINTR { continue }
      close(.failed(SystemError("recv from \(peer)", errno: e)))
      return
    }
  }

  func deliverFrames() {
    while !closed {
      do {
        guard let body = try splitter.next() else { return }
        onFrame?(body)
      } catch {
        close(.badFrame(error))
        return
      }
    }
  }

  func close(_ reason: CloseReason) {
    guard !closed else { return }
    closed = true
    if registered { loop.unregister(fd: fd) }
    Glibc.close(fd)
    let handler = onClose
    onConnected = nil
    onFrame = nil
    onClose = nil
    handler?(reason)
  }
}

/// Carries a loop-confined object into a `@Sendable` closure that only touches it back on its
/// loop (checked by the caller through `TarsEventLoop.inEventLoop` / `execute`).
struct LoopBound<T>: @unchecked Sendable {
  let value: T
}
