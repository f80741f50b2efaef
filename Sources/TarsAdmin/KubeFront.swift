import Hummingbird
import NIOCore
import TarsKube
import TarsProtocol

/// The Kubernetes REST API over any `ObjectStore`: the paths, verbs, query parameters, list and
/// watch documents and Status errors of the API server, for the resources in `KubeResource.all`.
/// One-machine mode serves its embedded store through it, so clients that speak only HTTP — the
/// agent (libcurl), `kubectl` — work against it as against a cluster; the agent's tests run it
/// end to end. Every request needs the bearer token; it listens where it is told (loopback).
public final class KubeFront: Sendable {
  let http: HTTPService
  public var port: Int { http.port }

  init(http: HTTPService) { self.http = http }

  /// Binds `host:port` (0: any free port) and serves `store` until `stop()`.
  public static func start(
    store: any ObjectStore, host: String, port: Int, token: String, log: @escaping @Sendable (String) -> Void
  ) async throws -> KubeFront {
    let router = Router()
    router.add(middleware: KubeFrontMiddleware(store: store, tokens: AdminTokens(admin: token)))
    return KubeFront(
      http: try await HTTPService.start(router: router, host: host, port: port, name: "Kubernetes API", log: log))
  }

  public func stop() async { await http.stop() }
}

/// Where a request goes: the resource, its namespace, the object's name and a subresource.
struct KubeTarget: Equatable {
  var resource: KubeResource
  var namespace: String?
  var name: String?
  var subresource: String?

  /// Parses `/api/v1/…` and `/apis/GROUP/VERSION/…`; nil for any other path.
  init?(path: String) {
    var parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    let group: String
    let version: String
    if parts.first == "api", parts.count >= 3 {
      (group, version) = ("", parts[1])
      parts.removeFirst(2)
    } else if parts.first == "apis", parts.count >= 4 {
      (group, version) = (parts[1], parts[2])
      parts.removeFirst(3)
    } else {
      return nil
    }
    // `namespaces/NS/PLURAL…` is inside a namespace; `namespaces[/NS]` alone is the Namespace itself.
    if parts.first == "namespaces", parts.count >= 3 {
      namespace = parts[1]
      parts.removeFirst(2)
    }
    guard let plural = parts.first, parts.count <= 3,
      let r = KubeResource.all.first(where: { $0.group == group && $0.version == version && $0.plural == plural })
    else { return nil }
    resource = r
    name = parts.count > 1 ? parts[1] : nil
    subresource = parts.count > 2 ? parts[2] : nil
    if !r.namespaced && namespace != nil { return nil }
  }
}

struct KubeFrontMiddleware: RouterMiddleware {
  typealias Context = BasicRequestContext
  let store: any ObjectStore
  let tokens: AdminTokens

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
    async throws -> Response
  {
    let header = request.headers[.authorization] ?? ""
    let given = header.hasPrefix("Bearer ") ? Array(header.dropFirst(7).utf8) : []
    guard !given.isEmpty, tokens.match(given) != nil else {
      return Self.status(StoreError(code: 401, reason: .unauthorized, message: "Unauthorized"))
    }
    guard let target = KubeTarget(path: request.uri.path) else {
      return Self.status(
        StoreError(code: 404, reason: .notFound, message: "the server could not find the requested resource"))
    }
    do throws(StoreError) {
      return try await serve(request, target, body: try await body(request))
    } catch {
      return Self.status(error)
    }
  }

  func body(_ request: Request) async throws(StoreError) -> JSONValue? {
    guard request.method == .post || request.method == .put || request.method == .patch else { return nil }
    let bytes: ByteBuffer
    do {
      bytes = try await request.body.collect(upTo: 8 << 20)
    } catch {
      throw StoreError(code: 413, reason: .badRequest, message: "the request body is over 8 MiB")
    }
    do {
      return try JSONValue(parsing: String(buffer: bytes))
    } catch {
      throw .badRequest("the body is not JSON: \(error)")
    }
  }

  func serve(_ request: Request, _ t: KubeTarget, body: JSONValue?) async throws(StoreError) -> Response {
    let q = request.uri.queryParameters
    let r = t.resource
    func string(_ key: String) -> String? { q[key[...]].map(String.init).flatMap { $0.isEmpty ? nil : $0 } }
    switch (request.method, t.name, t.subresource) {
    case (.get, nil, nil):
      let labels = try string("labelSelector").map { v throws(StoreError) in try LabelSelector(parsing: v) }
      if string("watch") == "true" || string("watch") == "1" {
        let options = WatchOptions(
          labelSelector: labels, fieldSelector: string("fieldSelector"), resourceVersion: string("resourceVersion"),
          allowBookmarks: string("allowWatchBookmarks") == "true",
          timeoutSeconds: string("timeoutSeconds").flatMap { Int($0) })
        return watch(r, t.namespace, options)
      }
      let list = try await store.list(
        r, namespace: t.namespace,
        options: ListOptions(
          labelSelector: labels, fieldSelector: string("fieldSelector"), limit: string("limit").flatMap { Int($0) },
          continueToken: string("continue"), resourceVersion: string("resourceVersion"),
          resourceVersionMatch: string("resourceVersionMatch")))
      var metadata: [(String, JSONValue)] = [("resourceVersion", .string(list.resourceVersion))]
      if let c = list.continueToken { metadata.append(("continue", .string(c))) }
      if let n = list.remainingItemCount { metadata.append(("remainingItemCount", .integer(n))) }
      return Self.json(
        .object([
          ("kind", .string(r.kind + "List")), ("apiVersion", .string(r.apiVersion)), ("metadata", .object(metadata)),
          ("items", .array(list.items.map(\.json))),
        ]))
    case (.get, let name?, nil):
      return Self.json(try await store.get(r, namespace: t.namespace, name: name).json)
    case (.get, let name?, "log") where r == .pods:
      let text = try await store.podLog(
        namespace: t.namespace ?? "", name: name, container: string("container"),
        tailLines: string("tailLines").flatMap { Int($0) } ?? 1 << 20)
      return Response(
        status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    case (.post, nil, nil):
      return Self.json(try await store.create(r, object(body, t)).json, status: .created)
    case (.put, let name?, let sub) where sub == nil || sub == "status":
      let o = try object(body, t)
      guard o.name == name else { throw .badRequest("the name in the body (\(o.name)) is not the URL's (\(name))") }
      return Self.json(try await store.update(r, o, status: sub == "status").json)
    case (.patch, let name?, let sub) where sub == nil || sub == "status":
      guard let body else { throw .badRequest("a patch needs a body") }
      let patch: Patch
      switch request.headers[.contentType]?.split(separator: ";").first.map(String.init) {
      case "application/merge-patch+json": patch = .merge(body)
      case "application/strategic-merge-patch+json": patch = .strategicMerge(body)
      case "application/json-patch+json": patch = .json(body)
      default: throw .unsupportedMediaType("the patch's Content-Type must be a merge, strategic merge or JSON patch")
      }
      return Self.json(
        try await store.patch(r, namespace: t.namespace, name: name, patch, status: sub == "status").json)
    case (.delete, let name?, nil):
      // The Status the API server answers for an object deleted at once (no read: a client
      // granted only `delete` may do this).
      try await store.delete(r, namespace: t.namespace, name: name)
      return Self.json(
        .object([
          ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object([])),
          ("status", .string("Success")), ("details", StoreError.details(r, name)),
        ]))
    default:
      return Self.status(
        StoreError(code: 405, reason: .methodNotAllowed, message: "\(request.method) is not supported on this path"))
    }
  }

  /// The body as an object of the URL's resource, in the URL's namespace.
  func object(_ body: JSONValue?, _ t: KubeTarget) throws(StoreError) -> KubeObject {
    guard let body, case .object = body else { throw .badRequest("the body must be a JSON object") }
    var o = KubeObject(body)
    if let ns = t.namespace {
      if let given = o.namespace, given != ns {
        throw .badRequest("the namespace of the provided object (\(given)) does not match the URL's (\(ns))")
      }
      o.json = o.json.setting(path: ["metadata", "namespace"], .string(ns))
    }
    return o
  }

  /// A chunked stream of `{"type":…,"object":…}` lines, as the API server writes a watch.
  func watch(_ r: KubeResource, _ namespace: String?, _ options: WatchOptions) -> Response {
    let events = store.watch(r, namespace: namespace, options: options)
    let body = ResponseBody { writer in
      for await event in events {
        let object: JSONValue
        switch event {
        case .added(let o), .modified(let o), .deleted(let o): object = o.json
        case .bookmark(let rv):
          object = .object([
            ("kind", .string(r.kind)), ("apiVersion", .string(r.apiVersion)),
            ("metadata", .object([("resourceVersion", .string(rv))])),
          ])
        case .error(let e): object = e.status
        }
        let line = JSONValue.object([("type", .string(event.typeName)), ("object", object)]).text + "\n"
        try await writer.write(ByteBuffer(string: line))
      }
      try await writer.finish(nil)
    }
    return Response(status: .ok, headers: [.contentType: "application/json"], body: body)
  }

  static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    Response(
      status: status, headers: [.contentType: "application/json"],
      body: ResponseBody(byteBuffer: ByteBuffer(string: value.text)))
  }

  static func status(_ e: StoreError) -> Response {
    json(e.status, status: HTTPResponse.Status(code: e.code))
  }
}
