import Foundation
import TarsAuth
import TarsFramework
import TarsProtocol
import TarsRPC

/// One-machine mode, first keepAlive → endpoint returned: a pod whose server never heartbeats by
/// itself (tarsnode keeps it Activating) gets one keepAlive from here, as a starting server would
/// send it, and the registry is asked until it returns the endpoint as active. Then NodeObj
/// restarts the server (signed with the control plane's secret), the endpoint goes inactive
/// again, and the next round starts.
///   tars-bench keepalive POD_IP QUERY_PORT SECRET_FILE APP SERVER SERVANT [ROUNDS]
func keepAlive(_ a: [String]) throws {
  guard a.count >= 6, let queryPort = Int(a[1]) else {
    print("usage: tars-bench keepalive POD_IP QUERY_PORT SECRET_FILE APP SERVER SERVANT [ROUNDS]")
    exit(2)
  }
  let (ip, app, server, servant) = (a[0], a[3], a[4], a[5])
  let rounds = a.count > 6 ? Int(a[6]) ?? 20 : 20
  let auth = try NodeCallAuth(secretFile: a[2])
  let loop = try TarsEventLoop()
  let client = TarsClient(loop: loop)
  let query = TarsProxy(
    client: client,
    address: TarsObjectAddress(
      name: "tars.tarsregistry.QueryObj", endpoints: [TarsEndpoint(host: "127.0.0.1", port: queryPort)]))
  let serverObj = TarsProxy(
    client: client,
    address: TarsObjectAddress(name: "tars.tarsnode.ServerObj", endpoints: [TarsEndpoint(host: ip, port: 19386)]))
  let id = "\(app).\(server).\(servant)"
  func active() throws -> Bool {
    !(try query.callBlocking(QueryF.FindObjectByIdInSameGroup.self, .init(id: id))).activeEp.isEmpty
  }
  func waitUntil(_ want: Bool, timeout: Double = 60) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while try active() != want {
      guard Date() < deadline else { throw TarsServantError("\(id) did not become \(want ? "active" : "inactive")") }
      loop.run(until: { false }, timeoutMs: 2)
    }
  }
  let nodeObj = TarsProxy(
    client: client,
    address: TarsObjectAddress(name: "tars.tarsnode.NodeObj", endpoints: [TarsEndpoint(host: ip, port: 19385)]))
  func restart() throws {
    var request = Node.RestartServer.request(
      servant: "tars.tarsnode.NodeObj", .init(application: app, serverName: server),
      options: TarsCallOptions(timeoutMs: 10_000))
    let pod = try nodeObj.callBlocking(Node.GetStateInfo.self, .init(application: app, serverName: server)).info
      .nodeName
    auth.sign(&request, target: pod, timestamp: unixTimeSeconds())
    var outcome: Result<ResponsePacket, TarsCallError>?
    client.invoke(request, to: TarsEndpoint(host: ip, port: 19385), timeoutMs: 10_000) { outcome = $0 }
    loop.run(until: { outcome != nil })
    _ = try outcome!.get()
  }
  /// tarsnode's own view: the server process and its present state.
  func state() throws -> (ServerState, Int32) {
    let info = try nodeObj.callBlocking(
      Node.GetStateInfo.self, .init(application: app, serverName: server)
    ).info
    return (info.serverState, info.processId)
  }
  var samples: [Double] = []
  for _ in 0..<rounds {
    let (_, before) = try state()
    try restart()
    // The restart is done when a new process is Activating (a heartbeat during the stop is ignored).
    let deadline = Date().addingTimeInterval(60)
    while true {
      let (present, pid) = try state()
      if present == .Activating && pid != 0 && pid != before { break }
      guard Date() < deadline else { throw TarsServantError("\(id) was not restarted") }
      loop.run(until: { false }, timeoutMs: 5)
    }
    try waitUntil(false)
    let start = DispatchTime.now().uptimeNanoseconds
    serverObj.oneway(
      ServerF.KeepAlive.self, .init(serverInfo: ServerInfo(application: app, serverName: server, pid: 0, adapter: "")))
    try waitUntil(true)
    samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
  }
  print(
    String(
      format: "first keepAlive -> endpoint returned by QueryObj: p50 %.1f ms, p99 %.1f ms, min %.1f ms (%d rounds)",
      percentile(samples, 0.5), percentile(samples, 0.99), samples.min() ?? 0, samples.count))
}
