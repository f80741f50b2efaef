import Foundation
import TarsTestSupport
import Testing

/// tarsnode as a real PID 1, in a PID namespace of its own (`unshare --pid --fork --mount-proc`).
@Suite("tarsnode as PID 1", .enabled(if: canUnshare, "needs root and unshare(1) for PID namespaces"))
struct PID1Tests {
  @Test func reapsAnOrphanBurst() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    // 20 orphans: each subshell exits at once, its sleep is re-parented to PID 1 and exits
    // 0.2 s later. After 1 s, count the zombies in the namespace.
    let script = """
      for i in $(seq 20); do (sleep 0.2 &); done
      sleep 1
      z=0
      for s in /proc/[0-9]*/stat; do case "$(cut -d' ' -f3 "$s" 2>/dev/null)" in Z) z=$((z+1));; esac; done
      echo "zombies=$z pid=$$"
      """
    let node = try NodeProcess(["--", "sh", "-c", script], asPID1: true, dir: dir)
    defer { node.terminate() }
    #expect(node.wait(seconds: 20) == 0)
    #expect(node.stdout.contains("zombies=0 pid=2"), "\(node.stdout) \(node.stderr)")
  }

  @Test func forwardsSignalsAndExitsWithTheServersStatus() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let script = """
      for s in HUP QUIT USR1 USR2 WINCH INT; do trap "echo got $s" $s; done
      trap 'echo got TERM; exit 7' TERM
      echo ready
      while :; do sleep 0.05; done
      """
    let node = try NodeProcess(["--", "sh", "-c", script], asPID1: true, dir: dir)
    defer { node.terminate() }
    #expect(eventually { node.stdout.contains("ready") })
    for (sig, name) in [
      (SIGHUP, "HUP"), (SIGQUIT, "QUIT"), (SIGUSR1, "USR1"), (SIGUSR2, "USR2"), (SIGWINCH, "WINCH"), (SIGINT, "INT"),
    ] {
      node.signal(sig)
      #expect(eventually(5) { node.stdout.contains("got \(name)") }, "\(name) did not arrive: \(node.stdout)")
    }
    node.signal(SIGTERM)
    #expect(node.wait(seconds: 10) == 7, "tarsnode exits with the server's status")
    #expect(node.stdout.contains("got TERM"))
  }

  @Test(arguments: [("exit 42", Int32(42)), ("kill -KILL $$", 137), ("kill -SEGV $$", 139), ("exit 0", 0)])
  func exitStatusesPropagate(_ script: String, _ expected: Int32) throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let node = try NodeProcess(["--", "sh", "-c", script], asPID1: true, dir: dir)
    defer { node.terminate() }
    #expect(node.wait(seconds: 10) == expected)
  }

  @Test func aServerThatIgnoresSIGTERMIsKilledAtTheEndOfTheGrace() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let node = try NodeProcess(
      ["--grace", "1", "--", "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"], asPID1: true,
      dir: dir)
    defer { node.terminate() }
    #expect(eventually { node.stdout.contains("ready") })
    let start = Date()
    node.signal(SIGTERM)
    #expect(node.wait(seconds: 10) == 137)
    #expect(Date().timeIntervalSince(start) >= 0.9)
  }

  @Test func theChildGetsACleanSignalState() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    // tarsnode blocks and ignores signals itself; none of that may reach the server.
    let node = try NodeProcess(["--", "sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"], asPID1: true, dir: dir)
    defer { node.terminate() }
    #expect(node.wait(seconds: 10) == 0)
    #expect(node.stdout.contains("SigBlk:\t0000000000000000"), "\(node.stdout)")
    #expect(node.stdout.contains("SigIgn:\t0000000000000000"), "\(node.stdout)")
  }

  @Test func aStoppingTarsServerGetsAdminShutdownFirst() throws {
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let node = try NodeProcess(pod.arguments(), asPID1: true, dir: pod.dir)
    defer { node.terminate() }
    #expect(eventually { pod.state()?.present == "Active" }, "\(node.stderr)")
    node.signal(SIGTERM)
    #expect(node.wait(seconds: 10) == 0)
    let log =
      (try? String(contentsOfFile: pod.dir.file("logs/Test/HelloServer/Test.HelloServer.stdout.log"), encoding: .utf8))
      ?? ""
    #expect(log.contains("shutdown requested through AdminObj"), "\(log)\n\(node.stderr)")
  }
}

@Suite("Signals to the process group", .enabled(if: canUnshare, "needs root and unshare(1) for PID namespaces"))
struct SignalGroupTests {
  @Test(arguments: [true, false])
  func signalsReachTheWholeGroupOnlyWhenAsked(_ group: Bool) throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let inner = "trap 'echo grandchild got USR1' USR1; echo ready; while :; do sleep 0.05; done"
    let script = "trap 'echo child got USR1' USR1; sh -c \"\(inner)\" & while :; do sleep 0.05; done"
    let node = try NodeProcess((group ? ["--signal-group"] : []) + ["--", "sh", "-c", script], asPID1: true, dir: dir)
    defer { node.terminate() }
    #expect(eventually { node.stdout.contains("ready") })
    node.signal(SIGUSR1)
    #expect(eventually(5) { node.stdout.contains("child got USR1") })
    usleep(300_000)
    #expect(node.stdout.contains("grandchild got USR1") == group, "\(node.stdout)")
  }
}
