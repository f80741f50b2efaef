import Foundation
import TarsKube
import TarsKubeClient
import TarsProtocol
import TarsTestSupport
import Testing

/// Every exchange in Tests/Fixtures/kube the client can make, replayed byte for byte by a
/// test server: the client must send the recorded request (method, path, query, content type,
/// body) and read the recorded answer — objects, lists and pages, watch streams with bookmarks
/// and the 410 ERROR event, every Status error.
enum KubeFixtures {
  static var directory: URL { Fixtures.url("kube") }

  /// Exchanges the client has no call for, and why.
  static let notMade: [String: String] = [
    "001_get_version": "discovery is not used", "002_get_api": "discovery is not used",
    "003_get_apis": "discovery is not used", "004_get_api_curl_ua_pretty": "discovery is not used",
    "082_get_discovery_k8s_tars_io_v1beta3": "discovery is not used",
    "116_get_apis_aggregated_discovery": "discovery is not used",
    "110_list_pods_as_table": "the client asks for JSON only", "111_get_pod_yaml": "the client asks for JSON only",
    "113_list_pods_partial_metadata": "the client asks for JSON only",
    "115_get_pod_protobuf": "the client asks for JSON only", "117_create_pod_yaml_body": "the client sends JSON",
    "140_watch_pods_http2": "HTTP/2 framing; the same NDJSON body is replayed over HTTP/1.1 in 020",
  ]

  static var all: [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
      .filter { $0.first?.isNumber == true }.sorted()
  }
  static var replayed: [String] { all.filter { notMade[$0] == nil } }
}

struct Target {
  var resource: KubeResource
  var namespace: String?
  var name: String?
  var status: Bool

  init(path: String) throws {
    var c = path.split(separator: "/").map(String.init)
    let group: String
    let version: String
    if c.first == "api" {
      (group, version) = ("", c[1])
      c.removeFirst(2)
    } else {
      (group, version) = (c[1], c[2])
      c.removeFirst(3)
    }
    if c.first == "namespaces" && c.count >= 3 {
      namespace = c[1]
      c.removeFirst(2)
    }
    let plural = c[0]
    guard let r = KubeResource.all.first(where: { $0.group == group && $0.version == version && $0.plural == plural })
    else { throw TarsServantError("no resource for \(path)") }
    resource = r
    name = c.count > 1 ? c[1] : nil
    status = c.count > 2 && c[2] == "status"
  }
}

@Suite("Kubernetes client against the recorded exchanges")
struct FixtureReplayTests {
  @Test func everyFixtureIsReplayedOrSaysWhyNot() {
    #expect(KubeFixtures.all.count == 103, "the fixtures in \(KubeFixtures.directory.path)")
    #expect(KubeFixtures.replayed.count == 103 - KubeFixtures.notMade.count)
  }

  @Test(arguments: KubeFixtures.replayed)
  func replays(_ folder: String) async throws {
    let e = try Exchange(folder: folder, in: KubeFixtures.directory)
    let server = try await ReplayServer()
    let client = try KubeClient(config: KubeConfig(server: "http://127.0.0.1:\(server.port)", token: "test-token"))
    defer {
      Task {
        await client.shutdown()
        await server.close()
      }
    }
    server.expect(e)
    let t = try Target(path: e.path)
    // A selector that does not parse is refused before it is sent (071), with the 400 the
    // server would give.
    let label: LabelSelector?
    do throws(StoreError) {
      label = try e.queryValue("labelSelector").map { (s: String) throws(StoreError) in try LabelSelector(parsing: s) }
    } catch {
      #expect(error.code == 400 && e.status == 400 && error.reason == .badRequest, "\(folder)")
      return
    }
    let body = e.requestJSON ?? .null
    var outcome: Result<JSONValue, StoreError>
    var events: [WatchEvent] = []
    do throws(StoreError) {
      switch e.method {
      case _ where ["072_post_malformed_json_400", "118_get_pod_pretty_param"].contains(folder):
        // Bytes no typed call sends: a truncated body, ?pretty=true.
        outcome = .success(
          try await client.raw(
            method: e.method, path: e.target, body: e.requestBody.isEmpty ? nil : e.requestBody,
            contentType: e.contentType ?? "application/json"))
      case "GET" where e.isWatch:
        let options = WatchOptions(
          labelSelector: label, fieldSelector: e.queryValue("fieldSelector"),
          resourceVersion: e.queryValue("resourceVersion"), allowBookmarks: e.queryValue("allowWatchBookmarks") != nil,
          timeoutSeconds: e.queryValue("timeoutSeconds").flatMap { Int($0) })
        for await event in client.watch(t.resource, namespace: t.namespace, options: options) { events.append(event) }
        outcome = .success(.null)
      case "GET" where t.name != nil:
        outcome = .success(try await client.get(t.resource, namespace: t.namespace, name: t.name!).json)
      case "GET":
        let list = try await client.list(
          t.resource, namespace: t.namespace,
          options: ListOptions(
            labelSelector: label, fieldSelector: e.queryValue("fieldSelector"),
            limit: e.queryValue("limit").flatMap { Int($0) }, continueToken: e.queryValue("continue"),
            resourceVersion: e.queryValue("resourceVersion"), resourceVersionMatch: e.queryValue("resourceVersionMatch")
          ))
        outcome = .success(Self.describe(list))
      case "POST":
        var object = KubeObject(body)
        if object.namespace == nil, t.namespace != nil { object.namespace = t.namespace }
        // The URL's namespace wins (070 sends a body namespace that differs from the URL's).
        let sent = try await Self.post(client, t, object)
        outcome = .success(sent.json)
      case "PUT":
        outcome = .success(try await client.update(t.resource, KubeObject(body), status: t.status).json)
      case "PATCH" where e.contentType == "application/apply-patch+yaml":
        let object = KubeObject(t.resource, namespace: t.namespace, name: t.name!)
        outcome = .success(
          try await client.apply(
            t.resource, object, fieldManager: e.queryValue("fieldManager") ?? "",
            force: e.queryValue("force") == "true",
            status: t.status
          ).json)
      case "PATCH":
        let patch: Patch =
          switch e.contentType {
          case "application/merge-patch+json": .merge(body)
          case "application/json-patch+json": .json(body)
          case "application/strategic-merge-patch+json": .strategicMerge(body)
          default: .merge(body)
          }
        if e.contentType == "application/json" || !e.query.isEmpty {
          outcome = .success(
            try await client.patch(
              t.resource, namespace: t.namespace, name: t.name!, body: body, contentType: e.contentType ?? "",
              status: t.status, query: e.query))
        } else {
          outcome = .success(
            try await client.patch(t.resource, namespace: t.namespace, name: t.name!, patch, status: t.status).json)
        }
      case "DELETE" where t.name == nil:
        let list = try await client.deleteCollection(
          t.resource, namespace: t.namespace, labelSelector: label ?? LabelSelector())
        outcome = .success(Self.describe(list))
      case "DELETE":
        outcome = .success(
          try await client.delete(
            t.resource, namespace: t.namespace, name: t.name!, options: e.requestJSON,
            gracePeriodSeconds: e.queryValue("gracePeriodSeconds").flatMap { Int($0) }))
      default:
        Issue.record("\(folder): no call for \(e.method)")
        return
      }
    } catch {
      outcome = .failure(error)
    }
    #expect(server.mismatches.isEmpty, "\(folder): \(server.mismatches)")
    #expect(server.served == 1, "\(folder): \(server.served) requests")

    if e.isWatch {
      let recorded = try e.responseBody.split(separator: 10).map {
        try WatchEvent(line: try JSONValue(bytes: Array($0)))
      }
      #expect(events == recorded, "\(folder): \(events.map(\.typeName)) vs \(recorded.map(\.typeName))")
      return
    }
    if (200..<300).contains(e.status) {
      let got = try outcome.get()
      let want = e.responseJSON!
      if e.method == "GET" && t.name == nil || e.method == "DELETE" && t.name == nil {
        #expect(got == Self.describe(KubeClientListShape.list(want)), "\(folder)")
      } else {
        #expect(got == want, "\(folder)")
      }
    } else {
      guard case .failure(let error) = outcome else {
        Issue.record("\(folder): expected HTTP \(e.status), got success")
        return
      }
      #expect(
        error == StoreError(status: e.responseJSON, httpCode: e.status, retryAfter: e.retryAfter), "\(folder): \(error)"
      )
      #expect(error.code == e.status, "\(folder)")
    }
  }

  /// A list as comparable JSON: names, version, continue, remaining.
  static func describe(_ list: ObjectList) -> JSONValue {
    .object([
      ("names", .array(list.items.map { .string($0.name) })), ("resourceVersion", .string(list.resourceVersion)),
      ("continue", list.continueToken.map { .string($0) } ?? .null),
      ("remaining", list.remainingItemCount.map { .integer($0) } ?? .null),
    ])
  }

  static func post(_ client: KubeClient, _ t: Target, _ object: KubeObject) async throws(StoreError) -> KubeObject {
    try await client.create(t.resource, object, namespace: t.namespace)
  }

  @Test func specificAnswersAreReadAsDocumented() async throws {
    func error(_ folder: String) throws -> StoreError {
      let e = try Exchange(folder: folder, in: KubeFixtures.directory)
      return StoreError(status: e.responseJSON, httpCode: e.status, retryAfter: e.retryAfter)
    }
    let tooLarge = try error("035_list_pods_rv_too_large_504")
    #expect(
      tooLarge.code == 504 && tooLarge.reason == .timeout && tooLarge.retryAfterSeconds == 1 && tooLarge.isTransient)
    let expiredContinue = try error("037_list_pods_continue_expired_410")
    #expect(expiredContinue.code == 410 && expiredContinue.reason == .expired && expiredContinue.continueToken != nil)
    #expect(try error("065_bad_token_401").reason == .unauthorized)
    #expect(try error("064_no_token_anonymous_403").reason == .forbidden)
    #expect(try error("061_put_pod_stale_rv_409").reason == .conflict)
    #expect(try error("063_post_pod_already_exists_409").reason == .alreadyExists)
    #expect(try error("062_post_invalid_pod_422").reason == .invalid)
    #expect(try error("092_patch_tserver_status_smp_415").code == 415)
    #expect(try error("112_get_pod_accept_unsupported_406").reason == .notAcceptable)
    let watch = try Exchange(folder: "033_watch_pods_rv1_too_old_410", in: KubeFixtures.directory)
    let event = try WatchEvent(line: try JSONValue(bytes: Array(watch.responseBody.split(separator: 10)[0])))
    guard case .error(let gone) = event else {
      Issue.record("expected an ERROR event")
      return
    }
    #expect(gone.code == 410 && gone.reason == .expired && gone.message == "too old resource version: 1 (219)")
  }

  @Test func watchLinesSurviveAnyChunking() throws {
    let e = try Exchange(folder: "020_watch_pods_from_list_rv", in: KubeFixtures.directory)
    for size in [1, 7, 100, 4096] {
      var splitter = WatchLineSplitter()
      var lines: [[UInt8]] = []
      var i = 0
      while i < e.responseBody.count {
        lines += splitter.feed(Array(e.responseBody[i..<min(i + size, e.responseBody.count)]))
        i += size
      }
      #expect(lines.count == 7 && splitter.remainder == nil, "chunks of \(size)")
    }
  }
}

/// Reads a list body the way the client does, for comparison.
enum KubeClientListShape {
  static func list(_ json: JSONValue) -> ObjectList {
    let token = json[path: ["metadata", "continue"]]?.stringValue
    return ObjectList(
      items: (json["items"]?.arrayValue ?? []).map(KubeObject.init),
      resourceVersion: json[path: ["metadata", "resourceVersion"]]?.stringValue ?? "",
      continueToken: token?.isEmpty == false ? token : nil,
      remainingItemCount: json[path: ["metadata", "remainingItemCount"]]?.intValue)
  }
}
