import Foundation

/// The OCI image format's documents (image-spec v1.1) and the Docker v2 media types a base may
/// come in. Encoded with sorted keys, so the same image is the same bytes.
public enum MediaType {
  public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
  public static let ociIndex = "application/vnd.oci.image.index.v1+json"
  public static let ociConfig = "application/vnd.oci.image.config.v1+json"
  public static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
  public static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
  public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
  public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
  public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
  public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"

  static let indexes: Set<String> = [ociIndex, dockerManifestList]
  static let manifests: Set<String> = [ociManifest, dockerManifest]
}

public struct Platform: Codable, Sendable, Equatable {
  public var architecture: String
  public var os: String
  public var variant: String?

  public init(architecture: String = "amd64", os: String = "linux") {
    self.architecture = architecture
    self.os = os
  }
}

public struct Descriptor: Codable, Sendable, Equatable {
  public var mediaType: String
  public var digest: String
  public var size: Int64
  public var annotations: [String: String]?
  public var platform: Platform?

  public init(mediaType: String, digest: Digest, size: Int64) {
    self.mediaType = mediaType
    self.digest = digest.description
    self.size = size
  }

  public var parsedDigest: Digest {
    get throws(ImageError) { try Digest(parsing: digest) }
  }
}

public struct Manifest: Codable, Sendable, Equatable {
  public var schemaVersion = 2
  public var mediaType: String? = MediaType.ociManifest
  public var config: Descriptor
  public var layers: [Descriptor]
  public var annotations: [String: String]?

  public init(config: Descriptor, layers: [Descriptor]) {
    self.config = config
    self.layers = layers
  }
}

public struct Index: Codable, Sendable, Equatable {
  public var schemaVersion = 2
  public var mediaType: String? = MediaType.ociIndex
  public var manifests: [Descriptor]

  public init(manifests: [Descriptor]) { self.manifests = manifests }
}

enum CanonicalJSON {
  static func encode(_ value: some Encodable) throws(ImageError) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    do {
      return Array(try encoder.encode(value))
    } catch {
      throw ImageError("cannot encode \(type(of: value)): \(error)")
    }
  }

  static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws(ImageError) -> T {
    do {
      return try JSONDecoder().decode(T.self, from: Data(bytes))
    } catch {
      throw ImageError("\(what) is not a valid \(T.self): \(error)")
    }
  }
}
