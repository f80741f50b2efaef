import CTarsAgent

/// systemd's service protocol, through libsystemd: READY=1 once the agent serves, WATCHDOG=1
/// on every pass of its loop. Without systemd (no `NOTIFY_SOCKET`: a DaemonSet pod, a shell)
/// each call is a no-op that says so by returning 0.
public enum Systemd {
  /// Sends `state` (`READY=1`, `WATCHDOG=1`, `STATUS=…`); 1 sent, 0 no systemd, < 0 -errno.
  @discardableResult
  public static func notify(_ state: String) -> Int32 { ctars_sd_notify(state) }

  /// How often systemd expects WATCHDOG=1 (`WatchdogSec=`), nil when it does not.
  public static var watchdogMicroseconds: UInt64? {
    let usec = ctars_sd_watchdog_usec()
    return usec == 0 ? nil : usec
  }
}
