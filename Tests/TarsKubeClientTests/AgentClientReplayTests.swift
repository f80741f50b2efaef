import Foundation
import TarsAgentCore
import TarsTestSupport
import Testing

/// tarsagent's API client (libcurl, no Foundation) on every recorded exchange, through the same
/// replay server as the Swift client: what it sends matches what was recorded, and it gets the
/// recorded answer back — statuses, bodies, and watch streams line by line. (The exchanges the
/// Swift client does not replay, it does not either: discovery, other encodings, HTTP/2 framing.)
@Suite("tarsagent's libcurl client against the recorded exchanges")
struct AgentClientReplayTests {
  @Test(arguments: KubeFixtures.replayed)
  func replays(_ folder: String) async throws {
    let e = try Exchange(folder: folder, in: KubeFixtures.directory)
    let server = try await ReplayServer()
    let dir = try TemporaryDirectory("agent-token")
    defer {
      dir.remove()
      Task { await server.close() }
    }
    try "test-token\n".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
    let client = KubeHTTP(server: "http://127.0.0.1:\(server.port)", tokenFile: dir.file("token"))
    server.expect(e)
    if e.isWatch {
      var lines: [[UInt8]] = []
      let status = try client.watch(e.target, idleSeconds: 10) { line in
        lines.append(line)
        return true
      }
      #expect(status == e.status, "\(folder)")
      let recorded = e.responseBody.split(separator: 10).map(Array.init)
      #expect(lines == recorded, "\(folder): the events, line by line")
    } else {
      let body = e.requestBody.isEmpty ? nil : e.requestBody
      let response = try client.send(e.method, e.target, body: body, contentType: e.contentType ?? "application/json")
      #expect(response.status == e.status, "\(folder)")
      #expect(response.body == e.responseBody, "\(folder): the body as recorded")
    }
    #expect(server.mismatches.isEmpty, "\(folder): \(server.mismatches)")
    #expect(server.served == 1, "\(folder)")
  }

  @Test func anUnreachableServerIsAnErrorThatSaysWhere() {
    let client = KubeHTTP(server: "http://127.0.0.1:\(freePort())")
    let error = #expect(throws: KubeHTTPError.self) { try client.send("GET", "/api/v1/pods") }
    #expect(error?.message.contains("127.0.0.1") == true, "\(error?.message ?? "")")
  }
}
