import Foundation
import TarsAdminAPI
import TarsKube
import TarsProtocol
import TarsRegistry
import Yams

/// A manifest that cannot be read at all; nothing of it is applied.
public struct ManifestError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Applies TServer, TTemplate and TConfig manifests — the same YAML a Kubernetes user applies
/// — to the store, the way `kubectl apply` would with K8SFramework's webhook in front: each
/// object is checked first and a bad one is rejected with its reasons while the others (and
/// everything already running) stay as they are.
public struct ManifestApplier: Sendable {
  public let store: any ObjectStore
  public let namespace: String
  /// The most replicas a TServer may ask for here (one machine: 100); nil: no limit.
  public let maxReplicas: Int64?

  public init(store: any ObjectStore, namespace: String, maxReplicas: Int64? = nil) {
    self.store = store
    self.namespace = namespace
    self.maxReplicas = maxReplicas
  }

  static let kinds: [String: KubeResource] = [
    "TServer": .tservers, "TTemplate": .ttemplates, "TConfig": .tconfigs,
    // The framework's settings (upChain, nodeImage, the image service's registry and bases).
    "TFrameworkConfig": .tframeworkconfigs,
  ]

  /// Parses every document of `yaml` (`---` separated); an unreadable document fails the whole text.
  public static func parse(_ yaml: String, source: String) throws(ManifestError) -> [KubeObject] {
    var out: [KubeObject] = []
    do {
      var documents = try Yams.compose_all(yaml: yaml)
      while let node = documents.next() {
        let json = try json(node)
        if json.isNull { continue }
        guard json.isObject else { throw ManifestError("\(source): a document is not a mapping") }
        out.append(KubeObject(json))
      }
      if let error = documents.error { throw error }
    } catch let e as ManifestError {
      throw e
    } catch {
      throw ManifestError("\(source): not valid YAML: \(error)")
    }
    return out
  }

  static func json(_ node: Yams.Node) throws -> JSONValue {
    switch node {
    case .mapping(let m):
      return .object(try m.map { (try json($0.key).stringText, try json($0.value)) })
    case .sequence(let s):
      return .array(try s.map(json))
    case .alias:
      throw ManifestError("an unresolved YAML alias")
    case .scalar(let s):
      switch node.tag {
      case Tag(.null): return .null
      case Tag(.bool): return node.bool.map(JSONValue.bool) ?? .string(s.string)
      case Tag(.int): return node.int.map { JSONValue.integer(Int64($0)) } ?? .string(s.string)
      case Tag(.float): return node.float.map(JSONValue.number) ?? .string(s.string)
      default: return .string(s.string)
      }
    }
  }

  /// Applies each object; the rows say what happened to each, in order.
  public func apply(_ objects: [KubeObject]) async -> [ApplyRow] {
    // Templates of this batch count as existing for the TServers that follow them.
    var templates = Set<String>()
    if let list = try? await store.list(.ttemplates, namespace: namespace, options: ListOptions()) {
      templates = Set(list.items.map(\.name))
    }
    for o in objects where o.kind == "TTemplate" { templates.insert(o.name) }
    var rows: [ApplyRow] = []
    for var o in objects {
      let kind = o.kind
      guard let resource = Self.kinds[kind] else {
        rows.append(
          ApplyRow(
            kind: kind, name: o.name, action: "rejected",
            problems: ["kind '\(kind)' cannot be applied here: use TServer, TTemplate, TConfig or TFrameworkConfig"]))
        continue
      }
      let apiVersion = o.json["apiVersion"]?.stringValue ?? ""
      if apiVersion != resource.apiVersion {
        rows.append(
          ApplyRow(
            kind: kind, name: o.name, action: "rejected",
            problems: ["apiVersion must be \(resource.apiVersion), not '\(apiVersion)'"]))
        continue
      }
      if let ns = o.namespace, ns != namespace {
        rows.append(
          ApplyRow(
            kind: kind, name: o.name, action: "rejected",
            problems: ["metadata.namespace '\(ns)' is not \(namespace), the namespace this control plane serves"]))
        continue
      }
      o.json = o.json.setting(path: ["metadata", "namespace"], .string(namespace))
      var problems: [String] = []
      if o.name.isEmpty { problems.append("metadata.name is required") }
      if kind == "TServer" {
        problems += TServerValidation.problems(o, templates: templates)
        if let most = maxReplicas, let replicas = o.spec?[path: ["k8s", "replicas"]]?.intValue, replicas > most {
          problems.append("spec.k8s.replicas \(replicas) is more than this control plane runs (\(most))")
        }
      }
      guard problems.isEmpty else {
        rows.append(ApplyRow(kind: kind, name: o.name, action: "rejected", problems: problems))
        continue
      }
      rows.append(kind == "TConfig" ? await writeConfig(o) : await write(resource, o))
    }
    return rows
  }

  /// Create, or replace what the manifest describes while keeping the status (kubectl apply's
  /// outcome for objects it owns).
  func write(_ resource: KubeResource, _ object: KubeObject) async -> ApplyRow {
    let kind = object.kind
    for _ in 0..<5 {
      do {
        let current = try await store.get(resource, namespace: namespace, name: object.name)
        var next = object
        next.json = next.json.setting(path: ["metadata", "resourceVersion"], .string(current.resourceVersion))
        next.json = next.json.setting(path: ["metadata", "uid"], .string(current.uid))
        let updated = try await store.update(resource, next, status: false)
        return ApplyRow(
          kind: kind, name: object.name,
          action: updated.resourceVersion == current.resourceVersion ? "unchanged" : "configured")
      } catch  where error.code == 404 {
        do {
          _ = try await store.create(resource, object)
          return ApplyRow(kind: kind, name: object.name, action: "created")
        } catch  where error.code == 409 {
          continue
        } catch {
          return ApplyRow(kind: kind, name: object.name, action: "rejected", problems: [error.message])
        }
      } catch  where error.code == 409 {
        continue
      } catch {
        return ApplyRow(kind: kind, name: object.name, action: "rejected", problems: [error.message])
      }
    }
    return ApplyRow(kind: kind, name: object.name, action: "rejected", problems: ["kept conflicting; try again"])
  }
}

extension ManifestApplier {
  /// A TConfig's content is immutable (the CRD says so), so a changed file is a new version: an
  /// object named after the manifest's and its content. When the manifest's is activated its
  /// siblings (same app, server, podSeq and file) are deactivated after it is written — the
  /// config service serves the newest activated one, so servers never see the file missing.
  /// Applying an earlier content again re-activates its version. Old versions are the
  /// controller's to trim (TFrameworkConfig `recordLimit.tconfigHistory`), on a cluster and in
  /// `up` alike.
  func writeConfig(_ object: KubeObject) async -> ApplyRow {
    let config = TConfig(object)
    do {
      let all = try await store.list(.tconfigs, namespace: namespace, options: ListOptions()).items.map(TConfig.init)
      var target = object
      if let named = all.first(where: { $0.object.name == object.name }),
        named.configContent != config.configContent
      {
        let hash = Self.contentHash(config.configContent)
        target.json = target.json.setting(path: ["metadata", "name"], .string("\(object.name)-\(hash)"))
        if config.version.isEmpty { target.json = target.json.setting(path: ["version"], .string(hash)) }
      }
      let written = await write(.tconfigs, target)
      guard written.problems.isEmpty else { return written.named(object.name) }
      var deactivated = false
      var siblings = 0
      for var sibling in all
      where sibling.object.name != target.name && sibling.app == config.app && sibling.server == config.server
        && sibling.podSeq == config.podSeq && sibling.configName == config.configName
      {
        siblings += 1
        if sibling.activated && config.activated {
          sibling.object.json = sibling.object.json.setting(path: ["activated"], .bool(false))
          _ = try await store.update(.tconfigs, sibling.object, status: false)
          deactivated = true
        }
      }
      // "created" is for a file new to this server; a new version of one is "configured".
      var row = written.named(object.name)
      if (row.action == "unchanged" && deactivated) || (row.action == "created" && siblings > 0) {
        row.action = "configured"
      }
      return row
    } catch {
      return ApplyRow(kind: "TConfig", name: object.name, action: "rejected", problems: [error.message])
    }
  }

  /// A short, stable name for a content: FNV-1a, 32 bits, in hex.
  static func contentHash(_ content: String) -> String {
    var h: UInt32 = 2_166_136_261
    for byte in content.utf8 { h = (h ^ UInt32(byte)) &* 16_777_619 }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 8 - hex.count) + hex
  }
}

extension ApplyRow {
  /// The row under the manifest's name (a config version is reported as the file applied).
  func named(_ name: String) -> ApplyRow {
    var row = self
    row.name = name
    return row
  }
}

extension JSONValue {
  /// A YAML key as JSON wants it: a string whatever its YAML type.
  var stringText: String {
    switch self {
    case .string(let s): return s
    case .integer(let i): return String(i)
    case .bool(let b): return b ? "true" : "false"
    case .number(let d): return String(d)
    case .null: return "null"
    default: return text
    }
  }
}
