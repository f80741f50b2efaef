import Foundation
import Glibc
import TarsAgentCore
import TarsProtocol
import TarsTestSupport
import Testing

/// Ports and their owners read from /proc, with real listeners in the host's network namespace
/// and in a pod-like one (`ip netns`, joined to the host by a veth pair).
@Suite(
  "Ports from /proc", .serialized,
  .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: ipTool), "needs root and ip(8)"))
struct PortTests {
  static let ip = ipTool

  /// A Python listener (TCP or UDP on `address:port`), spawned by `argv`'s prefix (`ip netns exec`).
  static func listener(_ transport: String, _ address: String, _ port: Int, prefix: [String] = []) throws -> pid_t {
    let family = address.contains(":") ? "AF_INET6" : "AF_INET"
    let kind = transport == "tcp" ? "SOCK_STREAM" : "SOCK_DGRAM"
    let script = """
      import socket, time
      s = socket.socket(socket.\(family), socket.\(kind))
      s.bind(('\(address)', \(port)))
      \(transport == "tcp" ? "s.listen(8)" : "")
      time.sleep(600)
      """
    return try Spawned.start(prefix + ["/usr/bin/python3", "-c", script])
  }

  /// Waits until `pid` holds a socket on `port`; the namespace then.
  static func held(_ port: Int, by pid: pid_t, scanner: PortScanner) throws -> PortScanner.Namespace {
    for _ in 0..<100 {
      if let ns = scanner.namespace(of: pid),
        ns.listening.contains(where: { $0.socket.port == port && $0.pids.contains(pid) })
      {
        return ns
      }
      usleep(50_000)
    }
    throw TestFailure("pid \(pid) never held port \(port)")
  }

  @Test func listenersInTheHostAndInAPodNamespaceAreFoundWithTheirOwners() throws {
    let tag = String(getpid() % 10_000)
    let ns = "tars-agent-\(tag)"
    let (host, pod) = ("vh\(tag)", "vp\(tag)")
    let net = "10.\(200 + Int(getpid() % 50)).\(Int(getpid() % 250)).0"
    let prefix = net.dropLast(2)
    for argv in [
      ["netns", "add", ns], ["link", "add", host, "type", "veth", "peer", "name", pod],
      ["link", "set", pod, "netns", ns], ["addr", "add", "\(prefix).1/24", "dev", host], ["link", "set", host, "up"],
      ["-n", ns, "addr", "add", "\(prefix).2/24", "dev", pod], ["-n", ns, "link", "set", pod, "up"],
      ["-n", ns, "link", "set", "lo", "up"],
    ] {
      let r = try Tool.run(Self.ip, argv)
      #expect(r.status == 0, "ip \(argv.joined(separator: " ")): \(r.stderr)")
    }
    defer {
      _ = try? Tool.run(Self.ip, ["link", "del", host])
      _ = try? Tool.run(Self.ip, ["netns", "del", ns])
    }
    let (tcpPort, udpPort, podPort, pod6Port) = (freePort(), freePort(), freePort(), freePort())
    let hostTCP = try Self.listener("tcp", "127.0.0.1", tcpPort)
    let hostUDP = try Self.listener("udp", "0.0.0.0", udpPort)
    let podTCP = try Self.listener("tcp", "\(prefix).2", podPort, prefix: [Self.ip, "netns", "exec", ns])
    let podTCP6 = try Self.listener("tcp", "::", pod6Port, prefix: [Self.ip, "netns", "exec", ns])
    defer { for p in [hostTCP, hostUDP, podTCP, podTCP6] { Spawned.kill(p) } }

    let scanner = PortScanner()
    let hostNS = try Self.held(tcpPort, by: hostTCP, scanner: scanner)
    let tcp = try #require(hostNS.listening.first { $0.socket.port == tcpPort })
    #expect(
      tcp.socket
        == ListeningSocket(transport: .tcp, address: "127.0.0.1", port: tcpPort, inode: tcp.socket.inode, uid: 0))
    #expect(tcp.command == "python3")
    let udpNS = try Self.held(udpPort, by: hostUDP, scanner: scanner)
    #expect(
      udpNS.listening.contains {
        $0.socket.transport == .udp && $0.socket.address == "0.0.0.0" && $0.socket.port == udpPort
      })

    // The pod's namespace is another one, with its own sockets; the host's does not see them.
    let podNS = try Self.held(podPort, by: podTCP, scanner: scanner)
    #expect(podNS.inode != hostNS.inode)
    #expect(podNS.listening.contains { $0.socket.address == "\(prefix).2" && $0.socket.port == podPort })
    _ = try Self.held(pod6Port, by: podTCP6, scanner: scanner)
    let six = try #require(scanner.namespace(of: podTCP6)?.listening.first { $0.socket.port == pod6Port })
    #expect(six.socket.address == "::" && six.pids == [podTCP6])
    #expect(!hostNS.listening.contains { $0.socket.port == podPort })
    // The whole-machine scan finds both namespaces.
    let all = scanner.scan()
    #expect(all.contains { $0.inode == podNS.inode && $0.pids.contains(podTCP) })
    let free = (podPort + 1...podPort + 2).first { $0 != pod6Port }
    let podNow = try #require(scanner.namespace(of: podTCP))
    #expect(PortScanner.freePorts(in: podPort...podPort + 2, transport: .tcp, namespace: podNow).first == free)
    #expect(PortScanner.freePorts(in: podPort...podPort, transport: .udp, namespace: podNow) == [podPort])
  }

  @Test func aTakenHostPortIsReportedWithItsHolder() throws {
    let port = freePort()
    let holder = try Self.listener("tcp", "0.0.0.0", port)
    defer { Spawned.kill(holder) }
    let host = try Self.held(port, by: holder, scanner: PortScanner())
    let pod = HostPortPod(name: "test-hostserver-0", uid: "6f1c1b0e-1111-4222-8333-944455556666", ports: [(port, .tcp)])
    let conflicts = PortScanner.conflicts([pod], host: host)
    #expect(conflicts.count == 1)
    #expect(conflicts.first?.message.contains("pid \(holder) (python3)") == true, "\(conflicts.first?.message ?? "")")
    #expect(conflicts.first?.message.contains("a process on the host") == true)
    // A port nobody holds is no conflict.
    #expect(PortScanner.conflicts([HostPortPod(name: "p", uid: "u", ports: [(freePort(), .udp)])], host: host).isEmpty)
  }

  /// The node's pods as the API lists them: which take host ports, and which.
  @Test func podListsGiveTheHostPortsPodsTake() throws {
    // A real PodList (kube-apiserver 1.28): pods without host ports take none.
    let recorded = try String(
      contentsOf: Fixtures.directory.appendingPathComponent("kube/015_list_pods_limit1_no_selector/response.body"),
      encoding: .utf8)
    #expect(HostPortPod.from(podList: try JSONValue(parsing: recorded)).isEmpty)
    let list = try JSONValue(
      parsing: """
        {"kind": "PodList", "items": [
          {"metadata": {"name": "test-hostnet-0", "uid": "u1"}, "spec": {"hostNetwork": true, "containers": [
            {"name": "a", "ports": [{"containerPort": 10015}, {"containerPort": 10016, "protocol": "UDP"}]}]}},
          {"metadata": {"name": "test-hostport-0", "uid": "u2"}, "spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 10015, "hostPort": 30015}, {"containerPort": 9000}]}]}},
          {"metadata": {"name": "test-done-0", "uid": "u3"}, "status": {"phase": "Succeeded"},
           "spec": {"hostNetwork": true, "containers": [{"name": "a", "ports": [{"containerPort": 1}]}]}},
          {"metadata": {"name": "test-plain-0", "uid": "u4"}, "spec": {"containers": [{"name": "a"}]}}
        ]}
        """)
    let pods = HostPortPod.from(podList: list)
    #expect(pods.map(\.name) == ["test-hostnet-0", "test-hostport-0"])
    #expect(pods[0].ports.map(\.port) == [10015, 10016] && pods[0].ports.map(\.transport) == [.tcp, .udp])
    #expect(pods[1].ports.map(\.port) == [30015] && pods[1].uid == "u2")
  }

  @Test func cgroupPathsNameThePod() {
    let systemd =
      "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6f1c1b0e_1111_4222_8333_944455556666.slice/cri-containerd-abc.scope\n"
    let cgroupfs = "0::/kubepods/burstable/pod6f1c1b0e-1111-4222-8333-944455556666/0123abcd\n"
    #expect(Proc.podUID(cgroup: systemd) == "6f1c1b0e-1111-4222-8333-944455556666")
    #expect(Proc.podUID(cgroup: cgroupfs) == "6f1c1b0e-1111-4222-8333-944455556666")
    #expect(Proc.podUID(cgroup: "0::/user.slice/user-0.slice/session-1.scope\n") == nil)
  }

  /// A /proc/net file of 3,000 sockets, read 16 KiB at a time, gives what reading it whole gives:
  /// across chunk boundaries, past a line longer than the buffer, and up to a last line without
  /// its newline.
  @Test func procNetFilesAreReadALineAtATime() throws {
    var lines = ["  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"]
    for i in 0..<3000 {
      let port = String(1024 + i, radix: 16, uppercase: true)
      let state = i % 3 == 0 || i == 2999 ? "0A" : "01"
      lines.append(
        "\(i): 0100007F:\(port) 00000000:0000 \(state) 00000000:00000000 00:00000000 00000000  1000        0 \(50000 + i) 1 0000000000000000 100 0 0 10 0"
      )
    }
    lines.insert("  9999: " + String(repeating: "x", count: 40_000), at: 1500)
    let text = lines.joined(separator: "\n")
    let path = NSTemporaryDirectory() + "procnet-\(getpid())"
    try text.write(toFile: path, atomically: false, encoding: .utf8)
    defer { unlink(path) }
    let read = try ProcNet.listening(path: path, transport: .tcp)
    #expect(read.count == 1001)
    #expect(read == ProcNet.listening(text, transport: .tcp))
    #expect(
      read.last == ListeningSocket(transport: .tcp, address: "127.0.0.1", port: 1024 + 2999, inode: 52999, uid: 1000))
  }

  @Test func procNetLinesParse() {
    let tcp = """
        sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
         0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
         1: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0000000000000000 20 4 30 10 -1
      """
    #expect(
      ProcNet.listening(tcp, transport: .tcp) == [
        ListeningSocket(transport: .tcp, address: "127.0.0.1", port: 8080, inode: 12345, uid: 0)
      ])
    let tcp6 = """
        sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
         0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
      """
    #expect(ProcNet.listening(tcp6, transport: .tcp).first?.address == "::1")
  }
}

let ipTool = "/usr/sbin/ip"
