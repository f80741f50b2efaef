import Foundation
import TarsEmbeddedStore
import TarsKube
import TarsTestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

@Suite("tars-controlplane registry, the executable")
struct ExecutableTests {
  @Test func servesAStoreFileAnswersTarsctlExposesMetricsAndStopsOnSIGTERM() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("registry-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("state.sqlite").path
    do {
      // The state the one-machine control plane would have left.
      let store = try EmbeddedStore(path: path)
      _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
      _ = try await store.create(.tservers, RegistryFixture.tserver(app: "Test", server: "HelloServer", port: 20001))
      _ = try await store.create(
        .pods,
        KubeObject(
          .pods, namespace: "tars", name: "test-helloserver-0",
          labels: ["tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer"],
          status: .object([
            ("podIP", .string("127.0.0.9")),
            ("conditions", .array([.object([("type", .string("tars.io/active")), ("status", .string("True"))])])),
          ])))
    }
    let (query, registry, metrics) = (freePort(), freePort(), freePort())
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Tool.path("tars-controlplane"))
    p.arguments = [
      "registry", "--store", path, "--namespace", "tars", "--bind", "127.0.0.1", "--query-port", "\(query)",
      "--registry-port", "\(registry)", "--metrics-port", "\(metrics)",
    ]
    let err = Pipe()
    p.standardError = err
    try p.run()
    defer { if p.isRunning { p.terminate() } }

    #expect(
      await eventually(30) {
        let r = try Tool.run(
          "tarsctl", ["query", "--locator", "tcp -h 127.0.0.1 -p \(query)", "Test.HelloServer.HelloObj"])
        return r.status == 0 && r.stdout.contains("127.0.0.9")
      })
    let (body, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(metrics)/metrics")!)
    #expect((response as? HTTPURLResponse)?.statusCode == 200)
    let text = String(decoding: body, as: UTF8.self)
    #expect(
      text.contains("# TYPE tars_registry_lookups_total counter") && text.contains("tars_registry_servers 1"), "\(text)"
    )
    let (_, health) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(metrics)/healthz")!)
    #expect((health as? HTTPURLResponse)?.statusCode == 200)

    kill(p.processIdentifier, SIGTERM)
    let deadline = Date().addingTimeInterval(5)
    while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
    #expect(!p.isRunning && p.terminationStatus == 0)
    let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(
      log.contains("registry: namespace tars on embedded store") && log.contains("stopping (signal 15)"), "\(log)")
  }

  /// `tars-controlplane monitor` on a SQLite file: it answers /metrics, and says what to give
  /// when the database is missing or malformed.
  @Test func theMonitorStartsOnADatabaseAndSaysWhichOneWhenItCannot() async throws {
    let none = try Tool.run("tars-controlplane", ["monitor"], environment: ["PATH": "/usr/bin:/bin"])
    #expect(none.status != 0 && none.stderr.contains("no database: give --database postgres://"), "\(none.stderr)")
    let bad = try Tool.run("tars-controlplane", ["monitor", "--database", "mysql://x"])
    #expect(bad.status != 0 && bad.stderr.contains("postgres://USER:PASSWORD@HOST:5432/DATABASE"), "\(bad.stderr)")
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let (port, metrics) = (freePort(), freePort())
    let pid = try Spawned.start(
      [
        Tool.path("tars-controlplane"), "monitor", "--bind", "127.0.0.1", "--monitor-port", "\(port)",
        "--metrics-port", "\(metrics)", "--database", "sqlite:" + dir.file("monitor.sqlite"),
      ], output: dir.file("monitor.log"))
    defer { Spawned.kill(pid) }
    var answer = ""
    let deadline = Date().addingTimeInterval(20)
    while !answer.contains("tars_monitor_reports_total 0"), Date() < deadline {
      answer = (try? RawSocket.httpGet(port: metrics, path: "/metrics")) ?? ""
      try await Task.sleep(for: .milliseconds(100))
    }
    #expect(answer.contains("tars_monitor_reports_total 0"), "\(answer)")
    #expect(FileManager.default.fileExists(atPath: dir.file("monitor.sqlite")))
  }

  /// `tars-controlplane log`: it serves LogObj and /metrics, refuses to serve LogQueryObj
  /// unsigned beyond loopback, and names the folder it cannot use.
  @Test func theLogServiceStartsAndSaysWhatItNeeds() async throws {
    let open = try Tool.run("tars-controlplane", ["log", "--secret-file", "", "--bind", "0.0.0.0"])
    #expect(open.status != 0 && open.stderr.contains("give --secret-file"), "\(open.stderr)")
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try "x".write(toFile: dir.file("file"), atomically: true, encoding: .utf8)
    let blocked = try Tool.run(
      "tars-controlplane", ["log", "--secret-file", "", "--bind", "127.0.0.1", "--log-dir", dir.file("file/logs")])
    #expect(blocked.status != 0 && blocked.stderr.contains("cannot use --log-dir"), "\(blocked.stderr)")
    let noSecret = try Tool.run(
      "tars-controlplane", ["log", "--secret-file", dir.file("none"), "--log-dir", dir.file("logs")])
    #expect(noSecret.status != 0 && noSecret.stderr.contains("(--secret-file)"), "\(noSecret.stderr)")
    let (port, metrics) = (freePort(), freePort())
    let pid = try Spawned.start(
      [
        Tool.path("tars-controlplane"), "log", "--bind", "127.0.0.1", "--log-port", "\(port)", "--metrics-port",
        "\(metrics)", "--secret-file", "", "--log-dir", dir.file("logs"),
      ], output: dir.file("log.log"))
    defer { Spawned.kill(pid) }
    var answer = ""
    let deadline = Date().addingTimeInterval(20)
    while !answer.contains("tars_log_lines_total 0"), Date() < deadline {
      answer = (try? RawSocket.httpGet(port: metrics, path: "/metrics")) ?? ""
      try await Task.sleep(for: .milliseconds(100))
    }
    #expect(answer.contains("tars_log_lines_total 0"), "\(answer)")
    #expect(FileManager.default.fileExists(atPath: dir.file("logs")))
  }

  @Test func badFlagsSayWhatIsWrong() throws {
    let r = try Tool.run("tars-controlplane", ["registry", "--store", "/tmp/x.sqlite", "--host-style", "fancy"])
    #expect(r.status != 0 && r.stderr.contains("--host-style must be ip or dns"), "\(r)")
    let both = try Tool.run("tars-controlplane", ["registry", "--store", "/tmp/x.sqlite", "--kubeconfig", "/nope"])
    #expect(both.status != 0 && both.stderr.contains("use --store or --kubeconfig, not both"), "\(both)")
  }

  /// Each listener of `registry`, its port taken (or an address this machine does not have):
  /// the error names the service, the address and the flag to change.
  @Test(arguments: [
    ("--query-port", "QueryObj"), ("--registry-port", "RegistryObj"), ("--metrics-port", "metrics"),
    ("--bind", "QueryObj"),
  ])
  func aPortItCannotHaveNamesTheServiceTheAddressAndTheFlag(_ flag: String, _ service: String) throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    var ports = ["--query-port": freePort(), "--registry-port": freePort(), "--metrics-port": freePort()]
    let holder = try ListeningSocket(port: ports[flag] ?? 0)
    defer { holder.close() }
    if flag == "--bind" { ports["--query-port"] = holder.port }
    // 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails at once, nothing is sent.
    let host = flag == "--bind" ? "192.0.2.1" : "127.0.0.1"
    let out = try Tool.run(
      "tars-controlplane",
      ["registry", "--store", dir.file("state.sqlite"), "--namespace", "tars", "--bind", host]
        + ports.flatMap { [$0.key, "\($0.value)"] })
    #expect(out.status != 0)
    let port = flag == "--bind" ? holder.port : ports[flag]!
    let expected =
      flag == "--bind"
      ? "QueryObj cannot listen on 192.0.2.1:\(port): 192.0.2.1 is not an address of this machine (use --bind)"
      : "\(service) cannot listen on 127.0.0.1:\(port): address in use (another tars-controlplane? use \(flag))"
    #expect(out.stderr.contains(expected), "\(out.stderr)")
  }
}
