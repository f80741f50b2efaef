import Dispatch
import Foundation
import Synchronization
import TarsProtocol
import TarsRPC

/// Runs blocking `body` (a socket read or write that may wait for seconds) on a thread of its
/// own and returns its result. Blocking on Swift concurrency's pool instead takes one of its
/// threads (two on a 2-core machine) from every other test running meanwhile.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
  await withCheckedContinuation { continuation in
    Thread.detachNewThread { continuation.resume(returning: body()) }
  }
}

/// Our POSIX Tars server on its own event-loop thread, for tests that need a real peer.
public final class LoopServer: @unchecked Sendable {
  public let loop: TarsEventLoop
  public let server: TarsServer
  let done = DispatchSemaphore(value: 0)
  var stopped = false

  public init(
    servants: [String: any TarsDispatcher & Sendable], host: String = "127.0.0.1", port: Int = 0,
    options: TarsServer.Options = .init()
  ) throws {
    loop = try TarsEventLoop()
    server = try TarsServer(
      loop: loop, endpoint: TarsEndpoint(host: host, port: port, timeout: 60000), servants: servants, options: options)
    let loop = self.loop
    let done = self.done
    Thread.detachNewThread {
      loop.run()
      done.signal()
    }
  }

  public var port: Int { server.port }

  /// Runs `body` on the server's loop and returns its result.
  public func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
    let result = Mutex<T?>(nil)
    let sem = DispatchSemaphore(value: 0)
    loop.execute {
      let value = body()
      result.withLock { $0 = value }
      sem.signal()
    }
    sem.wait()
    return result.withLock { $0! }
  }

  /// The number of connections the server holds.
  public var connectionCount: Int {
    let server = UncheckedBox(server)
    return onLoop { server.value.connectionCount }
  }

  public func stop() {
    guard !stopped else { return }
    stopped = true
    loop.stop()
    done.wait()
    server.close()
  }
}

public struct UncheckedBox<T>: @unchecked Sendable {
  public let value: T
  public init(_ value: T) { self.value = value }
}

/// The executables this package builds, run as real processes.
public enum Tool {
  public struct Output: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
  }

  /// A product built next to the test bundle (`swift build` builds them all).
  public static func path(_ name: String) -> String {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
  }

  /// Runs a program to completion and captures its output.
  public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws
    -> Output
  {
    let path = executable.hasPrefix("/") ? executable : Self.path(executable)
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw TarsServantError("\(path) is missing: build it with `swift build` before running the tests")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let stdout = Mutex(Data())
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
      let data = out.fileHandleForReading.readDataToEndOfFile()
      stdout.withLock { $0 = data }
      group.leave()
    }
    let e = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return Output(
      status: p.terminationStatus, stdout: String(decoding: stdout.withLock { $0 }, as: UTF8.self),
      stderr: String(decoding: e, as: UTF8.self))
  }
}

/// A fresh directory under /tmp, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
  public let path: String

  public init(_ prefix: String = "tars-test") throws {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      throw POSIXError(.EACCES)
    }
    path = String(cString: made)
  }

  public func remove() { try? FileManager.default.removeItem(atPath: path) }

  public func file(_ name: String) -> String { path + "/" + name }
}

/// The next port `freePort` tries; each test process starts at its own offset so parallel runs rarely meet.
private let nextPort = Atomic<Int>(20_000 + Int(getpid() % 400) * 30)

/// A TCP port that was free a moment ago, for a program under test to bind.
///
/// Taken below the kernel's ephemeral range (32768–60999 by default): a port the kernel hands out
/// (bind to 0) is free again the moment it is released, and another test's outgoing connection can
/// take it before the program under test binds it — CI saw exactly that. Ports below the range are
/// only ever taken by an explicit bind, and the candidates are handed out once per process.
public func freePort() -> Int {
  while true {
    let candidate = 20_000 + (nextPort.add(1, ordering: .relaxed).oldValue - 20_000) % 12_000
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(candidate).bigEndian)
    let bound = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
      }
    }
    close(fd)
    if bound { return candidate }
  }
}

/// A TCP listener that holds a port, so a test can see what a program says when it is taken.
public struct ListeningSocket: Sendable {
  public let fd: Int32
  public let port: Int

  /// Listens on `host:port` (port 0: any free one).
  public init(host: String = "127.0.0.1", port: Int = 0) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    self.fd = fd
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr(host)
    addr.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
        bind(fd, p, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, p, &len) == 0
      }
    }
    guard ok else {
      Glibc.close(fd)
      throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EADDRINUSE)
    }
    self.port = Int(UInt16(bigEndian: addr.sin_port))
  }

  public func close() { Glibc.close(fd) }
}

/// A test's own failure, with what went wrong.
public struct TestFailure: Error, CustomStringConvertible {
  public var description: String
  public init(_ d: String) { description = d }
}
