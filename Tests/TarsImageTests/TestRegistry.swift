import Dispatch
import Foundation
import Glibc
import TarsImage
import TarsTestSupport

/// Debian's docker-registry (distribution 2.8) on loopback with htpasswd (bcrypt) auth and its
/// storage in a temporary directory: the real registry the push tests talk to. Stoppable and
/// restartable on the same storage, to interrupt a push.
final class TestRegistry: @unchecked Sendable {
  static let binary = "/usr/bin/docker-registry"
  static let htpasswd = "/usr/bin/htpasswd"
  static var available: Bool {
    FileManager.default.isExecutableFile(atPath: binary) && FileManager.default.isExecutableFile(atPath: htpasswd)
  }

  let dir: TemporaryDirectory
  let port: Int
  let username = "tars"
  let password = "registry-pass-\(UInt32.random(in: 0...UInt32.max))"
  var pid: pid_t = 0

  init() throws {
    dir = try TemporaryDirectory("tars-registry")
    port = freePort()
    let entry = try Tool.run(Self.htpasswd, ["-Bbn", username, password])
    guard entry.status == 0 else { throw ImageError("htpasswd: \(entry.stderr)") }
    try entry.stdout.write(toFile: dir.file("htpasswd"), atomically: true, encoding: .utf8)
    // A fixed secret: upload sessions survive a restart, as a registry's do in production.
    try """
    version: 0.1
    log: {level: error}
    storage:
      filesystem: {rootdirectory: \(dir.file("data"))}
      delete: {enabled: true}
    http:
      addr: 127.0.0.1:\(port)
      secret: tars-test-secret
    auth:
      htpasswd: {realm: tars-test, path: \(dir.file("htpasswd"))}
    """.write(toFile: dir.file("config.yml"), atomically: true, encoding: .utf8)
    try start()
  }

  var host: String { "127.0.0.1:\(port)" }
  var credentials: RegistryCredentials { RegistryCredentials(username: username, password: password) }

  /// Spawned with posix_spawn and reaped with waitpid by its pid (see `Spawned`).
  func start() throws {
    pid = try Spawned.start([Self.binary, "serve", dir.file("config.yml")])
    let deadline = Date().addingTimeInterval(10)
    while Date() < deadline {
      if (try? RawSocket(port: port)) != nil { return }
      usleep(50_000)
    }
    throw ImageError("docker-registry did not listen on \(host)")
  }

  /// Kills it outright (as a crash or a node loss would; SIGTERM waits for connections to drain).
  func stop() {
    Spawned.kill(pid)
    pid = 0
  }

  /// `stop()` and `start()` from async code: on a GCD thread, so their waits never hold one of
  /// Swift concurrency's few threads (a push in flight needs them).
  func stopped() async {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      DispatchQueue.global().async {
        self.stop()
        c.resume()
      }
    }
  }

  func started() async throws {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
      DispatchQueue.global().async {
        do {
          try self.start()
          c.resume()
        } catch {
          c.resume(throwing: error)
        }
      }
    }
  }

  func options() -> RegistryClient.Options {
    var o = RegistryClient.Options()
    o.plainHTTP = true
    o.credentials = credentials
    return o
  }

  /// The tags the registry lists for `repository`.
  func tags(_ repository: String) throws -> [String] {
    let r = try Tool.run(
      "/usr/bin/skopeo",
      ["list-tags", "--tls-verify=false", "--creds", "\(username):\(password)", "docker://\(host)/\(repository)"])
    guard r.status == 0 else { return [] }
    let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
    return json?["Tags"] as? [String] ?? []
  }

  deinit {
    stop()
    dir.remove()
  }
}

/// Child processes by pid, with posix_spawn, kill and waitpid: Foundation's `Process` in a test
/// run full of other suites' children was seen signalling the wrong pid (its `terminate()` took
/// the whole test process down), so the image tests manage their servers themselves.
enum Spawned {
  static func start(_ argv: [String]) throws -> pid_t {
    var cArgs = argv.map { strdup($0) } + [nil]
    defer { for a in cArgs { free(a) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var child: pid_t = 0
    let rc = posix_spawn(&child, argv[0], &actions, nil, &cArgs, environ)
    guard rc == 0, child > 0 else { throw ImageError("cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
    return child
  }

  /// SIGKILL and reap; nothing for a pid of 0 or less (never a process group).
  static func kill(_ pid: pid_t) {
    guard pid > 0 else { return }
    Glibc.kill(pid, SIGKILL)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
  }
}
