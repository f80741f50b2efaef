/// One kind of Kubernetes object and where it lives in the API. The store and the client both
/// key everything by it, so a kind added here is served by both.
public struct KubeResource: Sendable, Hashable, CustomStringConvertible {
  /// "" for the core group.
  public var group: String
  public var version: String
  /// Lower-case plural, the URL segment and what Status details name ("pods").
  public var plural: String
  public var kind: String
  public var namespaced: Bool
  /// With a status subresource, writes to the main resource leave `status` alone and writes to
  /// `/status` change nothing else.
  public var hasStatusSubresource: Bool
  /// Custom resources: unstructured JSON, no strategic merge patch, `generation` bumped on spec changes.
  public var isCustom: Bool

  public init(
    group: String, version: String, plural: String, kind: String, namespaced: Bool = true,
    hasStatusSubresource: Bool = true, isCustom: Bool = false
  ) {
    self.group = group
    self.version = version
    self.plural = plural
    self.kind = kind
    self.namespaced = namespaced
    self.hasStatusSubresource = hasStatusSubresource
    self.isCustom = isCustom
  }

  /// "v1" or "apps/v1".
  public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
  public var description: String { group.isEmpty ? plural : "\(plural).\(group)" }

  /// The collection's URL path.
  public func path(namespace: String?) -> String {
    let base = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
    if namespaced, let namespace { return "\(base)/namespaces/\(namespace)/\(plural)" }
    return "\(base)/\(plural)"
  }

  public static let namespaces = KubeResource(
    group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false)
  public static let pods = KubeResource(group: "", version: "v1", plural: "pods", kind: "Pod")
  public static let nodes = KubeResource(group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false)
  public static let services = KubeResource(group: "", version: "v1", plural: "services", kind: "Service")
  public static let secrets = KubeResource(
    group: "", version: "v1", plural: "secrets", kind: "Secret", hasStatusSubresource: false)
  public static let configMaps = KubeResource(
    group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", hasStatusSubresource: false)
  public static let events = KubeResource(
    group: "", version: "v1", plural: "events", kind: "Event", hasStatusSubresource: false)
  public static let statefulSets = KubeResource(
    group: "apps", version: "v1", plural: "statefulsets", kind: "StatefulSet")
  public static let daemonSets = KubeResource(group: "apps", version: "v1", plural: "daemonsets", kind: "DaemonSet")
  /// tLocalVolume mounts: the claims the StatefulSets make, the volumes the agent provisions for
  /// them, and the class that names the agent as their provisioner.
  public static let persistentVolumeClaims = KubeResource(
    group: "", version: "v1", plural: "persistentvolumeclaims", kind: "PersistentVolumeClaim")
  public static let persistentVolumes = KubeResource(
    group: "", version: "v1", plural: "persistentvolumes", kind: "PersistentVolume", namespaced: false)
  public static let storageClasses = KubeResource(
    group: "storage.k8s.io", version: "v1", plural: "storageclasses", kind: "StorageClass", namespaced: false,
    hasStatusSubresource: false)

  /// K8SFramework's custom resources, same group, version and field names (reference §4.1).
  public static let tarsGroup = "k8s.tars.io"
  public static let tarsVersion = "v1beta3"
  public static let tservers = KubeResource(
    group: tarsGroup, version: tarsVersion, plural: "tservers", kind: "TServer", isCustom: true)
  public static let ttemplates = KubeResource(
    group: tarsGroup, version: tarsVersion, plural: "ttemplates", kind: "TTemplate", hasStatusSubresource: false,
    isCustom: true)
  public static let tconfigs = KubeResource(
    group: tarsGroup, version: tarsVersion, plural: "tconfigs", kind: "TConfig", hasStatusSubresource: false,
    isCustom: true)
  public static let tframeworkconfigs = KubeResource(
    group: tarsGroup, version: tarsVersion, plural: "tframeworkconfigs", kind: "TFrameworkConfig",
    hasStatusSubresource: false, isCustom: true)
  /// A server's released images and its image builds (the admin's image service writes them).
  public static let timages = KubeResource(
    group: tarsGroup, version: tarsVersion, plural: "timages", kind: "TImage", hasStatusSubresource: false,
    isCustom: true)

  /// Leader election's lock (the controller's replicas take turns through one Lease).
  public static let leases = KubeResource(
    group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", hasStatusSubresource: false)

  public static let customResourceDefinitions = KubeResource(
    group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", kind: "CustomResourceDefinition",
    namespaced: false)

  public static let all: [KubeResource] = [
    .customResourceDefinitions, .namespaces, .pods, .nodes, .services, .secrets, .configMaps, .events, .statefulSets,
    .daemonSets, .persistentVolumeClaims, .persistentVolumes, .storageClasses, .leases, .tservers,
    .ttemplates, .tconfigs, .tframeworkconfigs, .timages,
  ]
}
