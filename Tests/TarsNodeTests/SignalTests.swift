import Foundation
import TarsTestSupport
import Testing

/// Every signal an init forwards reaches the server exactly once, and none kills tarsnode: in
/// plain init and server mode, as PID 1 of a PID namespace and as a subreaper. Only SIGCHLD
/// (tarsnode's own) and the synchronous signals (fatal to tarsnode, as in tini) are not
/// forwarded; 32 and 33 are glibc's own and no program can catch them.
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
        if n not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
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

  static let cases: [Case] = [
    Case(serverMode: false, asPID1: true, stop: SIGTERM), Case(serverMode: false, asPID1: false, stop: SIGINT),
    Case(serverMode: true, asPID1: true, stop: SIGINT), Case(serverMode: true, asPID1: false, stop: SIGTERM),
  ]

  @Test(arguments: cases)
  func eachSignalReachesTheChildExactlyOnce(_ c: Case) throws {
    if c.asPID1 && !canUnshare {
      print("SKIPPED eachSignalReachesTheChildExactlyOnce(\(c)): PID 1 needs root and unshare(1)")
      return
    }
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
    node.signal(c.stop)
    #expect(node.wait(seconds: 15) == 0, "tarsnode exits with the child's status 0: \(node.stderr)")
    let expected = ["got \(c.stop)"]
    #expect(Array(lines().dropFirst()) == Self.forwarded.map { "got \($0)" } + expected, "each exactly once, in order")
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
    def expect(text, seconds=10):
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
        print("TIMEOUT waiting for %r" % text)
        print(seen.decode(errors="replace"))
        sys.exit(3)
    def say(text):
        os.write(fd, text.encode())
    say("echo TTY=$(tty) FLAGS=$- FG=$(awk '{print ($5 == $8)}' /proc/$$/stat)\\n")
    expect("FG=1")
    say("sleep 30\\n")
    time.sleep(0.5)
    say("\\x1a")
    expect("Stopped")
    say("kill %1; wait; echo done-$((6*7))\\n")
    expect("done-42")
    say("exit 5\\n")
    _, status = os.waitpid(pid, 0)
    print(seen.decode(errors="replace"))
    print("EXIT=%d" % os.waitstatus_to_exitcode(status))
    """

  @Test(arguments: [false, true])
  func getsItsTerminalAndJobControl(_ asPID1: Bool) throws {
    if asPID1 && !canUnshare {
      print("SKIPPED getsItsTerminalAndJobControl as PID 1: needs root and unshare(1)")
      return
    }
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
