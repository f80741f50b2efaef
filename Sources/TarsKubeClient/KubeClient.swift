import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TarsKube
import TarsProtocol

/// The real Kubernetes API as an `ObjectStore`, on AsyncHTTPClient: JSON over HTTP/1.1 or 2,
/// watches as newline-delimited JSON read as it arrives (events split across chunks are put
/// back together), every `Status` error turned into a `StoreError`.
public final class KubeClient: ObjectStore {
  public let config: KubeConfig
  let http: HTTPClient
  /// Requests other than watches give up after this long.
  public let requestTimeout: TimeAmount
  public let userAgent = "tars-controlplane/1.0"

  public init(config: KubeConfig, requestTimeout: TimeAmount = .seconds(30)) throws(StoreError) {
    self.config = config
    self.requestTimeout = requestTimeout
    var tls = TLSConfiguration.makeClientConfiguration()
    do {
      if let ca = config.caPEM { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca)) }
      if let cert = config.clientCertificatePEM, let key = config.clientKeyPEM {
        tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(cert).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
      }
    } catch {
      throw .internalError("the cluster's TLS material does not load: \(error)")
    }
    if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
    var c = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow)
    c.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(10), read: nil)
    http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: c)
  }

  /// Closes the connections; call before dropping the client.
  public func shutdown() async {
    try? await http.shutdown()
  }

  // MARK: URLs

  /// The path of a collection, an object or its status, with a query.
  public static func path(
    _ r: KubeResource, namespace: String?, name: String? = nil, status: Bool = false, query: [(String, String)] = []
  ) -> String {
    var p = r.path(namespace: namespace)
    if let name { p += "/" + escape(name) }
    if status { p += "/status" }
    if !query.isEmpty { p += "?" + query.map { "\($0.0)=\(escape($0.1))" }.joined(separator: "&") }
    return p
  }

  static func escape(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~/,")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
  }

  func token() -> String? {
    if let file = config.tokenFile, let t = try? String(contentsOfFile: file, encoding: .utf8) {
      return t.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    return config.token
  }

  func request(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil, contentType: String = "application/json")
    -> HTTPClientRequest
  {
    var r = HTTPClientRequest(url: config.server + path)
    r.method = method
    r.headers.add(name: "Accept", value: "application/json")
    r.headers.add(name: "User-Agent", value: userAgent)
    if let token = token() { r.headers.add(name: "Authorization", value: "Bearer \(token)") }
    if let body {
      r.headers.add(name: "Content-Type", value: contentType)
      r.body = .bytes(ByteBuffer(string: body.text))
    }
    return r
  }

  /// Sends a request and returns its JSON body; a non-2xx answer becomes the `StoreError` its
  /// `Status` says.
  func send(_ request: HTTPClientRequest) async throws(StoreError) -> JSONValue {
    let bytes = try await sendForBytes(request)
    guard let json = try? JSONValue(bytes: Array(bytes.readableBytesView)) else {
      throw .internalError("\(request.method) \(request.url): the answer is not JSON")
    }
    return json
  }

  /// Sends a request and returns its body as it came (a log is text); a non-2xx answer becomes
  /// the `StoreError` its `Status` says.
  func sendForBytes(_ request: HTTPClientRequest) async throws(StoreError) -> ByteBuffer {
    let response: HTTPClientResponse
    let bytes: ByteBuffer
    do {
      // The deadline covers the body too (AsyncHTTPClient's covers the head only).
      (response, bytes) = try await withThrowingTaskGroup(of: (HTTPClientResponse, ByteBuffer).self) { group in
        let (http, timeout) = (self.http, requestTimeout)
        group.addTask {
          let response = try await http.execute(request, timeout: timeout)
          return (response, try await response.body.collect(upTo: 256 << 20))
        }
        group.addTask {
          try await Task.sleep(nanoseconds: UInt64(timeout.nanoseconds))
          throw StoreError(
            code: 504, reason: .timeout, message: "no complete answer within \(timeout.nanoseconds / 1_000_000_000) s")
        }
        defer { group.cancelAll() }
        return try await group.next()!
      }
    } catch let e as StoreError {
      throw e
    } catch {
      throw .unreachable("\(request.method) \(request.url): \(error)")
    }
    guard (200..<300).contains(Int(response.status.code)) else {
      throw Self.error(status: try? JSONValue(bytes: Array(bytes.readableBytesView)), response: response, body: bytes)
    }
    return bytes
  }

  static func error(status json: JSONValue?, response: HTTPClientResponse, body: ByteBuffer) -> StoreError {
    let retry = response.headers.first(name: "Retry-After").flatMap { Int($0) }
    if json?["kind"]?.stringValue == "Status" || json?["code"] != nil {
      return StoreError(status: json, httpCode: Int(response.status.code), retryAfter: retry)
    }
    var e = StoreError(status: nil, httpCode: Int(response.status.code), retryAfter: retry)
    let text = String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines)
    e.message = text.isEmpty ? "HTTP \(response.status.code)" : String(text.prefix(500))
    return e
  }

  // MARK: ObjectStore

  public func get(_ r: KubeResource, namespace: String?, name: String) async throws(StoreError) -> KubeObject {
    KubeObject(try await send(request(.GET, Self.path(r, namespace: namespace, name: name))))
  }

  public func list(_ r: KubeResource, namespace: String?, options: ListOptions) async throws(StoreError) -> ObjectList {
    var q: [(String, String)] = []
    if let s = options.labelSelector, !s.isEmpty { q.append(("labelSelector", s.description)) }
    if let f = options.fieldSelector { q.append(("fieldSelector", f)) }
    if let l = options.limit { q.append(("limit", String(l))) }
    if let c = options.continueToken { q.append(("continue", c)) }
    if let v = options.resourceVersion { q.append(("resourceVersion", v)) }
    if let m = options.resourceVersionMatch { q.append(("resourceVersionMatch", m)) }
    let json = try await send(request(.GET, Self.path(r, namespace: namespace, query: q)))
    return Self.objectList(json, resource: r)
  }

  static func objectList(_ json: JSONValue, resource r: KubeResource) -> ObjectList {
    // Items of built-in lists carry no kind/apiVersion (fixture 013); give them theirs.
    let items = (json["items"]?.arrayValue ?? []).map { item -> KubeObject in
      var o = KubeObject(item)
      if item["kind"] == nil {
        o.json = o.json.setting("apiVersion", .string(r.apiVersion)).setting("kind", .string(r.kind))
      }
      return o
    }
    let continueToken = json[path: ["metadata", "continue"]]?.stringValue
    return ObjectList(
      items: items, resourceVersion: json[path: ["metadata", "resourceVersion"]]?.stringValue ?? "",
      continueToken: continueToken?.isEmpty == false ? continueToken : nil,
      remainingItemCount: json[path: ["metadata", "remainingItemCount"]]?.intValue)
  }

  public func create(_ r: KubeResource, _ o: KubeObject) async throws(StoreError) -> KubeObject {
    try await create(r, o, namespace: o.namespace)
  }

  /// Creates in the URL's `namespace` (the API server refuses a body that names another, 400).
  public func create(_ r: KubeResource, _ o: KubeObject, namespace: String?) async throws(StoreError) -> KubeObject {
    KubeObject(try await send(request(.POST, Self.path(r, namespace: namespace), body: o.json)))
  }

  public func update(_ r: KubeResource, _ o: KubeObject, status: Bool) async throws(StoreError) -> KubeObject {
    KubeObject(
      try await send(request(.PUT, Self.path(r, namespace: o.namespace, name: o.name, status: status), body: o.json)))
  }

  public func patch(_ r: KubeResource, namespace: String?, name: String, _ patch: Patch, status: Bool)
    async throws(StoreError) -> KubeObject
  {
    KubeObject(
      try await send(
        request(
          .PATCH, Self.path(r, namespace: namespace, name: name, status: status), body: patch.body,
          contentType: patch.contentType)))
  }

  /// A patch with any content type and query (`fieldManager`, `dryRun`), as given.
  public func patch(
    _ r: KubeResource, namespace: String?, name: String, body: JSONValue, contentType: String, status: Bool,
    query: [(String, String)] = []
  ) async throws(StoreError) -> JSONValue {
    try await send(
      request(
        .PATCH, Self.path(r, namespace: namespace, name: name, status: status, query: query), body: body,
        contentType: contentType))
  }

  /// Any request, bytes as given: for tools and for what the typed calls do not cover.
  public func raw(method: String, path: String, body: [UInt8]? = nil, contentType: String = "application/json")
    async throws(StoreError) -> JSONValue
  {
    var r = request(HTTPMethod(rawValue: method), path)
    if let body {
      r.headers.add(name: "Content-Type", value: contentType)
      r.body = .bytes(ByteBuffer(bytes: body))
    }
    return try await send(r)
  }

  /// Server-side apply (`application/apply-patch+yaml`; JSON is YAML): creates or updates the
  /// fields `fieldManager` owns; without `force` a field another manager owns is a 409.
  public func apply(
    _ r: KubeResource, _ o: KubeObject, fieldManager: String, force: Bool = false, status: Bool = false
  ) async throws(StoreError) -> KubeObject {
    var q = [("fieldManager", fieldManager)]
    if force { q.append(("force", "true")) }
    return KubeObject(
      try await send(
        request(
          .PATCH, Self.path(r, namespace: o.namespace, name: o.name, status: status, query: q), body: o.json,
          contentType: "application/apply-patch+yaml")))
  }

  public func podLog(namespace: String, name: String, container: String?, tailLines: Int) async throws(StoreError)
    -> String
  {
    var query = [("tailLines", String(tailLines))]
    if let container { query.append(("container", container)) }
    let path =
      Self.path(.pods, namespace: namespace, name: name, query: []) + "/log?"
      + query.map { "\($0.0)=\(Self.escape($0.1))" }.joined(separator: "&")
    var r = request(.GET, path)
    r.headers.replaceOrAdd(name: "Accept", value: "text/plain, */*")
    return String(buffer: try await sendForBytes(r))
  }

  public func delete(_ r: KubeResource, namespace: String?, name: String) async throws(StoreError) {
    let options = JSONValue.object([
      ("kind", .string("DeleteOptions")), ("apiVersion", .string("v1")), ("gracePeriodSeconds", .integer(0)),
    ])
    _ = try await delete(r, namespace: namespace, name: name, options: options)
  }

  /// A delete with `DeleteOptions` in the body and/or a grace period in the query (nil: the
  /// kind's default, graceful for pods bound to a node). The answer is the object — for pods,
  /// Terminating or gone — or a `Status` for kinds that answer with one.
  public func delete(
    _ r: KubeResource, namespace: String?, name: String, options: JSONValue? = nil, gracePeriodSeconds: Int? = nil
  ) async throws(StoreError) -> JSONValue {
    let q = gracePeriodSeconds.map { [("gracePeriodSeconds", String($0))] } ?? []
    return try await send(request(.DELETE, Self.path(r, namespace: namespace, name: name, query: q), body: options))
  }

  /// Deletes every object the selector matches; the answer lists them as they were.
  public func deleteCollection(_ r: KubeResource, namespace: String?, labelSelector: LabelSelector)
    async throws(StoreError)
    -> ObjectList
  {
    let json = try await send(
      request(.DELETE, Self.path(r, namespace: namespace, query: [("labelSelector", labelSelector.description)])))
    return Self.objectList(json, resource: r)
  }

  public func watch(_ r: KubeResource, namespace: String?, options: WatchOptions) -> AsyncStream<WatchEvent> {
    var q: [(String, String)] = [("watch", "1")]
    if let s = options.labelSelector, !s.isEmpty { q.append(("labelSelector", s.description)) }
    if let f = options.fieldSelector { q.append(("fieldSelector", f)) }
    if let v = options.resourceVersion { q.append(("resourceVersion", v)) }
    if options.allowBookmarks { q.append(("allowWatchBookmarks", "true")) }
    // Like client-go: the server ends a watch after 5–10 minutes and the informer resumes it.
    let seconds = options.timeoutSeconds ?? Int.random(in: 300...600)
    q.append(("timeoutSeconds", String(seconds)))
    let req = request(.GET, Self.path(r, namespace: namespace, query: q))
    let (stream, continuation) = AsyncStream<WatchEvent>.makeStream()
    let task = Task { [http] in
      do {
        let response = try await http.execute(req, timeout: .seconds(Int64(seconds) + 30))
        guard response.status.code == 200 else {
          let body = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
          let json = try? JSONValue(bytes: Array(body.readableBytesView))
          continuation.yield(.error(Self.error(status: json, response: response, body: body)))
          continuation.finish()
          return
        }
        var lines = WatchLineSplitter()
        for try await chunk in response.body {
          for line in lines.feed(Array(chunk.readableBytesView)) {
            do {
              continuation.yield(try WatchEvent(line: try JSONValue(bytes: line)))
            } catch let e as StoreError {
              continuation.yield(.error(e))
            } catch {
              continuation.yield(.error(.internalError("an unreadable watch event: \(error)")))
            }
          }
        }
        if let rest = lines.remainder, let json = try? JSONValue(bytes: rest), let e = try? WatchEvent(line: json) {
          continuation.yield(e)
        }
      } catch {
        if !Task.isCancelled { continuation.yield(.error(.unreachable("watch \(req.url): \(error)"))) }
      }
      continuation.finish()
    }
    // A connection that goes silent without closing (a node gone, a middlebox dropping it) must
    // not hold the watch forever: past the server's own timeout, give up and let the caller
    // resume.
    let watchdog = Task {
      try? await Task.sleep(for: .seconds(seconds + 30))
      if !Task.isCancelled {
        continuation.yield(.error(.unreachable("watch \(req.url): nothing for \(seconds + 30) s")))
        continuation.finish()
        task.cancel()
      }
    }
    continuation.onTermination = { _ in
      task.cancel()
      watchdog.cancel()
    }
    return stream
  }
}

/// Cuts a watch body into lines wherever the chunks fall.
public struct WatchLineSplitter: Sendable {
  var pending: [UInt8] = []

  public init() {}

  public mutating func feed(_ bytes: [UInt8]) -> [[UInt8]] {
    pending += bytes
    var lines: [[UInt8]] = []
    var start = 0
    for (i, b) in pending.enumerated() where b == 10 {
      if i > start { lines.append(Array(pending[start..<i])) }
      start = i + 1
    }
    pending.removeFirst(start)
    return lines
  }

  /// What is left after the last newline (a server that ended without one).
  public var remainder: [UInt8]? {
    pending.allSatisfy { $0 == 32 || $0 == 13 || $0 == 9 } ? nil : pending
  }
}
