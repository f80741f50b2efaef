import Foundation
import TarsKube

/// `REGISTRY/REPOSITORY[:TAG][@sha256:…]`, as docker and skopeo write image names. The
/// registry part is required (there is no implicit Docker Hub here): a host with a dot or a
/// port, or `localhost`.
public struct ImageReference: Sendable, Equatable, CustomStringConvertible {
  public var registry: String
  public var repository: String
  public var tag: String?
  public var digest: Digest?

  public init(registry: String, repository: String, tag: String? = nil, digest: Digest? = nil) {
    self.registry = registry
    self.repository = repository
    self.tag = tag
    self.digest = digest
  }

  public init(parsing text: String) throws(ImageError) {
    var rest = text.hasPrefix("docker://") ? String(text.dropFirst(9)) : text
    var digest: Digest?
    if let at = rest.firstIndex(of: "@") {
      digest = try Digest(parsing: String(rest[rest.index(after: at)...]))
      rest = String(rest[..<at])
    }
    guard let slash = rest.firstIndex(of: "/") else {
      throw ImageError("\(text): write REGISTRY/REPOSITORY[:TAG], e.g. registry.example.com:5000/test/hello:1")
    }
    let registry = String(rest[..<slash])
    guard registry.contains(".") || registry.contains(":") || registry == "localhost" else {
      throw ImageError("\(text): '\(registry)' is not a registry host; write the registry first (HOST[:PORT]/…)")
    }
    var path = String(rest[rest.index(after: slash)...])
    var tag: String?
    if let colon = path.lastIndex(of: ":"), !path[colon...].contains("/") {
      tag = String(path[path.index(after: colon)...])
      path = String(path[..<colon])
    }
    let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789._-/")
    guard !path.isEmpty, path.allSatisfy({ allowed.contains($0) }), !path.hasPrefix("/"), !path.hasSuffix("/") else {
      throw ImageError("\(text): the repository '\(path)' must be lower-case letters, digits, '.', '_', '-' and '/'")
    }
    if let tag {
      let tagAllowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
      guard !tag.isEmpty, tag.count <= 128, tag.allSatisfy({ tagAllowed.contains($0) }), tag.first != ".",
        tag.first != "-"
      else { throw ImageError("\(text): the tag '\(tag)' must be letters, digits, '.', '_' and '-' (128 at most)") }
    }
    self.init(registry: registry, repository: path, tag: tag ?? (digest == nil ? "latest" : nil), digest: digest)
  }

  /// What `/v2/<name>/manifests/<reference>` takes: the digest when there is one.
  public var manifestReference: String { digest?.description ?? tag ?? "latest" }

  public var description: String {
    "\(registry)/\(repository)" + (tag.map { ":\($0)" } ?? "") + (digest.map { "@\($0)" } ?? "")
  }
}

/// A user name and password for a registry, from flags, `~/.docker/config.json`, or a
/// Kubernetes `kubernetes.io/dockerconfigjson` Secret's `.dockerconfigjson` (the same format).
public struct RegistryCredentials: Sendable, Equatable {
  public var username: String
  public var password: String

  public init(username: String, password: String) {
    self.username = username
    self.password = password
  }

  /// The entry for `registry` in a docker config file (`auths.<host>.auth`, base64 of
  /// `user:password`, or `username`/`password`); nil when it has none.
  public static func fromDockerConfig(_ path: String, registry: String) throws(ImageError) -> RegistryCredentials? {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ImageError("cannot read the docker config \(path)")
    }
    return try fromDockerConfig(json: data, source: path, registry: registry)
  }

  /// The same from a docker config's bytes (a Secret's `.dockerconfigjson`); `source` names it
  /// in errors.
  public static func fromDockerConfig(json data: Data, source path: String, registry: String) throws(ImageError)
    -> RegistryCredentials?
  {
    guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
      let auths = json["auths"] as? [String: Any]
    else { throw ImageError("\(path) is not a docker config (no \"auths\")") }
    let keys = [registry, "https://\(registry)", "http://\(registry)", "https://\(registry)/v2/"]
    guard let entry = keys.lazy.compactMap({ auths[$0] as? [String: Any] }).first else { return nil }
    if let auth = entry["auth"] as? String, let decoded = Data(base64Encoded: auth),
      let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
    {
      return RegistryCredentials(
        username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
    }
    if let user = entry["username"] as? String, let password = entry["password"] as? String {
      return RegistryCredentials(username: user, password: password)
    }
    throw ImageError("\(path): the entry for \(registry) has neither auth nor username and password")
  }

  /// The docker config a `kubernetes.io/dockerconfigjson` Secret holds (its `.dockerconfigjson`,
  /// decoded); nil when it holds none.
  public static func dockerConfig(ofSecret secret: KubeObject) -> Data? {
    secret.json["data"]?[".dockerconfigjson"]?.stringValue.flatMap { Data(base64Encoded: $0) }
  }

  var basic: String { "Basic " + Data("\(username):\(password)".utf8).base64EncodedString() }
}
