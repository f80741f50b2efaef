import AsyncHTTPClient
import Foundation
import NIOCore

extension RegistryClient {
  /// Pulls `ref` into `layout` as `tag`: an index resolves to its linux/amd64 manifest (OCI
  /// or Docker v2 media types); every blob is checked against its digest as it arrives, and a
  /// blob the layout has is not fetched again.
  public func pull(_ ref: ImageReference, into layout: ImageLayout, tag: String) async throws(ImageError) -> Digest {
    let scope = "repository:\(ref.repository):pull"
    var (descriptor, bytes) = try await fetchManifest(ref.manifestReference, ref: ref, scope: scope)
    if let expected = ref.digest, Digest.of(bytes) != expected {
      throw ImageError("\(ref): the registry's manifest does not match the digest asked for")
    }
    if MediaType.indexes.contains(descriptor.mediaType) {
      let index = try CanonicalJSON.decode(Index.self, from: bytes, what: "the index of \(ref)")
      guard let amd64 = index.manifests.first(where: { $0.platform == Platform() }) else {
        throw ImageError("\(ref) has no linux/amd64 image")
      }
      (descriptor, bytes) = try await fetchManifest(amd64.digest, ref: ref, scope: scope)
      guard Digest.of(bytes).description == amd64.digest else {
        throw ImageError("\(ref): the linux/amd64 manifest does not match its digest in the index")
      }
    }
    guard MediaType.manifests.contains(descriptor.mediaType) else {
      throw ImageError("\(ref): \(descriptor.mediaType) is not an image manifest this builder reads")
    }
    let manifest = try CanonicalJSON.decode(Manifest.self, from: bytes, what: "the manifest of \(ref)")
    for blob in [manifest.config] + manifest.layers {
      let digest = try blob.parsedDigest
      if layout.blobs.has(digest) { continue }
      try await download(digest, size: blob.size, ref: ref, scope: scope, into: layout.blobs)
    }
    let (stored, size) = try layout.blobs.put(bytes)
    try layout.tag(Descriptor(mediaType: descriptor.mediaType, digest: stored, size: size), as: tag)
    return stored
  }

  func fetchManifest(_ reference: String, ref: ImageReference, scope: String) async throws(ImageError)
    -> (Descriptor, [UInt8])
  {
    let accept = [MediaType.ociIndex, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.dockerManifest]
    let response = try await send("GET manifest \(ref)", scope: scope, ref: ref) { () throws(ImageError) in
      var r = HTTPClientRequest(url: self.url(ref, "manifests/\(reference)"))
      r.headers.add(name: "Accept", value: accept.joined(separator: ", "))
      return r
    }
    guard response.status == 200 else {
      throw ImageError(
        response.status == 404
          ? "\(ref) is not in \(ref.registry) (404): check the repository and tag"
          : "\(ref.registry) answered \(response.status) for \(ref)\(Self.reason(response.body))")
    }
    var type = response.headers.first(name: "Content-Type") ?? ""
    if let semicolon = type.firstIndex(of: ";") { type = String(type[..<semicolon]) }
    if !MediaType.indexes.contains(type) && !MediaType.manifests.contains(type),
      let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
      let declared = json["mediaType"] as? String
    {
      type = declared
    }
    return (
      Descriptor(mediaType: type, digest: Digest.of(response.body), size: Int64(response.body.count)), response.body
    )
  }

  /// Streams a blob into the store, checking its digest; a short or wrong one is retried,
  /// then refused.
  func download(_ digest: Digest, size: Int64, ref: ImageReference, scope: String, into blobs: BlobStore)
    async throws(ImageError)
  {
    _ = try await hasBlob(digest, in: ref, scope: scope)  // answers any auth challenge first
    var problem = ""
    for attempt in 1...max(1, options.attempts) {
      let upload = try blobs.begin()
      do {
        var request = HTTPClientRequest(url: url(ref, "blobs/\(digest)"))
        request.headers.add(name: "User-Agent", value: "tarsk8s")
        if let auth = tokens.withLock({ $0[ref.registry + " " + scope] }) {
          request.headers.add(name: "Authorization", value: auth)
        }
        let response = try await http.execute(request, timeout: options.timeout)
        guard response.status == .ok else {
          throw ImageError("\(ref.registry) answered \(response.status.code) for blob \(digest)")
        }
        for try await var buffer in response.body {
          try upload.write(buffer.readBytes(length: buffer.readableBytes) ?? [])
        }
        let (got, count) = try upload.commit()
        guard got == digest, count == size else {
          unlink(blobs.path(got))
          throw ImageError("blob \(digest) arrived as \(got) (\(count) of \(size) bytes)")
        }
        return
      } catch {
        upload.abandon()
        problem = "\(error)"
      }
      if attempt < options.attempts { try? await Task.sleep(for: .milliseconds(500 << (attempt - 1))) }
    }
    throw ImageError("cannot pull blob \(digest) from \(ref.registry): \(problem) (tried \(options.attempts) times)")
  }
}
