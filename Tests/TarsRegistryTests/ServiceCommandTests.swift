import Foundation
import TarsEmbeddedStore
import TarsFramework
import TarsKube
import TarsProtocol
import TarsTestSupport
import Testing

/// `tars-controlplane config`, `notify` and `admin`, the services a cluster runs beside the registry and
/// the controller, as real processes on a store file; the registry names them.
@Suite("tars-controlplane config, notify and admin, the executables", .serialized)
struct ServiceCommandTests {
  func store(_ dir: TemporaryDirectory) async throws -> String {
    let path = dir.file("state.sqlite")
    let store = try EmbeddedStore(path: path)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    _ = try await store.create(.tservers, RegistryFixture.tserver(app: "Test", server: "HelloServer", port: 20001))
    _ = try await store.create(
      .tconfigs,
      KubeObject(
        .object([
          ("apiVersion", .string("k8s.tars.io/v1beta3")), ("kind", .string("TConfig")),
          ("metadata", .object([("name", .string("test-helloserver-hello.conf")), ("namespace", .string("tars"))])),
          ("app", .string("Test")), ("server", .string("HelloServer")), ("configName", .string("hello.conf")),
          ("configContent", .string("<hello>\ngreeting=Hi\n</hello>")), ("activated", .bool(true)),
        ])))
    return path
  }

  func start(_ arguments: [String]) throws -> (Process, Pipe) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Tool.path("tars-controlplane"))
    p.arguments = arguments
    let err = Pipe()
    p.standardError = err
    try p.run()
    return (p, err)
  }

  func stop(_ p: Process, _ err: Pipe) async throws -> String {
    kill(p.processIdentifier, SIGTERM)
    let deadline = Date().addingTimeInterval(5)
    while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
    #expect(!p.isRunning && p.terminationStatus == 0)
    return String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  }

  @Test func configServesTheActiveTConfig() async throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let path = try await store(dir)
    let port = freePort()
    let (p, err) = try start(["config", "--store", path, "--bind", "127.0.0.1", "--config-port", "\(port)"])
    defer { if p.isRunning { p.terminate() } }
    var answer = ""
    #expect(
      await eventually(30) {
        let s = try RawSocket(port: port)
        s.send(
          Config.LoadConfig.request(
            servant: "tars.tarsconfig.ConfigObj", .init(app: "Test", server: "HelloServer", filename: "hello.conf")))
        guard let r = s.readResponse() else { return false }
        answer = try Config.LoadConfig.result(from: r).config
        return !answer.isEmpty
      })
    #expect(answer == "<hello>\ngreeting=Hi\n</hello>")
    let log = try await stop(p, err)
    #expect(log.contains("config: namespace tars on embedded store") && log.contains("ConfigObj 127.0.0.1:\(port)"))
  }

  @Test func adminAnswersTarsctlWithItsTokenAndListsWhatNotifyObjRecorded() async throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let path = try await store(dir)
    let token = dir.file("token")
    try "0123456789abcdef0123456789abcdef\n".write(toFile: token, atomically: true, encoding: .utf8)
    chmod(token, 0o440)
    try String(repeating: "ab", count: 32).write(toFile: dir.file("secret"), atomically: true, encoding: .utf8)
    // Three people, three roles.
    let (alice, viewer, op) = (dir.file("alice"), dir.file("viewer"), dir.file("operator"))
    try "0123456789abcdef0123456789abcdef\n".write(toFile: alice, atomically: true, encoding: .utf8)
    try "viewer-token-0123456789\n".write(toFile: viewer, atomically: true, encoding: .utf8)
    try "operator-token-012345678\n".write(toFile: op, atomically: true, encoding: .utf8)
    try """
    # TOKEN ROLE NAME
    0123456789abcdef0123456789abcdef admin alice
    viewer-token-0123456789 viewer victor
    operator-token-012345678 operator olga
    """.write(toFile: token, atomically: true, encoding: .utf8)
    chmod(token, 0o440)
    let (admin, notify) = (freePort(), freePort())
    let (p, err) = try start([
      "admin", "--store", path, "--bind", "127.0.0.1", "--admin-port", "\(admin)", "--token-file", token,
      "--node-secret-file", dir.file("secret"),
    ])
    defer { if p.isRunning { p.terminate() } }
    let (n, notifyErr) = try start(["notify", "--store", path, "--bind", "127.0.0.1", "--notify-port", "\(notify)"])
    defer { if n.isRunning { n.terminate() } }
    let flags = ["--admin", "http://127.0.0.1:\(admin)", "--token-file", alice]
    #expect(
      await eventually(30) {
        let r = try Tool.run("tarsctl", ["servers"] + flags)
        return r.status == 0 && r.stdout.contains("Test.HelloServer")
      })
    let asViewer = ["--admin", "http://127.0.0.1:\(admin)", "--token-file", viewer]
    let asOperator = ["--admin", "http://127.0.0.1:\(admin)", "--token-file", op]
    #expect(try Tool.run("tarsctl", ["servers"] + asViewer).status == 0, "a viewer reads")
    let refusedScale = try Tool.run("tarsctl", ["scale", "Test.HelloServer", "2"] + asViewer)
    #expect(
      refusedScale.status != 0
        && refusedScale.stderr.contains(
          "victor's token is a viewer's; POST /api/v1/servers/Test.HelloServer/scale needs operator"),
      "\(refusedScale)")
    #expect(try Tool.run("tarsctl", ["scale", "Test.HelloServer", "2"] + asOperator).status == 0, "an operator scales")
    let manifest = dir.file("m.yaml")
    try """
    apiVersion: k8s.tars.io/v1beta3
    kind: TTemplate
    metadata: {name: tars.extra}
    spec: {content: "<tars></tars>", parent: tars.extra}
    """.write(toFile: manifest, atomically: true, encoding: .utf8)
    let refusedApply = try Tool.run("tarsctl", ["apply", "-f", manifest] + asOperator)
    #expect(refusedApply.status != 0 && refusedApply.stderr.contains("needs admin"), "\(refusedApply)")
    #expect(try Tool.run("tarsctl", ["apply", "-f", manifest] + flags).status == 0, "an admin applies")
    let wrong = dir.file("wrong")
    try "ffffffffffffffffffffffffffffffff".write(toFile: wrong, atomically: true, encoding: .utf8)
    let refused = try Tool.run("tarsctl", ["servers", "--admin", "http://127.0.0.1:\(admin)", "--token-file", wrong])
    #expect(refused.status != 0 && refused.stderr.contains("401"), "\(refused)")
    // NotifyObj (its own process): a report becomes an Event the admin API lists.
    let listening = await eventually(30) { (try? RawSocket(port: notify)) != nil }
    if !listening { Issue.record("notify is not listening: \(try await stop(n, notifyErr))") }
    let s = try RawSocket(port: notify)
    s.send(
      Notify.ReportServer.request(
        servant: "tars.tarsnotify.NotifyObj",
        .init(sServerName: "Test.HelloServer", sThreadId: "1", sMessage: "restart from the test")))
    _ = s.readResponse()
    #expect(
      await eventually(10) {
        try Tool.run("tarsctl", ["notifications"] + flags).stdout.contains("restart from the test")
      })
    let notifyLog = try await stop(n, notifyErr)
    #expect(notifyLog.contains("notify: namespace tars on embedded store"), "\(notifyLog)")
    let log = try await stop(p, err)
    #expect(log.contains("admin: namespace tars on embedded store"), "\(log)")
    // Every change, and every refusal, with who.
    for line in [
      "admin: audit: victor (viewer) POST /api/v1/servers/Test.HelloServer/scale: refused, needs operator",
      "admin: audit: olga (operator) POST /api/v1/servers/Test.HelloServer/scale: 200",
      "admin: audit: olga (operator) POST /api/v1/apply: refused, needs admin",
      "admin: audit: alice (admin) POST /api/v1/apply: 200",
    ] {
      #expect(log.contains(line), "\(line) in \(log)")
    }
    #expect(!log.contains("audit: victor (viewer) GET"), "reads are not recorded")
  }

  /// What the admin service refuses to start with, each naming what to change.
  @Test func adminRefusesATokenOthersCanReadAShortOneOrNoNodeSecret() async throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let token = dir.file("token")
    try String(repeating: "t", count: 32).write(toFile: token, atomically: true, encoding: .utf8)
    chmod(token, 0o644)
    let base = ["admin", "--store", dir.file("state.sqlite"), "--node-secret-file", dir.file("secret")]
    let open = try Tool.run("tars-controlplane", base + ["--token-file", token])
    #expect(open.status != 0 && open.stderr.contains("is readable by anyone: give it mode 0440 or stricter"), "\(open)")
    chmod(token, 0o400)
    try "short".write(toFile: token, atomically: true, encoding: .utf8)
    chmod(token, 0o400)
    let short = try Tool.run("tars-controlplane", base + ["--token-file", token])
    #expect(short.status != 0 && short.stderr.contains("line 1: a token shorter than 16 characters"), "\(short)")
    try "0123456789abcdef0123 superuser bob".write(toFile: token, atomically: true, encoding: .utf8)
    chmod(token, 0o400)
    let role = try Tool.run("tars-controlplane", base + ["--token-file", token])
    #expect(
      role.status != 0 && role.stderr.contains("line 1: write TOKEN ROLE NAME, ROLE one of viewer, operator, admin"),
      "\(role)")
    try String(repeating: "t", count: 32).write(toFile: token, atomically: true, encoding: .utf8)
    chmod(token, 0o400)
    let noSecret = try Tool.run("tars-controlplane", base + ["--token-file", token])
    #expect(
      noSecret.status != 0 && noSecret.stderr.contains("cannot use the NodeObj secret")
        && noSecret.stderr.contains("--node-secret-file"), "\(noSecret)")
  }

  @Test(arguments: [
    ("config", "--config-port", "ConfigObj"), ("admin", "--admin-port", "admin API"),
    ("notify", "--notify-port", "NotifyObj"),
  ])
  func aTakenPortNamesTheServiceAndTheFlag(_ command: String, _ flag: String, _ service: String) async throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let holder = try ListeningSocket(port: freePort())
    defer { holder.close() }
    let token = dir.file("token")
    try String(repeating: "t", count: 32).write(toFile: token, atomically: true, encoding: .utf8)
    chmod(token, 0o400)
    try String(repeating: "ab", count: 32).write(toFile: dir.file("secret"), atomically: true, encoding: .utf8)
    var arguments = [command, "--store", dir.file("state.sqlite"), "--bind", "127.0.0.1"]
    if command == "admin" {
      arguments += ["--token-file", token, "--node-secret-file", dir.file("secret")]
    }
    let out = try Tool.run("tars-controlplane", arguments + [flag, "\(holder.port)"])
    #expect(out.status != 0)
    #expect(
      out.stderr.contains(
        "\(service) cannot listen on 127.0.0.1:\(holder.port): address in use (another tars-controlplane? use \(flag))"),
      "\(out.stderr)")
  }
}
