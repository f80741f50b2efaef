import Foundation
import TarsCRD
import TarsKube
import TarsRegistry
import TarsStoreTestSupport
import TarsTestSupport
import Testing
import Yams

@Suite("deploy/ manifests")
struct ManifestTests {
  static let deploy = Fixtures.repositoryRoot.appendingPathComponent("deploy")

  func documents(_ path: String) throws -> [[String: Any]] {
    let text = try String(contentsOf: Self.deploy.appendingPathComponent(path), encoding: .utf8)
    return try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
  }

  /// Every schema node says its type (a structural schema, which the API server requires).
  func structural(_ node: [String: Any], at path: String, problems: inout [String]) {
    if node["type"] == nil { problems.append("\(path) has no type") }
    for (name, child) in node["properties"] as? [String: Any] ?? [:] {
      if let c = child as? [String: Any] { structural(c, at: "\(path).\(name)", problems: &problems) }
    }
    if let items = node["items"] as? [String: Any] { structural(items, at: "\(path)[]", problems: &problems) }
    if let more = node["additionalProperties"] as? [String: Any] {
      structural(more, at: "\(path){}", problems: &problems)
    }
  }

  @Test(arguments: [KubeResource.tservers, .ttemplates, .tconfigs, .tframeworkconfigs])
  func crdsMatchTheResourcesTheCodeUses(_ r: KubeResource) throws {
    let crd = try #require(try documents("crds/\(r.plural).yaml").first)
    let spec = try #require(crd["spec"] as? [String: Any])
    let names = try #require(spec["names"] as? [String: Any])
    #expect(
      spec["group"] as? String == r.group && names["plural"] as? String == r.plural
        && names["kind"] as? String == r.kind)
    let version = try #require((spec["versions"] as? [[String: Any]])?.first)
    #expect(version["name"] as? String == r.version)
    #expect(((version["subresources"] as? [String: Any])?["status"] != nil) == r.hasStatusSubresource)
    let schema = try #require((version["schema"] as? [String: Any])?["openAPIV3Schema"] as? [String: Any])
    var problems: [String] = []
    structural(schema, at: r.kind, problems: &problems)
    #expect(problems.isEmpty, "\(problems)")
  }

  @Test func tserverKeepsK8SFrameworksFieldNames() throws {
    let crd = try #require(try documents("crds/tservers.yaml").first)
    let version = try #require(((crd["spec"] as? [String: Any])?["versions"] as? [[String: Any]])?.first)
    let schema = try #require((version["schema"] as? [String: Any])?["openAPIV3Schema"] as? [String: Any])
    let spec = try #require((schema["properties"] as? [String: Any])?["spec"] as? [String: Any])
    let fields = Set((spec["properties"] as? [String: Any] ?? [:]).keys)
    #expect(fields == ["app", "server", "subType", "important", "tars", "normal", "k8s", "release"])
    let tars = try #require((spec["properties"] as? [String: Any])?["tars"] as? [String: Any])
    let servant = try #require(
      (((tars["properties"] as? [String: Any])?["servants"] as? [String: Any])?["items"] as? [String: Any])?[
        "properties"]
        as? [String: Any])
    #expect(Set(servant.keys) == ["name", "port", "thread", "capacity", "connection", "timeout", "isTars", "isTcp"])
  }

  /// `kubectl scale tserver` and the printer columns read the fields the controller writes.
  @Test func tserverScalesThroughTheFieldsTheControllerWrites() throws {
    let crd = try #require(try documents("crds/tservers.yaml").first)
    let version = try #require(((crd["spec"] as? [String: Any])?["versions"] as? [[String: Any]])?.first)
    let scale = try #require((version["subresources"] as? [String: Any])?["scale"] as? [String: String])
    #expect(
      scale == [
        "specReplicasPath": ".spec.k8s.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
      ])
    let schema = try #require((version["schema"] as? [String: Any])?["openAPIV3Schema"] as? [String: Any])
    let status = try #require(
      ((schema["properties"] as? [String: Any])?["status"] as? [String: Any])?["properties"] as? [String: Any])
    #expect(
      Set(status.keys) == [
        "replicas", "readyReplicas", "currentReplicas", "selector", "observedGeneration", "conditions",
      ])
    let columns = (version["additionalPrinterColumns"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    #expect(columns == ["App", "Server", "SubType", "Replicas", "Ready", "Release", "Reconciled", "Age"])
  }

  /// Every manifest under deploy/ is installed by `kubectl apply -k deploy/`, and nothing else.
  @Test func theKustomizationInstallsEveryManifest() throws {
    let kustomization = try #require(try documents("kustomization.yaml").first)
    let listed = Set(kustomization["resources"] as? [String] ?? [])
    var files: Set<String> = []
    let root = Self.deploy.path
    for path in FileManager.default.enumerator(atPath: root)?.compactMap({ $0 as? String }) ?? []
    where path.hasSuffix(".yaml") && path != "kustomization.yaml" {
      files.insert(path)
    }
    #expect(listed == files, "not listed: \(files.subtracting(listed)); missing: \(listed.subtracting(files))")
  }

  /// The framework's own pods: non-root, no privilege escalation, read-only root, no capabilities,
  /// a memory limit; each Deployment with more than one replica has a disruption budget (the
  /// install Job has none).
  @Test(arguments: [
    "registry/registry.yaml", "controller/controller.yaml", "config/config.yaml", "notify/notify.yaml",
    "admin/admin.yaml", "framework/secrets.yaml", "monitor/monitor.yaml", "log/log.yaml",
  ])
  func theControlPlaneRunsUnprivileged(_ file: String) throws {
    let docs = try documents(file)
    let deployment = try #require(
      docs.first { ["Deployment", "StatefulSet", "Job"].contains($0["kind"] as? String) })
    let pod = try #require(
      ((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
    #expect((pod["securityContext"] as? [String: Any])?["runAsNonRoot"] as? Bool == true)
    #expect(pod["hostNetwork"] == nil && pod["hostPID"] == nil)
    let container = try #require((pod["containers"] as? [[String: Any]])?.first)
    let sc = try #require(container["securityContext"] as? [String: Any])
    #expect(sc["allowPrivilegeEscalation"] as? Bool == false && sc["readOnlyRootFilesystem"] as? Bool == true)
    #expect((sc["capabilities"] as? [String: Any])?["drop"] as? [String] == ["ALL"])
    #expect(((container["resources"] as? [String: Any])?["limits"] as? [String: Any])?["memory"] != nil)
    let replicas = (deployment["spec"] as? [String: Any])?["replicas"] as? Int ?? 1
    #expect(docs.contains { $0["kind"] as? String == "PodDisruptionBudget" } == (replicas > 1))
  }

  /// The agent has the node's processes and its log directory, and nothing else: the three
  /// capabilities its retention needs, no API token, no other host path, no host network.
  @Test func theAgentHasExactlyWhatItsJobsNeed() throws {
    let docs = try documents("agent/agent.yaml")
    let ds = try #require(docs.first { $0["kind"] as? String == "DaemonSet" })
    let pod = try #require(((ds["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
    #expect(pod["hostPID"] as? Bool == true && pod["hostNetwork"] as? Bool == true)
    #expect(pod["serviceAccountName"] as? String == "tars-tarsagent")
    let paths = (pod["volumes"] as? [[String: Any]] ?? []).compactMap {
      ($0["hostPath"] as? [String: Any])?["path"] as? String
    }
    #expect(paths == ["/usr/local/app/tars/app_log", "/usr/local/app/tars/host-mount"])
    let container = try #require((pod["containers"] as? [[String: Any]])?.first)
    let sc = try #require(container["securityContext"] as? [String: Any])
    #expect(sc["privileged"] == nil && sc["allowPrivilegeEscalation"] as? Bool == false)
    #expect(sc["readOnlyRootFilesystem"] as? Bool == true)
    let caps = try #require(sc["capabilities"] as? [String: Any])
    #expect(caps["drop"] as? [String] == ["ALL"])
    #expect(caps["add"] as? [String] == ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "SYS_PTRACE"])
    #expect(((container["resources"] as? [String: Any])?["limits"] as? [String: Any])?["memory"] != nil)
    // Its ServiceAccount is one no TServer may use.
    #expect(TarsCRDRules.frameworkServiceAccounts.contains("tars-tarsagent"))
    // Its token: claims and pods read, volumes made and deleted, its class read, Events posted
    // (AgentVolumeTests checks that the agent asks for no more).
    #expect(
      try RoleGrants.granted("agent/agent.yaml")
        == [
          "list /persistentvolumeclaims", "watch /persistentvolumeclaims", "list /pods", "watch /pods",
          "list /persistentvolumes", "create /persistentvolumes", "delete /persistentvolumes",
          "get storage.k8s.io/storageclasses", "create /events",
        ])
    // The class names the agent and waits for the pod's node.
    let sc2 = try #require(docs.first { $0["kind"] as? String == "StorageClass" })
    #expect(sc2["provisioner"] as? String == "k8s.tars.io/tarsagent")
    #expect(sc2["volumeBindingMode"] as? String == "WaitForFirstConsumer")
  }

  /// The log service calls no API either, and its files are on its own volume.
  @Test func theLogServiceHasNoAPIAccessAndItsOwnVolume() throws {
    let docs = try documents("log/log.yaml")
    #expect(
      !docs.contains { ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"].contains($0["kind"] as? String) })
    let sts = try #require(docs.first { $0["kind"] as? String == "StatefulSet" })
    let spec = try #require(sts["spec"] as? [String: Any])
    let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
    #expect(pod["automountServiceAccountToken"] as? Bool == false)
    let claims = (spec["volumeClaimTemplates"] as? [[String: Any]] ?? []).compactMap {
      ($0["metadata"] as? [String: Any])?["name"] as? String
    }
    let mounts = ((pod["containers"] as? [[String: Any]])?.first?["volumeMounts"] as? [[String: Any]]) ?? []
    #expect(claims == ["logs"] && mounts.first?["name"] as? String == "logs")
    #expect(TarsCRDRules.frameworkServiceAccounts.contains("tars-tarslog"))
  }

  /// The monitor calls no API: no token, no Role; its database is the Secret tars-monitor-database
  /// by reference only, which the admin API reads too, as optional.
  @Test func theMonitorHasNoAPIAccessAndItsDatabaseByReference() throws {
    let docs = try documents("monitor/monitor.yaml")
    #expect(
      !docs.contains {
        ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "Secret"].contains($0["kind"] as? String)
      })
    let deployment = try #require(docs.first { $0["kind"] as? String == "Deployment" })
    let pod = try #require(
      ((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
    #expect(pod["automountServiceAccountToken"] as? Bool == false)
    let env = ((pod["containers"] as? [[String: Any]])?.first?["env"] as? [[String: Any]]) ?? []
    let ref =
      (env.first { $0["name"] as? String == "TARS_MONITOR_DATABASE" }?["valueFrom"] as? [String: Any])?["secretKeyRef"]
      as? [String: Any]
    #expect(ref?["name"] as? String == "tars-monitor-database" && ref?["key"] as? String == "url")
    let admin = try documents("admin/admin.yaml").first { $0["kind"] as? String == "Deployment" }
    let adminEnv =
      ((((admin?["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])?["containers"]
      as? [[String: Any]])?.first?["env"] as? [[String: Any]] ?? []
    let adminRef =
      (adminEnv.first { $0["name"] as? String == "TARS_MONITOR_DATABASE" }?["valueFrom"] as? [String: Any])?[
        "secretKeyRef"] as? [String: Any]
    #expect(adminRef?["name"] as? String == "tars-monitor-database" && adminRef?["optional"] as? Bool == true)
  }
}
