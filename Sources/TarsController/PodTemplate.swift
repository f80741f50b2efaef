import TarsKube
import TarsProtocol

/// The parts of a TServer the workload is made of, read once and checked.
struct Spec {
  struct Port {
    var name: String
    var port: Int64
    var isTcp: Bool
  }

  var name: String
  var app: String
  var server: String
  var isTars: Bool
  /// `spec.k8s`, kept as JSON: its Kubernetes-typed fields are copied as they are.
  var k8s: JSONValue
  var release: JSONValue?
  var servants: [Port]
  var ports: [Port]
  /// `spec.k8s.hostPorts`: a servant or port name → the node port it takes.
  var hostPorts: [String: Int64]
  var daemonSet: Bool
  var replicas: Int64
  /// The annotation `tars.io/ServerType`: how tarsnode launches a tars server (cpp by default).
  var serverType: String?

  static let serverTypes = ["cpp", "go", "java-jar", "java-war", "nodejs", "nodejs-pkg"]

  init(_ o: KubeObject) throws(WorkloadError) {
    guard let spec = o.spec, let app = spec["app"]?.stringValue, let server = spec["server"]?.stringValue else {
      throw WorkloadError("TServer \(o.name) has no spec.app or spec.server")
    }
    let expected = "\(app.lowercased())-\(server.lowercased())"
    guard o.name == expected else {
      throw WorkloadError("TServer \(o.name) must be named \(expected) (lower(app)-lower(server))")
    }
    name = o.name
    self.app = app
    self.server = server
    isTars = spec["subType"]?.stringValue != "normal"
    k8s = spec["k8s"] ?? .object([])
    release = spec["release"]
    func ports(_ list: JSONValue?) -> [Port] {
      (list?.arrayValue ?? []).compactMap { p in
        guard let name = p["name"]?.stringValue, let port = p["port"]?.intValue else { return nil }
        return Port(name: name, port: port, isTcp: p["isTcp"]?.boolValue ?? true)
      }
    }
    servants = isTars ? ports(spec[path: ["tars", "servants"]]) : []
    self.ports = ports(isTars ? spec[path: ["tars", "ports"]] : spec[path: ["normal", "ports"]])
    var hostPorts: [String: Int64] = [:]
    for h in k8s["hostPorts"]?.arrayValue ?? [] {
      guard let ref = h["nameRef"]?.stringValue, let port = h["port"]?.intValue else { continue }
      guard
        servants.contains(where: { $0.name.lowercased() == ref.lowercased() })
          || self.ports.contains(where: { $0.name == ref })
      else {
        throw WorkloadError("spec.k8s.hostPorts names \(ref), which is neither a servant nor a port of \(o.name)")
      }
      hostPorts[ref.lowercased()] = port
    }
    self.hostPorts = hostPorts
    daemonSet = k8s["daemonSet"]?.boolValue ?? false
    replicas = k8s["replicas"]?.intValue ?? 0
    serverType = o.annotations[Workloads.serverTypeAnnotation]
    if let t = serverType, isTars, !Self.serverTypes.contains(t) {
      throw WorkloadError(
        "annotation \(Workloads.serverTypeAnnotation) is '\(t)': use one of \(Self.serverTypes.joined(separator: ", "))"
      )
    }
  }

  var selectorLabels: [String: String] { [Workloads.appLabel: app, Workloads.serverLabel: server] }
  var image: String? { release?["image"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } }
  var hasRelease: Bool { image != nil }
  var usesHost: Bool { !hostPorts.isEmpty || (k8s["hostIPC"]?.boolValue ?? false) }
}

extension Workloads {
  static let tarsnodeDirectory = "/usr/local/app/tars/tarsnode-bin"
  static let secretDirectory = "/etc/tars/node-secret"

  /// The pod template (§4.2 `pod.go`), plus what tarsnode needs to run any image: tarsnode copied
  /// in from the node image, the pod contract as downward-API env, the NodeObj secret.
  static func podTemplate(_ s: Spec, namespace: String, options o: WorkloadOptions) -> JSONValue {
    var labels = s.selectorLabels
    if let id = s.release?["id"]?.stringValue, !id.isEmpty { labels[idLabel] = id }
    let hostNetwork = s.k8s["hostNetwork"]?.boolValue ?? false
    let nodeImage = s.release?["nodeImage"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? o.nodeImage
    var spec: [(String, JSONValue)] = []
    if let account = s.k8s["serviceAccount"]?.stringValue, !account.isEmpty {
      spec.append(("serviceAccountName", .string(account)))
    }
    spec.append(("enableServiceLinks", .bool(false)))
    spec.append(("dnsPolicy", .string(hostNetwork ? "ClusterFirstWithHostNet" : "ClusterFirst")))
    spec.append(
      ("dnsConfig", .object([("options", .array([.object([("name", .string("ndots")), ("value", .string("2"))])]))])))
    if hostNetwork { spec.append(("hostNetwork", .bool(true))) }
    if s.k8s["hostIPC"]?.boolValue == true { spec.append(("hostIPC", .bool(true))) }
    var gates = s.isTars ? ["tars.io/active"] : []
    for g in s.k8s["readinessGates"]?.arrayValue ?? [] {
      if let t = g["conditionType"]?.stringValue ?? g.stringValue, !gates.contains(t) { gates.append(t) }
    }
    if !gates.isEmpty {
      spec.append(("readinessGates", .array(gates.map { .object([("conditionType", .string($0))]) })))
    }
    spec.append(("affinity", affinity(s, namespace: namespace)))
    var secrets: [String] = []
    for name in [s.release?["secret"]?.stringValue, s.release?["nodeSecret"]?.stringValue ?? o.nodeImagePullSecret] {
      if let name, !name.isEmpty, !secrets.contains(name) { secrets.append(name) }
    }
    if !secrets.isEmpty { spec.append(("imagePullSecrets", .array(secrets.map { .object([("name", .string($0))]) }))) }
    spec.append(("terminationGracePeriodSeconds", .integer(Int64(o.drainSeconds + o.graceSeconds + 5))))
    spec.append(("restartPolicy", .string("Always")))
    spec.append(
      (
        "initContainers",
        .array([
          .object([
            ("name", .string("tarsnode")), ("image", .string(nodeImage)),
            ("imagePullPolicy", .string("IfNotPresent")),
            ("command", .array(["/tarsnode", "--install", tarsnodeDirectory].map { .string($0) })),
            ("volumeMounts", .array([mount("tarsnode-bin", tarsnodeDirectory, readOnly: false)])),
          ])
        ])
      ))
    spec.append(("containers", .array([container(s, options: o)])))
    spec.append(("volumes", .array(volumes(s, options: o))))
    return .object([("metadata", .object([("labels", .stringMap(labels))])), ("spec", .object(spec))])
  }

  /// The server's container: the release image, started by tarsnode.
  static func container(_ s: Spec, options o: WorkloadOptions) -> JSONValue {
    var c: [(String, JSONValue)] = [
      ("name", .string(s.name)), ("image", .string(s.image ?? noImage)),
      ("imagePullPolicy", .string(s.k8s["imagePullPolicy"]?.stringValue ?? "Always")),
      ("command", .array([.string(tarsnodeDirectory + "/tarsnode")])),
    ]
    var args = ["--grace", String(o.graceSeconds)]
    if !s.isTars {
      args += ["--server-type", "not-tars"]
      let command = (s.k8s["command"]?.arrayValue ?? []) + (s.k8s["args"]?.arrayValue ?? [])
      let words = command.compactMap(\.stringValue)
      if !words.isEmpty { args += ["--"] + words }
    }
    c.append(("args", .array(args.map { .string($0) })))
    if o.drainSeconds > 0 {
      let drain: JSONValue = .array(
        [tarsnodeDirectory + "/tarsnode", "--drain", String(o.drainSeconds)].map { .string($0) })
      let exec: JSONValue = .object([("exec", .object([("command", drain)]))])
      c.append(("lifecycle", .object([("preStop", exec)])))
    }
    var env: [JSONValue] = [
      field("PodName", "metadata.name"), field("PodIP", "status.podIP"), field("Namespace", "metadata.namespace"),
      field("ServerApp", "metadata.labels['\(appLabel)']"), field("ServerName", "metadata.labels['\(serverLabel)']"),
      value("TarsRegistry", o.registry), value("TarsLocator", o.locator), value("TarsNotify", o.notify),
      value("TARS_NODE_SECRET_FILE", secretDirectory + "/secret"),
    ]
    var reserved = contractVariables
    if s.isTars, let type = s.serverType {
      env.append(value("ServerType", type))
      reserved.insert("ServerType")
    }
    env += (s.k8s["env"]?.arrayValue ?? []).filter { !reserved.contains($0["name"]?.stringValue ?? "") }
    c.append(("env", .array(env)))
    for key in ["envFrom", "resources"] { if let v = s.k8s[key] { c.append((key, v)) } }
    var ports: [JSONValue] = []
    for p in s.servants {
      guard let host = s.hostPorts[p.name.lowercased()] else { continue }
      ports.append(containerPort("p\(host)-\(p.port)", p, host: host))
    }
    for p in s.ports { ports.append(containerPort(p.name, p, host: s.hostPorts[p.name.lowercased()])) }
    if !ports.isEmpty { c.append(("ports", .array(ports))) }
    var mounts = [
      mount("tarsnode-bin", tarsnodeDirectory, readOnly: true), mount("node-secret", secretDirectory, readOnly: true),
    ]
    for m in s.k8s["mounts"]?.arrayValue ?? [] {
      guard let name = m["name"]?.stringValue, let path = m["mountPath"]?.stringValue else { continue }
      var v: [(String, JSONValue)] = [("name", .string(name)), ("mountPath", .string(path))]
      for key in ["readOnly", "subPath", "subPathExpr", "mountPropagation"] { if let x = m[key] { v.append((key, x)) } }
      mounts.append(.object(v))
    }
    c.append(("volumeMounts", .array(mounts)))
    return .object(c)
  }

  /// The pod's volumes: tarsnode's, the secret's, and each mount whose source is a volume (claim
  /// templates and local volumes become `volumeClaimTemplates` instead).
  static func volumes(_ s: Spec, options o: WorkloadOptions) -> [JSONValue] {
    var out: [JSONValue] = [
      .object([("name", .string("tarsnode-bin")), ("emptyDir", .object([]))]),
      // Readable by any uid: tarsnode runs as the image's user, which an unchanged image may
      // make anyone; the only processes in the container are tarsnode and its server.
      .object([
        ("name", .string("node-secret")),
        ("secret", .object([("secretName", .string(o.nodeSecretName)), ("defaultMode", .integer(0o444))])),
      ]),
    ]
    for m in s.k8s["mounts"]?.arrayValue ?? [] {
      guard let name = m["name"]?.stringValue, let source = m["source"] else { continue }
      for key in ["hostPath", "emptyDir", "secret", "persistentVolumeClaim", "downwardAPI", "configMap"] {
        if let v = source[key] { out.append(.object([("name", .string(name)), (key, v)])) }
      }
    }
    return out
  }

  /// `persistentVolumeClaimTemplate` mounts as they are; `tLocalVolume` mounts as claims on the
  /// agent's `tars-storage-class`, with the owner and mode the volume's directory gets.
  static func volumeClaimTemplates(_ s: Spec) -> [JSONValue] {
    var out: [JSONValue] = []
    for m in s.k8s["mounts"]?.arrayValue ?? [] {
      guard let name = m["name"]?.stringValue, let source = m["source"] else { continue }
      if let template = source["persistentVolumeClaimTemplate"] {
        out.append(template.setting(path: ["metadata", "name"], .string(name)))
      } else if let local = source["tLocalVolume"] {
        var labels = s.selectorLabels
        labels["tars.io/LocalVolume"] = name
        var annotations: [String: String] = [:]
        for (key, field) in [("UID", "uid"), ("GID", "gid"), ("Mode", "mode")] {
          if let v = local[field] { annotations["tars.io/LocalVolume\(key)"] = v.stringValue ?? v.description }
        }
        var metadata = JSONValue.object([("name", .string(name)), ("labels", .stringMap(labels))])
        if !annotations.isEmpty { metadata = metadata.setting("annotations", .stringMap(annotations)) }
        out.append(
          .object([
            ("metadata", metadata),
            (
              "spec",
              .object([
                ("accessModes", .array([.string("ReadWriteOnce")])),
                ("storageClassName", .string("tars-storage-class")),
                ("resources", .object([("requests", .object([("storage", .string("1G"))]))])),
                ("selector", .object([("matchLabels", .stringMap(labels))])),
              ])
            ),
          ]))
      }
    }
    return out
  }

  /// Node pools (§4.4): framework nodes of this namespace, the TServer's own requirements, the
  /// ability pools; and `notStacked` (forced by host ports or host IPC) as anti-affinity. A
  /// DaemonSet keeps only the node requirements: it runs one pod per chosen node anyway.
  static func affinity(_ s: Spec, namespace: String) -> JSONValue {
    func exists(_ key: String) -> JSONValue {
      .object([("key", .string(key)), ("operator", .string("Exists"))])
    }
    let appPool = "tars.io/ability.\(namespace).\(s.app)"
    let serverPool = "tars.io/ability.\(namespace).\(s.app)-\(s.server)"
    var required = [exists("tars.io/node.\(namespace)")] + (s.k8s["nodeSelector"]?.arrayValue ?? [])
    let ability = s.daemonSet ? "None" : (s.k8s["abilityAffinity"]?.stringValue ?? "AppOrServerPreferred")
    if ability == "AppRequired" { required.append(exists(appPool)) }
    if ability == "ServerRequired" { required.append(exists(serverPool)) }
    var node: [(String, JSONValue)] = [
      (
        "requiredDuringSchedulingIgnoredDuringExecution",
        .object([("nodeSelectorTerms", .array([.object([("matchExpressions", .array(required))])]))])
      )
    ]
    if ability == "AppOrServerPreferred" {
      node.append(
        (
          "preferredDuringSchedulingIgnoredDuringExecution",
          .array([
            .object([
              ("weight", .integer(60)), ("preference", .object([("matchExpressions", .array([exists(serverPool)]))])),
            ]),
            .object([
              ("weight", .integer(30)), ("preference", .object([("matchExpressions", .array([exists(appPool)]))])),
            ]),
          ])
        ))
    }
    var affinity: [(String, JSONValue)] = [("nodeAffinity", .object(node))]
    if !s.daemonSet && ((s.k8s["notStacked"]?.boolValue ?? false) || s.usesHost) {
      affinity.append(
        (
          "podAntiAffinity",
          .object([
            (
              "requiredDuringSchedulingIgnoredDuringExecution",
              .array([
                .object([
                  ("labelSelector", .object([("matchLabels", .stringMap(s.selectorLabels))])),
                  ("topologyKey", .string("kubernetes.io/hostname")),
                ])
              ])
            )
          ])
        ))
    }
    return .object(affinity)
  }

  static func field(_ name: String, _ path: String) -> JSONValue {
    .object([
      ("name", .string(name)),
      ("valueFrom", .object([("fieldRef", .object([("fieldPath", .string(path))]))])),
    ])
  }

  static func value(_ name: String, _ value: String) -> JSONValue {
    .object([("name", .string(name)), ("value", .string(value))])
  }

  /// A volume mount; `readOnly` only when true, as the API server stores it (it drops a false
  /// one, and a field written but not stored would look like a change on every pass).
  static func mount(_ name: String, _ path: String, readOnly: Bool) -> JSONValue {
    var m: [(String, JSONValue)] = [("name", .string(name)), ("mountPath", .string(path))]
    if readOnly { m.append(("readOnly", .bool(true))) }
    return .object(m)
  }

  static func containerPort(_ name: String, _ p: Spec.Port, host: Int64?) -> JSONValue {
    var v: [(String, JSONValue)] = [("name", .string(name)), ("containerPort", .integer(p.port))]
    if let host { v.append(("hostPort", .integer(host))) }
    v.append(("protocol", .string(p.isTcp ? "TCP" : "UDP")))
    return .object(v)
  }
}
