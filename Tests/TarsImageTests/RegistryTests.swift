import Foundation
import Synchronization
import TarsImage
import TarsTestSupport
import Testing

/// Pushes and pulls against a real registry, checked with skopeo, the independent client.
@Suite(
  "Push and pull with a real registry", .serialized,
  .enabled(if: TestRegistry.available, "needs docker-registry and htpasswd (scripts/setup installs them)"))
struct RegistryTests {
  /// A package of `size` random bytes, built into `layout` as `tag`.
  func image(_ dir: TemporaryDirectory, size: Int, layout: String = "layout", tag: String = "t") throws -> ImageLayout {
    let top = dir.file("pkg/Big")
    try FileManager.default.createDirectory(atPath: top, withIntermediateDirectories: true)
    var g = SystemRandomNumberGenerator()
    try Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &g) }).write(
      to: URL(fileURLWithPath: top + "/Big"))
    let tar = try Tool.run("/usr/bin/tar", ["czf", dir.file("Big.tgz"), "-C", dir.file("pkg"), "Big"])
    guard tar.status == 0 else { throw ImageError(tar.stderr) }
    var b = ImageBuild()
    b.package = dir.file("Big.tgz")
    b.server = "Test.Big"
    b.serverType = "cpp"
    let l = try ImageLayout(path: dir.file(layout))
    _ = try b.build(into: l, tag: tag)
    return l
  }

  @Test func pushedImagesAreReadBySkopeoAndASecondPushUploadsNothing() async throws {
    let registry = try TestRegistry()
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let layout = try image(dir, size: 200_000)
    let client = try RegistryClient(options: registry.options())
    let ref = try ImageReference(parsing: "\(registry.host)/test/big:1")
    let events = Mutex<[RegistryClient.Event]>([])
    let digest = try await client.push(layout, tag: "t", to: ref) { e in events.withLock { $0.append(e) } }
    #expect(events.withLock { $0.filter { if case .uploaded = $0 { true } else { false } }.count } == 2)

    let creds = "\(registry.username):\(registry.password)"
    let inspect = try Tool.run(
      "/usr/bin/skopeo", ["inspect", "--tls-verify=false", "--creds", creds, "docker://\(ref)"])
    #expect(inspect.status == 0, "\(inspect.stderr)")
    #expect(inspect.stdout.contains(digest.description))
    let copy = try Tool.run(
      "/usr/bin/skopeo",
      ["copy", "--src-tls-verify=false", "--src-creds", creds, "docker://\(ref)", "oci:\(dir.file("copied")):c"])
    #expect(copy.status == 0, "skopeo pulls and verifies every blob: \(copy.stderr)")

    // Again, under another tag: every blob is found there, none is sent.
    events.withLock { $0 = [] }
    let again = try await client.push(layout, tag: "t", to: try ImageReference(parsing: "\(registry.host)/test/big:2"))
    {
      e in events.withLock { $0.append(e) }
    }
    #expect(again == digest)
    let second = events.withLock { $0 }
    #expect(second.allSatisfy { if case .uploaded = $0 { false } else { true } }, "\(second)")
    #expect(second.filter { if case .exists = $0 { true } else { false } }.count == 2)

    // Pulled back (as a build base is), the same image.
    let pulled = try await client.pull(ref, into: try ImageLayout(path: dir.file("pulled")), tag: "p")
    #expect(pulled == digest)
    await client.shutdown()
  }

  @Test func aLargeBlobGoesInChunksAndAStoppedRegistryIsResumedOrReported() async throws {
    let registry = try TestRegistry()
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let layout = try image(dir, size: 3 << 20)
    var options = registry.options()
    options.chunkSize = 256 << 10
    let client = try RegistryClient(options: options)
    let ref = try ImageReference(parsing: "\(registry.host)/test/chunked:1")
    // The registry stops after the second chunk and comes back a second later: the push goes
    // on from what the registry holds.
    let chunks = Counter()
    let restart = Task {
      while chunks.value < 2 { try await Task.sleep(for: .milliseconds(5)) }
      await registry.stopped()
      try await Task.sleep(for: .seconds(1))
      try await registry.started()
    }
    let digest = try await client.push(layout, tag: "t", to: ref) { e in
      if case .uploading = e { chunks.add() }
    }
    try await restart.value
    let inspect = try Tool.run(
      "/usr/bin/skopeo",
      ["inspect", "--tls-verify=false", "--creds", "\(registry.username):\(registry.password)", "docker://\(ref)"])
    #expect(inspect.status == 0 && inspect.stdout.contains(digest.description), "\(inspect.stderr)")

    // Stopped for good: a clear failure, and no manifest that points at a missing blob.
    let other = try image(dir, size: 2 << 20, layout: "other")
    options.attempts = 2
    // (A killed registry's pooled connection is noticed only at the request deadline.)
    options.timeout = .seconds(5)
    let failing = try RegistryClient(options: options)
    let lost = try ImageReference(parsing: "\(registry.host)/test/lost:1")
    let stopped = Task {
      while chunks.value < 14 { try await Task.sleep(for: .milliseconds(5)) }
      await registry.stopped()
    }
    chunks.set(10)
    let error = await #expect(throws: ImageError.self) {
      _ = try await failing.push(other, tag: "t", to: lost) { e in
        if case .uploading = e { chunks.add() }
      }
    }
    try await stopped.value
    #expect(
      error?.message.contains("cannot") == true && error?.message.contains("tried") == true, "\(error?.message ?? "")")
    try await registry.started()
    #expect(try registry.tags("test/lost").isEmpty, "no manifest was written")
    await client.shutdown()
    await failing.shutdown()
  }

  @Test(.needs("/usr/bin/openssl")) func httpsWithTheRegistrysOwnCA() async throws {
    let registry = try TestRegistry(tls: true)
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let layout = try image(dir, size: 50_000)
    let ref = try ImageReference(parsing: "\(registry.host)/test/tls:1")
    let client = try RegistryClient(options: registry.options())
    let digest = try await client.push(layout, tag: "t", to: ref)
    await client.shutdown()
    // skopeo trusts the same CA (a cert-dir of *.crt) and verifies the certificate as we did.
    try FileManager.default.createDirectory(atPath: dir.file("certs"), withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: registry.caFile, toPath: dir.file("certs/ca.crt"))
    let inspect = try Tool.run(
      "/usr/bin/skopeo",
      [
        "inspect", "--cert-dir", dir.file("certs"), "--creds", "\(registry.username):\(registry.password)",
        "docker://\(ref)",
      ])
    #expect(inspect.status == 0, "\(inspect.stderr)")
    #expect(inspect.stdout.contains(digest.description))

    // Without the CA the push stops at once and says what to pass; plain HTTP to it likewise fails.
    var untrusting = registry.options()
    untrusting.caFile = nil
    let other = try RegistryClient(options: untrusting)
    let started = ContinuousClock.now
    let error = await #expect(throws: ImageError.self) { try await other.push(layout, tag: "t", to: ref) }
    await other.shutdown()
    #expect(error?.message.contains("--ca-file") == true, "\(error?.message ?? "")")
    // (AsyncHTTPClient tries to connect until its 10 s connect timeout; ours adds no retries.)
    #expect(ContinuousClock.now - started < .seconds(15), "no retries for a certificate problem")
  }

  @Test(.needs("/usr/bin/openssl")) func bearerTokensFromATokenService() async throws {
    let registry = try TestRegistry(auth: .token)
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let layout = try image(dir, size: 50_000)
    let ref = try ImageReference(parsing: "\(registry.host)/test/token:1")
    let client = try RegistryClient(options: registry.options())
    let digest = try await client.push(layout, tag: "t", to: ref)
    let pulled = try await client.pull(ref, into: try ImageLayout(path: dir.file("pulled")), tag: "p")
    await client.shutdown()
    #expect(pulled == digest)
    // skopeo runs the same flow (challenge, token service, bearer) on its own.
    let inspect = try Tool.run(
      "/usr/bin/skopeo",
      [
        "inspect", "--tls-verify=false", "--creds", "\(registry.username):\(registry.password)", "docker://\(ref)",
      ])
    #expect(inspect.status == 0, "\(inspect.stderr)")
    #expect(inspect.stdout.contains(digest.description))

    var wrong = registry.options()
    wrong.credentials = RegistryCredentials(username: registry.username, password: "wrong")
    let refused = try RegistryClient(options: wrong)
    let error = await #expect(throws: ImageError.self) { try await refused.push(layout, tag: "t", to: ref) }
    await refused.shutdown()
    #expect(
      error?.message.contains("token service") == true && error?.message.contains("401") == true,
      "\(error?.message ?? "")")
  }

  @Test func wrongPasswordsUnknownImagesAndBrokenRegistriesSayWhatIsWrong() async throws {
    let registry = try TestRegistry()
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let layout = try image(dir, size: 1000)
    var options = registry.options()
    options.credentials = RegistryCredentials(username: "tars", password: "wrong")
    options.attempts = 2
    let wrong = try RegistryClient(options: options)
    let ref = try ImageReference(parsing: "\(registry.host)/test/x:1")
    let refused = await #expect(throws: ImageError.self) { _ = try await wrong.push(layout, tag: "t", to: ref) }
    #expect(refused?.message.contains("refused") == true && refused?.message.contains("as tars (401)") == true)
    await wrong.shutdown()

    let client = try RegistryClient(options: registry.options())
    let missing = await #expect(throws: ImageError.self) {
      _ = try await client.pull(
        try ImageReference(parsing: "\(registry.host)/test/none:1"), into: layout, tag: "n")
    }
    #expect(missing?.message.contains("is not in \(registry.host) (404)") == true, "\(missing?.message ?? "")")
    await client.shutdown()

    // A server that answers 500, and one that closes every connection: reported after the retries.
    for (mode, expected) in [("500", "answered 500"), ("close", "cannot reach")] {
      let port = freePort()
      let script = """
        import http.server, socketserver, sys
        class H(http.server.BaseHTTPRequestHandler):
          def handle_one_request(self):
            if sys.argv[2] == 'close':
              self.rfile.readline(); self.connection.close(); return
            super().handle_one_request()
          def do_GET(self): self.send_response(500); self.send_header('Content-Length', '0'); self.end_headers()
          do_HEAD = do_GET; do_POST = do_GET; do_PUT = do_GET
          def log_message(self, *a): pass
        socketserver.TCPServer.allow_reuse_address = True
        socketserver.TCPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
        """
      let server = try Spawned.start(["/usr/bin/python3", "-c", script, "\(port)", mode])
      defer { Spawned.kill(server) }
      var ready = false
      for _ in 0..<100 where !ready {
        ready = (try? RawSocket(port: port)) != nil
        if !ready { try await Task.sleep(for: .milliseconds(50)) }
      }
      var o = RegistryClient.Options()
      o.plainHTTP = true
      o.attempts = 2
      let broken = try RegistryClient(options: o)
      let error = await #expect(throws: ImageError.self) {
        _ = try await broken.push(layout, tag: "t", to: try ImageReference(parsing: "127.0.0.1:\(port)/test/x:1"))
      }
      #expect(
        error?.message.contains(expected) == true && error?.message.contains("tried 2 times") == true,
        "\(mode): \(error?.message ?? "")")
      await broken.shutdown()
    }
  }
}

final class Counter: Sendable {
  let count = Mutex(0)
  var value: Int { count.withLock { $0 } }
  func add() { count.withLock { $0 += 1 } }
  func set(_ v: Int) { count.withLock { $0 = v } }
}
