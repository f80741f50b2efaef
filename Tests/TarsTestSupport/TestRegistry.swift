import Dispatch
import Foundation
import Glibc
import TarsProtocol

/// Debian's docker-registry (distribution 2.8) on loopback with htpasswd (bcrypt) auth and its
/// storage in a temporary directory: the real registry the push tests talk to. Stoppable and
/// restartable on the same storage, to interrupt a push.
public final class TestRegistry: @unchecked Sendable {
  public static let binary = "/usr/bin/docker-registry"
  public static let htpasswd = "/usr/bin/htpasswd"
  public static var available: Bool {
    FileManager.default.isExecutableFile(atPath: binary) && FileManager.default.isExecutableFile(atPath: htpasswd)
  }

  public let dir: TemporaryDirectory
  public let port: Int
  public let username = "tars"
  public let password = "registry-pass-\(UInt32.random(in: 0...UInt32.max))"
  var pid: pid_t = 0

  /// How clients prove who they are: htpasswd (basic), or bearer tokens from a token service
  /// (a Python one here, signing with openssl) that checks the same user and password.
  public enum Auth { case basic, token }
  public let auth: Auth
  /// Serving HTTPS with a certificate from a CA of its own (`caFile`), not HTTP.
  public let tls: Bool
  var tokenServer: pid_t = 0

  public init(auth: Auth = .basic, tls: Bool = false) throws {
    self.auth = auth
    self.tls = tls
    dir = try TemporaryDirectory("tars-registry")
    port = freePort()
    var authConfig: String
    switch auth {
    case .basic:
      let entry = try Tool.run(Self.htpasswd, ["-Bbn", username, password])
      guard entry.status == 0 else { throw TarsServantError("htpasswd: \(entry.stderr)") }
      try entry.stdout.write(toFile: dir.file("htpasswd"), atomically: true, encoding: .utf8)
      authConfig = "  htpasswd: {realm: tars-test, path: \(dir.file("htpasswd"))}"
    case .token:
      let tokenPort = freePort()
      try Self.openssl([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tars-test-token",
        "-keyout", dir.file("token.key"), "-out", dir.file("token.crt"),
      ])
      try Self.openssl(["x509", "-in", dir.file("token.crt"), "-outform", "DER", "-out", dir.file("token.der")])
      let der = try Data(contentsOf: URL(fileURLWithPath: dir.file("token.der"))).base64EncodedString()
      try Self.tokenService.write(toFile: dir.file("token.py"), atomically: true, encoding: .utf8)
      tokenServer = try Spawned.start([
        "/usr/bin/python3", dir.file("token.py"), "\(tokenPort)", dir.file("token.key"), der, username, password,
        "tars-test-issuer", "tars-test-registry",
      ])
      var waited = 0
      while (try? RawSocket(port: tokenPort)) == nil, waited < 200 {
        usleep(25_000)
        waited += 1
      }
      authConfig = """
          token:
            realm: http://127.0.0.1:\(tokenPort)/token
            service: tars-test-registry
            issuer: tars-test-issuer
            rootcertbundle: \(dir.file("token.crt"))
        """
    }
    var tlsConfig = ""
    if tls {
      try Self.openssl([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tars-test-ca",
        "-keyout", dir.file("ca.key"), "-out", dir.file("ca.crt"),
      ])
      try Self.openssl([
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", dir.file("server.key"),
        "-out", dir.file("server.csr"),
      ])
      try "subjectAltName=IP:127.0.0.1\n".write(toFile: dir.file("san.ext"), atomically: true, encoding: .utf8)
      try Self.openssl([
        "x509", "-req", "-in", dir.file("server.csr"), "-CA", dir.file("ca.crt"), "-CAkey", dir.file("ca.key"),
        "-CAcreateserial", "-days", "2", "-extfile", dir.file("san.ext"), "-out", dir.file("server.crt"),
      ])
      tlsConfig = "\n  tls: {certificate: \(dir.file("server.crt")), key: \(dir.file("server.key"))}"
    }
    // A fixed secret: upload sessions survive a restart, as a registry's do in production.
    try """
    version: 0.1
    log: {level: error}
    storage:
      filesystem: {rootdirectory: \(dir.file("data"))}
      delete: {enabled: true}
    http:
      addr: 127.0.0.1:\(port)
      secret: tars-test-secret\(tlsConfig)
    auth:
    \(authConfig)
    """.write(toFile: dir.file("config.yml"), atomically: true, encoding: .utf8)
    try start()
  }

  public var caFile: String { dir.file("ca.crt") }

  static func openssl(_ arguments: [String]) throws {
    let r = try Tool.run("/usr/bin/openssl", arguments)
    guard r.status == 0 else { throw TarsServantError("openssl \(arguments.first ?? ""): \(r.stderr)") }
  }

  /// A token service as distribution's token auth expects one: basic auth in, a JWT (RS256,
  /// the signing certificate in `x5c`) granting the scopes asked for out.
  static let tokenService = #"""
    import base64, json, os, subprocess, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import urlparse, parse_qs
    port, key, der, user, password, issuer, service = sys.argv[1:8]
    def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            q = parse_qs(urlparse(self.path).query)
            expected = 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()
            if self.headers.get('Authorization', '') != expected or q.get('service', [''])[0] != service:
                self.send_response(401); self.send_header('Content-Length', '0'); self.end_headers(); return
            access = []
            for scope in q.get('scope', []):
                kind, name, actions = scope.split(':')
                access.append({'type': kind, 'name': name, 'actions': actions.split(',')})
            now = int(time.time())
            header = {'typ': 'JWT', 'alg': 'RS256', 'x5c': [der]}
            claims = {'iss': issuer, 'sub': user, 'aud': service, 'exp': now + 300, 'nbf': now - 10,
                      'iat': now, 'jti': os.urandom(8).hex(), 'access': access}
            signing = b64(json.dumps(header).encode()) + '.' + b64(json.dumps(claims).encode())
            signature = subprocess.run(['openssl', 'dgst', '-sha256', '-sign', key], input=signing.encode(),
                                       capture_output=True, check=True).stdout
            token = signing + '.' + b64(signature)
            body = json.dumps({'token': token, 'expires_in': 300}).encode()
            self.send_response(200); self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
        def log_message(self, *args): pass
    HTTPServer(('127.0.0.1', int(port)), Handler).serve_forever()
    """#

  public var host: String { "127.0.0.1:\(port)" }

  /// Spawned with posix_spawn and reaped with waitpid by its pid (see `Spawned`).
  public func start() throws {
    pid = try Spawned.start([Self.binary, "serve", dir.file("config.yml")])
    let deadline = Date().addingTimeInterval(10)
    while Date() < deadline {
      if (try? RawSocket(port: port)) != nil { return }
      usleep(50_000)
    }
    throw TarsServantError("docker-registry did not listen on \(host)")
  }

  /// Kills it outright (as a crash or a node loss would; SIGTERM waits for connections to drain).
  public func stop() {
    Spawned.kill(pid)
    pid = 0
  }

  /// `stop()` and `start()` from async code: on a GCD thread, so their waits never hold one of
  /// Swift concurrency's few threads (a push in flight needs them).
  public func stopped() async {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      DispatchQueue.global().async {
        self.stop()
        c.resume()
      }
    }
  }

  public func started() async throws {
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

  /// The tags the registry lists for `repository`.
  public func tags(_ repository: String) throws -> [String] {
    let r = try Tool.run(
      "/usr/bin/skopeo",
      ["list-tags", "--tls-verify=false", "--creds", "\(username):\(password)", "docker://\(host)/\(repository)"])
    guard r.status == 0 else { return [] }
    let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
    return json?["Tags"] as? [String] ?? []
  }

  deinit {
    stop()
    Spawned.kill(tokenServer)
    dir.remove()
  }
}

/// Child processes by pid, with posix_spawn, kill and waitpid: Foundation's `Process` in a test
/// run full of other suites' children was seen signalling the wrong pid (its `terminate()` took
/// the whole test process down), so the image tests manage their servers themselves.
public enum Spawned {
  /// Starts `argv`; its output goes to the file `output` (appended) or nowhere.
  public static func start(_ argv: [String], output: String? = nil) throws -> pid_t {
    var cArgs = argv.map { strdup($0) } + [nil]
    defer { for a in cArgs { free(a) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, output ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var child: pid_t = 0
    let rc = posix_spawn(&child, argv[0], &actions, nil, &cArgs, environ)
    guard rc == 0, child > 0 else {
      throw TarsServantError("cannot start \(argv[0]): \(String(cString: strerror(rc)))")
    }
    return child
  }

  /// SIGKILL and reap; nothing for a pid of 0 or less (never a process group).
  public static func kill(_ pid: pid_t) {
    guard pid > 0 else { return }
    Glibc.kill(pid, SIGKILL)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
  }
}
