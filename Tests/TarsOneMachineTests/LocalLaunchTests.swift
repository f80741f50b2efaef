import Foundation
import TarsEmbeddedStore
import TarsKube
import TarsOneMachine
import TarsProtocol
import TarsTestSupport
import Testing
import Yams

@testable import TarsLocalRuntime

/// The local kubelet reads what to run from the pod the StatefulSet's template made, as a real
/// kubelet does: downward-API fields, ConfigMap and Secret keys, and a clear refusal otherwise.
@Suite("A pod's container resolved for this machine")
struct LocalLaunchTests {
  let configuration: LocalRuntimeConfiguration = {
    var c = LocalRuntimeConfiguration(
      stateDirectory: "/state", tarsnode: "/bin/tarsnode", registry: "r", locator: "l", notify: "n",
      secretFile: "/state/node.secret", workingDirectory: "/work")
    c.binDirectory = "/opt/bin"
    return c
  }()

  func pod(env: [JSONValue], envFrom: [JSONValue] = [], image: String = "HelloServer") -> KubeObject {
    var pod = KubeObject(
      .pods, namespace: "tars", name: "test-helloserver-0",
      labels: ["tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer"],
      spec: .object([("nodeName", .string("local"))]))
    pod.annotations = ["note": "hi"]
    pod.json.set(["metadata", "uid"], .string("u-1"))
    pod.json.set(
      ["spec", "containers"],
      .array([
        .object([
          ("name", .string("test-helloserver")), ("image", .string(image)),
          ("args", .array(["--grace", "25", "--server-type", "not-tars", "--", "sh", "--grace"].map { .string($0) })),
          ("env", .array(env)), ("envFrom", .array(envFrom)),
        ])
      ]))
    return pod
  }

  static func field(_ name: String, _ path: String) -> JSONValue {
    .object([("name", .string(name)), ("valueFrom", .object([("fieldRef", .object([("fieldPath", .string(path))]))]))])
  }

  static func key(_ name: String, _ kind: String, _ object: String, _ key: String, optional: Bool = false) -> JSONValue
  {
    .object([
      ("name", .string(name)),
      (
        "valueFrom",
        .object([
          (kind, .object([("name", .string(object)), ("key", .string(key)), ("optional", .bool(optional))]))
        ])
      ),
    ])
  }

  func store() async throws -> EmbeddedStore {
    let store = try EmbeddedStore(path: nil)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    var map = KubeObject(.configMaps, namespace: "tars", name: "settings")
    map.json.set(["data"], .object([("mode", .string("fast")), ("level", .string("3"))]))
    _ = try await store.create(.configMaps, map)
    var secret = KubeObject(.secrets, namespace: "tars", name: "creds")
    secret.json.set(["data"], .object([("password", .string(Data("s3cret".utf8).base64EncodedString()))]))
    _ = try await store.create(.secrets, secret)
    return store
  }

  @Test func fieldsKeysAndArgumentsAreResolved() async throws {
    let env: [JSONValue] = [
      .object([("name", .string("Plain")), ("value", .string("v"))]),
      Self.field("PodName", "metadata.name"), Self.field("PodIP", "status.podIP"),
      Self.field("Namespace", "metadata.namespace"), Self.field("ServerApp", "metadata.labels['tars.io/ServerApp']"),
      Self.field("Note", "metadata.annotations['note']"), Self.field("Node", "spec.nodeName"),
      Self.field("Host", "status.hostIP"), Self.field("UID", "metadata.uid"),
      Self.key("Mode", "configMapKeyRef", "settings", "mode"),
      Self.key("Password", "secretKeyRef", "creds", "password"),
      Self.key("Absent", "configMapKeyRef", "settings", "nope", optional: true),
    ]
    let from: [JSONValue] = [
      .object([("prefix", .string("CM_")), ("configMapRef", .object([("name", .string("settings"))]))])
    ]
    let launch = try await LocalLaunch(
      pod: pod(env: env, envFrom: from),
      container: pod(env: env, envFrom: from).spec!["containers"]!.arrayValue!
        .first!, ip: "127.0.100.7", store: store(), configuration: configuration)
    #expect(
      launch.environment == [
        "Plain": "v", "PodName": "test-helloserver-0", "PodIP": "127.0.100.7", "Namespace": "tars",
        "ServerApp": "Test", "Note": "hi", "Node": "local", "Host": "127.0.0.1", "UID": "u-1", "Mode": "fast",
        "Password": "s3cret", "CM_mode": "fast", "CM_level": "3",
      ])
    #expect(launch.image == "/opt/bin/HelloServer")
    #expect(launch.containerName == "test-helloserver")
    // tarsnode's own --grace goes (this machine's timing rules); the server's argv keeps its words.
    #expect(launch.arguments == ["--server-type", "not-tars", "--", "sh", "--grace"])
  }

  @Test func aRelativeImageIsUnderTheWorkingDirectory() async throws {
    let p = pod(env: [], image: "build/MyServer")
    let launch = try await LocalLaunch(
      pod: p, container: p.spec!["containers"]!.arrayValue!.first!, ip: "127.0.100.7", store: store(),
      configuration: configuration)
    #expect(launch.image == "/work/build/MyServer")
  }

  @Test(arguments: [
    (
      Self.key("X", "configMapKeyRef", "missing", "k"),
      "ConfigMap missing does not exist: create it, or mark the reference optional"
    ),
    (
      Self.key("X", "secretKeyRef", "creds", "user"),
      "env X: Secret creds has no key user: add it, or mark the reference optional"
    ),
    (
      Self.field("X", "status.phase"),
      "env X: fieldRef status.phase is not one this machine can give: use metadata.name, metadata.namespace, "
        + "metadata.uid, metadata.labels['…'], metadata.annotations['…'], spec.nodeName, "
        + "spec.serviceAccountName, status.podIP or status.hostIP"
    ),
  ])
  func whatCannotBeResolvedIsRefusedWithWhatToChange(_ env: JSONValue, _ message: String) async throws {
    let p = pod(env: [env])
    let store = try await store()
    do {
      _ = try await LocalLaunch(
        pod: p, container: p.spec!["containers"]!.arrayValue!.first!, ip: "127.0.100.7", store: store,
        configuration: configuration)
      Issue.record("\(env) should be refused")
    } catch {
      #expect(error.message == message)
    }
  }
}

/// A cluster's servers start from the same template as one-machine mode's.
@Suite("The default template")
struct DefaultTemplateTests {
  @Test func deployHasTheTemplateUpCreates() throws {
    let url = Fixtures.repositoryRoot.appendingPathComponent("deploy/framework/tars.default.yaml")
    let doc = try #require(try Yams.load(yaml: String(contentsOf: url, encoding: .utf8)) as? [String: Any])
    let spec = try #require(doc["spec"] as? [String: Any])
    #expect(spec["content"] as? String == TarsOneMachine.OneMachine.defaultTemplate)
    #expect(spec["parent"] as? String == "tars.default")
    #expect((doc["metadata"] as? [String: Any])?["name"] as? String == "tars.default")
  }
}
