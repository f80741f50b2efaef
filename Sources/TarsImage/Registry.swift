import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A registry client on AsyncHTTPClient, the OCI distribution spec's push and pull: HTTP or
/// HTTPS (a custom CA), basic auth and the bearer-token flow, HEAD before upload so a blob the
/// registry has is never sent twice, cross-repository mounts, monolithic uploads for small
/// blobs and chunked ones that resume where the registry says it stopped, and the manifest
/// last — a registry never holds a manifest whose blobs it lacks.
public final class RegistryClient: Sendable {
  public struct Options: Sendable {
    /// Plain HTTP (a registry on loopback or inside a cluster network); HTTPS otherwise.
    public var plainHTTP = false
    /// A PEM file of the CA that signed the registry's certificate.
    public var caFile: String?
    public var credentials: RegistryCredentials?
    /// Blobs up to this size go in one PUT; larger ones in chunks of this size.
    public var chunkSize = 8 << 20
    /// Tries per request before giving up (with 0.5, 1, 2, … s between).
    public var attempts = 4
    public var timeout: TimeAmount = .seconds(120)

    public init() {}
  }

  /// What a push did, for progress output.
  public enum Event: Sendable {
    case exists(Digest, Int64)
    case mounted(Digest, Int64)
    case uploading(Digest, sent: Int64, of: Int64)
    case uploaded(Digest, Int64)
    case manifest(Digest)
  }

  let options: Options
  let http: HTTPClient
  let tokens = Mutex<[String: String]>([:])

  public init(options: Options = Options()) throws(ImageError) {
    self.options = options
    var tls = TLSConfiguration.makeClientConfiguration()
    if let ca = options.caFile {
      do {
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
      } catch {
        throw ImageError("cannot load the CA \(ca): \(error) (--ca-file)")
      }
    }
    var c = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .follow(max: 5, allowCycles: false))
    c.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(10), read: .seconds(60))
    http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: c)
  }

  public func shutdown() async { try? await http.shutdown() }

  func base(_ ref: ImageReference) -> String { (options.plainHTTP ? "http://" : "https://") + ref.registry }

  // MARK: Requests and auth

  struct Response {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
  }

  /// Sends a request (made afresh for each try), answering an auth challenge once; retries
  /// connection failures and 5xx with backoff. `scope` is the token scope a bearer registry
  /// is asked for.
  func send(
    _ what: String, scope: String, ref: ImageReference, maxBody: Int = 8 << 20, authorized: Bool = false,
    _ make: @Sendable () throws(ImageError) -> HTTPClientRequest
  ) async throws(ImageError) -> Response {
    var lastProblem = ""
    for attempt in 1...max(1, options.attempts) {
      var request = try make()
      request.headers.replaceOrAdd(name: "User-Agent", value: "tarsk8s")
      if let auth = tokens.withLock({ $0[ref.registry + " " + scope] }) {
        request.headers.replaceOrAdd(name: "Authorization", value: auth)
      }
      do {
        let response = try await http.execute(request, timeout: options.timeout)
        let body = Array(try await response.body.collect(upTo: maxBody).readableBytesView)
        let status = Int(response.status.code)
        if status == 401 && !authorized {
          try await authenticate(response.headers, scope: scope, ref: ref)
          return try await send(what, scope: scope, ref: ref, maxBody: maxBody, authorized: true, make)
        }
        if status == 401 || status == 403 {
          let who = options.credentials.map { "as \($0.username)" } ?? "without credentials"
          throw ImageError(
            "\(ref.registry) refused \(what) \(who) (\(status)\(Self.reason(body))): check the user and password "
              + "(--username/--password-file or the docker config)")
        }
        if status >= 500 {
          lastProblem = "\(ref.registry) answered \(status)\(Self.reason(body))"
        } else {
          return Response(status: status, headers: response.headers, body: body)
        }
      } catch let e as ImageError {
        throw e
      } catch {
        // Cancelled (a build stopped, or past its deadline): no retry, and say so.
        if error is CancellationError || Task.isCancelled { throw ImageError("\(what): cancelled") }
        // A certificate or protocol mismatch does not pass with retrying: say what to set.
        if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError {
          throw ImageError(
            "\(ref.registry): the TLS handshake failed (\(error)): if a CA of your own signed its certificate, "
              + "pass that CA (--ca-file, or imageUpload.caFile); if it speaks plain HTTP, say so (--plain-http, or "
              + "imageUpload.plainHTTP)")
        }
        lastProblem = "cannot reach \(ref.registry): \(error)"
      }
      if attempt < options.attempts {
        try? await Task.sleep(for: .milliseconds(500 << (attempt - 1)))
      }
    }
    throw ImageError("\(what): \(lastProblem) (tried \(options.attempts) times)")
  }

  static func reason(_ body: [UInt8]) -> String {
    guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
      let errors = json["errors"] as? [[String: Any]], let first = errors.first
    else { return "" }
    return ": " + [first["code"] as? String, first["message"] as? String].compactMap { $0 }.joined(separator: " ")
  }

  /// `WWW-Authenticate: Basic …` → basic auth; `Bearer realm=…,service=…` → a token from the
  /// realm (with the credentials, if any).
  func authenticate(_ headers: HTTPHeaders, scope: String, ref: ImageReference) async throws(ImageError) {
    guard let challenge = headers.first(name: "WWW-Authenticate") else {
      throw ImageError("\(ref.registry) answered 401 without a challenge")
    }
    let key = ref.registry + " " + scope
    if challenge.lowercased().hasPrefix("basic") {
      guard let credentials = options.credentials else {
        throw ImageError("\(ref.registry) needs a user and password: pass --username and --password-file")
      }
      tokens.withLock { $0[key] = credentials.basic }
      return
    }
    guard challenge.lowercased().hasPrefix("bearer") else {
      throw ImageError(
        "\(ref.registry) asks for \(challenge.split(separator: " ").first ?? ""), which is not supported")
    }
    let params = Self.challengeParameters(String(challenge.dropFirst(6)))
    guard let realm = params["realm"], var url = URLComponents(string: realm) else {
      throw ImageError("\(ref.registry)'s bearer challenge names no token service (realm)")
    }
    var query = url.queryItems ?? []
    if let service = params["service"] { query.append(URLQueryItem(name: "service", value: service)) }
    query.append(URLQueryItem(name: "scope", value: scope))
    url.queryItems = query
    var request = HTTPClientRequest(url: url.string ?? realm)
    if let credentials = options.credentials {
      request.headers.add(name: "Authorization", value: credentials.basic)
    }
    let body: [UInt8]
    let status: Int
    do {
      let response = try await http.execute(request, timeout: options.timeout)
      status = Int(response.status.code)
      body = Array(try await response.body.collect(upTo: 1 << 20).readableBytesView)
    } catch {
      throw ImageError("cannot reach the token service \(realm): \(error)")
    }
    guard status == 200 else {
      throw ImageError(
        "the token service \(realm) refused \(options.credentials.map { $0.username } ?? "an anonymous user") (\(status)): "
          + "check the user and password")
    }
    guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
      let token = (json["token"] as? String) ?? (json["access_token"] as? String)
    else { throw ImageError("the token service \(realm) answered no token") }
    tokens.withLock { $0[key] = "Bearer " + token }
  }

  /// `realm="…",service="…",scope="…"`.
  static func challengeParameters(_ text: String) -> [String: String] {
    var out: [String: String] = [:]
    var rest = Substring(text.trimmingCharacters(in: .whitespaces))
    while let eq = rest.firstIndex(of: "=") {
      let key = rest[..<eq].trimmingCharacters(in: CharacterSet(charactersIn: " ,")).lowercased()
      rest = rest[rest.index(after: eq)...]
      var value = ""
      if rest.first == "\"" {
        rest = rest.dropFirst()
        let end = rest.firstIndex(of: "\"") ?? rest.endIndex
        value = String(rest[..<end])
        rest = end < rest.endIndex ? rest[rest.index(after: end)...] : ""
      } else {
        let end = rest.firstIndex(of: ",") ?? rest.endIndex
        value = String(rest[..<end])
        rest = rest[end...]
      }
      out[key] = value
      rest = rest.drop { $0 == "," || $0 == " " }
    }
    return out
  }

  func url(_ ref: ImageReference, _ path: String) -> String { base(ref) + "/v2/\(ref.repository)/" + path }

  /// An upload Location made absolute, with one more query parameter.
  func location(_ value: String, ref: ImageReference, adding query: String? = nil) -> String {
    var absolute = value.hasPrefix("http://") || value.hasPrefix("https://") ? value : base(ref) + value
    if let query { absolute += (absolute.contains("?") ? "&" : "?") + query }
    return absolute
  }
}

extension RegistryClient {
  // MARK: Push

  /// Pushes the image `tag` of `layout` to `ref`: blobs the registry lacks, then the manifest.
  /// `mountFrom` names a repository of the same registry that may hold the base's layers.
  public func push(
    _ layout: ImageLayout, tag: String?, to ref: ImageReference, mountFrom: String? = nil,
    progress: @Sendable (Event) -> Void = { _ in }
  ) async throws(ImageError) -> Digest {
    let (descriptor, manifest) = try layout.manifest(tag: tag)
    let scope = "repository:\(ref.repository):pull,push"
    for blob in manifest.layers + [manifest.config] {
      let digest = try blob.parsedDigest
      guard layout.blobs.has(digest) else {
        throw ImageError("the layout lacks \(digest) (of \(tag ?? "its image")): build the image again")
      }
      if try await hasBlob(digest, in: ref, scope: scope) {
        progress(.exists(digest, blob.size))
        continue
      }
      if let from = mountFrom, try await mount(digest, from: from, to: ref, scope: scope) {
        progress(.mounted(digest, blob.size))
        continue
      }
      try await upload(
        layout.blobs.path(digest), digest: digest, size: blob.size, to: ref, scope: scope, progress: progress)
      progress(.uploaded(digest, blob.size))
    }
    let body = try layout.blobs.read(try descriptor.parsedDigest)
    let target = ref.tag ?? descriptor.digest
    let response = try await send("PUT manifest \(ref)", scope: scope, ref: ref) { () throws(ImageError) in
      var r = HTTPClientRequest(url: self.url(ref, "manifests/\(target)"))
      r.method = .PUT
      r.headers.add(name: "Content-Type", value: descriptor.mediaType)
      r.body = .bytes(ByteBuffer(bytes: body))
      return r
    }
    guard response.status == 201 || response.status == 200 else {
      throw ImageError(
        "\(ref.registry) refused the manifest of \(ref) (\(response.status)\(Self.reason(response.body)))")
    }
    let digest = try descriptor.parsedDigest
    progress(.manifest(digest))
    return digest
  }

  func hasBlob(_ digest: Digest, in ref: ImageReference, scope: String) async throws(ImageError) -> Bool {
    let response = try await send("HEAD blob \(digest)", scope: scope, ref: ref) { () throws(ImageError) in
      var r = HTTPClientRequest(url: self.url(ref, "blobs/\(digest)"))
      r.method = .HEAD
      return r
    }
    return response.status == 200
  }

  func mount(_ digest: Digest, from: String, to ref: ImageReference, scope: String) async throws(ImageError) -> Bool {
    let mountScope = scope + " repository:\(from):pull"
    let response = try await send("mount \(digest) from \(from)", scope: mountScope, ref: ref) {
      () throws(ImageError) in
      var r = HTTPClientRequest(url: self.url(ref, "blobs/uploads/?mount=\(digest)&from=\(from)"))
      r.method = .POST
      r.headers.add(name: "Content-Length", value: "0")
      return r
    }
    return response.status == 201
  }

  /// Uploads a blob: one PUT when small; else PATCH chunks, asking the registry how much it has
  /// after a failure and going on from there (a new session when the old one is gone).
  func upload(
    _ path: String, digest: Digest, size: Int64, to ref: ImageReference, scope: String,
    progress: @Sendable (Event) -> Void
  ) async throws(ImageError) {
    var location = try await startUpload(ref: ref, scope: scope, digest: digest)
    if size <= Int64(options.chunkSize) {
      let bytes = try Self.readRange(path, from: 0, count: Int(size))
      let session = location
      let response = try await send("upload \(digest)", scope: scope, ref: ref) { () throws(ImageError) in
        var r = HTTPClientRequest(url: self.location(session, ref: ref, adding: "digest=\(digest)"))
        r.method = .PUT
        r.headers.add(name: "Content-Type", value: "application/octet-stream")
        r.body = .bytes(ByteBuffer(bytes: bytes))
        return r
      }
      guard response.status == 201 else {
        throw ImageError("\(ref.registry) refused blob \(digest) (\(response.status)\(Self.reason(response.body)))")
      }
      return
    }
    var offset: Int64 = 0
    var failures = 0
    while offset < size {
      let count = Int(min(Int64(options.chunkSize), size - offset))
      let chunk = try Self.readRange(path, from: offset, count: count)
      do throws(ImageError) {
        let start = offset
        let current = location
        let response = try await RegistryClient.sendOnce(self, "upload \(digest)", scope: scope, ref: ref) {
          () throws(ImageError) in
          var r = HTTPClientRequest(url: self.location(current, ref: ref))
          r.method = .PATCH
          r.headers.add(name: "Content-Type", value: "application/octet-stream")
          r.headers.add(name: "Content-Range", value: "\(start)-\(start + Int64(count) - 1)")
          r.body = .bytes(ByteBuffer(bytes: chunk))
          return r
        }
        guard response.status == 202, let next = response.headers.first(name: "Location") else {
          throw ImageError(
            "\(ref.registry) refused a chunk of \(digest) (\(response.status)\(Self.reason(response.body)))")
        }
        location = next
        offset += Int64(count)
        progress(.uploading(digest, sent: offset, of: size))
      } catch {
        failures += 1
        guard failures < options.attempts else {
          throw ImageError("cannot push blob \(digest) to \(ref.registry): \(error.message) (tried \(failures) times)")
        }
        try? await Task.sleep(for: .milliseconds(500 << (failures - 1)))
        // Where the registry stands: go on from its last byte, or start a new session.
        if let (resumed, at) = try? await uploadStatus(location, ref: ref, scope: scope) {
          location = resumed
          offset = at
        } else {
          location = try await startUpload(ref: ref, scope: scope, digest: digest)
          offset = 0
        }
      }
    }
    let session = location
    let finish = try await send("finish \(digest)", scope: scope, ref: ref) { () throws(ImageError) in
      var r = HTTPClientRequest(url: self.location(session, ref: ref, adding: "digest=\(digest)"))
      r.method = .PUT
      r.headers.add(name: "Content-Length", value: "0")
      return r
    }
    guard finish.status == 201 else {
      throw ImageError("\(ref.registry) did not accept blob \(digest) (\(finish.status)\(Self.reason(finish.body)))")
    }
  }

  /// One try, no retries: a chunk that fails is resumed from the registry's state instead.
  static func sendOnce(
    _ client: RegistryClient, _ what: String, scope: String, ref: ImageReference,
    _ make: @Sendable () throws(ImageError) -> HTTPClientRequest
  ) async throws(ImageError) -> Response {
    var request = try make()
    request.headers.replaceOrAdd(name: "User-Agent", value: "tarsk8s")
    if let auth = client.tokens.withLock({ $0[ref.registry + " " + scope] }) {
      request.headers.replaceOrAdd(name: "Authorization", value: auth)
    }
    do {
      let response = try await client.http.execute(request, timeout: client.options.timeout)
      let body = Array(try await response.body.collect(upTo: 1 << 20).readableBytesView)
      return Response(status: Int(response.status.code), headers: response.headers, body: body)
    } catch {
      throw ImageError("\(what): \(error)")
    }
  }

  func startUpload(ref: ImageReference, scope: String, digest: Digest) async throws(ImageError) -> String {
    let response = try await send("start upload of \(digest)", scope: scope, ref: ref) { () throws(ImageError) in
      var r = HTTPClientRequest(url: self.url(ref, "blobs/uploads/"))
      r.method = .POST
      r.headers.add(name: "Content-Length", value: "0")
      return r
    }
    guard response.status == 202, let location = response.headers.first(name: "Location") else {
      throw ImageError("\(ref.registry) did not start an upload (\(response.status)\(Self.reason(response.body)))")
    }
    return location
  }

  /// The upload session's Location and how many bytes the registry holds (`Range: 0-N`).
  func uploadStatus(_ location: String, ref: ImageReference, scope: String) async throws(ImageError) -> (String, Int64)
  {
    let response = try await send("upload status", scope: scope, ref: ref) { () throws(ImageError) in
      HTTPClientRequest(url: self.location(location, ref: ref))
    }
    guard response.status == 204 else { throw ImageError("the upload session is gone (\(response.status))") }
    let range = response.headers.first(name: "Range") ?? "0--1"
    let end = Int64(range.split(separator: "-").last ?? "-1") ?? -1
    return (response.headers.first(name: "Location") ?? location, end + 1)
  }

  static func readRange(_ path: String, from offset: Int64, count: Int) throws(ImageError) -> [UInt8] {
    let file = try InputFile(path)
    guard lseek(file.fd, off_t(offset), SEEK_SET) == off_t(offset) else { throw ImageError("cannot seek in \(path)") }
    var out: [UInt8] = []
    out.reserveCapacity(count)
    while out.count < count {
      let chunk: [UInt8]
      do { chunk = try file.read(max: min(1 << 20, count - out.count)) } catch {
        throw ImageError("cannot read \(path): \(error)")
      }
      guard !chunk.isEmpty else { throw ImageError("\(path) is shorter than its descriptor says") }
      out += chunk
    }
    return out
  }
}
