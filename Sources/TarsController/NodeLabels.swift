import TarsKube
import TarsProtocol

/// K8SFramework's Node controller: a node an operator gave to some namespace's Tars servers
/// (`tars.io/node.<namespace>`) carries the aggregate label `tars.io/node`, which the node agent's
/// DaemonSet selects; a node given to none loses it. Cluster-wide, so it runs only with
/// `Controller.Configuration.manageNodeLabels` (and the ClusterRole it needs).
extension Reconciler {
  public static let nodeLabel = "tars.io/node"

  /// Whether `node` should carry `tars.io/node`.
  static func wantsNodeLabel(_ node: KubeObject) -> Bool {
    node.labels.keys.contains { $0.hasPrefix(nodeLabel + ".") }
  }

  /// Puts `tars.io/node` on the node or takes it off; whether it wrote.
  public func reconcileNode(name: String) async throws(StoreError) -> Bool {
    let node: KubeObject
    do {
      node = try await store.get(.nodes, namespace: nil, name: name)
    } catch  where error.code == 404 {
      return false
    }
    let want = Self.wantsNodeLabel(node)
    guard want != (node.labels[Self.nodeLabel] != nil) else { return false }
    let label: JSONValue = want ? .string("") : .null
    _ = try await store.patch(
      .nodes, namespace: nil, name: name,
      .merge(.object([("metadata", .object([("labels", .object([(Self.nodeLabel, label)]))]))])), status: false)
    return true
  }
}
