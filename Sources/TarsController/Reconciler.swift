import Foundation
import TarsCRD
import TarsKube
import TarsProtocol

/// One level-triggered pass over one TServer: reads it and what it owns from the store and
/// writes only the difference. It needs no memory of earlier passes (what it manages is written
/// on the objects themselves), so a missed event or a restart costs nothing but the next pass.
public struct Reconciler: Sendable {
  /// What a pass did, for tests, metrics and logs.
  public enum Action: Sendable, Equatable {
    case created(String)
    case updated(String)
    case deleted(String)
    /// A same-named object the TServer does not own: left alone.
    case notOwned(String)
  }

  public struct Report: Sendable, Equatable {
    public var actions: [Action] = []
    /// Why the TServer cannot be turned into workloads, when it cannot.
    public var invalid: String?
  }

  /// Annotation on each workload: the container, init container and volume names this
  /// controller wrote, so a name the TServer drops is removed while others' are kept.
  public static let managedAnnotation = "tars.io/managed"
  static let component = "tars-controller"

  let store: any ObjectStore
  let options: WorkloadOptions
  /// The TFrameworkConfig `tars-framework` of a namespace, if there is one (the controller's
  /// cache): its defaults go over `options`.
  let frameworkConfig: @Sendable (_ namespace: String) -> KubeObject?

  public init(
    store: any ObjectStore, options: WorkloadOptions,
    frameworkConfig: @escaping @Sendable (_ namespace: String) -> KubeObject? = { _ in nil }
  ) {
    self.store = store
    self.options = options
    self.frameworkConfig = frameworkConfig
  }

  /// Inactive TConfig versions kept per file when the TFrameworkConfig sets no
  /// `recordLimit.tconfigHistory` (the admin API writes new versions; trimming is this).
  public static let configHistory = 10

  /// Deletes the inactive TConfig versions of the namespace beyond the history limit. Returns
  /// how many went.
  public func trimConfigs(namespace: String) async throws(StoreError) -> Int {
    let limit = frameworkConfig(namespace)?.json[path: ["recordLimit", "tconfigHistory"]]?.intValue
    let keep = max(0, Int(limit ?? Int64(Self.configHistory)))
    let all = try await store.list(.tconfigs, namespace: namespace, options: ListOptions()).items.map(TConfig.init)
    var deleted = 0
    for old in TConfig.beyondHistory(all, keep: keep) {
      do {
        try await store.delete(.tconfigs, namespace: namespace, name: old.object.name)
        deleted += 1
      } catch  where error.code == 404 {}
    }
    return deleted
  }

  /// Brings the workloads of TServer `namespace/name` to what it decides, and its status to
  /// theirs. Store errors (a conflict, an outage) are thrown for the queue to retry.
  public func reconcile(namespace: String, name: String) async throws(StoreError) -> Report {
    var report = Report()
    let tserver: KubeObject?
    do {
      tserver = try await store.get(.tservers, namespace: namespace, name: name)
    } catch  where error.code == 404 {
      tserver = nil
    }
    guard let tserver, tserver.deletionTimestamp == nil else {
      // Gone (or going): what it owned goes too. A real API server's garbage collector would
      // do this through the owner references; the embedded store has none, so it is done here.
      for resource in [KubeResource.statefulSets, .daemonSets, .services] {
        if try await deleteIfOwned(resource, namespace: namespace, name: name, uid: tserver?.uid) {
          report.actions.append(.deleted("\(resource.kind) \(name)"))
        }
      }
      return report
    }
    var problem = try await check(tserver)
    var desired: [KubeObject] = []
    if problem == nil {
      let options = options.with(framework: frameworkConfig(namespace))
      do { desired = try Workloads.desired(tserver, options: options) } catch { problem = error }
    }
    if let problem {
      report.invalid = problem.message
      if await setStatus(tserver, workload: nil, reason: problem.reason, message: problem.message) {
        await event(tserver, type: "Warning", reason: problem.reason, message: problem.message)
      }
      return report
    }
    var workload: KubeObject?
    var notOwned: [String] = []
    for want in desired {
      let resource =
        want.kind == "Service" ? KubeResource.services : want.kind == "DaemonSet" ? .daemonSets : .statefulSets
      let current: KubeObject?
      do {
        current = try await store.get(resource, namespace: namespace, name: name)
      } catch  where error.code == 404 {
        current = nil
      }
      guard let current else {
        let created = try await store.create(resource, Self.marked(want))
        if resource != .services { workload = created }
        report.actions.append(.created("\(want.kind) \(name)"))
        continue
      }
      guard Self.isOwned(current, by: tserver.uid) else {
        notOwned.append("\(want.kind) \(name)")
        report.actions.append(.notOwned("\(want.kind) \(name)"))
        continue
      }
      if resource == .statefulSets,
        !(want.spec?["volumeClaimTemplates"] ?? .array([])).isSubset(
          of: current.spec?["volumeClaimTemplates"] ?? .array([]))
      {
        // Claim templates cannot change in place (the API server refuses): rebuild, as
        // K8SFramework does. The pods restart on the new templates; their claims stay.
        try await store.delete(resource, namespace: namespace, name: name)
        workload = try await store.create(resource, Self.marked(want))
        report.actions.append(.updated("\(want.kind) \(name)"))
        continue
      }
      let merged = Self.merge(want, into: current)
      if Self.needsWrite(merged, current) {
        let written = try await store.update(resource, merged, status: false)
        if resource != .services { workload = written }
        report.actions.append(.updated("\(want.kind) \(name)"))
      } else if resource != .services {
        workload = current
      }
    }
    // What it owns and no longer wants goes: the other kind of workload (daemonSet switched),
    // the Service of a DaemonSet, the DaemonSet of a TServer whose release was removed.
    for resource in [KubeResource.statefulSets, .daemonSets, .services]
    where !desired.contains(where: {
      $0.kind == resource.kind
    }) {
      if try await deleteIfOwned(resource, namespace: namespace, name: name, uid: tserver.uid) {
        report.actions.append(.deleted("\(resource.kind) \(name)"))
      }
    }
    if !notOwned.isEmpty {
      let message =
        "\(notOwned.joined(separator: " and ")) exists and is not owned by this TServer: "
        + "delete it or rename the server; it is left alone"
      if await setStatus(tserver, workload: workload, reason: "NotOwned", message: message) {
        await event(tserver, type: "Warning", reason: "NotOwned", message: message)
      }
    } else if desired.isEmpty {
      await setStatus(
        tserver, workload: nil, reason: "Reconciled",
        message: "no release: the DaemonSet is made when spec.release names an image")
    } else {
      await setStatus(tserver, workload: workload, reason: "Reconciled", message: "")
    }
    return report
  }

  static func isOwned(_ o: KubeObject, by uid: String) -> Bool { o.ownerUID == uid }

  /// Deletes `namespace/name` of `resource` when a TServer controls it (this one, by uid, when
  /// given; any TServer of that name otherwise). Whether it did.
  func deleteIfOwned(_ resource: KubeResource, namespace: String, name: String, uid: String?) async throws(StoreError)
    -> Bool
  {
    let current: KubeObject
    do {
      current = try await store.get(resource, namespace: namespace, name: name)
    } catch  where error.code == 404 {
      return false
    }
    let owners = current.json[path: ["metadata", "ownerReferences"]]?.arrayValue ?? []
    guard
      owners.contains(where: {
        $0["controller"]?.boolValue == true && $0["kind"]?.stringValue == "TServer"
          && $0["name"]?.stringValue == name && (uid == nil || $0["uid"]?.stringValue == uid)
      })
    else { return false }
    do {
      try await store.delete(resource, namespace: namespace, name: name)
    } catch  where error.code == 404 {
      return false
    }
    return true
  }

  // MARK: Status and events

  /// `status` from the workload's, with one `Reconciled` condition; written only when it
  /// changes. Whether the condition's reason or message changed (an Event says so then, once).
  @discardableResult
  func setStatus(_ tserver: KubeObject, workload: KubeObject?, reason: String, message: String) async -> Bool {
    let ws = workload?.status
    let isDaemonSet = workload?.kind == "DaemonSet"
    let app = tserver.spec?["app"]?.stringValue ?? ""
    let server = tserver.spec?["server"]?.stringValue ?? ""
    let ok = reason == "Reconciled"
    let previous = tserver.status?["conditions"]?.arrayValue?.first { $0["type"]?.stringValue == "Reconciled" }
    let status = ok ? "True" : "False"
    let since =
      previous?["status"]?.stringValue == status
      ? previous?["lastTransitionTime"] ?? .string(kubeTimestamp()) : .string(kubeTimestamp())
    let next: JSONValue = .object([
      ("replicas", .integer((isDaemonSet ? ws?["desiredNumberScheduled"] : ws?["replicas"])?.intValue ?? 0)),
      ("readyReplicas", .integer((isDaemonSet ? ws?["numberReady"] : ws?["readyReplicas"])?.intValue ?? 0)),
      (
        "currentReplicas",
        .integer((isDaemonSet ? ws?["updatedNumberScheduled"] : ws?["currentReplicas"])?.intValue ?? 0)
      ),
      ("selector", .string("\(Workloads.appLabel)=\(app),\(Workloads.serverLabel)=\(server)")),
      ("observedGeneration", .integer(tserver.generation)),
      (
        "conditions",
        .array([
          .object([
            ("type", .string("Reconciled")), ("status", .string(status)), ("reason", .string(reason)),
            ("message", .string(message)), ("lastTransitionTime", since),
          ])
        ])
      ),
    ])
    let news = previous?["reason"]?.stringValue != reason || previous?["message"]?.stringValue != message
    guard !(tserver.status ?? .null).sameContent(as: next) else { return news }
    var updated = tserver
    updated.json.set(["status"], next)
    _ = try? await store.update(.tservers, updated, status: true)
    return news
  }

  func event(_ tserver: KubeObject, type: String, reason: String, message: String) async {
    let suffix = KubeObject.eventSuffix()
    _ = try? await store.create(
      .events,
      KubeObject.event(
        namespace: tserver.namespace ?? "", kind: "TServer", name: tserver.name, uid: tserver.uid, type: type,
        reason: reason, message: message, component: Self.component, suffix: suffix))
  }
}

extension Reconciler {
  /// What an API server with the CRDs' rules would have refused (an object written before a
  /// rule existed, or into a store without them), and what no rule can say: that the template
  /// exists. Such a TServer gets a condition and an Event; its workloads are left as they are.
  func check(_ tserver: KubeObject) async throws(StoreError) -> WorkloadError? {
    let broken = TarsCRDRules.violations(kind: "TServer", tserver)
    if !broken.isEmpty { return WorkloadError(broken.map(\.short).joined(separator: "; ")) }
    guard tserver.spec?["subType"]?.stringValue != "normal",
      let template = tserver.spec?[path: ["tars", "template"]]?.stringValue
    else { return nil }
    do {
      _ = try await store.get(.ttemplates, namespace: tserver.namespace ?? "", name: template)
      return nil
    } catch  where error.code == 404 {
      return WorkloadError(TarsCRDRules.templateMissing(template), reason: "TemplateMissing")
    }
  }
}
