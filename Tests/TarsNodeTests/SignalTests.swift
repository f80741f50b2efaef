import Foundation
import TarsTestSupport
import Testing

/// Every signal an init forwards reaches the server exactly once, and none kills tarsnode: in
/// plain init and server mode, as PID 1 of a PID namespace and as a subreaper. Not forwarded:
/// SIGCHLD (tarsnode's own), 32 and 33 (the C library's own; tarsnode survives them), and the
/// synchronous signals, which stay fatal to tarsnode as in tini.
@Suite("Signal forwarding", .serialized)
struct SignalForwardingTests {
  /// The signals sent one by one before the last, stopping one (TERM or INT).
  static let forwarded: [Int32] = {
    let notForwarded: Set<Int32> = [
      SIGKILL, SIGSTOP, SIGCHLD, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGTERM, SIGINT,
    ]
    return (1...31).filter { !notForwarded.contains($0) } + Array(34...64)
  }()

  /// A child that catches every signal it can and records each on its own line; the stopping
  /// signals (TERM, INT) are recorded and end it with status 0.
  static let recorder = """
    import os, signal, sys, time
    out = open(sys.argv[1], "a", buffering=1)
    def got(n, frame):
        out.write("got %d\\n" % n)
        if n in (signal.SIGTERM, signal.SIGINT):
            sys.exit(0)
    for n in signal.valid_signals():
        if n not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(n, got)
    out.write("ready %d\\n" % os.getpid())
    while True:
        time.sleep(1)
    """

  struct Case: CustomStringConvertible, Sendable {
    var serverMode: Bool
    var asPID1: Bool
    var stop: Int32
    var description: String {
      "\(serverMode ? "server" : "plain") mode, \(asPID1 ? "PID 1" : "subreaper"), stopped by \(stop == SIGTERM ? "TERM" : "INT")"
    }
  }

  @Test(
    arguments: [
      Case(serverMode: false, asPID1: false, stop: SIGINT), Case(serverMode: true, asPID1: false, stop: SIGTERM),
    ])
  func eachSignalReachesTheChildExactlyOnce(_ c: Case) throws { try check(c) }

  @Test(
    .enabled(if: canUnshare, "needs root and unshare(1) for PID namespaces"),
    arguments: [
      Case(serverMode: false, asPID1: true, stop: SIGTERM), Case(serverMode: true, asPID1: true, stop: SIGINT),
    ])
  func eachSignalReachesTheChildExactlyOnceAsPID1(_ c: Case) throws { try check(c) }

  func check(_ c: Case) throws {
    let pod = try TestPod(adapters: false)
    defer { pod.dir.remove() }
    let script = pod.dir.file("recorder.py")
    let record = pod.dir.file("record")
    try Self.recorder.write(toFile: script, atomically: true, encoding: .utf8)
    let arguments =
      c.serverMode
      ? pod.arguments(["--server-type", "not-tars", "--command", "python3 \(script) \(record)"])
      : ["--", "python3", script, record]
    let node = try NodeProcess(arguments, asPID1: c.asPID1, dir: pod.dir)
    defer { node.terminate() }
    func lines() -> [String] {
      ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
    try #require(eventually(15) { lines().first?.hasPrefix("ready") == true }, "\(node.stderr)")
    for sig in Self.forwarded {
      node.signal(sig)
      let arrived = eventually(5) { lines().contains("got \(sig)") }
      #expect(arrived, "signal \(sig) did not reach the child (\(c)): \(node.stderr)")
      #expect(node.process.isRunning, "tarsnode died of signal \(sig) (\(c)): \(node.stderr)")
      if !arrived || !node.process.isRunning { return }
    }
    // Not for the child: SIGCHLD, and the C library's 32 and 33 (a python child has no handler
    // for those and would die of one). tarsnode and the child live on.
    for sig: Int32 in [SIGCHLD, 32, 33] { node.signal(sig) }
    usleep(300_000)
    #expect(node.process.isRunning, "tarsnode survives SIGCHLD, 32 and 33 (\(c)): \(node.stderr)")
    node.signal(c.stop)
    #expect(node.wait(seconds: 15) == 0, "tarsnode exits with the child's status 0 (it was alive): \(node.stderr)")
    let expected = ["got \(c.stop)"]
    #expect(Array(lines().dropFirst()) == Self.forwarded.map { "got \($0)" } + expected, "each exactly once, in order")
  }
}

/// The synchronous signals keep their default action: a tarsnode that really faulted must die,
/// not loop on the fault, and a sent one is not passed on as if the server had faulted.
@Suite("Synchronous signals")
struct SynchronousSignalTests {
  @Test(arguments: [SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS])
  func stayFatalToTarsnode(_ sig: Int32) throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let record = dir.file("record")
    try SignalForwardingTests.recorder.write(toFile: dir.file("recorder.py"), atomically: true, encoding: .utf8)
    // The debug build's Swift backtracer catches a SEGV or BUS, prints a report and returns when
    // the signal was sent rather than faulted; the static tarsnode that ships has none.
    var environment = ProcessInfo.processInfo.environment
    environment["SWIFT_BACKTRACE"] = "enable=no"
    let node = try NodeProcess(
      ["--", "python3", dir.file("recorder.py"), record], environment: environment, dir: dir)
    var child: Int32?
    defer {
      if let child { kill(child, SIGKILL) }
      node.terminate()
    }
    func lines() -> [String] {
      ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
    try #require(eventually(15) { lines().first?.hasPrefix("ready") == true })
    child = lines().first.flatMap { Int32($0.split(separator: " ").last ?? "") }
    node.signal(sig)
    #expect(node.wait(seconds: 10) != nil, "tarsnode died of signal \(sig)")
    #expect(node.process.terminationReason == .uncaughtSignal && node.process.terminationStatus == sig)
    usleep(200_000)
    #expect(lines().count == 1, "signal \(sig) was not passed to the child: \(lines())")
  }
}

/// `tarsnode -- bash -i` on a terminal (`docker run -it image bash`): the shell gets the
/// terminal as its foreground process group, so job control works — Ctrl-Z stops a job, the
/// shell takes the terminal back, `fg`/`kill %1` reach it.
@Suite("An interactive shell under tarsnode")
struct InteractiveShellTests {
  static let driver = """
    import os, pty, select, sys, time
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.argv[1], sys.argv[1:])
    seen = b""
    def expect(text, seconds=10, fatal=True):
        global seen
        deadline = time.time() + seconds
        while time.time() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                seen += data
                if text.encode() in seen:
                    return True
        if not fatal:
            return False
        print("TIMEOUT waiting for %r" % text)
        print(seen.decode(errors="replace"))
        sys.exit(3)
    def say(text):
        os.write(fd, text.encode())
    say("echo TTY=$(tty) FLAGS=$- FG=$(awk '{print ($5 == $8)}' /proc/$$/stat)\\n")
    expect("FG=1")
    say("sleep 30\\n")
    # Ctrl-Z until the job is stopped: on a busy machine the sleep may not have started yet, and
    # a Ctrl-Z at the prompt is ignored by the shell.
    for attempt in range(20):
        time.sleep(0.3)
        say("\\x1a")
        if expect("Stopped", 0.5, fatal=False):
            break
    else:
        expect("Stopped", 0.1)
    say("kill -KILL %1; wait %1; echo done-$((6*7))\\n")
    expect("done-42")
    # A shell that still counts a stopped job answers the first exit with "There are stopped
    # jobs": say it again then. Never wait without a deadline.
    say("exit 5\\n")
    deadline = time.time() + 10
    status = None
    agains = 0
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                pass
            if seen.count(b"There are stopped jobs") > agains:
                agains += 1
                say("exit 5\\n")
    else:
        os.kill(pid, 9)
        print("TIMEOUT waiting for the shell to exit")
        print(seen.decode(errors="replace"))
        sys.exit(4)
    print(seen.decode(errors="replace"))
    print("EXIT=%d" % os.waitstatus_to_exitcode(status))
    """

  @Test func getsItsTerminalAndJobControl() throws { try check(asPID1: false) }

  @Test(.enabled(if: canUnshare, "needs root and unshare(1) for PID namespaces"))
  func getsItsTerminalAndJobControlAsPID1() throws { try check(asPID1: true) }

  func check(asPID1: Bool) throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try Self.driver.write(toFile: dir.file("driver.py"), atomically: true, encoding: .utf8)
    let command =
      (asPID1 ? ["/usr/bin/unshare", "--pid", "--fork", "--mount-proc"] : [])
      + [Tool.path("tarsnode"), "--", "bash", "--norc", "--noprofile", "-i"]
    let out = try Tool.run("/usr/bin/python3", [dir.file("driver.py")] + command)
    #expect(out.stdout.contains("EXIT=5"), "\(out.stdout)\n\(out.stderr)")
    #expect(out.stdout.contains("TTY=/dev/pts/"), "\(out.stdout)")
    #expect(out.stdout.range(of: #"FLAGS=\S*m"#, options: .regularExpression) != nil, "job control on: \(out.stdout)")
    #expect(!out.stdout.contains("no job control"), "\(out.stdout)")
    #expect(!out.stdout.contains("cannot set terminal process group"), "\(out.stdout)")
  }
}
