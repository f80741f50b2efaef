import TarsImage
import TarsKube
import TarsProtocol

/// What went wrong with a build request, said so the operator knows what to change; `status`
/// is the admin API's answer.
public struct ImageServiceError: Error, Sendable, CustomStringConvertible {
  public var status: Int
  public var message: String
  public init(_ status: Int = 400, _ message: String) {
    self.status = status
    self.message = message
  }
  public var description: String { message }
}

/// The image service's settings, from the namespace's TFrameworkConfig `tars-framework`, read
/// for every build (a changed registry or base applies to the next one):
///
/// ```yaml
/// imageUpload: {registry: registry.example.com:5000/tars, secret: tars-registry, plainHTTP: false, caFile: /ca.pem}
/// imageBuild: {bases: {cpp: registry.example.com:5000/tars/cppbase:1, go: scratch}, maxBuildTime: 600, concurrency: 2}
/// recordLimit: {timageRelease: 32}
/// ```
///
/// `registry` and `secret` are K8SFramework's; `bases` replaces its base TImages (one per
/// server type), `concurrency` is new (K8SFramework ran five builds per pod, unbounded queue).
public struct ImageSettings: Sendable, Equatable {
  /// `HOST[:PORT][/PREFIX]`: images go to `<registry>/<app>.<server>:<tag>`, lower case.
  public var registry: String
  /// A `kubernetes.io/dockerconfigjson` Secret with the credentials for the registry and bases.
  public var secret: String?
  public var plainHTTP = false
  public var caFile: String?
  /// The base per server type: `scratch`, `oci:DIR[:TAG]`, or `REGISTRY/REPO:TAG`.
  public var bases: [String: String] = [:]
  public var maxBuildTime: Duration = .seconds(600)
  /// Builds run at once by one admin replica; the rest wait in line.
  public var concurrency = 2
  /// Releases a TImage keeps, newest first.
  public var releaseLimit = 32

  public static let serverTypes: Set<String> = ["cpp", "go", "java-jar", "java-war", "nodejs", "not-tars"]

  public init(registry: String) { self.registry = registry }

  /// The registry's host (and port), without the repository prefix.
  public var registryHost: String { registry.split(separator: "/").first.map(String.init) ?? registry }

  /// From the TFrameworkConfig; each error names the field to set.
  public init(frameworkConfig o: KubeObject?) throws(ImageServiceError) {
    guard let o else {
      throw ImageServiceError(
        409, "no TFrameworkConfig tars-framework in the namespace: create one with imageUpload.registry")
    }
    let field = "the TFrameworkConfig tars-framework"
    guard let registry = o.json["imageUpload"]?["registry"]?.stringValue, !registry.isEmpty else {
      throw ImageServiceError(409, "set imageUpload.registry (HOST[:PORT][/PREFIX]) in \(field)")
    }
    guard (try? ImageReference(parsing: registry + "/x.y:z")) != nil else {
      throw ImageServiceError(409, "imageUpload.registry \(registry) in \(field): write HOST[:PORT][/PREFIX]")
    }
    self.registry = registry
    secret = o.json["imageUpload"]?["secret"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
    plainHTTP = o.json["imageUpload"]?["plainHTTP"]?.boolValue ?? false
    caFile = o.json["imageUpload"]?["caFile"]?.stringValue
    let build = o.json["imageBuild"]
    for (type, value) in build?["bases"]?.members ?? [] {
      guard Self.serverTypes.contains(type), let text = value.stringValue, !text.isEmpty else {
        throw ImageServiceError(
          409,
          "imageBuild.bases.\(type) in \(field): a type among \(Self.serverTypes.sorted().joined(separator: ", ")) and a base (scratch, oci:DIR[:TAG] or REGISTRY/REPO:TAG)"
        )
      }
      bases[type] = text
    }
    if let seconds = build?["maxBuildTime"]?.intValue {
      guard (10...86_400).contains(seconds) else {
        throw ImageServiceError(409, "imageBuild.maxBuildTime \(seconds) in \(field): seconds, 10-86400")
      }
      maxBuildTime = .seconds(seconds)
    }
    if let n = build?["concurrency"]?.intValue {
      guard (1...16).contains(n) else {
        throw ImageServiceError(409, "imageBuild.concurrency \(n) in \(field): 1-16 builds at once")
      }
      concurrency = Int(n)
    }
    if let n = o.json["recordLimit"]?["timageRelease"]?.intValue {
      guard (1...200).contains(n) else {
        throw ImageServiceError(409, "recordLimit.timageRelease \(n) in \(field): 1-200 releases kept")
      }
      releaseLimit = Int(n)
    }
  }

  /// The base for `type`, or what to set.
  func base(for type: String) throws(ImageServiceError) -> String {
    guard let base = bases[type] else {
      throw ImageServiceError(
        409,
        "no base image for type \(type): set imageBuild.bases.\(type) in the TFrameworkConfig tars-framework (scratch, oci:DIR[:TAG] or REGISTRY/REPO:TAG)"
      )
    }
    return base
  }
}
