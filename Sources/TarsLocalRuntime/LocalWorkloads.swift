import Foundation
import TarsKube
import TarsProtocol

/// The StatefulSet and DaemonSet controllers' part of the local runtime: which pods the
/// workloads the controller wrote ask for, the pod objects made from their templates, and the
/// workloads' status. The controller turns TServers into workloads the same way on a cluster,
/// so one path leads from a TServer to a process on both.
struct LocalWorkload {
  var object: KubeObject
  var isDaemonSet: Bool
  /// `spec.template`, with the hash that tells which pods run an older one (a StatefulSet's
  /// `controller-revision-hash`).
  var template: JSONValue
  var revision: String
  var replicas: Int

  init(_ object: KubeObject, isDaemonSet: Bool, maxReplicas: Int) {
    self.object = object
    self.isDaemonSet = isDaemonSet
    template = object.spec?["template"] ?? .object([])
    revision = "\(object.name)-\(Self.hash(template.description))"
    let asked = isDaemonSet ? 1 : Int(object.spec?["replicas"]?.intValue ?? 1)
    replicas = min(max(0, asked), maxReplicas)
  }

  var resource: KubeResource { isDaemonSet ? .daemonSets : .statefulSets }
  var kind: String { resource.kind }

  /// A StatefulSet's pods are `<name>-<ordinal>`; this machine is a DaemonSet's only node.
  var podNames: [String] {
    isDaemonSet ? ["\(object.name)-local"] : (0..<replicas).map { "\(object.name)-\($0)" }
  }

  static let revisionLabel = "controller-revision-hash"

  /// The pod object for `name`: the template's labels and spec, placed on this machine, owned
  /// by the workload.
  func pod(_ name: String, namespace: String) -> KubeObject {
    var labels: [String: String] = [:]
    for (k, v) in template[path: ["metadata", "labels"]]?.members ?? [] { labels[k] = v.stringValue ?? "" }
    labels[Self.revisionLabel] = revision
    if !isDaemonSet { labels["statefulset.kubernetes.io/pod-name"] = name }
    var spec = template["spec"] ?? .object([])
    spec = spec.setting(path: ["nodeName"], .string("local"))
    if !isDaemonSet {
      spec = spec.setting(path: ["hostname"], .string(name))
      spec = spec.setting(path: ["subdomain"], .string(object.spec?["serviceName"]?.stringValue ?? object.name))
    }
    var pod = KubeObject(.pods, namespace: namespace, name: name, labels: labels, spec: spec)
    if let annotations = template[path: ["metadata", "annotations"]] {
      pod.json.set(["metadata", "annotations"], annotations)
    }
    pod.setController(object, resource)
    return pod
  }

  /// The status the StatefulSet or DaemonSet controller would write for these pods.
  func status(pods: [KubeObject]) -> JSONValue {
    let ready = pods.filter { $0.condition("Ready")?["status"]?.stringValue == "True" }.count
    let current = pods.filter { $0.labels[Self.revisionLabel] == revision }.count
    let generation = object.json[path: ["metadata", "generation"]]?.intValue ?? 1
    if isDaemonSet {
      return .object([
        ("currentNumberScheduled", .integer(Int64(pods.count))), ("desiredNumberScheduled", .integer(1)),
        ("numberMisscheduled", .integer(0)), ("numberReady", .integer(Int64(ready))),
        ("numberAvailable", .integer(Int64(ready))), ("updatedNumberScheduled", .integer(Int64(current))),
        ("observedGeneration", .integer(generation)),
      ])
    }
    return .object([
      ("replicas", .integer(Int64(pods.count))), ("readyReplicas", .integer(Int64(ready))),
      ("availableReplicas", .integer(Int64(ready))), ("currentReplicas", .integer(Int64(current))),
      ("updatedReplicas", .integer(Int64(current))), ("currentRevision", .string(revision)),
      ("updateRevision", .string(revision)), ("observedGeneration", .integer(generation)),
    ])
  }

  /// FNV-1a, 64 bits, in hex: stable across runs (Swift's `Hasher` is seeded per process).
  static func hash(_ text: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return String(String(h, radix: 16).suffix(10))
  }
}

extension LocalRuntime {
  /// The workloads the controller wrote.
  func workloads() -> [LocalWorkload] {
    var out: [LocalWorkload] = []
    for (informer, isDaemonSet) in [(statefulSets, false), (daemonSets, true)] {
      for o in informer.objects.values where o.deletionTimestamp == nil {
        out.append(LocalWorkload(o, isDaemonSet: isDaemonSet, maxReplicas: configuration.maxReplicas))
      }
    }
    return out
  }

  /// The pods the workloads ask for, each with its workload.
  func desiredPods() -> [String: LocalWorkload] {
    var out: [String: LocalWorkload] = [:]
    for w in workloads() { for name in w.podNames { out[name] = w } }
    return out
  }

  /// Writes each workload's status when it changed (the TServer's status is made from it).
  func syncWorkloadStatus() async {
    let all = workloads()
    var owned: [String: [KubeObject]] = [:]
    for pod in pods.objects.values where pod.deletionTimestamp == nil {
      if let uid = pod.ownerUID { owned[uid, default: []].append(pod) }
    }
    for w in all {
      let status = w.status(pods: owned[w.object.uid] ?? [])
      guard w.object.status.map({ !$0.sameContent(as: status) }) ?? true else { continue }
      do {
        _ = try await store.patch(
          w.resource, namespace: configuration.namespace, name: w.object.name, .merge(.object([("status", status)])),
          status: true)
      } catch  where error.code == 404 {
      } catch {
        log("local: cannot write the status of \(w.kind) \(w.object.name): \(error)")
      }
    }
  }
}
