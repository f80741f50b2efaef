import Dispatch
import Foundation
import Synchronization
import TarsController
import TarsEmbeddedStore
import TarsKube
import TarsProtocol

/// The controller with 1,000 TServers on the embedded store: the first sync, TServer change →
/// StatefulSet written (in process, seen through a watch), then the controller executable's
/// memory and its CPU while idle between resyncs.
func controller() async throws {
  let servers = 1000
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("controller-bench-\(getpid())")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(at: dir) }
  let path = dir.appendingPathComponent("state.sqlite").path
  let store = try EmbeddedStore(path: path, historyLimit: 50_000)
  _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
  var template = KubeObject(.ttemplates, namespace: "tars", name: "tars.default")
  template.json.set(["spec"], .object([("content", .string("<tars></tars>")), ("parent", .string("tars.default"))]))
  _ = try await store.create(.ttemplates, template)
  for s in 0..<servers {
    _ = try await store.create(
      .tservers,
      KubeObject(
        .tservers, namespace: "tars", name: "bench-server\(s)",
        spec: .object([
          ("app", .string("Bench")), ("server", .string("Server\(s)")), ("subType", .string("tars")),
          (
            "tars",
            .object([
              ("template", .string("tars.default")),
              ("servants", .array([.object([("name", .string("Obj")), ("port", .integer(10000))])])),
            ])
          ),
          ("k8s", .object([("replicas", .integer(2))])),
          ("release", .object([("id", .string("1")), ("image", .string("bench:1"))])),
        ])))
  }

  // Every StatefulSet write, by "name|image", with when the watch delivered it.
  let seen = Mutex<[String: UInt64]>([:])
  let watching = Task {
    @Sendable func record(_ o: KubeObject) {
      let image = o.spec?[path: ["template", "spec", "containers"]]?.arrayValue?.first?["image"]?.stringValue ?? ""
      let now = DispatchTime.now().uptimeNanoseconds
      seen.withLock { $0["\(o.name)|\(image)"] = $0["\(o.name)|\(image)"] ?? now }
    }
    for await event in store.watch(.statefulSets, namespace: "tars", options: WatchOptions()) {
      switch event {
      case .added(let o), .modified(let o): record(o)
      default: break
      }
    }
  }
  var configuration = Controller.Configuration(
    namespace: "tars", workload: WorkloadOptions(nodeImage: "bench/node:1"))
  configuration.resyncSeconds = 3600
  let controller = Controller(store: store, configuration: configuration, log: { _ in })
  let started = DispatchTime.now().uptimeNanoseconds
  let running = Task { await controller.run() }
  while seen.withLock({ $0.count }) < servers { try await Task.sleep(for: .milliseconds(5)) }
  let firstSync = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
  print(
    String(
      format: "controller: first sync of %d TServers (%d StatefulSets and Services written): %.2f s", servers,
      servers, firstSync))
  try await Task.sleep(for: .seconds(1))

  var times: [Double] = []
  for i in 0..<300 {
    let name = "bench-server\(i * 7 % servers)"
    var o = try await store.get(.tservers, namespace: "tars", name: name)
    let image = "bench:\(i + 2)"
    o.json.set(["spec", "release", "image"], .string(image))
    let start = DispatchTime.now().uptimeNanoseconds
    _ = try await store.update(.tservers, o, status: false)
    var arrived: UInt64?
    while arrived == nil {
      arrived = seen.withLock { $0["\(name)|\(image)"] }
      if arrived == nil { try await Task.sleep(for: .microseconds(100)) }
    }
    times.append(Double(arrived! - start) / 1e6)
  }
  print(
    String(
      format: "controller: TServer change → StatefulSet written, %d TServers: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
      servers, percentile(times, 0.5), percentile(times, 0.99), times.max()!))
  running.cancel()
  await running.value
  watching.cancel()

  // The executable on the same store: memory once synced, CPU while idle.
  let controlplane = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("tars-controlplane").path
  guard FileManager.default.isExecutableFile(atPath: controlplane) else {
    print("controller: \(controlplane) is missing; build it (swift build -c release --product tars-controlplane)")
    return
  }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: controlplane)
  process.arguments = [
    "controller", "--store", path, "--node-image", "bench/node:1", "--no-leader-elect", "--metrics-port", "0",
  ]
  process.standardError = FileHandle.nullDevice
  try process.run()
  let pid = process.processIdentifier
  func cpuTicks() -> Int {
    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    return fields.count > 13 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : 0
  }
  // Synced and done: its CPU stops moving (the first pass over 1,000 TServers writes nothing).
  var last = -1
  while true {
    try await Task.sleep(for: .seconds(1))
    let now = cpuTicks()
    if now == last { break }
    last = now
  }
  let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
  let memory = status.split(separator: "\n").filter {
    $0.hasPrefix("VmRSS") || $0.hasPrefix("VmHWM") || $0.hasPrefix("RssAnon") || $0.hasPrefix("Threads")
  }.map { $0.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "  ", with: "") }
  let before = cpuTicks()
  try await Task.sleep(for: .seconds(20))
  let idle = cpuTicks() - before
  print(
    "controller process (release) with \(servers) TServers, synced: \(memory.joined(separator: ", ")); "
      + "CPU while idle for 20 s: \(idle) ticks (1 tick = 10 ms)")
  process.terminate()
  process.waitUntilExit()
}
