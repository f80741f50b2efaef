import Foundation
import Synchronization
import TarsAuth
import TarsCtlCore
import TarsFramework
import TarsProtocol
import TarsRPC
import TarsTestSupport
import Testing

/// A running tarsnode process (the real binary), its output captured in files.
final class NodeProcess: @unchecked Sendable {
  let process = Process()
  let dir: TemporaryDirectory
  let stdoutPath: String
  let stderrPath: String

  /// Starts `tarsnode ARGS`, or `unshare --pid --fork --mount-proc tarsnode ARGS` as a PID 1.
  init(_ arguments: [String], asPID1: Bool = false, environment: [String: String]? = nil, dir: TemporaryDirectory)
    throws
  {
    self.dir = dir
    stdoutPath = dir.file("tarsnode.out")
    stderrPath = dir.file("tarsnode.err")
    _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
    _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
    if asPID1 {
      process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
      process.arguments = ["--pid", "--fork", "--mount-proc", Tool.path("tarsnode")] + arguments
    } else {
      process.executableURL = URL(fileURLWithPath: Tool.path("tarsnode"))
      process.arguments = arguments
    }
    if let environment { process.environment = environment }
    process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
    process.standardError = FileHandle(forWritingAtPath: stderrPath)
    try process.run()
  }

  var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
  var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

  /// tarsnode's pid on this machine: with unshare, the child of unshare.
  var nodePID: Int32? {
    guard process.executableURL?.lastPathComponent == "unshare" else { return process.processIdentifier }
    let children = try? String(
      contentsOfFile: "/proc/\(process.processIdentifier)/task/\(process.processIdentifier)/children", encoding: .utf8)
    return children?.split(separator: " ").first.flatMap { Int32($0) }
  }

  func signal(_ sig: Int32) {
    if let pid = nodePID { kill(pid, sig) }
  }

  /// Waits for the exit status, at most `seconds`; nil if still running.
  func wait(seconds: Double) -> Int32? {
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    return process.isRunning ? nil : process.terminationStatus
  }

  /// Stops it for good (tests clean up after themselves, even when they fail).
  func terminate() {
    guard process.isRunning else { return }
    signal(SIGTERM)
    if wait(seconds: 10) == nil {
      signal(SIGKILL)
      kill(process.processIdentifier, SIGKILL)
      _ = wait(seconds: 5)
    }
  }
}

/// Sends a prepared (already signed, or deliberately mis-signed) NodeObj request as it is and
/// decodes the reply — what a captured call replayed by someone on the network looks like.
func sendRaw<M: TarsMethod>(_ request: RequestPacket, as method: M.Type, to node: String) throws -> M.Result {
  let loop = try TarsEventLoop()
  let proxy = TarsProxy(
    client: TarsClient(loop: loop), address: try TarsObjectAddress(parsing: "tars.tarsnode.NodeObj@" + node))
  var reply: Result<ResponsePacket, TarsCallError>?
  proxy.invoke(request, timeoutMs: 3000) { reply = $0 }
  loop.run(until: { reply != nil }, timeoutMs: 5000)
  return try M.result(from: try #require(try reply?.get()))
}

/// Polls `condition` every 50 ms for up to `seconds`.
func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
  let deadline = Date().addingTimeInterval(seconds)
  while Date() < deadline {
    if condition() { return true }
    usleep(50_000)
  }
  return condition()
}

/// Whether this machine lets the tests make PID namespaces (root, and unshare present).
var canUnshare: Bool {
  getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")
}

/// A pod for the supervision tests: ports of its own, a test server in its "image", a
/// description file, and tarsnode flags that point everything into a temporary directory.
struct TestPod {
  let dir: TemporaryDirectory
  let serverObjPort = freePort()
  let nodeObjPort = freePort()
  let adminPort = freePort()
  let adapterPort = freePort()

  init(profile: String = "", adapters: Bool = true) throws {
    dir = try TemporaryDirectory("tarsnode")
    try FileManager.default.createDirectory(atPath: dir.file("image"), withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(
      atPath: dir.file("image/HelloServer"), withDestinationPath: Tool.path("tars-test-server"))
    let adapterJSON =
      adapters
      ? #""Test.HelloServer.HelloObjAdapter": {"endpoint": "tcp -h ${localip} -p \#(adapterPort) -t 60000", "servant": "Test.HelloServer.HelloObj"}"#
      : ""
    let profileJSON = String(
      data: try JSONSerialization.data(withJSONObject: profile, options: .fragmentsAllowed), encoding: .utf8)!
    try #"{"profile": \#(profileJSON), "asyncThreadNum": 1, "adapters": {\#(adapterJSON)}}"#
      .write(toFile: dir.file("descriptor.json"), atomically: true, encoding: .utf8)
  }

  /// A profile for the test server: fast heartbeats, a short heartbeat timeout.
  static func profile(heartbeatMs: Int = 200, initMs: Int = 0, heartTimeout: Int = 3) -> String {
    """
    <tars>
      <application>
        <server>
          test-heartbeat-ms=\(heartbeatMs)
          test-init-ms=\(initMs)
          hearttimeout=\(heartTimeout)
          deactivating-timeout=1000
        </server>
      </application>
    </tars>
    """
  }

  func arguments(_ extra: [String] = [], registry: String? = nil) -> [String] {
    var a = [
      "--app", "Test", "--server", "HelloServer", "--pod-name", "test-helloserver-0", "--base-dir", dir.file("base"),
      "--log-dir", dir.file("logs"), "--image-bin-dir", dir.file("image"), "--server-obj-port", String(serverObjPort),
      "--node-obj-port", String(nodeObjPort), "--admin-port", String(adminPort), "--backoff-initial", "200",
      "--report-interval", "500", "--no-stdout-copy",
    ]
    if let registry {
      a += ["--registry", registry]
    } else {
      a += [
        "--descriptor", dir.file("descriptor.json"), "--registry",
        "tars.tarsregistry.RegistryObj@tcp -h 127.0.0.1 -p 1",
      ]
    }
    return a + extra
  }

  var node: String { "tcp -h 127.0.0.1 -p \(nodeObjPort)" }

  func ctl(_ action: TarsCtl.NodeAction, secret: String? = nil, command: String = "") throws -> String {
    try TarsCtl(timeoutMs: 5000).node(action, node: node, secretFile: secret, command: command)
  }

  /// `present` and `pid` from NodeObj.getStateInfo (nil while NodeObj does not answer).
  func state() -> (present: String, setting: String, pid: Int32)? {
    guard let text = try? ctl(.state) else { return nil }
    var present = ""
    var setting = ""
    var pid: Int32 = 0
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
      guard parts.count == 2 else { continue }
      switch parts[0] {
      case "present": present = parts[1]
      case "setting": setting = parts[1]
      case "pid": pid = Int32(parts[1]) ?? 0
      default: break
      }
    }
    return (present, setting, pid)
  }
}

/// A registry for tarsnode to talk to: answers getServerDescriptor, records updateServerState.
final class FakeRegistry: RegistryServant, Sendable {
  let descriptor: Mutex<ServerDescriptor>
  let reports = Mutex<[(setting: String, present: String, pid: String)]>([])

  init(_ descriptor: ServerDescriptor) { self.descriptor = Mutex(descriptor) }

  func getServerDescriptor(serverApp: String, serverName: String, current: TarsCurrent) throws
    -> Registry.GetServerDescriptor.Result
  {
    guard serverApp == "Test" && serverName == "HelloServer" else { return .init(ret: -1, serverDescriptor: .init()) }
    return .init(ret: 0, serverDescriptor: descriptor.withLock { $0 })
  }

  func updateServerState(podName: String, settingState: String, presentState: String, current: TarsCurrent) throws {
    reports.withLock { $0.append((settingState, presentState, current.context["PID"] ?? "")) }
  }

  var presents: [String] { reports.withLock { $0.map(\.present) } }
}
