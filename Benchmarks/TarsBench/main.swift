// tars-bench: codec and RPC figures for docs/BENCHMARKS.md. Not a test: it prints numbers.
// Run through Benchmarks/run, which builds it in release mode and runs the peers beside it.
import Dispatch
import Foundation
import NIOPosix
import TarsFramework
import TarsNIO
import TarsProtocol
import TarsRPC

/// Runs `body` in batches for about `seconds`, five times, and returns the median ops/s.
func measure(seconds: Double = 1.0, _ body: () -> Void) -> Double {
  var rates: [Double] = []
  for _ in 0..<5 {
    var ops = 0
    let start = DispatchTime.now().uptimeNanoseconds
    var elapsed = 0.0
    repeat {
      for _ in 0..<1000 { body() }
      ops += 1000
      elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    } while elapsed < seconds / 5
    rates.append(Double(ops) / elapsed)
  }
  return rates.sorted()[2]
}

func report(_ name: String, opsPerSecond: Double, bytes: Int) {
  let mbps = opsPerSecond * Double(bytes) / 1_048_576
  let padded = name.padding(toLength: 44, withPad: " ", startingAt: 0)
  print(padded + String(format: " %12.0f ops/s %9.1f MB/s  (%d bytes)", opsPerSecond, mbps, bytes))
}

// MARK: Codec

func codec() {
  let request = RequestPacket(
    iVersion: 1, cPacketType: 0, iMessageType: 0, iRequestId: 7, sServantName: "tars.tarsregistry.QueryObj",
    sFuncName: "findObjectById", sBuffer: QueryF.FindObjectById.Args(id: "Test.HelloServer.HelloObj").tarsBytes(),
    iTimeout: 3000, context: [:], status: [:])
  let requestBytes = request.tarsBytes()
  var sink = 0
  report(
    "encode RequestPacket", opsPerSecond: measure { sink &+= request.tarsBytes().count }, bytes: requestBytes.count)
  report(
    "decode RequestPacket",
    opsPerSecond: measure { sink &+= (try! RequestPacket(tarsBytes: requestBytes)).sBuffer.count },
    bytes: requestBytes.count)

  let endpoints = (0..<100).map { i in
    EndpointF(
      host: "10.0.\(i / 256).\(i % 256)", port: 10000 + Int32(i), timeout: 60000, istcp: 1, grid: 0, weight: -1,
      nodeName: "node-\(i)")
  }
  let result = QueryF.FindObjectById.Result(ret: endpoints)
  let resultBytes = result.tarsBytes()
  report(
    "encode vector<EndpointF> x100", opsPerSecond: measure { sink &+= result.tarsBytes().count },
    bytes: resultBytes.count)
  report(
    "decode vector<EndpointF> x100",
    opsPerSecond: measure { sink &+= (try! QueryF.FindObjectById.Result(tarsBytes: resultBytes)).ret.count },
    bytes: resultBytes.count)
  let response = ResponsePacket(
    iVersion: 1, cPacketType: 0, iRequestId: 7, iMessageType: 0, iRet: 0, sBuffer: resultBytes, status: [:],
    sResultDesc: "", context: [:])
  let framed = TarsFrame.encode(response, omittingDefaults: true)
  report(
    "encode framed reply with 100 endpoints",
    opsPerSecond: measure {
      let r = ResponsePacket(
        iVersion: 1, cPacketType: 0, iRequestId: 7, iMessageType: 0, iRet: 0, sBuffer: result.tarsBytes(), status: [:],
        sResultDesc: "", context: [:])
      sink &+= TarsFrame.encode(r, omittingDefaults: true).count
    }, bytes: framed.count)
  report(
    "decode framed reply with 100 endpoints",
    opsPerSecond: measure {
      var splitter = TarsFrameSplitter()
      splitter.append(framed)
      let body = try! splitter.next()!
      let packet = try! ResponsePacket(tarsBytes: body)
      sink &+= (try! QueryF.FindObjectById.result(from: packet)).ret.count
    }, bytes: framed.count)
  if sink == 42 { print("") }
  // The same bytes for the peer script.
  try? Hex.encode(requestBytes).write(toFile: "/tmp/tars-bench-request.hex", atomically: true, encoding: .utf8)
  try? Hex.encode(resultBytes).write(toFile: "/tmp/tars-bench-endpoints.hex", atomically: true, encoding: .utf8)
}

// MARK: tars_ping round trips

final class PingServant: TarsDispatcher, Sendable {
  func tarsDispatch(function: String, arguments: [UInt8], current: TarsCurrent) throws -> TarsDispatchOutcome {
    .noSuchFunction
  }
}

/// `connections` clients, each with one tars_ping in flight, for `seconds`; returns round trips/s.
func pingLoad(port: Int, connections: Int, seconds: Double) -> Double {
  let loop = try! TarsEventLoop()
  let endpoint = TarsEndpoint(host: "127.0.0.1", port: port)
  let clients = (0..<connections).map { _ in TarsClient(loop: loop) }
  let request = RequestPacket(
    iVersion: 1, cPacketType: 0, iMessageType: 0, iRequestId: 0, sServantName: "Bench.PingServer.PingObj",
    sFuncName: "tars_ping", sBuffer: [], iTimeout: 3000, context: [:], status: [:])
  var done = 0
  var measuring = false
  var stop = false
  func fire(_ client: TarsClient) {
    client.invoke(request, to: endpoint, timeoutMs: 3000) { result in
      if case .failure(let e) = result { fatalError("ping failed: \(e)") }
      if measuring { done += 1 }
      if !stop { fire(client) }
    }
  }
  for c in clients { fire(c) }
  loop.run(until: { false }, timeoutMs: 300)  // warm up: connect and settle
  measuring = true
  let start = DispatchTime.now().uptimeNanoseconds
  loop.run(until: { false }, timeoutMs: Int(seconds * 1000))
  let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
  stop = true
  measuring = false
  loop.run(until: { false }, timeoutMs: 100)
  for c in clients { c.closeAll() }
  return Double(done) / elapsed
}

func rpc() async throws {
  let servants: [String: any TarsDispatcher & Sendable] = ["Bench.PingServer.PingObj": PingServant()]

  let posixLoop = try TarsEventLoop()
  let posix = try TarsServer(
    loop: posixLoop, endpoint: TarsEndpoint(host: "127.0.0.1", port: 0, timeout: 0), servants: servants)
  let posixThread = Thread { posixLoop.run() }
  posixThread.start()

  let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
  let nio = try await TarsNIOServer.start(
    endpoint: TarsEndpoint(host: "127.0.0.1", port: 0, timeout: 0), servants: servants, group: group)

  for connections in [1, 64] {
    // Alternate the servers so drift on a noisy machine hits both alike.
    var posixRates: [Double] = []
    var nioRates: [Double] = []
    for _ in 0..<3 {
      posixRates.append(pingLoad(port: posix.port, connections: connections, seconds: 2))
      nioRates.append(pingLoad(port: nio.port, connections: connections, seconds: 2))
    }
    let p = posixRates.sorted()[1]
    let n = nioRates.sorted()[1]
    print(
      String(
        format: "tars_ping, %2d connection(s): POSIX server %9.0f/s, NIO server %9.0f/s, POSIX/NIO %.2f", connections,
        p, n, p / n))
  }
  try await nio.close()
  try await group.shutdownGracefully()
  posixLoop.stop()
}

let what = CommandLine.arguments.dropFirst().first ?? "all"
if what == "codec" || what == "all" { codec() }
if what == "rpc" || what == "all" { try await rpc() }
if what == "registry" || what == "all" { try await registry() }
if what == "controller" || what == "all" { try await controller() }
if what == "monitor" || what == "all" { try await monitor(Array(CommandLine.arguments.dropFirst(2))) }
if what == "kube-api" { try await kubeAPI(Array(CommandLine.arguments.dropFirst(2))) }
if what == "keepalive" { try keepAlive(Array(CommandLine.arguments.dropFirst(2))) }
