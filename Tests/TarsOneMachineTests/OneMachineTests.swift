import Foundation
import TarsAdminAPI
import TarsEmbeddedStore
import TarsKube
import TarsProtocol
import TarsTestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// `tars-controlplane up` as a user runs it: the real binaries (control plane, tarsnode,
/// HelloServer, hello-client, tarsctl) on real sockets, each pod on its own 127.x address.
final class OneMachine: @unchecked Sendable {
  let dir: TemporaryDirectory
  let process = Process()
  let ports: [String: Int]
  let firstPodIP: String
  let manifests: String

  /// The same state directory and ports, for a second start.
  init(reusing other: OneMachine) throws {
    dir = other.dir
    firstPodIP = other.firstPodIP
    ports = other.ports
    manifests = other.manifests
  }

  init(firstPodIP: String) throws {
    dir = try TemporaryDirectory("one-machine")
    self.firstPodIP = firstPodIP
    ports = Dictionary(
      uniqueKeysWithValues: ["query", "registry", "config", "notify", "admin", "monitor", "calls", "log"].map {
        ($0, freePort())
      })
    manifests = dir.path + "/manifests"
    try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
  }

  func start(manifests: Bool = true, extra: [String] = []) throws {
    process.executableURL = URL(fileURLWithPath: Tool.path("tars-controlplane"))
    process.currentDirectoryURL = URL(fileURLWithPath: dir.path)
    process.arguments =
      [
        "up", "--query-port", "\(ports["query"]!)", "--registry-port", "\(ports["registry"]!)", "--config-port",
        "\(ports["config"]!)", "--notify-port", "\(ports["notify"]!)", "--admin-port", "\(ports["admin"]!)",
        "--monitor-port", "\(ports["monitor"]!)", "--monitor-metrics-port", "\(ports["calls"]!)",
        "--log-port", "\(ports["log"]!)", "--first-pod-ip", firstPodIP, "--grace", "5",
      ] + (manifests ? ["--manifests", self.manifests] : []) + extra
    _ = FileManager.default.createFile(atPath: dir.path + "/up.log", contents: nil)
    let log = FileHandle(forWritingAtPath: dir.path + "/up.log")!
    process.standardOutput = log
    process.standardError = log
    try process.run()
  }

  /// SIGINT, as Ctrl-C; returns the exit status.
  func stop() -> Int32 {
    guard process.isRunning else { return process.terminationStatus }
    kill(process.processIdentifier, SIGINT)
    process.waitUntilExit()
    return process.terminationStatus
  }

  var log: String { (try? String(contentsOfFile: dir.path + "/up.log", encoding: .utf8)) ?? "" }
  var locator: String { "tcp -h 127.0.0.1 -p \(ports["query"]!)" }

  func tarsctl(_ arguments: [String]) throws -> Tool.Output {
    let admin = ["--admin", "http://127.0.0.1:\(ports["admin"]!)", "--token-file", dir.path + "/.tars/admin.token"]
    let first = arguments.first ?? ""
    return try Tool.run("tarsctl", ["query", "ping"].contains(first) ? arguments : arguments + admin)
  }

  func json<T: Decodable>(_ arguments: [String], as: T.Type) throws -> T {
    let out = try tarsctl(arguments + ["-o", "json"])
    guard out.status == 0 else { throw TestFailure("tarsctl \(arguments.joined(separator: " ")): \(out.stderr)") }
    return try JSONDecoder().decode(T.self, from: Data(out.stdout.utf8))
  }

  /// The pods of one server (App.Server), or all.
  func pods(_ server: String? = nil) throws -> [PodRow] {
    try json(["pods"] + (server.map { [$0] } ?? []), as: [PodRow].self)
  }

  /// Active and inactive endpoint counts from the registry, as `tarsctl query` prints them.
  func endpoints(_ object: String) throws -> (active: Int, inactive: Int) {
    let out = try tarsctl(["query", "--locator", locator, object])
    func count(_ label: String) -> Int {
      guard let line = out.stdout.split(separator: "\n").first(where: { $0.hasPrefix(label) }),
        let open = line.firstIndex(of: "("), let close = line.firstIndex(of: ")")
      else { return -1 }
      return Int(line[line.index(after: open)..<close]) ?? -1
    }
    return (count("active endpoints"), count("inactive endpoints"))
  }

  /// The server process a pod's tarsnode runs (host pid).
  func serverPID(of pod: String) throws -> Int32? {
    guard let tarsnode = try pods().first(where: { $0.name == pod })?.pid else { return nil }
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(tarsnode)/task")) ?? []
    for t in tasks {
      let children = (try? String(contentsOfFile: "/proc/\(tarsnode)/task/\(t)/children", encoding: .utf8)) ?? ""
      if let first = children.split(separator: " ").first, let pid = Int32(first) { return pid }
    }
    return nil
  }

  func write(_ name: String, _ yaml: String) throws {
    try yaml.write(toFile: manifests + "/" + name, atomically: true, encoding: .utf8)
  }
}

func waitFor(_ seconds: Double = 30, _ condition: () throws -> Bool) -> Bool {
  let deadline = Date().addingTimeInterval(seconds)
  while Date() < deadline {
    if (try? condition()) == true { return true }
    usleep(100_000)
  }
  return false
}

func helloServer(replicas: Int, port: Int = 10015, image: String = Tool.path("HelloServer")) -> String {
  """
  apiVersion: k8s.tars.io/v1beta3
  kind: TServer
  metadata:
    name: test-helloserver
    namespace: tars
  spec:
    app: Test
    server: HelloServer
    subType: tars
    tars:
      template: tars.default
      profile: ""
      servants:
        - name: HelloObj
          port: \(port)
          thread: 3
          connection: 10000
          capacity: 10000
          timeout: 60000
          isTars: true
          isTcp: true
    k8s:
      replicas: \(replicas)
    release:
      id: test
      image: \(image)
  ---
  apiVersion: k8s.tars.io/v1beta3
  kind: TConfig
  metadata:
    name: test-helloserver-helloserver.conf
  app: Test
  server: HelloServer
  podSeq: m
  configName: HelloServer.conf
  version: "1"
  activated: true
  configContent: |
    <hello>
      greeting=Bonjour
    </hello>

  """
}

@Suite("One-machine mode, end to end", .serialized)
struct OneMachineTests {
  @Test func helloServerFromUpToDeleteThroughRegistryNodeObjAndTarsctl() async throws {
    let m = try OneMachine(firstPodIP: "127.0.201.1")
    defer { m.dir.remove() }
    try m.write("hello.yaml", helloServer(replicas: 2))
    try m.start()
    defer { #expect(m.stop() == 0, "up must stop cleanly on SIGINT: \(m.log)") }
    let hello = "Test.HelloServer.HelloObj"

    // Both replicas Active through the registry.
    #expect(waitFor { try m.endpoints(hello) == (2, 0) }, "two active endpoints: \(m.log)")
    let pods = try m.pods("Test.HelloServer")
    #expect(pods.map(\.name) == ["test-helloserver-0", "test-helloserver-1"])
    #expect(Set(pods.map(\.ip)) == ["127.0.201.1", "127.0.201.2"])
    #expect(pods.allSatisfy { $0.active && $0.ready && $0.phase == "Running" })

    // The example client finds HelloObj by name; the greeting came from the TConfig.
    let call = try Tool.run(
      "hello-client", ["--locator", "tars.tarsregistry.QueryObj@" + m.locator, "--count", "4", "e2e"])
    #expect(call.status == 0, "\(call.stdout)\(call.stderr)")
    #expect(call.stdout.components(separatedBy: "ret=0 Bonjour e2e").count == 5, "\(call.stdout)")

    // Its calls were counted and sent to StatObj (found through the registry) before it exited:
    // tarsctl stat shows them at once, and the calls' /metrics has them.
    let stat = try m.json(["stat", "Test.HelloServer", "--callers"], as: [InterfaceStatRow].self)
    #expect(stat.first { $0.interface == "testHello" }?.calls == 4, "\(stat)")
    let metrics = try RawSocket.httpGet(port: m.ports["calls"]!, path: "/metrics")
    #expect(
      metrics.contains(
        #"tars_calls_total{caller="hello-client",callee="Test.HelloServer",interface="testHello",source="client",result="ok"} 4"#
      ),
      "\(metrics)")

    // HelloServer wrote each call to its remote log "access" (its template names LogObj); the
    // log service keeps them in tarslog's day file, and tarsctl reads them back.
    let logged = waitFor {
      try m.tarsctl(["logs", "--remote", "Test.HelloServer", "--tail", "10"]).stdout
        .components(separatedBy: "|testHello|").count == 5
    }
    let remote = try m.tarsctl(["logs", "--remote", "Test.HelloServer"])
    #expect(logged, "four lines in the remote log: \(remote.stdout)\(remote.stderr)")
    // Each line after the sending pod's address (its localip, sent as node_name) and its time.
    #expect(
      remote.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("127.0.201.1|") || $0.hasPrefix("127.0.201.2|") },
      "\(remote.stdout)")
    let files = try m.json(["logs", "--remote", "Test.HelloServer", "--list"], as: [RemoteLogFileRow].self)
    #expect(
      files.map(\.name).allSatisfy { $0.hasPrefix("HelloServer/Test.HelloServer_access_") && $0.hasSuffix(".log") })
    #expect(!files.isEmpty, "\(files)")
    let none = try m.tarsctl(["logs", "--remote", "Test.Nobody"])
    #expect(none.status != 0 && none.stderr.contains("no remote log for Test.Nobody"), "\(none.stderr)")

    // Bad manifests are rejected with the reason; what runs is not disturbed.
    let before = try m.pods("Test.HelloServer").map(\.pid)
    let bad = m.dir.path + "/bad.yaml"
    try """
    apiVersion: k8s.tars.io/v1beta3
    kind: TServer
    metadata: {name: test-other}
    spec: {app: Test, server: Other, subType: tars, tars: {template: no.such.template, servants: []}}
    ---
    apiVersion: k8s.tars.io/v1beta3
    kind: TServer
    metadata: {name: test-twoports}
    spec:
      app: Test
      server: TwoPorts
      subType: tars
      tars: {template: tars.default, servants: [{name: AObj, port: 10020}, {name: BObj, port: 10020}]}
    ---
    apiVersion: k8s.tars.io/v1beta3
    kind: TServer
    metadata: {name: test-helloserver}
    spec:
      app: Test
      server: HelloServer
      subType: tars
      tars: {template: tars.default, servants: [{name: HelloObj, port: 19385}]}
      k8s: {replicas: 5}
      release: {image: /bin/false}
    ---
    apiVersion: k8s.tars.io/v1beta3
    kind: TServer
    metadata: {name: hello}
    spec: {app: Test, server: Hello, subType: tars, tars: {template: tars.default, servants: []}}
    """.write(toFile: bad, atomically: true, encoding: .utf8)
    let rejected = try m.tarsctl(["apply", "-f", bad])
    #expect(rejected.status == 1)
    for reason in [
      "tserver/test-other rejected: spec.tars.template 'no.such.template' does not exist: apply the TTemplate first",
      "tserver/test-twoports rejected: spec.tars: ports must be unique across spec.tars.servants and spec.tars.ports",
      "tserver/test-helloserver rejected: spec.tars: ports 19385-19387 are reserved for tarsnode",
      "tserver/hello rejected: metadata.name must be lower(spec.app)-lower(spec.server)",
    ] {
      #expect(rejected.stdout.contains(reason), "\(rejected.stdout)")
    }
    #expect(try m.pods("Test.HelloServer").map(\.pid) == before)
    #expect(try m.endpoints(hello) == (2, 0))
    #expect(try m.json(["servers"], as: [ServerRow].self).map(\.id) == ["Test.HelloServer"])

    // The API wants the token.
    try "not-the-token\n".write(toFile: m.dir.path + "/wrong.token", atomically: true, encoding: .utf8)
    let refused = try Tool.run(
      "tarsctl",
      ["servers", "--admin", "http://127.0.0.1:\(m.ports["admin"]!)", "--token-file", m.dir.path + "/wrong.token"])
    #expect(refused.status == 1 && refused.stderr.contains("401"), "\(refused.stderr)")
    var bare = URLRequest(url: URL(string: "http://127.0.0.1:\(m.ports["admin"]!)/api/v1/servers")!)
    bare.httpMethod = "GET"
    let (_, response) = try await URLSession.shared.data(for: bare)
    let http = try #require(response as? HTTPURLResponse)
    #expect(http.statusCode == 401 && http.value(forHTTPHeaderField: "WWW-Authenticate") == "Bearer")
    let mode = try FileManager.default.attributesOfItem(atPath: m.dir.path + "/.tars/admin.token")[.posixPermissions]
    #expect(mode as? Int == 0o600)

    // A command reaches each pod through NodeObj (signed) and AdminObj.
    let status = try m.json(["notify", "Test.HelloServer", "tars.viewstatus"], as: [PodCallResult].self)
    #expect(status.map(\.pod) == ["test-helloserver-0", "test-helloserver-1"])
    #expect(status.allSatisfy { $0.ok && $0.result.contains("server: HelloServer") }, "\(status)")
    #expect(status[0].result.contains("127.0.201.1") && status[1].result.contains("127.0.201.2"))

    // tars.loadconfig fetches the changed TConfig again.
    try m.write("hello.yaml", helloServer(replicas: 2).replacingOccurrences(of: "Bonjour", with: "Hola"))
    let applied = try m.tarsctl(["apply", "-f", m.manifests])
    #expect(applied.status == 0 && applied.stdout.contains("tconfig/test-helloserver-helloserver.conf configured"))
    let reload = try m.json(
      ["notify", "Test.HelloServer", "tars.loadconfig", "HelloServer.conf"], as: [PodCallResult].self)
    #expect(reload.count == 2 && reload.allSatisfy { $0.result.contains("[succ] get remote config: HelloServer.conf") })
    let again = try Tool.run(
      "hello-client", ["--locator", "tars.tarsregistry.QueryObj@" + m.locator, "--count", "2", "x"])
    #expect(again.stdout.components(separatedBy: "ret=0 Hola x").count == 3, "\(again.stdout)")

    // stop → inactive; start → active.
    let stopped = try m.json(["stop", "Test.HelloServer"], as: [PodCallResult].self)
    #expect(stopped.count == 2 && stopped.allSatisfy(\.ok))
    #expect(waitFor { try m.endpoints(hello) == (0, 2) }, "stopped servers are inactive")
    #expect(try m.pods("Test.HelloServer").allSatisfy { !$0.active && !$0.ready })
    // Each HelloServer sent what it served before it exited: the server's own view has all six.
    func served() throws -> Int64? {
      try m.json(["stat", "Test.HelloServer"], as: [InterfaceStatRow].self).first { $0.interface == "testHello" }?.calls
    }
    #expect(waitFor(10) { try served() == 6 }, "\(String(describing: try? served()))")
    let started = try m.json(["start", "Test.HelloServer"], as: [PodCallResult].self)
    #expect(started.count == 2 && started.allSatisfy(\.ok))
    #expect(waitFor { try m.endpoints(hello) == (2, 0) }, "started again")

    // kill -9 of one server process: tarsnode restarts it and it is Active again.
    let victim = try #require(try m.serverPID(of: "test-helloserver-0"))
    kill(victim, SIGKILL)
    #expect(waitFor { try m.serverPID(of: "test-helloserver-0").map { $0 != victim } ?? false })
    #expect(waitFor { try m.endpoints(hello) == (2, 0) }, "restarted and active again")

    // drain → out of the active endpoints with its server still running; --undo → back.
    let pids = try m.pods("Test.HelloServer").map(\.pid)
    let drained = try m.tarsctl(["drain", "test-helloserver-0"])
    #expect(drained.status == 0 && drained.stdout.contains("pod/test-helloserver-0 drained"), "\(drained)")
    #expect(waitFor { try m.endpoints(hello) == (1, 1) }, "a drained pod is listed inactive")
    #expect(try m.pods("Test.HelloServer").map(\.pid) == pids, "its process keeps running")
    #expect(try m.tarsctl(["drain", "--undo", "test-helloserver-0"]).status == 0)
    #expect(waitFor { try m.endpoints(hello) == (2, 0) }, "undrained")
    let unknown = try m.tarsctl(["drain", "test-helloserver-9"])
    #expect(unknown.status != 0 && unknown.stderr.contains("no pod test-helloserver-9"), "\(unknown)")

    // scale to 3 → 3 endpoints; delete → gone, directories too.
    #expect(try m.tarsctl(["scale", "Test.HelloServer", "3"]).status == 0)
    #expect(waitFor { try m.endpoints(hello) == (3, 0) }, "three active endpoints")
    // A new release replaces the pods one at a time, each back on its address.
    let oldPods = try m.pods("Test.HelloServer")
    let release2 = m.dir.path + "/HelloServer-2"
    try FileManager.default.createSymbolicLink(atPath: release2, withDestinationPath: Tool.path("HelloServer"))
    try m.write("hello.yaml", helloServer(replicas: 3, image: release2))
    #expect(try m.tarsctl(["apply", "-f", m.manifests]).status == 0)
    #expect(
      waitFor(60) {
        let now = try m.pods("Test.HelloServer")
        return now.count == 3 && now.allSatisfy(\.active) && Set(now.map(\.pid)).isDisjoint(with: oldPods.map(\.pid))
      }, "rolled to the new release: \(m.log)")
    #expect(try m.pods("Test.HelloServer").map(\.ip) == oldPods.map(\.ip))
    #expect(try m.json(["servers"], as: [ServerRow].self).first?.image == release2)

    #expect(try m.tarsctl(["delete", "Test.HelloServer"]).status == 0)
    #expect(waitFor { try m.endpoints(hello) == (0, 0) && m.pods().isEmpty }, "deleted: \(m.log)")
    #expect(
      waitFor { ((try? FileManager.default.contentsOfDirectory(atPath: m.dir.path + "/.tars/pods")) ?? []).isEmpty })
    let events = try m.json(["events"], as: [EventRow].self)
    for reason in ["Scheduled", "Started", "Killing", "Deleted"] { #expect(events.contains { $0.reason == reason }) }
  }

  /// A DaemonSet runs one pod on this machine, and `up` waits for it like any other.
  @Test func aDaemonSetRunsOnePodHere() throws {
    let m = try OneMachine(firstPodIP: "127.0.205.1")
    defer { m.dir.remove() }
    let script = m.dir.path + "/agent"
    try "#!/bin/sh\nexec sleep 100000\n".write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    try m.write(
      "agent.yaml",
      """
      apiVersion: k8s.tars.io/v1beta3
      kind: TServer
      metadata: {name: test-agent}
      spec:
        app: Test
        server: Agent
        subType: normal
        normal: {ports: []}
        k8s: {daemonSet: true}
        release: {id: "1", image: ./agent}
      """)
    try m.start()
    defer { #expect(m.stop() == 0) }
    #expect(waitFor { m.log.contains("All 1 pods are active") }, "\(m.log)")
    #expect(try m.pods("Test.Agent").map(\.name) == ["test-agent-local"])
  }

  @Test func aNotTarsServerIsSupervisedTheSameWay() throws {
    let m = try OneMachine(firstPodIP: "127.0.202.1")
    defer { m.dir.remove() }
    let script = m.dir.path + "/sleeper"
    try "#!/bin/sh\necho sleeper $PodName started\nexec sleep 100000\n".write(
      toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    try m.write(
      "sleeper.yaml",
      """
      apiVersion: k8s.tars.io/v1beta3
      kind: TServer
      metadata:
        name: test-sleeper
      spec:
        app: Test
        server: Sleeper
        subType: normal
        normal:
          ports: []
        k8s:
          replicas: 2
        release:
          id: test
          image: ./sleeper
      """)
    // A broken file and a bad object next to it: both reported, the good one still applied.
    try m.write("broken.yaml", "kind: TServer\n  metadata: [unclosed\n")
    try m.write(
      "reserved.yaml",
      """
      apiVersion: k8s.tars.io/v1beta3
      kind: TServer
      metadata: {name: test-reserved}
      spec: {app: Test, server: Reserved, subType: normal, normal: {ports: [{name: p, port: 19386}]}}
      """)
    try m.start()
    defer { #expect(m.stop() == 0, "\(m.log)") }
    func active() throws -> [Bool] { try m.pods("Test.Sleeper").map(\.active) }
    #expect(waitFor { try active() == [true, true] }, "both not-tars pods active: \(m.log)")
    #expect(m.log.contains("broken.yaml skipped: ") && m.log.contains("not valid YAML"), "\(m.log)")
    #expect(
      m.log.contains(
        "TServer test-reserved REJECTED (reserved.yaml): spec.normal: ports 19385-19387 are reserved for tarsnode"))
    let logs = try m.tarsctl(["logs", "test-sleeper-1"])
    #expect(logs.stdout.contains("sleeper test-sleeper-1 started"), "\(logs.stdout)\(logs.stderr)")

    let victim = try #require(try m.serverPID(of: "test-sleeper-0"))
    kill(victim, SIGKILL)
    #expect(waitFor { try m.serverPID(of: "test-sleeper-0").map { $0 != victim } ?? false })
    #expect(waitFor { try active() == [true, true] })

    #expect(try m.tarsctl(["stop", "Test.Sleeper"]).status == 0)
    #expect(waitFor { try active() == [false, false] })
    #expect(try m.tarsctl(["start", "Test.Sleeper"]).status == 0)
    #expect(waitFor { try active() == [true, true] })
    #expect(try m.tarsctl(["scale", "Test.Sleeper", "3"]).status == 0)
    #expect(waitFor { try active() == [true, true, true] })
    #expect(try m.tarsctl(["delete", "Test.Sleeper"]).status == 0)
    #expect(waitFor { try m.pods().isEmpty })
  }

  @Test func ctrlCStopsEveryPodAndTheNextStartResumesFromTheStateDirectory() async throws {
    let m = try OneMachine(firstPodIP: "127.0.203.1")
    defer { m.dir.remove() }
    try m.write("hello.yaml", helloServer(replicas: 1, port: 10016))
    try m.start()
    let hello = "Test.HelloServer.HelloObj"
    #expect(waitFor { try m.endpoints(hello) == (1, 0) }, "\(m.log)")

    // The runtime's standard admin commands, through NodeObj.
    let help = try m.json(["notify", "Test.HelloServer", "tars.help"], as: [PodCallResult].self)
    for command in ["tars.viewstatus", "tars.setloglevel", "tars.loadconfig", "hello.count"] {
      #expect(help.first?.result.contains(command) == true, "\(help)")
    }
    let level = try m.json(["notify", "Test.HelloServer", "tars.setloglevel", "DEBUG"], as: [PodCallResult].self)
    #expect(level.first?.result == "set log level [DEBUG] ok")
    let unknown = try m.json(["notify", "Test.HelloServer", "no.such.command"], as: [PodCallResult].self)
    #expect(unknown.first?.result.contains("unknown command 'no.such.command'") == true)

    let tarsnode = try #require(try m.pods().first?.pid)
    let server = try #require(try m.serverPID(of: "test-helloserver-0"))
    #expect(m.stop() == 0)
    #expect(kill(Int32(tarsnode), 0) != 0 && kill(server, 0) != 0, "Ctrl-C leaves no pod process behind")
    try await expectTheControllerPath(m)

    let resumed = try OneMachine(reusing: m)
    try resumed.start(manifests: false)
    defer { #expect(resumed.stop() == 0) }
    #expect(waitFor { try resumed.endpoints(hello) == (1, 0) }, "resumed: \(resumed.log)")
    #expect(try resumed.pods().map(\.ip) == ["127.0.203.1"])
    #expect(try resumed.pods().first?.pid != tarsnode)
  }

  /// What ran went through the controller, as on a cluster: TServer → StatefulSet and headless
  /// Service it owns → pods the StatefulSet owns, made from its template, with the status chain
  /// back up to the TServer.
  func expectTheControllerPath(_ m: OneMachine) async throws {
    let store = try EmbeddedStore(path: m.dir.path + "/.tars/store.sqlite")
    let tserver = try await store.get(.tservers, namespace: "tars", name: "test-helloserver")
    let sts = try await store.get(.statefulSets, namespace: "tars", name: "test-helloserver")
    let service = try await store.get(.services, namespace: "tars", name: "test-helloserver")
    let pod = try await store.get(.pods, namespace: "tars", name: "test-helloserver-0")
    func owner(_ o: KubeObject) -> String? {
      o.json[path: ["metadata", "ownerReferences"]]?.arrayValue?.first?["uid"]?.stringValue
    }
    #expect(owner(sts) == tserver.uid && owner(service) == tserver.uid)
    #expect(service.spec?["clusterIP"]?.stringValue == "None")
    #expect(owner(pod) == sts.uid)
    #expect(pod.labels["controller-revision-hash"] == sts.status?["currentRevision"]?.stringValue)
    let env = pod.spec?["containers"]?.arrayValue?.first?["env"]?.arrayValue ?? []
    let podName = env.first { $0["name"]?.stringValue == "PodName" }
    #expect(podName?[path: ["valueFrom", "fieldRef", "fieldPath"]]?.stringValue == "metadata.name")
    #expect(sts.status?["readyReplicas"]?.intValue == 1, "\(sts.status?.description ?? "no status")")
    #expect(tserver.status?["readyReplicas"]?.intValue == 1, "\(tserver.status?.description ?? "no status")")
    #expect(m.log.contains("controller: tars/test-helloserver: created(\"StatefulSet test-helloserver\")"))
  }

  @Test func aBrokenTokenFileOrAMissingManifestFolderStopsUpWithTheReason() throws {
    let m = try OneMachine(firstPodIP: "127.0.204.1")
    defer { m.dir.remove() }
    try FileManager.default.createDirectory(atPath: m.dir.path + "/.tars", withIntermediateDirectories: true)
    _ = FileManager.default.createFile(
      atPath: m.dir.path + "/.tars/admin.token", contents: Data(), attributes: [.posixPermissions: 0o600])
    try m.start(manifests: false)
    m.process.waitUntilExit()
    #expect(m.process.terminationStatus != 0)
    #expect(m.log.contains("admin.token holds no usable secret: delete it and start again"), "\(m.log)")

    try FileManager.default.removeItem(atPath: m.dir.path + "/.tars/admin.token")
    try FileManager.default.removeItem(atPath: m.manifests)
    let again = try OneMachine(reusing: m)
    try again.start()
    again.process.waitUntilExit()
    #expect(again.process.terminationStatus != 0)
    #expect(again.log.contains("no manifests at \(m.manifests)"), "\(again.log)")
    #expect(!again.log.contains("Usage:"), "a start failure is not a usage error: \(again.log)")
  }

  /// Each listener of `up`, its port taken: the error names the service, the address and the
  /// flag, and nothing is left running.
  @Test(arguments: [
    ("query", "QueryObj"), ("registry", "RegistryObj"), ("config", "ConfigObj"), ("notify", "NotifyObj"),
    ("admin", "admin API"), ("metrics", "metrics"), ("log", "LogObj+LogQueryObj"),
  ])
  func aTakenPortNamesTheServiceTheAddressAndTheFlag(_ flag: String, _ service: String) throws {
    let m = try OneMachine(firstPodIP: "127.0.205.1")
    defer { m.dir.remove() }
    let metrics = freePort()
    let port = flag == "metrics" ? metrics : m.ports[flag]!
    let holder = try ListeningSocket(port: port)
    defer { holder.close() }
    try m.start(manifests: false, extra: ["--metrics-port", "\(metrics)"])
    m.process.waitUntilExit()
    #expect(m.process.terminationStatus != 0)
    #expect(
      m.log.contains(
        "\(service) cannot listen on 127.0.0.1:\(port): address in use (another tars-controlplane? use --\(flag)-port)"),
      "\(m.log)")
    #expect(!m.log.contains("bind(descriptor"), "no raw NIO error: \(m.log)")
  }

  /// A Tars server on the Swift runtime whose AdminObj or adapter port is taken says which
  /// servant, where, and which setting of its config to change.
  @Test(arguments: [true, false])
  func aServerWhosePortIsTakenSaysWhichAdapter(_ adminObj: Bool) throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let holder = try ListeningSocket()
    defer { holder.close() }
    let (local, adapter) = adminObj ? (holder.port, freePort()) : (freePort(), holder.port)
    try """
    <tars>
      <application>
        <server>
          app=Test
          server=HelloServer
          local=tcp -h 127.0.0.1 -p \(local) -t 10000
          <Test.HelloServer.HelloObjAdapter>
            endpoint=tcp -h 127.0.0.1 -p \(adapter) -t 60000
            servant=Test.HelloServer.HelloObj
          </Test.HelloServer.HelloObjAdapter>
        </server>
      </application>
    </tars>
    """.write(toFile: dir.file("HelloServer.config.conf"), atomically: true, encoding: .utf8)
    let out = try Tool.run("HelloServer", ["--config=\(dir.file("HelloServer.config.conf"))"])
    #expect(out.status != 0)
    let expected =
      adminObj
      ? "AdminObj cannot listen on 127.0.0.1:\(holder.port): address in use (another process?) — local= in the "
        + "config's <server> section"
      : "HelloObj cannot listen on 127.0.0.1:\(holder.port): address in use (another process?) — the endpoint of "
        + "adapter Test.HelloServer.HelloObjAdapter in the config"
    #expect((out.stdout + out.stderr).contains(expected), "\(out.stdout)\n\(out.stderr)")
  }
}
