import AsyncHTTPClient
import Foundation
import NIOPosix
import Synchronization
import TarsAdmin
import TarsAdminAPI
import TarsAuth
import TarsControlPlaneCore
import TarsEmbeddedStore
import TarsKube
import TarsNIO
import TarsNotifyService
import TarsProtocol
import TarsStoreTestSupport
import Testing

/// The Roles in deploy/ grant exactly what the admin API and the install Job ask of the API:
/// every request of a run through every route is recorded and compared with the Role, so a new
/// call without its permission — or a permission nothing uses — fails here, not in a cluster.
@Suite("The admin API's and the install Job's RBAC")
struct ClusterRBACTests {
  @Test func theSecretsJobMakesBothSecretsOnceWithCreateAlone() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    let used = Mutex<Set<String>>([])
    let observed = ObservedStore(store) { verb, resource in used.withLock { _ = $0.insert("\(verb) \(resource)") } }

    let first = try await InstallSecrets.ensure(store: observed, namespace: "tars")
    #expect(first.map(\.name) == ["tars-node-secret", "tars-admin-token"] && first.allSatisfy(\.created))
    func value(_ name: String, _ key: String) async throws -> String {
      let secret = try await store.get(.secrets, namespace: "tars", name: name)
      let encoded = try #require(secret.json[path: ["data", key]]?.stringValue)
      return String(decoding: try #require(Data(base64Encoded: encoded)), as: UTF8.self)
    }
    let node = try await value("tars-node-secret", "secret")
    let token = try await value("tars-admin-token", "token")
    #expect(node.count == 65 && token.count == 65 && node != token)
    // What tarsnode and the admin API read from the mounted files.
    let trimmed = node.trimmingCharacters(in: .whitespacesAndNewlines)
    _ = try NodeCallAuth(secret: Array(trimmed.utf8))
    let tokens = try AdminTokens(file: token)
    #expect(tokens.entries.map(\.role) == [.admin])

    // Applying again keeps both as they are (running pods keep verifying).
    let second = try await InstallSecrets.ensure(store: observed, namespace: "tars")
    #expect(second.allSatisfy { !$0.created })
    #expect(try await value("tars-node-secret", "secret") == node)
    #expect(try await value("tars-admin-token", "token") == token)

    let needed = used.withLock { $0 }
    let role = try RoleGrants.granted("framework/secrets.yaml")
    #expect(
      role == needed, "granted but unused: \(role.subtracting(needed)); used, not granted: \(needed.subtracting(role))")
  }

  @Test func theAdminRoleGrantsWhatTheAdminAPIUsesAndNothingElse() async throws {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    var pod = KubeObject(
      .pods, namespace: "tars", name: "test-helloserver-0",
      labels: ["tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer"])
    pod.json = pod.json.setting(path: ["status", "podIP"], .string("127.0.0.1"))
    _ = try await store.create(.pods, pod)
    let used = Mutex<Set<String>>([])
    let observed = ObservedStore(store) { verb, resource in used.withLock { _ = $0.insert("\(verb) \(resource)") } }

    let tservers = Informer(store: observed, resource: .tservers, namespace: "tars")
    let pods = Informer(store: observed, resource: .pods, namespace: "tars", selector: .tarsServer)
    let informers = [Task { await tservers.run() }, Task { await pods.run() }]
    let nodeClient = TarsNIOClient(group: MultiThreadedEventLoopGroup.singleton)
    var deps = AdminServer.Dependencies(
      store: observed, namespace: "tars", tservers: tservers, pods: pods,
      nodeAuth: try NodeCallAuth(secret: Array(repeating: 7, count: 32)), nodeClient: nodeClient)
    deps.nodeObjPort = 1  // nothing listens: the fan-out fails fast, after its reads
    let token = String(repeating: "a", count: 32)
    let admin = try await AdminServer.start(
      host: "127.0.0.1", port: 0, tokens: AdminTokens(admin: token), dependencies: deps, log: { _ in })
    let client = AdminClient(baseURL: "http://127.0.0.1:\(admin.port)", token: token)

    func config(_ content: String) -> String {
      """
      apiVersion: k8s.tars.io/v1beta3
      kind: TConfig
      metadata: {name: test-helloserver-a.conf}
      app: Test
      server: HelloServer
      podSeq: m
      configName: a.conf
      activated: true
      configContent: \(content)
      """
    }
    let manifests = """
      apiVersion: k8s.tars.io/v1beta3
      kind: TTemplate
      metadata: {name: tars.default}
      spec: {content: '', parent: tars.default}
      ---
      apiVersion: k8s.tars.io/v1beta3
      kind: TServer
      metadata: {name: test-helloserver}
      spec:
        app: Test
        server: HelloServer
        subType: tars
        tars: {template: tars.default, servants: [{name: HelloObj, port: 10015}]}
        k8s: {replicas: 1}
      ---
      apiVersion: k8s.tars.io/v1beta3
      kind: TFrameworkConfig
      metadata: {name: tars-framework}
      imageUpload: {registry: registry.example.com/tars}
      ---
      \(config("x=1"))
      """
    for text in [manifests, manifests, config("x=2")] {
      let rows = try client.decode(try await client.send(.POST, "/apply", body: Array(text.utf8))) as [ApplyRow]
      #expect(!rows.contains { $0.action == "rejected" }, "\(rows)")
    }
    for _ in 0..<100 where tservers.objects.isEmpty || pods.objects.isEmpty {
      try await Task.sleep(for: .milliseconds(20))
    }
    _ = try await client.get("/servers", as: [ServerRow].self)
    _ = try await client.get("/pods", as: [PodRow].self)
    _ = try await client.get("/events", as: [EventRow].self)
    _ = try await client.get("/notifications", as: [NotificationRow].self)
    let log = await #expect(throws: AdminClientError.self) {
      try await client.send(.GET, "/pods/test-helloserver-0/logs")
    }
    #expect(log?.status == 404 && log?.message.contains("runs no kubelet") == true, "\(log?.message ?? "")")
    _ = try? await client.post("/servers/Test.HelloServer/restart", [String: String](), as: [PodCallResult].self)
    for drained in [true, false] {
      _ = try await client.post("/pods/test-helloserver-0/drain", DrainRequest(drained: drained), as: ApplyRow.self)
    }
    _ = try await client.post("/servers/Test.HelloServer/scale", ScaleRequest(replicas: 2), as: ApplyRow.self)
    _ = try client.decode(try await client.send(.DELETE, "/servers/Test.HelloServer")) as ApplyRow

    // Each change is an Event about what it changed, with who made it.
    let audit = try await store.list(.events, namespace: "tars", options: ListOptions()).items.filter {
      $0.labels["tars.io/audit"] == "admin"
    }
    let messages = audit.map { $0.json["message"]?.stringValue ?? "" }
    #expect(messages.contains("admin (admin) POST /api/v1/servers/Test.HelloServer/scale: 200"), "\(messages)")
    let drained = try #require(audit.first { ($0.json["message"]?.stringValue ?? "").contains("/drain") })
    #expect(drained.json[path: ["involvedObject", "kind"]]?.stringValue == "Pod")
    #expect(drained.json[path: ["involvedObject", "name"]]?.stringValue == "test-helloserver-0")
    #expect(!messages.contains { $0.contains(" GET ") }, "reads are not recorded")

    await admin.stop()
    for t in informers { t.cancel() }
    await nodeClient.close()
    let needed = used.withLock { $0 }
    let role = try RoleGrants.granted("admin/rbac.yaml")
    #expect(
      role == needed,
      "granted but unused: \(role.subtracting(needed).sorted()); used but not granted: \(needed.subtracting(role).sorted())"
    )
  }
}
