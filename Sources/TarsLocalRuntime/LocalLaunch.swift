import Foundation
import TarsKube
import TarsProtocol

/// What a pod's container asks to run, resolved for this machine the way a kubelet resolves it:
/// the image (a path standing in for one), the args, and the environment with its downward-API
/// fields, ConfigMap and Secret keys filled in. The pod comes from the template the controller
/// wrote, so what runs here is what would run in a cluster.
struct LocalLaunch {
  /// Why a container cannot start here, with what to change.
  struct Refusal: Error {
    var message: String
    init(_ message: String) { self.message = message }
  }

  var containerName: String
  /// The executable `image` names: a bare name is a program in `binDirectory`, a relative path
  /// is under `workingDirectory`.
  var image: String
  /// The container's args for tarsnode, minus `--grace`: this machine's stop timing is the
  /// runtime's (`configuration.graceSeconds`), which also decides when it SIGKILLs.
  var arguments: [String]
  var environment: [String: String]

  init(
    pod: KubeObject, container: JSONValue, ip: String, store: any ObjectStore,
    configuration: LocalRuntimeConfiguration
  ) async throws(Refusal) {
    containerName = container["name"]?.stringValue ?? pod.name
    var image = container["image"]?.stringValue?.trimmingCharacters(in: .whitespaces) ?? ""
    guard !image.isEmpty else {
      throw Refusal("the container \(containerName) has no image: set spec.release.image of the TServer")
    }
    if !image.contains("/") {
      image = configuration.binDirectory + "/" + image
    } else if !image.hasPrefix("/"), LocalRuntime.registryImage(image) == nil {
      image = configuration.workingDirectory + "/" + image
    }
    self.image = image
    var args = (container["args"]?.arrayValue ?? []).compactMap(\.stringValue)
    if let i = args.firstIndex(of: "--grace"), args.firstIndex(of: "--").map({ i < $0 }) ?? true {
      args.removeSubrange(i..<min(i + 2, args.count))
    }
    arguments = args

    var env: [String: String] = [:]
    for source in container["envFrom"]?.arrayValue ?? [] {
      let prefix = source["prefix"]?.stringValue ?? ""
      for (kind, resource) in [("configMapRef", KubeResource.configMaps), ("secretRef", .secrets)] {
        guard let ref = source[kind], let name = ref["name"]?.stringValue else { continue }
        let optional = ref["optional"]?.boolValue ?? false
        guard let object = try await Self.object(resource, name, pod: pod, store: store, optional: optional) else {
          continue
        }
        for (key, value) in Self.data(of: object, secret: resource == .secrets) { env[prefix + key] = value }
      }
    }
    for e in container["env"]?.arrayValue ?? [] {
      guard let key = e["name"]?.stringValue else { continue }
      guard let from = e["valueFrom"] else {
        env[key] = e["value"]?.stringValue ?? ""
        continue
      }
      if let path = from[path: ["fieldRef", "fieldPath"]]?.stringValue {
        guard let value = Self.field(path, pod: pod, ip: ip) else {
          throw Refusal(
            "env \(key): fieldRef \(path) is not one this machine can give: use metadata.name, metadata.namespace, "
              + "metadata.uid, metadata.labels['…'], metadata.annotations['…'], spec.nodeName, "
              + "spec.serviceAccountName, status.podIP or status.hostIP")
        }
        env[key] = value
      } else if let ref = from["configMapKeyRef"] ?? from["secretKeyRef"] {
        let resource: KubeResource = from["secretKeyRef"] != nil ? .secrets : .configMaps
        let optional = ref["optional"]?.boolValue ?? false
        guard let name = ref["name"]?.stringValue, let wanted = ref["key"]?.stringValue else {
          throw Refusal("env \(key): a key reference needs name and key")
        }
        guard let object = try await Self.object(resource, name, pod: pod, store: store, optional: optional) else {
          continue
        }
        guard let value = Self.data(of: object, secret: resource == .secrets)[wanted] else {
          if optional { continue }
          throw Refusal(
            "env \(key): \(resource.kind) \(name) has no key \(wanted): add it, or mark the reference optional")
        }
        env[key] = value
      } else {
        throw Refusal(
          "env \(key): only value, fieldRef, configMapKeyRef and secretKeyRef work in one-machine mode; set a value")
      }
    }
    environment = env
  }

  /// A downward-API field of a pod on this machine (its node is `local`, its host 127.0.0.1).
  static func field(_ path: String, pod: KubeObject, ip: String) -> String? {
    func quoted(_ prefix: String) -> String? {
      guard path.hasPrefix(prefix + "['"), path.hasSuffix("']") else { return nil }
      return String(path.dropFirst(prefix.count + 2).dropLast(2))
    }
    switch path {
    case "metadata.name": return pod.name
    case "metadata.namespace": return pod.namespace ?? ""
    case "metadata.uid": return pod.uid
    case "spec.nodeName": return pod.spec?["nodeName"]?.stringValue ?? "local"
    case "spec.serviceAccountName": return pod.spec?["serviceAccountName"]?.stringValue ?? "default"
    case "status.podIP": return ip
    case "status.hostIP": return "127.0.0.1"
    default:
      if let label = quoted("metadata.labels") { return pod.labels[label] ?? "" }
      if let annotation = quoted("metadata.annotations") { return pod.annotations[annotation] ?? "" }
      return nil
    }
  }

  /// The ConfigMap or Secret a pod's env names; nil when it is missing and optional.
  static func object(
    _ resource: KubeResource, _ name: String, pod: KubeObject, store: any ObjectStore, optional: Bool
  ) async throws(Refusal) -> KubeObject? {
    do {
      return try await store.get(resource, namespace: pod.namespace, name: name)
    } catch  where error.code == 404 {
      if optional { return nil }
      throw Refusal("\(resource.kind) \(name) does not exist: create it, or mark the reference optional")
    } catch {
      throw Refusal("cannot read \(resource.kind) \(name): \(error.message)")
    }
  }

  /// A ConfigMap's `data`, or a Secret's `data` decoded from base64 (and its `stringData`).
  static func data(of object: KubeObject, secret: Bool) -> [String: String] {
    var out: [String: String] = [:]
    for (key, value) in object.json["data"]?.members ?? [] {
      guard let text = value.stringValue else { continue }
      if secret {
        out[key] = Data(base64Encoded: text).map { String(decoding: $0, as: UTF8.self) } ?? text
      } else {
        out[key] = text
      }
    }
    for (key, value) in object.json["stringData"]?.members ?? [] { out[key] = value.stringValue ?? "" }
    return out
  }
}
