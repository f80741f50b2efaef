import Foundation
import NIOPosix
import TarsAdmin
import TarsAdminAPI
import TarsAuth
import TarsEmbeddedStore
import TarsKube
import TarsNIO
import TarsProtocol
import TarsStoreTestSupport
import TarsTestSupport
import Testing

/// The real `tarsagent` against the embedded store, served over HTTP by `KubeFront` as an API
/// server would: claims on `tars-storage-class` placed on its node become a pinned, pre-bound
/// `local` volume and a directory with the asked owner and mode; a claim that is gone takes its
/// volume and directory with it; a pod whose host port someone holds gets an Event naming the
/// holder; `tarsctl node ports` reaches the node's agent through the admin API, signed.
@Suite("tarsagent's local volumes, host-port Events and node ports, end to end on the embedded store", .serialized)
struct AgentVolumeTests {
  let dir: TemporaryDirectory
  let store: EmbeddedStore
  let front: KubeFront
  /// What the agent asked of the API, as `verb group/resource`.
  let asked = Recorded()

  init() async throws {
    dir = try TemporaryDirectory("agent-volumes")
    store = try EmbeddedStore(path: nil)
    let observed = ObservedStore(store, recording: asked)
    front = try await KubeFront.start(store: observed, host: "127.0.0.1", port: 0, token: "agent-test-token") { _ in }
    try "agent-test-token\n".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
    try FileManager.default.createDirectory(atPath: dir.file("logs"), withIntermediateDirectories: true)
    _ = try await store.create(
      .namespaces,
      KubeObject(try JSONValue(parsing: #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"tars"}}"#)))
  }

  func startAgent(node: String, extra: [String] = []) throws -> pid_t {
    try Spawned.start(
      [
        Tool.path("tarsagent"), "run", "--log-dir", dir.file("logs"), "--kube-server",
        "http://127.0.0.1:\(front.port)", "--kube-token-file", dir.file("token"), "--node", node, "--volume-root",
        dir.file("host-mount"),
      ] + extra, output: dir.file("agent.log"))
  }

  var agentLog: String { (try? String(contentsOfFile: dir.file("agent.log"), encoding: .utf8)) ?? "" }

  /// A claim as the StatefulSet controller makes it from the controller's template for a
  /// `tLocalVolume` mount, with the node the scheduler chose (nil: not scheduled yet).
  func claim(_ name: String, node: String?, labels: Bool = true, mode: String = "0750") throws -> JSONValue {
    var annotations: [(String, JSONValue)] = [
      ("tars.io/LocalVolumeUID", .string("1234")), ("tars.io/LocalVolumeGID", .string("2345")),
      ("tars.io/LocalVolumeMode", .string(mode)),
    ]
    if let node { annotations.append(("volume.kubernetes.io/selected-node", .string(node))) }
    let tars: [(String, JSONValue)] = [
      ("tars.io/ServerApp", .string("Test")), ("tars.io/ServerName", .string("HelloServer")),
      ("tars.io/LocalVolume", .string("data")),
    ]
    return try JSONValue(
      parsing: """
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "\(name)", "namespace": "tars", "labels": \(JSONValue.object(labels ? tars : [])),
                      "annotations": \(JSONValue.object(annotations))},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "tars-storage-class",
                  "resources": {"requests": {"storage": "1G"}}}}
        """)
  }

  /// Polls `check` for up to 20 s.
  func eventually<T>(_ what: String, _ check: () async throws -> T?) async throws -> T {
    let deadline = Date().addingTimeInterval(20)
    while Date() < deadline {
      if let v = try await check() { return v }
      try await Task.sleep(for: .milliseconds(100))
    }
    throw TestFailure("\(what) did not happen in 20 s; the agent said:\n\(agentLog)")
  }

  func volume(of claim: KubeObject) async throws -> KubeObject? {
    try await store.list(.persistentVolumes, namespace: nil, options: ListOptions()).items.first {
      $0.value("spec.claimRef.uid")?.stringValue == claim.uid
    }
  }

  @Test func aClaimOnItsNodeGetsAPinnedVolumeAndAnOwnedDirectoryUntilItIsGone() async throws {
    defer {
      dir.remove()
      Task { [front] in await front.stop() }
    }
    _ = try await store.create(
      .storageClasses,
      KubeObject(
        try JSONValue(
          parsing: """
            {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "tars-storage-class"},
             "provisioner": "k8s.tars.io/tarsagent", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}
            """)))
    // Before the agent starts: one claim for its node, one for another node, one not scheduled.
    let mine = try await store.create(
      .persistentVolumeClaims, KubeObject(claim("data-test-helloserver-0", node: "node-a")))
    let other = try await store.create(
      .persistentVolumeClaims, KubeObject(claim("data-test-helloserver-1", node: "node-b")))
    let waiting = try await store.create(
      .persistentVolumeClaims, KubeObject(claim("data-test-helloserver-2", node: nil)))
    let agent = try startAgent(node: "node-a")
    defer { Spawned.kill(agent) }

    let pv = try await eventually("a volume for the claim on node-a") { try await volume(of: mine) }
    let path = dir.file("host-mount") + "/tars/Test.HelloServer/data-test-helloserver-0"
    #expect(pv.value("spec.local.path")?.stringValue == path)
    #expect(pv.value("spec.claimRef.name")?.stringValue == "data-test-helloserver-0")
    #expect(pv.value("spec.claimRef.namespace")?.stringValue == "tars")
    #expect(pv.value("spec.storageClassName")?.stringValue == "tars-storage-class")
    #expect(pv.value("spec.persistentVolumeReclaimPolicy")?.stringValue == "Delete")
    #expect(pv.value("spec.capacity.storage")?.stringValue == "1G")
    let term = pv.value("spec.nodeAffinity.required.nodeSelectorTerms")?.arrayValue?.first?["matchExpressions"]
    #expect(
      term
        == .array([
          .object([
            ("key", .string("kubernetes.io/hostname")), ("operator", .string("In")),
            ("values", .array([.string("node-a")])),
          ])
        ]))
    #expect(pv.labels["tars.io/LocalVolume"] == "data" && pv.labels["tars.io/ServerApp"] == "Test")
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    #expect((attributes[.ownerAccountID] as? NSNumber)?.intValue == 1234)
    #expect((attributes[.groupOwnerAccountID] as? NSNumber)?.intValue == 2345)
    #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o750)

    // Another node's claim and an unscheduled one are not this agent's.
    #expect(try await volume(of: other) == nil)
    #expect(try await volume(of: waiting) == nil)

    // A claim scheduled here after the agent started: the watch wakes it.
    let late = try await store.create(
      .persistentVolumeClaims, KubeObject(claim("data-test-helloserver-3", node: "node-a")))
    _ = try await eventually("a volume for a claim made while the agent runs") { try await volume(of: late) }

    // A claim the agent cannot serve gets one Warning Event saying what to change.
    let bad = try await store.create(
      .persistentVolumeClaims, KubeObject(claim("data-test-helloserver-4", node: "node-a", mode: "rwx")))
    let event = try await eventually("an Event on the bad claim") {
      try await store.list(.events, namespace: "tars", options: ListOptions()).items.first {
        $0.value("involvedObject.uid")?.stringValue == bad.uid
      }
    }
    #expect(event.value("reason")?.stringValue == "ProvisioningFailed")
    #expect(event.value("type")?.stringValue == "Warning")
    #expect(event.value("message")?.stringValue?.contains("tLocalVolume.mode") == true, "\(event)")
    #expect(try await volume(of: bad) == nil)

    // The claim is gone: its volume and directory go (reclaim policy Delete), with a log line.
    try "kept?".write(toFile: path + "/data", atomically: true, encoding: .utf8)
    try await store.delete(.persistentVolumeClaims, namespace: "tars", name: "data-test-helloserver-0")
    _ = try await eventually("the volume deleted") {
      (try? await store.get(.persistentVolumes, namespace: nil, name: pv.name)) == nil ? true : nil
    }
    #expect(!FileManager.default.fileExists(atPath: path))
    #expect(agentLog.contains("reclaimed \(pv.name): its claim is gone; removed \(path)"), "\(agentLog)")
    // The late claim's volume stays.
    #expect(try await volume(of: late) != nil)
    // Everything it asked, its ClusterRole grants.
    let granted = try RoleGrants.granted("agent/agent.yaml")
    #expect(asked.calls.withLock { $0 }.subtracting(granted).isEmpty, "\(asked.calls.withLock { $0 }) vs \(granted)")
    #expect(
      asked.calls.withLock { $0.contains("create /persistentvolumes") && $0.contains("delete /persistentvolumes") })
  }

  @Test func aPodWhoseHostPortIsHeldGetsAnEventNamingTheHolder() async throws {
    defer {
      dir.remove()
      Task { [front] in await front.stop() }
    }
    // This test process holds the port, in the host's network namespace.
    let held = try TarsTestSupport.ListeningSocket(host: "0.0.0.0")
    defer { held.close() }
    let pod = try await store.create(
      .pods,
      KubeObject(
        try JSONValue(
          parsing: """
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-helloserver-0", "namespace": "tars"},
             "spec": {"nodeName": "node-a", "containers": [{"name": "test-helloserver", "image": "x",
                      "ports": [{"containerPort": 8080, "hostPort": \(held.port)}]}]}}
            """)))
    let agent = try startAgent(node: "node-a")
    defer { Spawned.kill(agent) }
    let event = try await eventually("a HostPortTaken Event") {
      try await store.list(.events, namespace: "tars", options: ListOptions()).items.first {
        $0.value("involvedObject.uid")?.stringValue == pod.uid
      }
    }
    #expect(event.value("reason")?.stringValue == "HostPortTaken")
    let message = event.value("message")?.stringValue ?? ""
    #expect(message.contains("host port \(held.port)/tcp") && message.contains("pid \(getpid())"), "\(message)")
    let granted = try RoleGrants.granted("agent/agent.yaml")
    #expect(asked.calls.withLock { $0 }.subtracting(granted).isEmpty, "\(asked.calls.withLock { $0 }) vs \(granted)")
  }

  @Test func tarsctlAsksTheNodesAgentThroughTheAdminSigned() async throws {
    defer {
      dir.remove()
      Task { [front] in await front.stop() }
    }
    let secret = dir.file("node-secret")
    try String(repeating: "5a", count: 16).write(toFile: secret, atomically: true, encoding: .utf8)
    let agentPort = freePort()
    let metricsPort = freePort()
    let held = try TarsTestSupport.ListeningSocket(host: "127.0.0.1")
    defer { held.close() }
    let agent = try startAgent(
      node: "node-a",
      extra: [
        "--listen", "127.0.0.1", "--port", "\(agentPort)", "--secret-file", secret, "--metrics-port", "\(metricsPort)",
      ])
    defer { Spawned.kill(agent) }
    // The agent's pod as the DaemonSet makes it: on node-a, on the host network (its IP the node's).
    let pod = try await store.create(
      .pods,
      KubeObject(
        try JSONValue(
          parsing: """
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "tars-tarsagent-x1", "namespace": "tars", "labels": {"app.kubernetes.io/name": "tars-tarsagent"}},
             "spec": {"nodeName": "node-a", "hostNetwork": true, "containers": [{"name": "agent", "image": "x"}]}}
            """)))
    var running = pod
    running.json = running.json.setting(
      "status", .object([("phase", .string("Running")), ("podIP", .string("127.0.0.1"))]))
    _ = try await store.update(.pods, running, status: true)

    let tservers = Informer(store: store, resource: .tservers, namespace: "tars")
    let pods = Informer(store: store, resource: .pods, namespace: "tars", selector: .tarsServer)
    let informers = [Task { await tservers.run() }, Task { await pods.run() }]
    defer { for t in informers { t.cancel() } }
    var deps = AdminServer.Dependencies(
      store: store, namespace: "tars", tservers: tservers, pods: pods, nodeAuth: try NodeCallAuth(secretFile: secret),
      nodeClient: TarsNIOClient(group: MultiThreadedEventLoopGroup.singleton))
    deps.agentPort = agentPort
    let admin = try await AdminServer.start(
      host: "127.0.0.1", port: 0, tokens: AdminTokens(admin: "admin-test-token-0123456789"), dependencies: deps
    ) { _ in }
    defer { Task { await admin.stop() } }
    try "admin-test-token-0123456789".write(toFile: dir.file("admin.token"), atomically: true, encoding: .utf8)
    func tarsctl(_ arguments: [String]) throws -> Tool.Output {
      try Tool.run(
        Tool.path("tarsctl"),
        ["node", "ports"] + arguments + [
          "--admin", "http://127.0.0.1:\(admin.port)", "--token-file", dir.file("admin.token"),
        ])
    }
    // Until the agent listens.
    let rows = try await eventually("tarsctl node ports answering") { () -> [NodePortRow]? in
      let out = try tarsctl(["node-a", "-o", "json"])
      return out.status == 0 ? try JSONDecoder().decode([NodePortRow].self, from: Data(out.stdout.utf8)) : nil
    }
    let mine = try #require(rows.first { $0.port == held.port })
    #expect(mine.pids.contains(Int(getpid())) && mine.transport == "tcp" && mine.namespace == "host", "\(mine)")
    let table = try tarsctl(["node-a"])
    #expect(table.stdout.contains("PROTO") && table.stdout.contains("\(held.port)"), "\(table.stdout)")

    let free = try tarsctl(["node-a", "--free", "\(held.port)-\(held.port + 20)", "--count", "2"])
    let ports = free.stdout.split(separator: "\n").compactMap { Int($0) }
    #expect(free.status == 0 && ports.count == 2 && !ports.contains(held.port), "\(free.stdout)\(free.stderr)")

    let missing = try tarsctl(["node-z"])
    #expect(missing.status != 0 && missing.stderr.contains("no running tarsagent on node node-z"), "\(missing.stderr)")
    let badRange = try tarsctl(["node-a", "--free", "9-2"])
    #expect(badRange.status != 0 && badRange.stderr.contains("--free takes FIRST-LAST"), "\(badRange.stderr)")

    // A Tars pod on the node whose tarsnode says its server is active shows in /metrics.
    let server = try await store.create(
      .pods,
      KubeObject(
        try JSONValue(
          parsing: """
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "test-helloserver-0", "namespace": "tars",
                          "labels": {"tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer"}},
             "spec": {"nodeName": "node-a", "containers": [{"name": "test-helloserver", "image": "x"}]}}
            """)))
    var active = server
    active.json = active.json.setting(
      "status",
      .object([
        ("phase", .string("Running")),
        ("conditions", .array([.object([("type", .string("tars.io/active")), ("status", .string("True"))])])),
      ]))
    _ = try await store.update(.pods, active, status: true)
    let line =
      #"tarsagent_tars_pod_active{namespace="tars",pod="test-helloserver-0",server="Test.HelloServer",phase="Running"} 1"#
    _ = try await eventually("the active pod in /metrics") { () -> Bool? in
      let text = try RawSocket.httpGet(port: metricsPort, path: "/metrics")
      return text.split(separator: "\n").contains { $0 == line } ? true : nil
    }
  }
}
