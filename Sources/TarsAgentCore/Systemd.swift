import CTarsAgent
import Glibc

/// systemd's service protocol, through libsystemd: READY=1 once the agent serves, WATCHDOG=1
/// on every pass of its loop. libsystemd is loaded only when systemd asks (see the shim).
/// Without systemd (no `NOTIFY_SOCKET`: a DaemonSet pod, a shell) each call is a no-op that says
/// so by returning 0.
public enum Systemd {
  /// Sends `state` (`READY=1`, `WATCHDOG=1`, `STATUS=…`); 1 sent, 0 no systemd, < 0 -errno.
  @discardableResult
  public static func notify(_ state: String) -> Int32 { ctars_sd_notify(state) }

  /// What to do when `notify` returned `result` < 0 under systemd; nil when it was sent.
  public static func problem(_ result: Int32) -> String? {
    guard result < 0 else { return nil }
    if result == -ELIBACC {
      return "NOTIFY_SOCKET is set but libsystemd.so.0 could not be loaded (the static build, made "
        + "for containers, loads none): install libsystemd0 and run the dynamically linked "
        + "tarsagent, or use Type=simple without WatchdogSec= in the unit"
    }
    return
      "systemd's notify socket refused READY=1 (errno \(-result)): check NOTIFY_SOCKET and the unit's NotifyAccess="
  }

  /// How often systemd expects WATCHDOG=1 (`WatchdogSec=`), nil when it does not.
  public static var watchdogMicroseconds: UInt64? {
    let usec = ctars_sd_watchdog_usec()
    return usec == 0 ? nil : usec
  }
}
