import Hummingbird
import TarsAdminAPI
import TarsAuth
import TarsMonitor
import TarsProtocol

/// Servers' remote logs (what they sent to `tars.tarslog.LogObj`), from the log service that
/// keeps them (`tars.tarslog.LogQueryObj` beside it). 503 where no log service is configured.
extension AdminRoutes {
  func registerRemoteLogs(on g: RouterGroup<BasicRequestContext>) {
    g.get("servers/:id/remote-logs") { _, context in
      let (app, server) = try appServer(context)
      let result = try await callLogQuery(LogQuery.ListFiles.self, .init(app: app, server: server))
      guard result.ret == 0 else { throw HTTPError(.badRequest, message: result.result) }
      return result.files.map { RemoteLogFileRow(name: $0.name, size: $0.size, modified: $0.modified) }
    }
    g.get("servers/:id/remote-logs/tail") { request, context in
      let (app, server) = try appServer(context)
      let q = request.uri.queryParameters
      guard let lines = Int(q["tail"].map(String.init) ?? "100"), (1...100_000).contains(lines) else {
        throw HTTPError(.badRequest, message: "tail is 1 to 100000 lines")
      }
      var name = q["name"].map(String.init) ?? ""
      if name.isEmpty {
        // The newest file: what the server writes now.
        let files = try await callLogQuery(LogQuery.ListFiles.self, .init(app: app, server: server))
        guard files.ret == 0 else { throw HTTPError(.badRequest, message: files.result) }
        guard let newest = files.files.last else {
          throw HTTPError(
            .notFound,
            message:
              "no remote log for \(app).\(server): its template's <server> log= names LogObj, and its code logs remotely"
          )
        }
        name = newest.name
      }
      let result = try await callLogQuery(
        LogQuery.Tail.self, .init(app: app, server: server, name: name, maxBytes: Int64(min(lines, 4096)) * 1024))
      guard result.ret == 0 else { throw HTTPError(.badRequest, message: result.result) }
      let all = result.text.split(separator: "\n", omittingEmptySubsequences: false)
      let kept = all.last == "" ? all.dropLast() : all[...]
      return kept.suffix(lines).joined(separator: "\n") + (kept.isEmpty ? "" : "\n")
    }
  }

  func appServer(_ context: BasicRequestContext) throws -> (String, String) {
    let id = try context.parameters.require("id")
    let parts = id.split(separator: ".", maxSplits: 1).map(String.init)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
      throw HTTPError(.badRequest, message: "\(id) is not App.Server")
    }
    return (parts[0], parts[1])
  }

  func callLogQuery<M: TarsMethod>(_ method: M.Type, _ args: M.Args) async throws -> M.Result {
    guard let endpoint = d.logQuery else {
      throw HTTPError(
        .serviceUnavailable, message: "no log service here (tars-controlplane admin --log-query HOST:PORT)")
    }
    var request = M.request(servant: "tars.tarslog.LogQueryObj", args, options: TarsCallOptions(timeoutMs: 10_000))
    d.nodeAuth.sign(&request, target: "tars.tarslog", timestamp: unixTimeSeconds())
    do {
      return try M.result(from: try await d.nodeClient.invoke(request, to: endpoint, timeoutMs: 10_000))
    } catch {
      throw HTTPError(.badGateway, message: "log service at \(endpoint.host):\(endpoint.port): \(error)")
    }
  }
}
