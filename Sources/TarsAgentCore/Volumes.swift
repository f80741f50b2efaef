import Glibc
import TarsProtocol
import TarsRPC

/// The provisioner of `tLocalVolume` mounts (reference §3.2, §4.1). The controller turns each
/// into a claim template on StorageClass `tars-storage-class`, whose `provisioner` names this
/// agent and whose binding waits for the first consumer: the scheduler picks the pod's node and
/// writes it on the claim (`volume.kubernetes.io/selected-node`). The agent on that node, and
/// only that one, then creates the directory — owned by the uid and gid and with the mode the
/// TServer asked for (the claim's `tars.io/LocalVolumeUID`/`GID`/`Mode` annotations) — and a
/// `local` PersistentVolume pinned to the node and pre-bound to the claim; Kubernetes' volume
/// controller completes the binding. When the claim is gone the volume is released by the
/// class's reclaim policy: `Delete` removes the directory and the volume, `Retain` keeps both.
///
/// Unlike K8SFramework, which made a volume on every capable node for every claim and named it
/// per server, one volume is made, where the pod landed, and each claim (each replica) has its
/// own directory: `<root>/<namespace>/<App>.<Server>/<claim>`.
public struct LocalVolumes: Sendable {
  public static let storageClass = "tars-storage-class"
  /// The StorageClass's `provisioner`, and the `pv.kubernetes.io/provisioned-by` of each volume.
  public static let provisioner = "k8s.tars.io/tarsagent"
  public static let selectedNode = "volume.kubernetes.io/selected-node"

  public var node: String
  /// Where volumes live on the node (K8SFramework's `TLVInHost`).
  public var root: String

  public init(node: String, root: String = "/usr/local/app/tars/host-mount") {
    self.node = node
    self.root = root
  }

  public enum Action: Equatable, Sendable {
    /// Make the claim's directory and volume.
    case provision(claim: JSONValue, directory: String, owner: Owner)
    /// The claim cannot be served as it is; the message says what to change.
    case refuse(claim: JSONValue, message: String)
    /// The volume's claim is gone: reclaim it.
    case release(volume: JSONValue, directory: String)
  }

  public struct Owner: Equatable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var mode: UInt32

    public init(uid: UInt32 = 0, gid: UInt32 = 0, mode: UInt32 = 0o755) {
      self.uid = uid
      self.gid = gid
      self.mode = mode
    }
  }

  /// What to do, from every claim and every volume in the cluster.
  public func plan(claims: [JSONValue], volumes: [JSONValue]) -> [Action] {
    var actions: [Action] = []
    var claimed: Set<String> = []
    for v in volumes {
      if let uid = v["spec"]?["claimRef"]?["uid"]?.stringValue { claimed.insert(uid) }
    }
    let present = Set(claims.compactMap { $0["metadata"]?["uid"]?.stringValue })
    for c in claims {
      let metadata = c["metadata"]
      guard c["spec"]?["storageClassName"]?.stringValue == Self.storageClass,
        metadata?["annotations"]?[Self.selectedNode]?.stringValue == node,
        (c["spec"]?["volumeName"]?.stringValue ?? "").isEmpty, metadata?["deletionTimestamp"] == nil,
        let uid = metadata?["uid"]?.stringValue, !claimed.contains(uid)
      else { continue }
      switch Self.directory(of: c, root: root).flatMap({ d in Self.owner(of: c).map { (d, $0) } }) {
      case .success(let (directory, owner)): actions.append(.provision(claim: c, directory: directory, owner: owner))
      case .failure(let refusal): actions.append(.refuse(claim: c, message: refusal.message))
      }
    }
    // A volume already being deleted waits for its finalizers (kubernetes.io/pv-protection), not for us.
    for v in volumes where isOurs(v) && v["metadata"]?["deletionTimestamp"] == nil {
      guard let uid = v["spec"]?["claimRef"]?["uid"]?.stringValue, !present.contains(uid),
        let path = v["spec"]?["local"]?["path"]?.stringValue
      else { continue }
      actions.append(.release(volume: v, directory: path))
    }
    return actions
  }

  /// A volume this agent made: provisioned by it, on this node, under the root.
  func isOurs(_ v: JSONValue) -> Bool {
    let terms = v["spec"]?["nodeAffinity"]?["required"]?["nodeSelectorTerms"]?.arrayValue ?? []
    let nodes = terms.flatMap { ($0["matchExpressions"]?.arrayValue ?? []).flatMap { $0["values"]?.arrayValue ?? [] } }
    return v["metadata"]?["annotations"]?["pv.kubernetes.io/provisioned-by"]?.stringValue == Self.provisioner
      && nodes.contains(.string(node)) && (v["spec"]?["local"]?["path"]?.stringValue ?? "").hasPrefix(root + "/")
  }

  public struct Refusal: Error, Sendable {
    public var message: String
  }

  /// `<root>/<namespace>/<App>.<Server>/<claim>`, from the claim's labels.
  static func directory(of claim: JSONValue, root: String) -> Result<String, Refusal> {
    let labels = claim["metadata"]?["labels"]
    guard let app = labels?["tars.io/ServerApp"]?.stringValue, let server = labels?["tars.io/ServerName"]?.stringValue
    else {
      return .failure(
        Refusal(
          message:
            "the claim has no tars.io/ServerApp and tars.io/ServerName labels: \(storageClass) serves the tLocalVolume mounts of TServers"
        ))
    }
    let parts = [
      claim["metadata"]?["namespace"]?.stringValue ?? "", "\(app).\(server)",
      claim["metadata"]?["name"]?.stringValue ?? "",
    ]
    // Names the API validated, but a directory name must not climb out of the root either way.
    guard parts.allSatisfy({ !$0.isEmpty && !$0.contains("/") && $0 != "." && $0 != ".." }) else {
      return .failure(Refusal(message: "the claim's namespace, app, server or name cannot name a directory"))
    }
    return .success(([root] + parts).joined(separator: "/"))
  }

  /// The owner and mode from `tars.io/LocalVolumeUID`, `GID` and `Mode` (octal), each optional.
  static func owner(of claim: JSONValue) -> Result<Owner, Refusal> {
    var owner = Owner()
    let a = claim["metadata"]?["annotations"]
    for (key, limit) in [("UID", UInt32(Int32.max)), ("GID", UInt32(Int32.max))] {
      guard let text = a?["tars.io/LocalVolume\(key)"]?.stringValue else { continue }
      guard let v = UInt32(text), v <= limit else {
        return .failure(
          Refusal(message: "tars.io/LocalVolume\(key) '\(text)' is not a number: set tLocalVolume.\(key.lowercased())"))
      }
      if key == "UID" { owner.uid = v } else { owner.gid = v }
    }
    if let text = a?["tars.io/LocalVolumeMode"]?.stringValue {
      guard let v = UInt32(text, radix: 8), v <= 0o7777 else {
        return .failure(
          Refusal(message: "tars.io/LocalVolumeMode '\(text)' is not an octal mode such as 0755: set tLocalVolume.mode")
        )
      }
      owner.mode = v
    }
    return .success(owner)
  }

  /// The PersistentVolume for a claim: `local`, pinned to this node, pre-bound to the claim.
  public func volume(for claim: JSONValue, directory: String, reclaimPolicy: String) -> JSONValue {
    let m = claim["metadata"]
    let uid = m?["uid"]?.stringValue ?? ""
    var labels: [(String, JSONValue)] = []
    for key in ["tars.io/ServerApp", "tars.io/ServerName", "tars.io/LocalVolume"] {
      if let v = m?["labels"]?[key] { labels.append((key, v)) }
    }
    let storage = claim["spec"]?["resources"]?["requests"]?["storage"] ?? .string("1G")
    return .object([
      ("apiVersion", .string("v1")), ("kind", .string("PersistentVolume")),
      (
        "metadata",
        .object([
          ("name", .string("pvc-\(uid)")), ("labels", .object(labels)),
          ("annotations", .object([("pv.kubernetes.io/provisioned-by", .string(Self.provisioner))])),
        ])
      ),
      (
        "spec",
        .object([
          ("capacity", .object([("storage", storage)])),
          ("accessModes", claim["spec"]?["accessModes"] ?? .array([.string("ReadWriteOnce")])),
          ("persistentVolumeReclaimPolicy", .string(reclaimPolicy)),
          ("storageClassName", .string(Self.storageClass)), ("volumeMode", .string("Filesystem")),
          ("local", .object([("path", .string(directory))])),
          (
            "claimRef",
            .object([
              ("kind", .string("PersistentVolumeClaim")), ("apiVersion", .string("v1")),
              ("namespace", m?["namespace"] ?? .null), ("name", m?["name"] ?? .null), ("uid", .string(uid)),
            ])
          ),
          (
            "nodeAffinity",
            .object([
              (
                "required",
                .object([
                  (
                    "nodeSelectorTerms",
                    .array([
                      .object([
                        (
                          "matchExpressions",
                          .array([
                            .object([
                              ("key", .string("kubernetes.io/hostname")), ("operator", .string("In")),
                              ("values", .array([.string(node)])),
                            ])
                          ])
                        )
                      ])
                    ])
                  )
                ])
              )
            ])
          ),
        ])
      ),
    ])
  }
}

/// The directories themselves.
public enum VolumeDirectory {
  /// Creates `path` (and its parents, root-owned 0755) and gives it `owner` — through a
  /// descriptor opened without following links, so a link planted in its place is refused.
  public static func make(_ path: String, owner: LocalVolumes.Owner) -> String? {
    var prefix = ""
    for part in path.split(separator: "/") {
      prefix += "/" + part
      if mkdir(prefix, 0o755) != 0 && errno != EEXIST { return "mkdir \(prefix): \(String(cString: strerror(errno)))" }
    }
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return "open \(path): \(String(cString: strerror(errno)))" }
    defer { close(fd) }
    if fchown(fd, owner.uid, owner.gid) != 0 { return "chown \(path): \(String(cString: strerror(errno)))" }
    if fchmod(fd, mode_t(owner.mode)) != 0 { return "chmod \(path): \(String(cString: strerror(errno)))" }
    return nil
  }

  /// Removes `path` and everything in it, never following a link out of it; nil or the error.
  public static func remove(_ path: String) -> String? {
    var st = stat()
    if lstat(path, &st) != 0 { return errno == ENOENT ? nil : "stat \(path): \(String(cString: strerror(errno)))" }
    if st.st_mode & S_IFMT == S_IFDIR {
      for name in Files.list(path) {
        if let error = remove(path + "/" + name) { return error }
      }
      if rmdir(path) != 0 { return "rmdir \(path): \(String(cString: strerror(errno)))" }
    } else if unlink(path) != 0 {
      return "unlink \(path): \(String(cString: strerror(errno)))"
    }
    return nil
  }
}
