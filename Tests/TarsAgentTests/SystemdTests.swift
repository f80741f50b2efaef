import Foundation
import Glibc
import TarsAgentCore
import TarsTestSupport
import Testing

/// libsystemd's notifications: nothing without `NOTIFY_SOCKET`; READY=1 and WATCHDOG=1 on a
/// socket that stands in for systemd's.
@Suite("systemd notifications", .serialized)
struct SystemdTests {
  @Test func readyAndWatchdogArriveOnTheNotifySocketAndNothingHappensWithoutOne() throws {
    unsetenv("NOTIFY_SOCKET")
    #expect(Systemd.notify("READY=1") == 0, "no systemd: a no-op")
    #expect(Systemd.watchdogMicroseconds == nil)

    let dir = try TemporaryDirectory("notify")
    defer { dir.remove() }
    let path = dir.file("notify.sock")
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for (i, b) in path.utf8.enumerated() { raw[i] = b }
    }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    #expect(bound == 0)
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setenv("NOTIFY_SOCKET", path, 1)
    setenv("WATCHDOG_USEC", "30000000", 1)
    setenv("WATCHDOG_PID", "\(getpid())", 1)
    defer {
      unsetenv("NOTIFY_SOCKET")
      unsetenv("WATCHDOG_USEC")
      unsetenv("WATCHDOG_PID")
    }
    func received() -> String {
      var buffer = [UInt8](repeating: 0, count: 256)
      let n = recv(fd, &buffer, buffer.count, 0)
      return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }
    #expect(Systemd.notify("READY=1") == 1)
    #expect(received() == "READY=1")
    #expect(Systemd.notify("WATCHDOG=1") == 1)
    #expect(received() == "WATCHDOG=1")
    #expect(Systemd.watchdogMicroseconds == 30_000_000)
    // RTLD_NOLOAD: a handle only if it is loaded already.
    let loaded = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_NOLOAD)
    #expect(loaded != nil, "libsystemd is loaded once systemd asks")
    if let loaded { dlclose(loaded) }
  }

  @Test func aStaticBuildUnderSystemdSaysWhatToDo() {
    #expect(Systemd.problem(0) == nil && Systemd.problem(1) == nil)
    let problem = Systemd.problem(-ELIBACC) ?? ""
    #expect(problem.contains("libsystemd.so.0") && problem.contains("Type=simple"))
    #expect(Systemd.problem(-EPERM)?.contains("NotifyAccess=") == true)
  }
}
