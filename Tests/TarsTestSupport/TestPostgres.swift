import Foundation
import Synchronization

/// A throwaway PostgreSQL server from Debian's packages (`scripts/setup` installs `postgresql`):
/// `initdb` in a temporary directory, `pg_ctl start` on a free loopback port with trust
/// authentication for the user `tars`, one per test process, stopped and removed when the
/// process exits. As root it runs as the `postgres` user (PostgreSQL refuses root). Each test
/// makes a database of its own (`database()`).
public final class TestPostgres: Sendable {
  public let port: Int
  let directory: String
  let runAs: [String]
  let bin: String

  /// The server, started on first use; nil (with the reason) when this machine has none.
  public static let shared: Result<TestPostgres, TestFailure> = {
    do {
      return .success(try TestPostgres())
    } catch let e as TestFailure {
      return .failure(e)
    } catch {
      return .failure(TestFailure("\(error)"))
    }
  }()
  /// Every server this process started, stopped and removed at its exit (with a shell and
  /// waitpid: Foundation may be half gone by then).
  static let started: Mutex<[(directory: String, command: String)]> = {
    atexit {
      for (_, command) in TestPostgres.started.withLock({ $0 }) {
        if let pid = try? Spawned.start(["/bin/sh", "-c", command]) {
          var status: Int32 = 0
          waitpid(pid, &status, 0)
        }
      }
    }
    return Mutex([])
  }()

  /// A server of the caller's own, for a test that stops it (stop it with `stop()`; its
  /// directory goes when the process exits).
  public static func own() throws -> TestPostgres { try TestPostgres() }

  init() throws {
    let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
    guard let version = versions.compactMap({ Int($0) }).max() else {
      throw TestFailure("no PostgreSQL in /usr/lib/postgresql: install Debian's postgresql (scripts/setup does)")
    }
    bin = "/usr/lib/postgresql/\(version)/bin"
    let dir = try TemporaryDirectory("tars-postgres")
    directory = dir.path
    port = freePort()
    if getuid() == 0 {
      runAs = ["/usr/sbin/runuser", "-u", "postgres", "--"]
      let chown = try Tool.run("/bin/chown", ["postgres", directory])
      guard chown.status == 0 else { throw TestFailure("chown postgres \(directory): \(chown.stderr)") }
    } else {
      runAs = []
    }
    let stop = (runAs + [bin + "/pg_ctl", "-D", directory + "/data", "-m", "immediate", "stop"]).joined(separator: " ")
    let cleanup = "\(stop) >/dev/null 2>&1; rm -rf \(directory)"
    Self.started.withLock { $0.append((directory, cleanup)) }
    try run([bin + "/initdb", "-D", directory + "/data", "-A", "trust", "-U", "tars", "--no-sync", "-E", "UTF8"])
    try start()
  }

  /// Runs `argv` as the server's user; fails with its output. `daemon`: through a wrapper that
  /// closes every descriptor above 2 first — the server outlives the call, and a pipe of this
  /// process it inherited (this call's, or another test's) would never see its end.
  func run(_ argv: [String], daemon: Bool = false) throws {
    let closing = [
      "/usr/bin/python3", "-c",
      "import os, sys; os.closerange(3, os.sysconf('SC_OPEN_MAX')); os.execv(sys.argv[1], sys.argv[1:])",
    ]
    let all = (daemon ? closing : []) + runAs + argv
    let out = try Tool.run(all[0], Array(all.dropFirst()))
    guard out.status == 0 else {
      throw TestFailure("\(argv.joined(separator: " ")) failed: \(out.stderr)\(out.stdout)")
    }
  }

  /// A new, empty database for one test; its name.
  public func database() throws -> String {
    let name = "t\(UInt32.random(in: 0..<UInt32.max))"
    let out = try Tool.run(
      "/usr/bin/psql",
      ["-h", "127.0.0.1", "-p", "\(port)", "-U", "tars", "-d", "postgres", "-c", "CREATE DATABASE \(name)"])
    guard out.status == 0 else { throw TestFailure("CREATE DATABASE \(name): \(out.stderr)") }
    return name
  }

  /// Stops the server, as a database that goes away: `fast` ends every connection and keeps
  /// what was committed (`immediate`, a crash, may lose the last commits: the server runs
  /// without synchronous commits, for speed).
  public func stop(mode: String = "fast") throws {
    try run([bin + "/pg_ctl", "-D", directory + "/data", "-m", mode, "stop"])
  }

  /// Starts it (again) on the same port and waits until it takes connections.
  public func start() throws {
    try run(
      [
        bin + "/pg_ctl", "-D", directory + "/data", "-w", "-l", directory + "/log", "-o",
        "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off", "start",
      ], daemon: true)
  }
}
