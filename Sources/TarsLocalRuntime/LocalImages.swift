import Foundation
import TarsImage
import TarsImageService
import TarsKube
import TarsProtocol

/// Released images on this machine. A TServer whose `spec.release.image` names an image in a
/// registry (what `tarsctl release` sets) runs here as on a cluster — the same image — except
/// that nothing is containerised: the image's `/usr/local/server/bin` (the server's package) is
/// pulled and unpacked once per image digest under `<state>/images/`, and tarsnode runs the
/// server from there with this machine's libraries.
extension LocalRuntime {
  /// Whether `image` names a registry image (`HOST[:PORT]/REPO…`, the host holding a '.' or a
  /// ':' or being `localhost`) rather than a path on this machine.
  nonisolated static func registryImage(_ image: String) -> ImageReference? {
    guard !image.hasPrefix("/"), let slash = image.firstIndex(of: "/") else { return nil }
    let host = image[..<slash]
    guard host != ".", host != "..", host.contains(".") || host.contains(":") || host == "localhost" else { return nil }
    return try? ImageReference(parsing: image)
  }

  /// The directory holding the image's server files, pulling and unpacking it when this
  /// machine does not have it yet. Pulls of one image are shared.
  func serverFiles(_ ref: ImageReference, pullSecrets: [String]) async throws(ImageError) -> String {
    let root = configuration.stateDirectory + "/images"
    if let digest = ref.digest, FileManager.default.fileExists(atPath: "\(root)/\(digest.hex)/complete") {
      return "\(root)/\(digest.hex)/bin"
    }
    let key = ref.description
    let task: Task<String, Error>
    if let running = pulls[key] {
      task = running
    } else {
      let options = await registryOptions(for: ref, pullSecrets: pullSecrets)
      task = Task { try await Self.pull(ref, options: options, root: root) }
      pulls[key] = task
    }
    defer { pulls[key] = nil }
    do {
      return try await task.value
    } catch let e as ImageError {
      throw e
    } catch {
      throw ImageError("cannot pull \(ref): \(error)")
    }
  }

  /// Pulls into a layout of its own, unpacks the server's files, and keeps only those.
  nonisolated static func pull(_ ref: ImageReference, options: RegistryClient.Options, root: String) async throws
    -> String
  {
    let scratch = "\(root)/pull-\(UInt64.random(in: 0...UInt64.max))"
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let client = try RegistryClient(options: options)
    let digest: Digest
    do {
      digest = try await client.pull(ref, into: try ImageLayout(path: scratch), tag: "pulled")
    } catch {
      await client.shutdown()
      throw error
    }
    await client.shutdown()
    let target = "\(root)/\(digest.hex)"
    if FileManager.default.fileExists(atPath: target + "/complete") { return target + "/bin" }
    try? FileManager.default.removeItem(atPath: target)
    try FileManager.default.createDirectory(atPath: target + "/bin", withIntermediateDirectories: true)
    let files = try ImageLayout(path: scratch, create: false).extract(
      tag: "pulled", below: ImageBuild.serverDirectory, into: target + "/bin")
    guard files > 0 else {
      throw ImageError("\(ref) holds nothing at /\(ImageBuild.serverDirectory): it is not a server's release image")
    }
    _ = FileManager.default.createFile(atPath: target + "/complete", contents: Data())
    return target + "/bin"
  }

  /// HTTP or HTTPS and a CA as the TFrameworkConfig's `imageUpload` says for its registry (the
  /// one `tarsctl release` pushes to); credentials from the pod's pull Secrets.
  func registryOptions(for ref: ImageReference, pullSecrets: [String]) async -> RegistryClient.Options {
    var o = RegistryClient.Options()
    let namespace = configuration.namespace
    if let tfc = try? await store.get(.tframeworkconfigs, namespace: namespace, name: "tars-framework"),
      let settings = try? ImageSettings(frameworkConfig: tfc), settings.registryHost == ref.registry
    {
      o.plainHTTP = settings.plainHTTP
      o.caFile = settings.caFile
    }
    for name in pullSecrets {
      guard let secret = try? await store.get(.secrets, namespace: namespace, name: name),
        let data = RegistryCredentials.dockerConfig(ofSecret: secret),
        let credentials = try? RegistryCredentials.fromDockerConfig(
          json: data, source: "the Secret \(name)", registry: ref.registry)
      else { continue }
      o.credentials = credentials
      break
    }
    if o.credentials == nil, let path = configuration.dockerConfig {
      o.credentials = try? RegistryCredentials.fromDockerConfig(path, registry: ref.registry)
    }
    return o
  }
}
