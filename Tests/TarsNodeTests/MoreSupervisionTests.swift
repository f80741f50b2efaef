import Foundation
import Synchronization
import TarsCtlCore
import TarsFramework
import TarsProtocol
import TarsRPC
import TarsTestSupport
import Testing

/// A NotifyObj that records what it is told.
final class FakeNotify: NotifyServant, Sendable {
  let messages = Mutex<[String]>([])
  func reportServer(sServerName: String, sThreadId: String, sMessage: String, current: TarsCurrent) throws {}
  func notifyServer(sServerName: String, level: NOTIFYLEVEL, sMessage: String, current: TarsCurrent) throws {}
  func getNotifyInfo(stKey: NotifyKey, current: TarsCurrent) throws -> Notify.GetNotifyInfo.Result { .init() }
  func reportNotifyInfo(info: ReportInfo, current: TarsCurrent) throws {
    messages.withLock { $0.append("\(info.sApp).\(info.sServer)@\(info.sContainer): \(info.sMessage)") }
  }
}

/// A ConfigObj with one file.
final class FakeConfig: ConfigServant, Sendable {
  func ListConfig(app: String, server: String, current: TarsCurrent) throws -> Config.ListConfig.Result { .init() }
  func loadConfig(app: String, server: String, filename: String, current: TarsCurrent) throws
    -> Config.LoadConfig.Result
  {
    filename == "app.conf" && app == "Test" && server == "HelloServer"
      ? .init(ret: 0, config: "<app>\nkey=value\n</app>\n") : .init(ret: -1, config: "")
  }
  func loadConfigByHost(appServerName: String, filename: String, host: String, current: TarsCurrent) throws
    -> Config.LoadConfigByHost.Result
  { .init() }
  func checkConfig(appServerName: String, filename: String, host: String, current: TarsCurrent) throws
    -> Config.CheckConfig.Result
  { .init() }
  func ListConfigByInfo(configInfo: ConfigInfo, current: TarsCurrent) throws -> Config.ListConfigByInfo.Result {
    .init()
  }
  func loadConfigByInfo(configInfo: ConfigInfo, current: TarsCurrent) throws -> Config.LoadConfigByInfo.Result {
    .init()
  }
  func checkConfigByInfo(configInfo: ConfigInfo, current: TarsCurrent) throws -> Config.CheckConfigByInfo.Result {
    .init()
  }
  func ListAllConfigByInfo(configInfo: GetConfigListInfo, current: TarsCurrent) throws
    -> Config.ListAllConfigByInfo.Result
  { .init() }
}

/// A locator that knows where one object lives.
final class OneObjectLocator: QueryFServant, Sendable {
  let name: String
  let endpoint: EndpointF
  init(_ name: String, port: Int) {
    self.name = name
    endpoint = EndpointF(TarsEndpoint(host: "127.0.0.1", port: port, timeout: 3000))
  }
  func found(_ id: String) -> [EndpointF] { id == name ? [endpoint] : [] }
  func findObjectById(id: String, current: TarsCurrent) throws -> [EndpointF] { found(id) }
  func findObjectById4Any(id: String, current: TarsCurrent) throws -> QueryF.FindObjectById4Any.Result {
    .init(ret: 0, activeEp: found(id), inactiveEp: [])
  }
  func findObjectById4All(id: String, current: TarsCurrent) throws -> QueryF.FindObjectById4All.Result {
    .init(ret: 0, activeEp: found(id), inactiveEp: [])
  }
  func findObjectByIdInSameGroup(id: String, current: TarsCurrent) throws -> QueryF.FindObjectByIdInSameGroup.Result {
    .init(ret: 0, activeEp: found(id), inactiveEp: [])
  }
  func findObjectByIdInSameStation(id: String, sStation: String, current: TarsCurrent) throws
    -> QueryF.FindObjectByIdInSameStation.Result
  { .init(ret: 0, activeEp: found(id), inactiveEp: []) }
  func findObjectByIdInSameSet(id: String, setId: String, current: TarsCurrent) throws
    -> QueryF.FindObjectByIdInSameSet.Result
  { .init(ret: 0, activeEp: found(id), inactiveEp: []) }
  func findObjectNodeName(id: String, current: TarsCurrent) throws -> QueryF.FindObjectNodeName.Result { .init() }
  func registerChange(timestamp: [String: String], name: String, current: TarsCurrent) throws -> Int32 { 0 }
  func registerQuery(id: String, name: String, current: TarsCurrent) throws -> Int32 { 0 }
  func getLocker(req: GetMasterSlaveLock, current: TarsCurrent) throws -> Int32 { 0 }
}

@Suite("More of tarsnode's duties", .serialized)
struct MoreSupervisionTests {
  func log(_ pod: TestPod) -> String {
    (try? String(contentsOfFile: pod.dir.file("logs/Test/HelloServer/Test.HelloServer.stdout.log"), encoding: .utf8))
      ?? ""
  }

  @Test func theProfileEnvironmentAndLibraryPathReachTheServer() throws {
    let profile = TestPod.profile().replacingOccurrences(
      of: "hearttimeout=3", with: "hearttimeout=3\n      env=TARS_TEST_ECHO=hello from the profile;OTHER=1")
    let pod = try TestPod(profile: profile)
    defer { pod.dir.remove() }
    let node = try NodeProcess(pod.arguments(), dir: pod.dir)
    defer { node.terminate() }
    #expect(eventually { self.log(pod).contains("TARS_TEST_ECHO=hello from the profile") }, "\(log(pod))\(node.stderr)")
    let base = pod.dir.file("base")
    #expect(log(pod).contains("LD_LIBRARY_PATH=\(base)/bin:\(base)/bin/lib"), "\(log(pod))")
  }

  @Test(.enabled(if: getuid() == 0, "needs root to change user and capabilities"))
  func dropsToTheConfiguredUserAndCapabilities() throws {
    let pod = try TestPod()
    defer { pod.dir.remove() }
    chmod(pod.dir.path, 0o755)
    let script = pod.dir.file("show.sh")
    try "#!/bin/sh\ngrep -E '^(Uid|Gid|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status\nexec sleep 60\n"
      .write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    let node = try NodeProcess(
      pod.arguments([
        "--server-type", "not-tars", "--command", script, "--uid", "65534", "--gid", "65534", "--caps",
        "NET_BIND_SERVICE",
      ]), dir: pod.dir)
    defer { node.terminate() }
    #expect(eventually { self.log(pod).contains("NoNewPrivs") }, "\(node.stderr)")
    let text = log(pod)
    #expect(text.contains("Uid:\t65534\t65534\t65534\t65534"), "\(text)")
    #expect(text.contains("Gid:\t65534\t65534\t65534\t65534"), "\(text)")
    // Bit 10 is CAP_NET_BIND_SERVICE: kept (as an ambient capability) and nothing else.
    for set in ["CapEff", "CapBnd", "CapAmb"] { #expect(text.contains("\(set):\t0000000000000400"), "\(set): \(text)") }
    #expect(text.contains("NoNewPrivs:\t1"))
  }

  @Test func aServerThatKeepsDyingEndsTarsnodeWhenACrashLimitIsSet() throws {
    let pod = try TestPod()
    defer { pod.dir.remove() }
    let node = try NodeProcess(
      pod.arguments([
        "--server-type", "not-tars", "--command", "sh -c exit\\ 3", "--crash-limit", "3", "--crash-window", "60",
      ]),
      dir: pod.dir)
    defer { node.terminate() }
    let status = node.wait(seconds: 20)
    #expect(status != nil && status != 0, "\(node.stderr)")
    #expect(node.stderr.contains("died 3 times within 60 s"), "\(node.stderr)")
  }

  @Test func aServerStuckActivatingIsRestarted() throws {
    let profile = TestPod.profile(initMs: 60_000).replacingOccurrences(
      of: "hearttimeout=3", with: "hearttimeout=3\n      activating-timeout=1500")
    let pod = try TestPod(profile: profile)
    defer { pod.dir.remove() }
    let node = try NodeProcess(pod.arguments(), dir: pod.dir)
    defer { node.terminate() }
    #expect(eventually { pod.state()?.present == "Activating" }, "\(node.stderr)")
    let first = pod.state()?.pid ?? 0
    #expect(
      eventually(10) {
        let now = pod.state()?.pid ?? 0
        return now > 0 && now != first
      }, "\(node.stderr)")
    #expect(node.stderr.contains("still Activating 1500 ms after the start"), "\(node.stderr)")
  }

  @Test func exitsAreReportedToNotifyAndAddFileFetchesFromConfig() throws {
    let notify = FakeNotify()
    let notifyServer = try LoopServer(servants: ["tars.tarsnotify.NotifyObj": notify])
    defer { notifyServer.stop() }
    let configServer = try LoopServer(servants: ["tars.tarsconfig.ConfigObj": FakeConfig()])
    defer { configServer.stop() }
    let locator = try LoopServer(servants: [
      "tars.tarsregistry.QueryObj": OneObjectLocator("tars.tarsconfig.ConfigObj", port: configServer.port)
    ])
    defer { locator.stop() }
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let node = try NodeProcess(
      pod.arguments([
        "--notify", "tars.tarsnotify.NotifyObj@tcp -h 127.0.0.1 -p \(notifyServer.port)",
        "--locator", "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p \(locator.port)",
      ]), dir: pod.dir)
    defer { node.terminate() }
    #expect(eventually { pod.state()?.present == "Active" }, "\(node.stderr)")
    let pid = try #require(pod.state()?.pid)
    try #require(pid > 0)
    kill(pid, SIGKILL)
    #expect(
      eventually {
        notify.messages.withLock { $0 }.contains(
          "Test.HelloServer@test-helloserver-0: [alarm] server exit with signal 9")
      }, "\(notify.messages.withLock { $0 })")

    let loop = try TarsEventLoop()
    let proxy = TarsProxy(
      client: TarsClient(loop: loop), address: try TarsObjectAddress(parsing: "tars.tarsnode.NodeObj@\(pod.node)"))
    let added = try proxy.callBlocking(
      Node.AddFile.self, .init(application: "", serverName: "", file: "../../app.conf"))
    #expect(added.ret == 0 && added.result == "[succ] get remote config: app.conf", "\(added)")
    #expect(
      (try? String(contentsOfFile: pod.dir.file("image/app.conf"), encoding: .utf8)) == "<app>\nkey=value\n</app>\n")
    let missing = try proxy.callBlocking(Node.AddFile.self, .init(application: "", serverName: "", file: "nope.conf"))
    #expect(missing.ret == -1 && missing.result.hasPrefix("[fail]"))
  }

  @Test func tellsSystemdOnceTheServerIsActive() throws {
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let socketPath = pod.dir.file("systemd.sock")
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for (i, b) in socketPath.utf8.enumerated() { raw[i] = b }
    }
    _ = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    var tv = timeval(tv_sec: 15, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var environment = ProcessInfo.processInfo.environment
    environment["NOTIFY_SOCKET"] = socketPath
    let node = try NodeProcess(pod.arguments(), environment: environment, dir: pod.dir)
    defer { node.terminate() }
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = recv(fd, &buffer, buffer.count, 0)
    #expect(n > 0 && String(decoding: buffer[0..<max(0, n)], as: UTF8.self).hasPrefix("READY=1\n"), "\(node.stderr)")
    #expect(pod.state()?.present == "Active")
  }
}
