import TarsKube
import TarsProtocol

/// What the controller fills into every workload besides the TServer itself: where the
/// framework's services are and which node image carries tarsnode.
public struct WorkloadOptions: Sendable {
  /// The image holding the static tarsnode at `/tarsnode` (docker/node), copied into each pod by an
  /// init container, so any image — the framework's bases or an unchanged one — runs under it.
  public var nodeImage: String
  public var nodeImagePullSecret: String?
  public var registry = "tars.tarsregistry.RegistryObj@tcp -h tars-tarsregistry -p 17891"
  public var locator = "tars.tarsregistry.QueryObj@tcp -h tars-tarsregistry -p 17890"
  public var notify = "tars.tarsnotify.NotifyObj@tcp -h tars-tarsnotify -p 17893"
  /// The Secret with the NodeObj secret (key `secret`), mounted read-only into every pod.
  public var nodeSecretName = "tars-node-secret"
  /// tarsnode's `--grace`; the pod gets five seconds more, so tarsnode always finishes its stop
  /// sequence (AdminObj.shutdown, SIGTERM, SIGKILL) before the kubelet kills it.
  public var graceSeconds = 25
  /// How long a terminating pod keeps serving before its stop: the preStop hook
  /// (`tarsnode --drain`) waits while clients drop the endpoint the registry no longer lists
  /// as active. 0: no hook. Cover the clients' `refresh-endpoint-interval` for a lossless roll.
  public var drainSeconds = 10

  public init(nodeImage: String) { self.nodeImage = nodeImage }

  /// The name of the TFrameworkConfig whose defaults a namespace's workloads take.
  public static let frameworkConfigName = "tars-framework"

  /// These options under a TFrameworkConfig's defaults, as K8SFramework's webhook filled them in:
  /// `nodeImage.image` and `nodeImage.secret` go over the flags (a release's own `nodeImage`
  /// still goes over both).
  public func with(framework config: KubeObject?) -> WorkloadOptions {
    guard let config else { return self }
    var out = self
    if let image = config.json[path: ["nodeImage", "image"]]?.stringValue, !image.isEmpty { out.nodeImage = image }
    if let secret = config.json[path: ["nodeImage", "secret"]]?.stringValue, !secret.isEmpty {
      out.nodeImagePullSecret = secret
    }
    return out
  }
}

/// A TServer that cannot be turned into a workload, with what to change.
public struct WorkloadError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  /// The condition's and the Event's reason.
  public var reason: String
  public init(_ message: String, reason: String = "InvalidSpec") {
    self.message = message
    self.reason = reason
  }
  public var description: String { message }
}

/// TServer → the objects that run it (K8SFramework's translator, `original-framework.md` §4.2):
/// a StatefulSet (or a DaemonSet with `spec.k8s.daemonSet`) and, for a StatefulSet, its headless
/// Service. Every object carries the TServer's name, the `tars.io/ServerApp` and
/// `tars.io/ServerName` labels and a controller owner reference to the TServer. Pure: the
/// reconciler compares what this returns with what is stored.
public enum Workloads {
  public static let appLabel = "tars.io/ServerApp"
  public static let serverLabel = "tars.io/ServerName"
  public static let idLabel = "tars.io/ServerID"
  /// How tarsnode launches the server (`cpp`, `go`, `java-jar`, …), passed on as `ServerType`;
  /// an image built on the framework's base for its type carries the same in its own env.
  public static let serverTypeAnnotation = "tars.io/ServerType"
  /// The image of a workload with no release yet (replicas stay 0), as K8SFramework writes it.
  public static let noImage = " "
  /// Environment variables the pod contract sets; a TServer's own `env` cannot replace them.
  public static let contractVariables: Set<String> = [
    "PodName", "PodIP", "Namespace", "ServerApp", "ServerName", "TarsRegistry", "TarsLocator", "TarsNotify",
    "TARS_NODE_SECRET_FILE",
  ]

  /// The workload and (for a StatefulSet) the Service of `tserver`. A DaemonSet TServer with no
  /// release has none: a DaemonSet has no replicas to hold at 0 (as a StatefulSet's are), and
  /// its pods would fail on every node for want of an image.
  public static func desired(_ tserver: KubeObject, options: WorkloadOptions) throws(WorkloadError) -> [KubeObject] {
    let s = try Spec(tserver)
    let namespace = tserver.namespace ?? ""
    let template = podTemplate(s, namespace: namespace, options: options)
    var objects: [KubeObject] = []
    if s.daemonSet {
      guard s.hasRelease else { return [] }
      var ds = owned(.daemonSets, s, tserver)
      let strategy = s.k8s["updateStrategy"]
      let partition = strategy?[path: ["rollingUpdate", "partition"]]?.intValue ?? 0
      ds.json.set(
        ["spec"],
        .object([
          ("selector", .object([("matchLabels", .stringMap(s.selectorLabels))])),
          ("template", template),
          (
            "updateStrategy",
            (strategy?["type"]?.stringValue ?? "RollingUpdate") == "OnDelete"
              ? .object([("type", .string("OnDelete"))])
              : .object([
                ("type", .string("RollingUpdate")),
                ("rollingUpdate", .object([("maxUnavailable", .integer(max(partition, 1)))])),
              ])
          ),
          ("minReadySeconds", .integer(3)),
          ("revisionHistoryLimit", .integer(1)),
        ]))
      objects.append(ds)
    } else {
      var sts = owned(.statefulSets, s, tserver)
      var spec: [(String, JSONValue)] = [
        ("serviceName", .string(s.name)),
        ("replicas", .integer(s.hasRelease ? s.replicas : 0)),
        ("podManagementPolicy", .string(s.k8s["podManagementPolicy"]?.stringValue ?? "Parallel")),
        (
          "updateStrategy",
          s.k8s["updateStrategy"]
            ?? .object([
              ("type", .string("RollingUpdate")), ("rollingUpdate", .object([("partition", .integer(0))])),
            ])
        ),
        ("revisionHistoryLimit", .integer(1)),
        ("selector", .object([("matchLabels", .stringMap(s.selectorLabels))])),
        ("template", template),
      ]
      let claims = volumeClaimTemplates(s)
      if !claims.isEmpty { spec.append(("volumeClaimTemplates", .array(claims))) }
      sts.json.set(["spec"], .object(spec))
      objects.append(sts)
      objects.append(service(s, tserver))
    }
    return objects
  }

  /// The headless Service: one port per servant (named after it, lower-cased) and per extra port.
  static func service(_ s: Spec, _ tserver: KubeObject) -> KubeObject {
    var service = owned(.services, s, tserver)
    var ports: [JSONValue] = []
    for p in s.servants + s.ports {
      ports.append(
        .object([
          ("name", .string(p.name.lowercased())), ("port", .integer(p.port)), ("targetPort", .integer(p.port)),
          ("protocol", .string(p.isTcp ? "TCP" : "UDP")),
        ]))
    }
    service.json.set(
      ["spec"],
      .object([
        ("clusterIP", .string("None")), ("selector", .stringMap(s.selectorLabels)), ("ports", .array(ports)),
      ]))
    return service
  }

  /// An object of `resource` named and labelled after the TServer, owned by it.
  static func owned(_ resource: KubeResource, _ s: Spec, _ tserver: KubeObject) -> KubeObject {
    var o = KubeObject(resource, namespace: tserver.namespace, name: s.name, labels: s.selectorLabels)
    o.setController(tserver, .tservers)
    return o
  }
}
