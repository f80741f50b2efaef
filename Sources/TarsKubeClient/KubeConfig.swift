import Foundation
import TarsKube
import Yams

/// Where the API server is and who we are to it: from inside a pod (service-account token,
/// CA, `KUBERNETES_SERVICE_HOST/PORT`) or from a kubeconfig file (token or client certificate).
public struct KubeConfig: Sendable, Equatable {
  /// `https://host:port` (or http for tests).
  public var server: String
  public var token: String?
  /// A file to re-read the token from (service-account tokens are rotated).
  public var tokenFile: String?
  public var caPEM: [UInt8]?
  public var clientCertificatePEM: [UInt8]?
  public var clientKeyPEM: [UInt8]?
  public var insecureSkipTLSVerify = false
  /// The namespace of the context (or of the pod).
  public var namespace: String?

  public init(server: String, token: String? = nil, namespace: String? = nil) {
    self.server = server
    self.token = token
    self.namespace = namespace
  }

  public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    init(_ message: String) { self.message = message }
  }

  /// Inside a pod: the mounted service account and the service environment.
  public static func inCluster(
    environment: [String: String] = ProcessInfo.processInfo.environment,
    directory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
  ) throws(ConfigError) -> KubeConfig {
    guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"],
      !host.isEmpty, !port.isEmpty
    else {
      throw ConfigError("not in a pod: KUBERNETES_SERVICE_HOST/PORT are not set (use --kubeconfig)")
    }
    let hostPart = host.contains(":") ? "[\(host)]" : host
    var c = KubeConfig(server: "https://\(hostPart):\(port)")
    c.tokenFile = directory + "/token"
    guard let token = try? String(contentsOfFile: directory + "/token", encoding: .utf8) else {
      throw ConfigError("cannot read the service-account token at \(directory)/token")
    }
    c.token = token.trimmingCharacters(in: .whitespacesAndNewlines)
    c.caPEM = FileManager.default.contents(atPath: directory + "/ca.crt").map { Array($0) }
    c.namespace = (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?
      .trimmingCharacters(in: .whitespacesAndNewlines)
    return c
  }

  /// A kubeconfig file's context (default: its `current-context`).
  public static func load(kubeconfig path: String, context: String? = nil) throws(ConfigError) -> KubeConfig {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
      throw ConfigError("cannot read the kubeconfig \(path)")
    }
    return try parse(kubeconfig: text, context: context, baseDirectory: (path as NSString).deletingLastPathComponent)
  }

  public static func parse(kubeconfig text: String, context wanted: String? = nil, baseDirectory: String = ".")
    throws(ConfigError) -> KubeConfig
  {
    let root: [String: Any]
    do {
      guard let loaded = try Yams.load(yaml: text) as? [String: Any] else {
        throw ConfigError("the kubeconfig is not a YAML mapping")
      }
      root = loaded
    } catch let e as ConfigError {
      throw e
    } catch {
      throw ConfigError("the kubeconfig does not parse: \(error)")
    }
    func named(_ list: String, _ name: String, _ field: String) throws(ConfigError) -> [String: Any] {
      let items = root[list] as? [[String: Any]] ?? []
      guard let item = items.first(where: { $0["name"] as? String == name }), let body = item[field] as? [String: Any]
      else { throw ConfigError("the kubeconfig has no \(field) named '\(name)'") }
      return body
    }
    guard let contextName = wanted ?? (root["current-context"] as? String), !contextName.isEmpty else {
      throw ConfigError("the kubeconfig has no current-context: name one with --context")
    }
    let context = try named("contexts", contextName, "context")
    guard let clusterName = context["cluster"] as? String else {
      throw ConfigError("context '\(contextName)' names no cluster")
    }
    let cluster = try named("clusters", clusterName, "cluster")
    guard let server = cluster["server"] as? String else { throw ConfigError("cluster '\(clusterName)' has no server") }
    var c = KubeConfig(server: server)
    c.namespace = context["namespace"] as? String
    c.insecureSkipTLSVerify = cluster["insecure-skip-tls-verify"] as? Bool ?? false
    func file(_ path: String) throws(ConfigError) -> [UInt8] {
      let full = path.hasPrefix("/") ? path : baseDirectory + "/" + path
      guard let data = FileManager.default.contents(atPath: full) else { throw ConfigError("cannot read \(full)") }
      return Array(data)
    }
    func inline(_ base64: String, _ what: String) throws(ConfigError) -> [UInt8] {
      guard let data = Data(base64Encoded: base64.filter { !$0.isWhitespace }) else {
        throw ConfigError("\(what) is not valid base64")
      }
      return Array(data)
    }
    if let data = cluster["certificate-authority-data"] as? String {
      c.caPEM = try inline(data, "certificate-authority-data")
    } else if let path = cluster["certificate-authority"] as? String {
      c.caPEM = try file(path)
    }
    if let userName = context["user"] as? String {
      let user = try named("users", userName, "user")
      if let token = user["token"] as? String {
        c.token = token
      } else if let path = user["tokenFile"] as? String {
        c.tokenFile = path
        c.token = String(decoding: try file(path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
      }
      if let data = user["client-certificate-data"] as? String {
        c.clientCertificatePEM = try inline(data, "client-certificate-data")
      } else if let path = user["client-certificate"] as? String {
        c.clientCertificatePEM = try file(path)
      }
      if let data = user["client-key-data"] as? String {
        c.clientKeyPEM = try inline(data, "client-key-data")
      } else if let path = user["client-key"] as? String {
        c.clientKeyPEM = try file(path)
      }
      if user["exec"] != nil && c.token == nil && c.clientCertificatePEM == nil {
        throw ConfigError(
          "user '\(userName)' authenticates with an exec plugin, which is not supported: use a token or a client certificate"
        )
      }
    }
    return c
  }
}
