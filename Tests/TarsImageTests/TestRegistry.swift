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
  var process: Process?

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

  func start() throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Self.binary)
    p.arguments = ["serve", dir.file("config.yml")]
    p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    p.standardError = FileHandle(forWritingAtPath: "/dev/null")
    try p.run()
    process = p
    let deadline = Date().addingTimeInterval(10)
    while Date() < deadline {
      if (try? RawSocket(port: port)) != nil { return }
      usleep(50_000)
    }
    throw ImageError("docker-registry did not listen on \(host)")
  }

  /// Kills it outright (as a crash or a node loss would; SIGTERM waits for connections to drain).
  func stop() {
    guard let p = process, p.isRunning else { return }
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    process = nil
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
