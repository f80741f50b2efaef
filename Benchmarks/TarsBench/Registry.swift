import Foundation
import NIOPosix
import TarsEmbeddedStore
import TarsFramework
import TarsKube
import TarsProtocol
import TarsRPC
import TarsRegistry

/// `connections` clients each keeping one call in flight for `seconds`: calls/s, p50, p99 (ms).
func callLoad(port: Int, requests: [RequestPacket], connections: Int, seconds: Double) -> (Double, Double, Double) {
  let loop = try! TarsEventLoop()
  let endpoint = TarsEndpoint(host: "127.0.0.1", port: port)
  let clients = (0..<connections).map { _ in TarsClient(loop: loop) }
  var latencies: [UInt64] = []
  latencies.reserveCapacity(1 << 20)
  var measuring = false
  var stop = false
  var next = 0
  func fire(_ client: TarsClient) {
    let request = requests[next % requests.count]
    next &+= 1
    let sent = DispatchTime.now().uptimeNanoseconds
    client.invoke(request, to: endpoint, timeoutMs: 5000) { result in
      if case .failure(let e) = result { fatalError("call failed: \(e)") }
      if measuring { latencies.append(DispatchTime.now().uptimeNanoseconds - sent) }
      if !stop { fire(client) }
    }
  }
  for c in clients { fire(c) }
  loop.run(until: { false }, timeoutMs: 300)
  measuring = true
  let start = DispatchTime.now().uptimeNanoseconds
  loop.run(until: { false }, timeoutMs: Int(seconds * 1000))
  let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
  measuring = false
  stop = true
  loop.run(until: { false }, timeoutMs: 200)
  for c in clients { c.closeAll() }
  latencies.sort()
  func pct(_ p: Double) -> Double {
    Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6
  }
  return (Double(latencies.count) / elapsed, pct(0.5), pct(0.99))
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
  let s = xs.sorted()
  return s[min(s.count - 1, Int(Double(s.count) * p))]
}

func registry() async throws {
  let servers = 1000
  let podsPerServer = 10
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("registry-bench-\(getpid())")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(at: dir) }
  let path = dir.appendingPathComponent("state.sqlite").path
  let store = try EmbeddedStore(path: path, historyLimit: 50_000)
  _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
  let fill = DispatchTime.now().uptimeNanoseconds
  for s in 0..<servers {
    let server = "Server\(s)"
    _ = try await store.create(
      .tservers,
      KubeObject(
        .tservers, namespace: "tars", name: "bench-server\(s)",
        spec: .object([
          ("app", .string("Bench")), ("server", .string(server)), ("subType", .string("tars")),
          (
            "tars",
            .object([
              ("template", .string("tars.default")),
              ("servants", .array([.object([("name", .string("Obj")), ("port", .integer(10000 + Int64(s)))])])),
            ])
          ),
        ])))
    for p in 0..<podsPerServer {
      _ = try await store.create(
        .pods,
        KubeObject(
          .pods, namespace: "tars", name: "bench-server\(s)-\(p)",
          labels: ["tars.io/ServerApp": "Bench", "tars.io/ServerName": server],
          status: .object([
            ("podIP", .string("10.\(s / 250).\(s % 250).\(p + 1)")),
            ("conditions", .array([.object([("type", .string("tars.io/active")), ("status", .string("True"))])])),
          ])))
    }
  }
  let fillSeconds = Double(DispatchTime.now().uptimeNanoseconds - fill) / 1e9
  print(
    String(
      format: "registry: %d TServers and %d pods written to the embedded store in %.1f s", servers,
      servers * podsPerServer, fillSeconds))

  var c = RegistryService.Configuration(namespace: "tars")
  c.bindHost = "127.0.0.1"
  c.queryPort = 0
  c.registryPort = 0
  let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
  let service = try await RegistryService.start(store: store, configuration: c, group: group, log: { _ in })
  while !(service.view.hasSynced && service.view.lookup("Bench.Server\(servers - 1).Obj").active.count == podsPerServer)
  {
    try await Task.sleep(for: .milliseconds(20))
  }

  // Lookups against tars_ping on the same server (QueryObj answers tars_ping itself).
  let lookups = (0..<servers).map { s in
    QueryF.FindObjectByIdInSameGroup.request(servant: "tars.tarsregistry.QueryObj", .init(id: "Bench.Server\(s).Obj"))
  }
  let ping = [
    RequestPacket(
      iVersion: 1, cPacketType: 0, iMessageType: 0, iRequestId: 0, sServantName: "tars.tarsregistry.QueryObj",
      sFuncName: "tars_ping", sBuffer: [], iTimeout: 3000, context: [:], status: [:])
  ]
  for connections in [1, 16, 128] {
    var l: [(Double, Double, Double)] = []
    var p: [(Double, Double, Double)] = []
    for _ in 0..<3 {
      l.append(callLoad(port: service.query.port, requests: lookups, connections: connections, seconds: 2))
      p.append(callLoad(port: service.query.port, requests: ping, connections: connections, seconds: 2))
    }
    let lm = l.sorted { $0.0 < $1.0 }[1]
    let pm = p.sorted { $0.0 < $1.0 }[1]
    print(
      String(
        format:
          "registry, %3d connection(s): lookup %8.0f/s p50 %.3f ms p99 %.3f ms | tars_ping %8.0f/s p50 %.3f ms p99 %.3f ms | lookup/ping rate %.2f",
        connections, lm.0, lm.1, lm.2, pm.0, pm.1, pm.2, lm.0 / pm.0))
  }

  // updateServerState → endpoint answered, with 10,000 pods cached.
  let client = TarsClient(loop: try TarsEventLoop())
  var times: [Double] = []
  let pod = "bench-server7-3"
  let host = "10.0.7.4"
  for i in 0..<40 {
    let active = i % 2 == 1
    var request = Registry.UpdateServerState.request(
      servant: "tars.tarsregistry.RegistryObj",
      .init(podName: pod, settingState: "Active", presentState: active ? "Active" : "Inactive"))
    request.context = ["PID": "1"]
    let start = DispatchTime.now().uptimeNanoseconds
    var replied = false
    client.invoke(request, to: TarsEndpoint(host: "127.0.0.1", port: service.registry.port), timeoutMs: 3000) { _ in
      replied = true
    }
    client.loop.run(until: { replied }, timeoutMs: 3000)
    while service.view.lookup("Bench.Server7.Obj").active.contains(where: { $0.host == host }) != active {
      try await Task.sleep(for: .microseconds(100))
    }
    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
  }
  print(
    String(
      format: "registry: updateServerState → endpoint returned, %d pods cached: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
      servers * podsPerServer, percentile(times, 0.5), percentile(times, 0.99), times.max()!))
  var rebuilds: [Double] = []
  for _ in 0..<10 {
    let start = DispatchTime.now().uptimeNanoseconds
    service.view.rebuild()
    rebuilds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
  }
  print(
    String(
      format: "registry: one rebuild of the endpoint table from %d pods: p50 %.1f ms", servers * podsPerServer,
      percentile(rebuilds, 0.5)))
  await service.stop()
  try await group.shutdownGracefully()

  // Memory of the registry process itself with that cache.
  let controlplane = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("tars-controlplane").path
  guard FileManager.default.isExecutableFile(atPath: controlplane) else {
    print("registry: \(controlplane) is missing; build it (swift build -c release --product tars-controlplane)")
    return
  }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: controlplane)
  let port = 20000 + Int(getpid() % 10000)
  process.arguments = [
    "registry", "--store", path, "--bind", "127.0.0.1", "--query-port", "\(port)", "--registry-port", "\(port + 1)",
    "--metrics-port", "0",
  ]
  process.standardError = FileHandle.nullDevice
  let started = DispatchTime.now().uptimeNanoseconds
  try process.run()
  let loop = try TarsEventLoop()
  let probe = TarsClient(loop: loop)
  var ready = false
  while !ready {
    var answer: [EndpointF] = []
    var done = false
    probe.invoke(
      QueryF.FindObjectById.request(servant: "tars.tarsregistry.QueryObj", .init(id: "Bench.Server\(servers - 1).Obj")),
      to: TarsEndpoint(host: "127.0.0.1", port: port), timeoutMs: 1000
    ) { r in
      if case .success(let p) = r { answer = (try? QueryF.FindObjectById.result(from: p).ret) ?? [] }
      done = true
    }
    loop.run(until: { done }, timeoutMs: 1100)
    ready = answer.count == podsPerServer
    if !ready { try await Task.sleep(for: .milliseconds(50)) }
  }
  let syncSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
  try await Task.sleep(for: .seconds(2))
  let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
  let rss = status.split(separator: "\n").filter { $0.hasPrefix("VmRSS") || $0.hasPrefix("VmHWM") }
    .map { $0.replacingOccurrences(of: "\t", with: " ") }
  print(
    "registry process (release) with \(servers * podsPerServer) pods, \(servers) TServers: \(rss.joined(separator: ", ")); start → all endpoints answered \(String(format: "%.2f", syncSeconds)) s"
  )
  process.terminate()
  process.waitUntilExit()
}
