import CTarsSys
import Glibc

/// Plain init mode at its leanest — `tarsnode [--grace S] [--signal-group] -- COMMAND` — for
/// the images that only want a PID 1 (tini's and dumb-init's job): spawn, forward signals, reap,
/// exit with the command's status. It waits in `poll` on the signalfd with no timer until a stop
/// begins, and touches as little code as it can, so tarsnode is as light as tini here. Anything
/// more (--restart, output logs, ids, capabilities) goes through the full supervisor.
enum PlainInit {
  /// The options this path handles, read straight from argv (no Array or String work: what
  /// this path does not touch stays out of memory); nil when the full supervisor is needed.
  static func lean() -> (grace: Int32, group: Bool, command: Int)? {
    let argv = CommandLine.unsafeArgv
    let argc = Int(CommandLine.argc)
    var grace: Int32 = 25
    var group = false
    var i = 1
    while i < argc, let arg = argv[i] {
      if strcmp(arg, "--") == 0 { return i + 1 < argc ? (grace, group, i + 1) : nil }
      if strcmp(arg, "--signal-group") == 0 {
        group = true
      } else if strcmp(arg, "--grace") == 0, i + 1 < argc, let value = argv[i + 1] {
        let v = atoi(value)
        guard v >= 1 && v <= 3600 else { return nil }
        grace = v
        i += 1
      } else {
        return nil
      }
      i += 1
    }
    return nil
  }

  /// Runs argv[command...] to its end and returns tarsnode's exit status.
  static func run(command first: Int, grace: Int32, group: Bool, signalFD: Int32) -> Int32 {
    let argv = CommandLine.unsafeArgv
    var command: [String] = []
    for i in first..<Int(CommandLine.argc) { command.append(String(cString: argv[i]!)) }
    var request = SpawnRequest(path: command[0], arguments: command, environment: nil)
    request.searchPath = true
    request.foreground = true
    request.noNewPrivileges = false
    let child: pid_t
    do {
      child = try Spawner.spawn(request)
    } catch {
      printError("tarsnode: \(error.message)")
      return error.notFound ? 127 : 126
    }
    let target = group ? -child : child
    var killAt: Int64 = -1  // ms on the monotonic clock, once a stop began
    var fds = [pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0)]
    while true {
      var timeout: Int32 = -1
      if killAt >= 0 { timeout = Int32(clamping: max(0, killAt - monotonicMs())) }
      let ready = poll(&fds, 1, timeout)
      if ready == 0 {
        kill(-child, SIGKILL)
        kill(child, SIGKILL)
        killAt = -1
        continue
      }
      var own: Int32 = 0
      while true {
        let sig = ctars_read_signal_from(signalFD, &own)
        if sig == 0 { break }
        if own != 0 { continue }
        if sig == SIGCHLD {
          var status: Int32 = 0
          while true {
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            if pid == child { return ExitStatus(waitStatus: status).shellCode }
          }
          continue
        }
        kill(target, sig)
        if (sig == SIGTERM || sig == SIGINT) && killAt < 0 { killAt = monotonicMs() + Int64(grace) * 1000 }
      }
    }
  }

  static func monotonicMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
  }
}
