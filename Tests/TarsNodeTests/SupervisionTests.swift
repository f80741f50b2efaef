import Foundation
import TarsAuth
import TarsCtlCore
import TarsFramework
import TarsProtocol
import TarsRPC
import TarsTestSupport
import Testing

/// tarsnode supervising a server that behaves like a TarsCpp server (Tests/TarsTestServer).
@Suite("Supervising a Tars server", .serialized)
struct SupervisionTests {
  @Test func activatingThenActiveAndHungServersAreRestarted() throws {
    let pod = try TestPod(profile: TestPod.profile(heartbeatMs: 200, initMs: 1500, heartTimeout: 2))
    defer { pod.dir.remove() }
    let node = try NodeProcess(pod.arguments(), dir: pod.dir)
    defer { node.terminate() }

    // keepActiving during the 1.5 s initialisation, then keepAlive per adapter.
    #expect(eventually { pod.state()?.present == "Activating" }, "\(node.stderr)")
    #expect(eventually { pod.state()?.present == "Active" }, "\(node.stderr)")
    let first = pod.state()?.pid ?? 0
    #expect(first > 0)
    // The rendered config works for the server: its adapter answers.
    let hello = try TarsCtl(timeoutMs: 3000).ping("Test.HelloServer.HelloObj@tcp -h 127.0.0.1 -p \(pod.adapterPort)")
    #expect((try? hello.first?.result.get()) != nil)

    // Stop its heartbeats: after hearttimeout (2 s) it is restarted as a new process.
    #expect(try pod.ctl(.notify, command: "tars.stopheartbeat") == "heartbeats stopped")
    let stoppedAt = Date()
    #expect(
      eventually(15) {
        guard let now = pod.state() else { return false }
        return now.pid > 0 && now.pid != first && now.present == "Active"
      }, "\(node.stderr)")
    #expect(Date().timeIntervalSince(stoppedAt) >= 1.5)
    #expect(node.stderr.contains("no heartbeat from"), "\(node.stderr)")
  }

  @Test func killedServersComeBackWithBackoff() throws {
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let node = try NodeProcess(pod.arguments(["--backoff-initial", "400", "--backoff-max", "5000"]), dir: pod.dir)
    defer { node.terminate() }
    var pid = try #require(eventually { pod.state()?.present == "Active" } ? pod.state()?.pid : nil)
    var gaps: [Double] = []
    for _ in 0..<3 {
      // Never kill(0): that would be the test's own process group.
      #expect(eventually { (pod.state()?.pid ?? 0) > 0 })
      pid = pod.state()?.pid ?? 0
      try #require(pid > 0)
      kill(pid, SIGKILL)
      let killed = Date()
      #expect(
        eventually(15) {
          let now = pod.state()?.pid ?? 0
          return now > 0 && now != pid
        }, "\(node.stderr)")
      gaps.append(Date().timeIntervalSince(killed))
      _ = eventually { pod.state()?.present == "Active" }
    }
    // 0.4 s, then 0.8 s, then 1.6 s: each crash doubles the wait.
    #expect(gaps[0] >= 0.35 && gaps[1] >= 0.75 && gaps[2] >= 1.5, "gaps \(gaps)\n\(node.stderr)")
    #expect(gaps[2] > gaps[0], "gaps \(gaps)")
    #expect(node.stderr.contains("server exit with signal 9 (unexpected)"))
    // An explicit start or restart does not wait for the backoff.
    let before = pod.state()?.pid ?? 0
    let start = Date()
    #expect(try pod.ctl(.restart) == "Success")
    #expect(
      eventually {
        let now = pod.state()?.pid ?? 0
        return now > 0 && now != before
      })
    #expect(Date().timeIntervalSince(start) < 1.5)
  }

  @Test func nodeObjCommandsAreSignedAndRefusalsSayWhy() throws {
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let secret = pod.dir.file("secret")
    try "0123456789abcdef0123456789abcdef\n".write(toFile: secret, atomically: true, encoding: .utf8)
    // With a secret NodeObj listens on the pod IP (here 127.0.0.2), not on loopback.
    let node = try NodeProcess(pod.arguments(["--secret-file", secret, "--pod-ip", "127.0.0.2"]), dir: pod.dir)
    defer { node.terminate() }
    let ctl = try TarsCtl(timeoutMs: 5000)
    let nodeObj = "tcp -h 127.0.0.2 -p \(pod.nodeObjPort)"
    #expect(
      eventually { (try? ctl.node(.state, node: nodeObj, secretFile: nil))?.contains("present: Active") == true },
      "\(node.stderr)")
    #expect(throws: TarsCtlError.self) {
      try ctl.node(.state, node: "tcp -h 127.0.0.1 -p \(pod.nodeObjPort)", secretFile: nil)
    }

    // Unsigned, stale and wrongly signed calls that change state are refused, with the reason.
    let unsigned = #expect(throws: TarsCtlError.self) { try ctl.node(.stop, node: nodeObj, secretFile: nil) }
    #expect(unsigned?.message.hasPrefix("refused: unsigned") == true, "\(String(describing: unsigned))")
    let other = pod.dir.file("other")
    try "ffffffffffffffffffffffffffffffff".write(toFile: other, atomically: true, encoding: .utf8)
    let wrong = #expect(throws: TarsCtlError.self) { try ctl.node(.stop, node: nodeObj, secretFile: other) }
    #expect(wrong?.message.hasPrefix("refused: bad signature") == true)
    let auth = try NodeCallAuth(secretFile: secret)
    var stale = Node.StopServer.request(servant: "tars.tarsnode.NodeObj", .init(application: "", serverName: ""))
    auth.sign(&stale, target: "test-helloserver-0", timestamp: unixTimeSeconds() - 120)
    let staleResult = try sendRaw(stale, as: Node.StopServer.self, to: nodeObj)
    #expect(staleResult.ret == -1 && staleResult.result.hasPrefix("refused: stale signature"), "\(staleResult)")
    #expect(
      (try? ctl.node(.state, node: nodeObj, secretFile: nil))?.contains("present: Active") == true,
      "nothing was stopped")

    // Signed: stop, start, restart, notify; and a server name that is not this node's.
    #expect(try ctl.node(.stop, node: nodeObj, secretFile: secret) == "Success")
    #expect(eventually { (try? ctl.node(.state, node: nodeObj, secretFile: nil))?.contains("pid: 0") == true })
    let stopped = try ctl.node(.state, node: nodeObj, secretFile: nil)
    #expect(stopped.contains("setting: Inactive") && stopped.contains("present: Inactive"), "\(stopped)")
    #expect(try ctl.node(.start, node: nodeObj, secretFile: secret) == "Success")
    #expect(eventually { (try? ctl.node(.state, node: nodeObj, secretFile: nil))?.contains("present: Active") == true })
    let pidLine = {
      (try? ctl.node(.state, node: nodeObj, secretFile: nil))?.split(separator: "\n").first { $0.hasPrefix("pid:") }
    }
    let before = pidLine()
    #expect(try ctl.node(.restart, node: nodeObj, secretFile: secret) == "Success")
    #expect(eventually { pidLine() != before && pidLine() != "pid: 0" })
    // The new process answers admin commands once it is Active (its AdminObj is bound by then).
    #expect(eventually { (try? ctl.node(.state, node: nodeObj, secretFile: nil))?.contains("present: Active") == true })
    let status = try ctl.node(.notify, node: nodeObj, secretFile: secret, command: "tars.viewstatus")
    #expect(status.hasPrefix("[notify prefix object num:1]\n[1]:app=Test server=HelloServer pid="), "\(status)")
    let stranger = #expect(throws: TarsCtlError.self) {
      try ctl.node(.stop, node: nodeObj, secretFile: secret, app: "Other", server: "Server")
    }
    #expect(stranger?.message == "refused: this node supervises Test.HelloServer, not Other.Server")

    // The command line does the same.
    let viaTool = try Tool.run(
      "tarsctl", ["node", "notify", "tars.setloglevel DEBUG", "--node", nodeObj, "--secret-file", secret])
    #expect(viaTool.status == 0 && viaTool.stdout == "[notify prefix object num:1]\n[1]:set log level [DEBUG] ok\n")
    let refused = try Tool.run("tarsctl", ["node", "restart", "--node", nodeObj])
    #expect(refused.status != 0 && refused.stderr.hasPrefix("tarsctl: refused: unsigned"))
  }

  @Test func withoutASecretNodeObjIsLoopbackOnly() throws {
    // A pod IP that is not loopback (127.x pod IPs are the one-machine mode's): this machine's own.
    guard let podIP = nonLoopbackIPv4() else {
      print("SKIPPED withoutASecretNodeObjIsLoopbackOnly: this machine has no non-loopback IPv4 address")
      return
    }
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let node = try NodeProcess(pod.arguments(["--pod-ip", podIP]), dir: pod.dir)
    defer { node.terminate() }
    #expect(eventually { pod.state()?.present == "Active" }, "\(node.stderr)")
    #expect(throws: TarsCtlError.self) {
      try TarsCtl(timeoutMs: 2000).node(.state, node: "tcp -h \(podIP) -p \(pod.nodeObjPort)", secretFile: nil)
    }
    #expect(node.stderr.contains("no secret: loopback only"))
  }

  @Test func aLoopbackPodIPKeepsServerObjAndAdminObjOnIt() throws {
    // One-machine mode: several pods share the machine, each on its own 127.x address.
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let node = try NodeProcess(pod.arguments(["--pod-ip", "127.0.0.3"]), dir: pod.dir)
    defer { node.terminate() }
    let onPodIP = "tcp -h 127.0.0.3 -p \(pod.nodeObjPort)"
    #expect(
      eventually {
        (try? TarsCtl(timeoutMs: 2000).node(.state, node: onPodIP, secretFile: nil))?.contains("present: Active")
          == true
      }, "\(node.stderr)")
    #expect(node.stderr.contains("ServerObj on 127.0.0.3:\(pod.serverObjPort)"), "\(node.stderr)")
    let config = try String(
      contentsOfFile: pod.dir.file("base/conf/Test.HelloServer.config.conf"), encoding: .utf8)
    #expect(config.contains("local=tcp -h 127.0.0.3 -p \(pod.adminPort) -t 3000"))
    #expect(config.contains("node=tars.tarsnode.ServerObj@tcp -h 127.0.0.3 -p \(pod.serverObjPort) -t 60000"))
    #expect(throws: TarsCtlError.self) { try pod.ctl(.state) }  // nothing on 127.0.0.1
  }

  @Test func heartbeatsFromOtherServersAreRefused() throws {
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let node = try NodeProcess(pod.arguments(), dir: pod.dir)
    defer { node.terminate() }
    #expect(eventually { pod.state()?.present == "Active" }, "\(node.stderr)")
    let loop = try TarsEventLoop()
    let proxy = TarsProxy(
      client: TarsClient(loop: loop),
      address: try TarsObjectAddress(parsing: "tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p \(pod.serverObjPort)"))
    // TarsGo's normal calls are answered: 0 for this pod's server, −1 for any other, including
    // a matching application with another server name (K8SFramework's `&&` accepted that).
    for (app, server, expected) in [
      ("Test", "HelloServer", Int32(0)), ("Test", "Other", -1), ("Other", "HelloServer", -1),
    ] {
      let r = try proxy.callBlocking(
        ServerF.KeepAlive.self, .init(serverInfo: ServerInfo(application: app, serverName: server, pid: 1, adapter: ""))
      )
      #expect(r.ret == expected, "\(app).\(server)")
    }
    #expect(
      try proxy.callBlocking(ServerF.ReportVersion.self, .init(app: "Test", serverName: "HelloServer", version: "9"))
        .ret == 0)
    #expect(try pod.ctl(.state).contains("version: 9"))
  }
}

/// The first IPv4 address of an interface that is up and not loopback.
func nonLoopbackIPv4() -> String? {
  var list: UnsafeMutablePointer<ifaddrs>?
  guard getifaddrs(&list) == 0 else { return nil }
  defer { freeifaddrs(list) }
  var p = list
  while let a = p {
    defer { p = a.pointee.ifa_next }
    guard let addr = a.pointee.ifa_addr, addr.pointee.sa_family == sa_family_t(AF_INET),
      a.pointee.ifa_flags & UInt32(IFF_LOOPBACK) == 0, a.pointee.ifa_flags & UInt32(IFF_UP) != 0
    else { continue }
    var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
    guard
      getnameinfo(addr, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
        == 0
    else { continue }
    return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
  return nil
}
