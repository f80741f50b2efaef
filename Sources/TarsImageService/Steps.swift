import Foundation
import NIOPosix
import Synchronization
import TarsImage
import TarsKube
import TarsProtocol

extension ImageService {
  /// The build proper, run while holding the server's Lease.
  func steps(_ id: String) async -> Result<String, BuildFailure> {
    guard let entry = builds[id] else { return .failure(BuildFailure("unknown build")) }
    let r = entry.request
    let settings = entry.settings
    let directory = options.workDirectory + "/" + id
    do {
      set(id, .preparing, "building \(r.server) with the Lease held")
      try await recordRunning(entry.state)
      let credentials = try await credentials(settings)
      let client = { (ref: ImageReference) throws(ImageError) -> RegistryClient in
        var o = RegistryClient.Options()
        o.plainHTTP = settings.plainHTTP
        o.caFile = settings.caFile
        o.credentials = credentials.flatMap {
          try? RegistryCredentials.fromDockerConfig(json: $0, source: "", registry: ref.registry)
        }
        return try RegistryClient(options: o)
      }
      let baseText = entry.state.baseImage
      if baseText != "scratch", !baseText.hasPrefix("oci:") { set(id, .pulling, "pulling the base \(baseText)") }
      let base = try await ImageBuild.Base.resolve(baseText, cache: directory + "/layout", client: client)
      try Task.checkCancellation()

      set(id, .building, "unpacking the package and building the image")
      var build = ImageBuild()
      build.base = base
      build.package = r.package
      build.server = r.server
      build.serverType = r.serverType
      let layoutPath = directory + "/layout"
      let recipe = build
      let built = try await NIOThreadPool.singleton.runIfActive {
        try recipe.build(into: try ImageLayout(path: layoutPath), tag: id)
      }
      if let p = built.package { append(id, "package \(p.digest): \(p.files) files, \(p.bytes) bytes") }
      for l in built.layers { append(id, "layer \(l.digest): \(l.size) bytes") }
      try Task.checkCancellation()

      let ref = try ImageReference(parsing: entry.state.image)
      set(id, .pushing, "pushing to \(ref)")
      let registry = try client(ref)
      let digest: Digest
      do {
        // Lines go into a buffer in the order the push reports them, and into the log from it.
        let pending = PendingLines()
        digest = try await registry.push(try ImageLayout(path: layoutPath, create: false), tag: id, to: ref) { event in
          pending.add(Self.line(event))
          Task { await self.drain(id, pending) }
        }
        drain(id, pending)
      } catch {
        await registry.shutdown()
        throw error
      }
      await registry.shutdown()
      let pinned = "\(ref)@\(digest)"
      setImage(id, pinned)
      try Task.checkCancellation()

      set(id, .recording, "recording the release in the TImage \(BuildState.imageName(r.server))")
      try await recordRelease(id: id, image: pinned, settings: settings, request: r)
      if r.setRelease {
        try await setRelease(server: r.server, id: id, image: pinned, secret: settings.secret)
        return .success("released \(pinned) as \(id); the TServer's spec.release is set")
      }
      return .success("released \(pinned) as \(id)")
    } catch let e as ImageError {
      return .failure(BuildFailure(e.message))
    } catch let e as BuildFailure {
      return .failure(e)
    } catch is CancellationError {
      return .failure(BuildFailure("cancelled"))
    } catch {
      return .failure(BuildFailure(Task.isCancelled ? "cancelled" : "\(error)"))
    }
  }

  static func line(_ event: RegistryClient.Event) -> String {
    switch event {
    case .exists(let d, _): "the registry has \(d)"
    case .mounted(let d, _): "mounted \(d)"
    case .uploading(let d, let sent, let total): "uploading \(d): \(sent >> 20)/\(total >> 20) MiB"
    case .uploaded(let d, let size): "pushed \(d): \(size) bytes"
    case .manifest(let d): "manifest \(d)"
    }
  }

  func drain(_ id: String, _ pending: PendingLines) {
    for line in pending.take() { append(id, line) }
  }

  /// The `.dockerconfigjson` of the configured Secret, if one is named.
  func credentials(_ settings: ImageSettings) async throws -> Data? {
    guard let name = settings.secret else {
      guard let path = options.dockerConfig else { return nil }
      guard let data = FileManager.default.contents(atPath: path) else {
        throw BuildFailure("cannot read the docker config \(path) (--docker-config)")
      }
      return data
    }
    let secret: KubeObject
    do {
      secret = try await store.get(.secrets, namespace: namespace, name: name)
    } catch {
      throw BuildFailure(
        "cannot read the Secret \(name) (imageUpload.secret): \(error.message): create it with kubectl create secret docker-registry \(name) …"
      )
    }
    guard let data = RegistryCredentials.dockerConfig(ofSecret: secret) else {
      throw BuildFailure("the Secret \(name) has no .dockerconfigjson: make it a kubernetes.io/dockerconfigjson Secret")
    }
    return data
  }

  // MARK: Records

  /// The TImage as it is, or a new one for the server.
  func timage(_ server: String, type: String) async throws(StoreError) -> (KubeObject, exists: Bool) {
    let name = BuildState.imageName(server)
    do throws(StoreError) {
      return (try await store.get(.timages, namespace: namespace, name: name), true)
    } catch {
      guard error.code == 404 else { throw error }
      let parts = server.split(separator: ".").map(String.init)
      var o = KubeObject(
        .timages, namespace: namespace, name: name,
        labels: ["tars.io/ServerApp": parts[0], "tars.io/ServerName": parts[1], "tars.io/ImageType": "server"])
      o.json.set(["imageType"], .string("server"))
      o.json.set(["supportedType"], .array([.string(type)]))
      return (o, false)
    }
  }

  /// Read, change, write, again on a conflict (another replica wrote in between).
  func updateTImage(_ server: String, type: String, _ change: (inout KubeObject) throws -> Void) async throws {
    for attempt in 1...5 {
      var (o, exists) = try await timage(server, type: type)
      try change(&o)
      do throws(StoreError) {
        _ = exists ? try await store.update(.timages, o, status: false) : try await store.create(.timages, o)
        return
      } catch {
        // A conflict: another replica wrote in between (or created it first).
        guard error.code == 409, attempt < 5 else { throw error }
      }
    }
  }

  /// `build.running`: this build. One left there by a replica that died is moved to `build.last`
  /// as failed (its Lease expired, which is how this build got it).
  func recordRunning(_ state: BuildState) async throws {
    try await updateTImage(state.server, type: state.serverType) { o in
      if var stale = o.json["build"]?["running"], stale.isObject, stale["id"]?.stringValue != state.id {
        stale.set(["phase"], .string(BuildPhase.failed.rawValue))
        stale.set(["message"], .string("interrupted: the admin replica running it stopped (its Lease expired)"))
        o.json.set(["build", "last"], stale)
      }
      o.json.set(["build", "running"], state.record)
    }
  }

  /// `build.last` and no `build.running` (if it is still this one).
  func recordLast(_ state: BuildState) async {
    do {
      try await updateTImage(state.server, type: state.serverType) { o in
        o.json.set(["build", "last"], state.record)
        if o.json["build"]?["running"]?["id"]?.stringValue == state.id { o.json.set(["build", "running"], nil) }
      }
    } catch {
      say("image: cannot record build \(state.id) in its TImage: \(error)")
    }
  }

  /// The new release first, the oldest beyond the limit dropped.
  func recordRelease(id: String, image: String, settings: ImageSettings, request r: BuildRequest) async throws {
    var release: JSONValue = .object([
      ("id", .string(id)), ("image", .string(image)), ("createPerson", .string(r.person)),
      ("createTime", .string(kubeTimestamp())), ("mark", .string(r.mark)),
    ])
    if let secret = settings.secret { release.set(["secret"], .string(secret)) }
    try await updateTImage(r.server, type: r.serverType) { o in
      let old = (o.json["releases"]?.arrayValue ?? []).filter { $0["id"]?.stringValue != id }
      o.json.set(["releases"], .array(Array(([release] + old).prefix(settings.releaseLimit))))
      var types = o.json["supportedType"]?.arrayValue ?? []
      if !types.contains(.string(r.serverType)) { types.append(.string(r.serverType)) }
      o.json.set(["supportedType"], .array(types))
    }
  }

  /// The TServer's `spec.release`: id, image and pull Secret; the rest of it (nodeImage…) kept.
  public func setRelease(server: String, id: String, image: String, secret: String?) async throws {
    let name = BuildState.imageName(server)
    for attempt in 1...5 {
      let found: Result<KubeObject, StoreError> = await {
        do throws(StoreError) {
          return .success(try await store.get(.tservers, namespace: namespace, name: name))
        } catch {
          return .failure(error)
        }
      }()
      var t: KubeObject
      switch found {
      case .success(let o): t = o
      case .failure(let e) where e.code == 404:
        throw BuildFailure(
          "no TServer \(name) to release to: the image is recorded; apply the TServer, then tarsctl release \(server) --to \(id)"
        )
      case .failure(let e): throw e
      }
      t.json.set(["spec", "release", "id"], .string(id))
      t.json.set(["spec", "release", "image"], .string(image))
      t.json.set(["spec", "release", "secret"], secret.map { .string($0) })
      let written: StoreError? = await {
        do throws(StoreError) {
          _ = try await store.update(.tservers, t, status: false)
          return nil
        } catch { return error }
      }()
      guard let written else { return }
      if written.code != 409 || attempt == 5 { throw written }
    }
  }
}

extension ImageService {
  /// Points the TServer at a release its TImage records (a rollback, or a release built with
  /// `release: false`); the error says what exists.
  public func release(server: String, to id: String) async throws(ImageServiceError) -> String {
    let name = BuildState.imageName(server)
    let releases: [JSONValue]
    do {
      releases = try await store.get(.timages, namespace: namespace, name: name).json["releases"]?.arrayValue ?? []
    } catch {
      throw ImageServiceError(
        error.code == 404 ? 404 : 503,
        error.code == 404 ? "\(server) has no releases yet: tarsctl release \(server) PACKAGE.tgz" : error.message)
    }
    guard let r = releases.first(where: { $0["id"]?.stringValue == id }), let image = r["image"]?.stringValue else {
      let known = releases.prefix(5).compactMap { $0["id"]?.stringValue }.joined(separator: ", ")
      throw ImageServiceError(404, "\(server) has no release \(id): the newest are \(known)")
    }
    do {
      try await setRelease(server: server, id: id, image: image, secret: r["secret"]?.stringValue)
    } catch let e as BuildFailure {
      throw ImageServiceError(404, e.message)
    } catch {
      throw ImageServiceError(503, "cannot set the release of \(server): \(error)")
    }
    return image
  }
}

/// Lines reported from outside the actor, kept in their order until it takes them.
final class PendingLines: Sendable {
  let lines = Mutex<[String]>([])
  func add(_ line: String) { lines.withLock { $0.append(line) } }
  func take() -> [String] {
    lines.withLock { l in
      defer { l = [] }; return l
    }
  }
}
