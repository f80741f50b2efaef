import TarsController
import TarsEmbeddedStore
import TarsKube
import TarsProtocol
import Testing

/// A TServer from JSON text, as the API server would hand it over (uid and namespace set).
func tserver(_ spec: String, name: String = "test-helloserver") throws -> KubeObject {
  var o = KubeObject(try JSONValue(parsing: #"{"apiVersion":"k8s.tars.io/v1beta3","kind":"TServer","spec":\#(spec)}"#))
  o.name = name
  o.namespace = "tars"
  o.json.set(["metadata", "uid"], .string("uid-1"))
  return o
}

/// Stores a TServer as a user applies it: the store gives it its uid.
@discardableResult
func createTServer(_ store: EmbeddedStore, _ spec: String, name: String = "test-helloserver") async throws
  -> KubeObject
{
  var o = try tserver(spec, name: name)
  o.json.set(["metadata", "uid"], nil)
  return try await store.create(.tservers, o)
}

/// A TConfig version of `hello.conf` of Test.HelloServer whose content is its name.
func tconfig(_ name: String, activated: Bool) -> KubeObject {
  KubeObject(
    .object([
      ("apiVersion", .string("k8s.tars.io/v1beta3")), ("kind", .string("TConfig")),
      ("metadata", .object([("name", .string(name)), ("namespace", .string("tars"))])),
      ("app", .string("Test")), ("server", .string("HelloServer")), ("configName", .string("hello.conf")),
      ("configContent", .string(name)), ("activated", .bool(activated)),
    ]))
}

/// The TFrameworkConfig `tars-framework` with these members.
func frameworkConfig(_ members: [(String, JSONValue)]) -> KubeObject {
  KubeObject(
    .object(
      [
        ("apiVersion", .string("k8s.tars.io/v1beta3")), ("kind", .string("TFrameworkConfig")),
        ("metadata", .object([("name", .string("tars-framework")), ("namespace", .string("tars"))])),
      ] + members))
}

/// The namespace `tars` and the template the test TServers name.
func seed(_ store: any ObjectStore) async throws {
  _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
  _ = try await store.create(.ttemplates, template("tars.default"))
}

func template(_ name: String) -> KubeObject {
  var t = KubeObject(.ttemplates, namespace: "tars", name: name)
  t.json.set(["spec"], .object([("content", .string("<tars></tars>")), ("parent", .string(name))]))
  return t
}

let options: WorkloadOptions = {
  var o = WorkloadOptions(nodeImage: "registry.local/tars/node:1")
  o.nodeImagePullSecret = "node-pull"
  return o
}()

extension JSONValue {
  func at(_ dotted: String) -> JSONValue? {
    var v: JSONValue? = self
    for part in dotted.split(separator: ".") {
      if let i = Int(part) { v = v?.arrayValue.flatMap { i < $0.count ? $0[i] : nil } } else { v = v?[String(part)] }
    }
    return v
  }
  func string(_ dotted: String) -> String? { at(dotted)?.stringValue }
  func int(_ dotted: String) -> Int64? { at(dotted)?.intValue }
}

/// Field by field, every part of §4.2's mapping and what tarsnode needs in the pod.
@Suite("TServer → workloads")
struct WorkloadTests {
  static let everyField = """
    {"app": "Test", "server": "HelloServer", "subType": "tars",
     "tars": {"template": "tars.default",
              "servants": [{"name": "HelloObj", "port": 10001}, {"name": "EchoObj", "port": 10002, "isTcp": false}],
              "ports": [{"name": "metrics", "port": 9100}]},
     "k8s": {"replicas": 3, "podManagementPolicy": "OrderedReady", "serviceAccount": "hello",
             "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
             "hostNetwork": true, "hostPorts": [{"nameRef": "HelloObj", "port": 30001}, {"nameRef": "metrics", "port": 30100}],
             "abilityAffinity": "AppRequired",
             "nodeSelector": [{"key": "disk", "operator": "In", "values": ["ssd"]}],
             "imagePullPolicy": "IfNotPresent", "readinessGates": ["custom.io/ready", "tars.io/active"],
             "env": [{"name": "GREETING", "value": "hi"}, {"name": "PodName", "value": "spoofed"}],
             "envFrom": [{"configMapRef": {"name": "hello-env"}}],
             "resources": {"limits": {"memory": "256Mi"}},
             "mounts": [
               {"name": "logs", "mountPath": "/logs", "source": {"hostPath": {"path": "/var/log/tars", "type": "DirectoryOrCreate"}}},
               {"name": "scratch", "mountPath": "/scratch", "source": {"emptyDir": {}}},
               {"name": "certs", "mountPath": "/certs", "readOnly": true, "source": {"secret": {"secretName": "hello-certs"}}},
               {"name": "shared", "mountPath": "/shared", "subPath": "hello", "source": {"persistentVolumeClaim": {"claimName": "shared"}}},
               {"name": "info", "mountPath": "/info", "source": {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}},
               {"name": "conf", "mountPath": "/conf", "source": {"configMap": {"name": "hello-conf"}}},
               {"name": "data", "mountPath": "/data", "source": {"persistentVolumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}}},
               {"name": "local", "mountPath": "/local", "source": {"tLocalVolume": {"uid": "1000", "gid": "1000", "mode": "755"}}}
             ]},
     "release": {"id": "10001", "image": "registry.local/test/hello:10001", "secret": "pull-secret"}}
    """

  @Test func aStatefulSetWithEveryField() throws {
    let objects = try Workloads.desired(try tserver(Self.everyField), options: options)
    #expect(objects.map(\.kind) == ["StatefulSet", "Service"])
    let sts = objects[0].json
    #expect(sts.string("metadata.name") == "test-helloserver" && sts.string("metadata.namespace") == "tars")
    #expect(sts.at("metadata.labels")?.stringMap == ["tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer"])
    #expect(sts.string("metadata.ownerReferences.0.kind") == "TServer")
    #expect(sts.string("metadata.ownerReferences.0.uid") == "uid-1")
    #expect(sts.at("metadata.ownerReferences.0.controller") == .bool(true))
    #expect(sts.string("spec.serviceName") == "test-helloserver")
    #expect(sts.int("spec.replicas") == 3)
    #expect(sts.string("spec.podManagementPolicy") == "OrderedReady")
    #expect(sts.int("spec.updateStrategy.rollingUpdate.partition") == 1)
    #expect(sts.int("spec.revisionHistoryLimit") == 1)
    #expect(
      sts.at("spec.selector.matchLabels")?.stringMap == [
        "tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer",
      ])

    let pod = try #require(sts.at("spec.template"))
    #expect(pod.at("metadata.labels")?.stringMap["tars.io/ServerID"] == "10001")
    #expect(pod.string("spec.serviceAccountName") == "hello")
    #expect(pod.at("spec.hostNetwork") == .bool(true))
    #expect(pod.string("spec.dnsPolicy") == "ClusterFirstWithHostNet")
    #expect(pod.string("spec.dnsConfig.options.0.value") == "2")
    #expect(pod.at("spec.enableServiceLinks") == .bool(false))
    #expect(
      pod.at("spec.readinessGates")?.arrayValue?.compactMap { $0["conditionType"]?.stringValue } == [
        "tars.io/active", "custom.io/ready",
      ])
    #expect(
      pod.at("spec.imagePullSecrets")?.arrayValue?.compactMap { $0["name"]?.stringValue } == [
        "pull-secret", "node-pull",
      ])
    #expect(pod.int("spec.terminationGracePeriodSeconds") == 40, "drain 10 + tarsnode's grace 25 + 5")
    #expect(
      pod.at("spec.containers.0.lifecycle.preStop.exec.command")?.arrayValue?.compactMap(\.stringValue)
        == ["/usr/local/app/tars/tarsnode-bin/tarsnode", "--drain", "10"])

    // Node pools: framework nodes of the namespace, the TServer's own requirement, the app pool.
    let required = pod.at(
      "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0.matchExpressions")
    #expect(
      required?.arrayValue?.compactMap { $0["key"]?.stringValue } == [
        "tars.io/node.tars", "disk", "tars.io/ability.tars.Test",
      ])
    #expect(pod.at("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution") == nil)
    // Host ports force notStacked.
    #expect(
      pod.string("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution.0.topologyKey")
        == "kubernetes.io/hostname")

    // tarsnode comes from the node image, and starts the release image's server.
    #expect(pod.string("spec.initContainers.0.image") == "registry.local/tars/node:1")
    #expect(
      pod.at("spec.initContainers.0.command")?.arrayValue?.compactMap(\.stringValue) == [
        "/tarsnode", "--install", "/usr/local/app/tars/tarsnode-bin",
      ])
    let c = try #require(pod.at("spec.containers.0"))
    #expect(c.string("image") == "registry.local/test/hello:10001")
    #expect(c.string("imagePullPolicy") == "IfNotPresent")
    #expect(c.at("command")?.arrayValue?.compactMap(\.stringValue) == ["/usr/local/app/tars/tarsnode-bin/tarsnode"])
    #expect(c.at("args")?.arrayValue?.compactMap(\.stringValue) == ["--grace", "25"])
    let env = c.at("env")?.arrayValue ?? []
    func envEntry(_ name: String) -> JSONValue? { env.first { $0["name"]?.stringValue == name } }
    #expect(envEntry("PodName")?.string("valueFrom.fieldRef.fieldPath") == "metadata.name")
    #expect(envEntry("PodIP")?.string("valueFrom.fieldRef.fieldPath") == "status.podIP")
    #expect(envEntry("Namespace")?.string("valueFrom.fieldRef.fieldPath") == "metadata.namespace")
    #expect(envEntry("ServerApp")?.string("valueFrom.fieldRef.fieldPath") == "metadata.labels['tars.io/ServerApp']")
    #expect(envEntry("TarsLocator")?["value"]?.stringValue == options.locator)
    #expect(envEntry("TarsRegistry")?["value"]?.stringValue == options.registry)
    #expect(envEntry("TARS_NODE_SECRET_FILE")?["value"]?.stringValue == "/etc/tars/node-secret/secret")
    #expect(envEntry("GREETING")?["value"]?.stringValue == "hi")
    #expect(env.filter { $0["name"]?.stringValue == "PodName" }.count == 1, "the contract cannot be overridden")
    #expect(c.string("envFrom.0.configMapRef.name") == "hello-env")
    #expect(c.string("resources.limits.memory") == "256Mi")
    let ports = c.at("ports")?.arrayValue ?? []
    #expect(ports.map { $0["name"]?.stringValue ?? "" } == ["p30001-10001", "metrics"])
    #expect(ports.map { $0["hostPort"]?.intValue } == [30001, 30100])

    let mounts = c.at("volumeMounts")?.arrayValue ?? []
    #expect(
      mounts.compactMap { $0["name"]?.stringValue }
        == ["tarsnode-bin", "node-secret", "logs", "scratch", "certs", "shared", "info", "conf", "data", "local"])
    #expect(mounts.first { $0["name"]?.stringValue == "node-secret" }?["readOnly"] == .bool(true))
    #expect(mounts.first { $0["name"]?.stringValue == "shared" }?["subPath"]?.stringValue == "hello")
    let volumes = pod.at("spec.volumes")?.arrayValue ?? []
    #expect(
      volumes.compactMap { $0["name"]?.stringValue }
        == ["tarsnode-bin", "node-secret", "logs", "scratch", "certs", "shared", "info", "conf"],
      "claim templates are not pod volumes")
    #expect(volumes[1].string("secret.secretName") == "tars-node-secret")
    #expect(volumes[2].string("hostPath.path") == "/var/log/tars")
    #expect(volumes[5].string("persistentVolumeClaim.claimName") == "shared")
    #expect(volumes[7].string("configMap.name") == "hello-conf")

    let claims = sts.at("spec.volumeClaimTemplates")?.arrayValue ?? []
    #expect(claims.compactMap { $0.string("metadata.name") } == ["data", "local"])
    #expect(claims[0].string("spec.resources.requests.storage") == "5Gi")
    #expect(claims[1].string("spec.storageClassName") == "tars-storage-class")
    #expect(claims[1].at("metadata.labels")?.stringMap["tars.io/LocalVolume"] == "local")
    #expect(
      claims[1].at("metadata.annotations")?.stringMap == [
        "tars.io/LocalVolumeUID": "1000", "tars.io/LocalVolumeGID": "1000", "tars.io/LocalVolumeMode": "755",
      ])

    let svc = objects[1].json
    #expect(svc.string("spec.clusterIP") == "None")
    #expect(svc.string("metadata.ownerReferences.0.name") == "test-helloserver")
    let svcPorts = svc.at("spec.ports")?.arrayValue ?? []
    #expect(svcPorts.compactMap { $0["name"]?.stringValue } == ["helloobj", "echoobj", "metrics"])
    #expect(svcPorts.compactMap { $0["protocol"]?.stringValue } == ["TCP", "UDP", "TCP"])
    #expect(svcPorts.compactMap { $0["targetPort"]?.intValue } == [10001, 10002, 9100])
  }

  @Test func withoutAReleaseNothingRuns() throws {
    let sts = try Workloads.desired(
      try tserver(
        #"{"app": "Test", "server": "HelloServer", "subType": "tars", "tars": {"template": "tars.default", "servants": []}, "k8s": {"replicas": 2}}"#
      ),
      options: options)[0].json
    #expect(sts.int("spec.replicas") == 0)
    #expect(sts.string("spec.template.spec.containers.0.image") == " ")
    #expect(sts.at("spec.template.metadata.labels")?.stringMap["tars.io/ServerID"] == nil)
    #expect(sts.string("spec.podManagementPolicy") == "Parallel")
    #expect(sts.int("spec.updateStrategy.rollingUpdate.partition") == 0)
    let preferred =
      sts.at("spec.template.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution")?.arrayValue
      ?? []
    #expect(preferred.compactMap { $0["weight"]?.intValue } == [60, 30], "AppOrServerPreferred is the default")
    #expect(preferred.first?.string("preference.matchExpressions.0.key") == "tars.io/ability.tars.Test-HelloServer")
    #expect(sts.at("spec.template.spec.affinity.podAntiAffinity") == nil)
    #expect(sts.string("spec.template.spec.dnsPolicy") == "ClusterFirst")
  }

  @Test func aDaemonSetHasNoServiceAndNoPools() throws {
    let objects = try Workloads.desired(
      try tserver(
        #"{"app": "Test", "server": "HelloServer", "subType": "tars", "tars": {"template": "tars.default", "servants": [{"name": "HelloObj", "port": 10001}]}, "k8s": {"daemonSet": true, "notStacked": true, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 3}}}, "release": {"id": "1", "image": "hello:1", "nodeImage": "node:2"}}"#
      ),
      options: options)
    #expect(objects.map(\.kind) == ["DaemonSet"])
    let ds = objects[0].json
    #expect(ds.int("spec.updateStrategy.rollingUpdate.maxUnavailable") == 3)
    #expect(ds.int("spec.minReadySeconds") == 3)
    #expect(ds.at("spec.template.spec.affinity.podAntiAffinity") == nil)
    #expect(ds.at("spec.template.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution") == nil)
    #expect(ds.string("spec.template.spec.initContainers.0.image") == "node:2", "the release's node image wins")
  }

  @Test func aNormalServerRunsItsCommandUnderTarsnode() throws {
    let sts = try Workloads.desired(
      try tserver(
        #"{"app": "Test", "server": "Web", "subType": "normal", "normal": {"ports": [{"name": "http", "port": 8080}]}, "k8s": {"replicas": 1, "command": ["nginx"], "args": ["-g", "daemon off;"]}, "release": {"id": "1", "image": "nginx:1.25"}}"#,
        name: "test-web"),
      options: options)[0].json
    #expect(sts.at("spec.template.spec.readinessGates") == nil)
    #expect(
      sts.at("spec.template.spec.containers.0.args")?.arrayValue?.compactMap(\.stringValue)
        == ["--grace", "25", "--server-type", "not-tars", "--", "nginx", "-g", "daemon off;"])
    #expect(sts.string("spec.template.spec.containers.0.ports.0.name") == "http")
  }

  @Test func theServerTypeAnnotationReachesTarsnodeAndAWrongOneIsRefused() throws {
    let spec =
      #"{"app": "Test", "server": "HelloServer", "subType": "tars", "tars": {"template": "tars.default", "servants": []}, "k8s": {"replicas": 1, "env": [{"name": "ServerType", "value": "cpp"}]}, "release": {"id": "1", "image": "hello:1"}}"#
    var go = try tserver(spec)
    go.annotations = ["tars.io/ServerType": "go"]
    let env =
      try Workloads.desired(go, options: options)[0].json.at("spec.template.spec.containers.0.env")?
      .arrayValue ?? []
    #expect(env.filter { $0["name"]?.stringValue == "ServerType" }.compactMap { $0["value"]?.stringValue } == ["go"])
    var wrong = try tserver(spec)
    wrong.annotations = ["tars.io/ServerType": "rust"]
    let refused = #expect(throws: WorkloadError.self) { try Workloads.desired(wrong, options: options) }
    #expect(
      refused?.message
        == "annotation tars.io/ServerType is 'rust': use one of cpp, go, java-jar, java-war, nodejs, nodejs-pkg")
  }

  @Test func whatCannotBeBuiltSaysWhatToChange() throws {
    let misnamed = #expect(throws: WorkloadError.self) {
      try Workloads.desired(
        try tserver(#"{"app": "Test", "server": "HelloServer", "subType": "tars"}"#, name: "hello"), options: options)
    }
    #expect(misnamed?.message == "TServer hello must be named test-helloserver (lower(app)-lower(server))")
    let dangling = #expect(throws: WorkloadError.self) {
      try Workloads.desired(
        try tserver(
          #"{"app": "Test", "server": "HelloServer", "subType": "tars", "tars": {"servants": []}, "k8s": {"hostPorts": [{"nameRef": "nope", "port": 1}]}}"#
        ),
        options: options)
    }
    #expect(dangling?.message.contains("names nope, which is neither a servant nor a port") == true)
  }
}
