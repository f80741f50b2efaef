import Glibc
import TarsProtocol
import TarsRPC

/// A socket that takes a port: TCP in LISTEN, or a bound UDP socket.
public struct ListeningSocket: Sendable, Equatable, Hashable {
  public enum Transport: String, Sendable, CaseIterable { case tcp, udp }
  public var transport: Transport
  /// The local address as text (`0.0.0.0`, `::`, `10.1.0.5`).
  public var address: String
  public var port: Int
  public var inode: UInt64
  public var uid: Int

  public init(transport: Transport, address: String, port: Int, inode: UInt64, uid: Int) {
    self.transport = transport
    self.address = address
    self.port = port
    self.inode = inode
    self.uid = uid
  }
}

/// `/proc/net/{tcp,tcp6,udp,udp6}`: one line per socket, addresses in hex in the kernel's byte
/// order (an IPv4 address as one little-endian 32-bit word, an IPv6 one as four).
public enum ProcNet {
  /// The listening sockets in `text`, the whole of a `/proc/net/…` file.
  public static func listening(_ text: String, transport: ListeningSocket.Transport) -> [ListeningSocket] {
    var text = text
    return text.withUTF8 { all in
      all.split(separator: UInt8(ascii: "\n")).dropFirst().compactMap {
        socket(UnsafeBufferPointer(rebasing: $0), transport)
      }
    }
  }

  /// The listening sockets in the `/proc/net/…` file at `path`, read a line at a time: a node's
  /// thousands of connections are kept from memory, only the few that listen are.
  public static func listening(path: String, transport: ListeningSocket.Transport) throws(FileError)
    -> [ListeningSocket]
  {
    var out: [ListeningSocket] = []
    var header = true
    try Files.forEachLine(path) { line in
      if header {
        header = false
      } else if let s = socket(line, transport) {
        out.append(s)
      }
    }
    return out
  }

  /// One line (`sl local_address rem_address st … uid timeout inode …`), if it is a socket that
  /// takes a port: TCP in LISTEN (0A), or UDP bound and not connected (07, TCP_CLOSE).
  static func socket(_ line: UnsafeBufferPointer<UInt8>, _ transport: ListeningSocket.Transport) -> ListeningSocket? {
    let f = line.split(separator: UInt8(ascii: " "), maxSplits: 10, omittingEmptySubsequences: true)
    // Short digit strings are stored inline: parsing makes no allocation.
    func number(_ digits: Slice<UnsafeBufferPointer<UInt8>>, radix: Int) -> UInt64? {
      UInt64(String(decoding: digits, as: UTF8.self), radix: radix)
    }
    guard f.count >= 10, f[3].elementsEqual((transport == .tcp ? "0A" : "07").utf8),
      let colon = f[1].firstIndex(of: UInt8(ascii: ":")),
      let port = number(f[1][(colon + 1)...], radix: 16), let uid = number(f[7], radix: 10),
      let inode = number(f[9], radix: 10),
      port > 0  // a UDP socket bound to no port yet takes nothing
    else { return nil }
    let hex = String(decoding: f[1][..<colon], as: UTF8.self)
    return ListeningSocket(transport: transport, address: address(hex), port: Int(port), inode: inode, uid: Int(uid))
  }

  /// `0100007F` → `127.0.0.1`; 32 hex digits → an IPv6 address (compressed as inet_ntop does).
  static func address(_ hex: String) -> String {
    let bytes = Array(hex.utf8)
    func word(_ i: Int) -> UInt32 { UInt32(String(decoding: bytes[i..<i + 8], as: UTF8.self), radix: 16) ?? 0 }
    if bytes.count == 8 {
      let w = word(0)
      return "\(w & 0xff).\((w >> 8) & 0xff).\((w >> 16) & 0xff).\(w >> 24)"
    }
    guard bytes.count == 32 else { return hex }
    var raw = [UInt8](repeating: 0, count: 16)
    for i in 0..<4 {
      let w = word(i * 8)
      for b in 0..<4 { raw[i * 4 + b] = UInt8((w >> (8 * UInt32(b))) & 0xff) }
    }
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    _ = raw.withUnsafeBytes { inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) }
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}

/// Who takes which ports, in each network namespace of this machine: the host's and every pod's.
public struct PortScanner: Sendable {
  public var proc: Proc

  public init(proc: Proc = Proc()) { self.proc = proc }

  /// A port in use and what holds it.
  public struct Holder: Sendable, Equatable {
    public var socket: ListeningSocket
    /// The processes holding the socket (pid, command), and the pod of the first, if any.
    public var pids: [Int32]
    public var command: String
    public var podUID: String?
  }

  /// One network namespace: its inode, its processes, and what listens in it.
  public struct Namespace: Sendable {
    public var inode: UInt64
    public var pids: [Int32]
    public var listening: [Holder]
    /// The pod these processes belong to (nil: the host's, or no pod's).
    public var podUID: String?
  }

  /// Every network namespace with a process in it, with its listening sockets and their holders.
  public func scan() -> [Namespace] {
    var byNamespace: [UInt64: [Int32]] = [:]
    for pid in proc.pids() {
      guard let ns = proc.networkNamespace(of: pid) else { continue }
      byNamespace[ns, default: []].append(pid)
    }
    return byNamespace.keys.sorted().map { inode in
      let pids = byNamespace[inode]!
      return namespace(inode: inode, pids: pids)
    }
  }

  /// The namespace `pid` is in (the host's: pid 1, or the agent's own). With `ports`, only the
  /// sockets on those ports: what a host-port check needs, on a node that may hold thousands.
  public func namespace(of pid: Int32, ports: Set<Int>? = nil) -> Namespace? {
    guard let inode = proc.networkNamespace(of: pid) else { return nil }
    let pids = proc.pids().filter { proc.networkNamespace(of: $0) == inode }
    return namespace(inode: inode, pids: pids, ports: ports)
  }

  func namespace(inode: UInt64, pids: [Int32], ports: Set<Int>? = nil) -> Namespace {
    // One process's view of /proc/PID/net is its namespace's; any live one will do.
    var sockets: [ListeningSocket] = []
    for pid in pids {
      var read = false
      for (file, transport) in [("tcp", ListeningSocket.Transport.tcp), ("tcp6", .tcp), ("udp", .udp), ("udp6", .udp)] {
        guard let found = try? ProcNet.listening(path: "\(proc.root)/\(pid)/net/\(file)", transport: transport)
        else { continue }
        sockets += ports.map { ports in found.filter { ports.contains($0.port) } } ?? found
        read = true
      }
      if read { break }
    }
    var owners: [UInt64: [Int32]] = [:]
    let wanted = Set(sockets.map(\.inode))
    for pid in pids {
      for inode in proc.sockets(of: pid) where wanted.contains(inode) { owners[inode, default: []].append(pid) }
    }
    // A process holding many sockets is read once, not once a socket.
    var described: [Int32: (command: String, podUID: String?)] = [:]
    func describe(_ pid: Int32) -> (command: String, podUID: String?) {
      if let known = described[pid] { return known }
      let d = (proc.command(of: pid), proc.podUID(of: pid))
      described[pid] = d
      return d
    }
    let holders = sockets.map { s -> Holder in
      let pids = owners[s.inode] ?? []
      let d = pids.first.map(describe)
      return Holder(socket: s, pids: pids, command: d?.command ?? "", podUID: d?.podUID)
    }.sorted { ($0.socket.port, $0.socket.transport.rawValue) < ($1.socket.port, $1.socket.transport.rawValue) }
    let pod = pids.lazy.compactMap { proc.podUID(of: $0) }.first
    return Namespace(inode: inode, pids: pids, listening: holders, podUID: pod)
  }

  /// The first `count` ports of `range` nothing in `namespace` takes for `transport` (any address).
  public static func freePorts(
    in range: ClosedRange<Int>, transport: ListeningSocket.Transport, namespace: Namespace, count: Int = 1
  ) -> [Int] {
    let taken = Set(namespace.listening.filter { $0.socket.transport == transport }.map(\.socket.port))
    return Array(range.lazy.filter { !taken.contains($0) }.prefix(count))
  }
}

/// A host port a pod asks for that something else holds.
public struct PortConflict: Sendable, Equatable {
  public var pod: String
  public var port: Int
  public var transport: ListeningSocket.Transport
  public var holder: PortScanner.Holder

  /// What the pod's Event says.
  public var message: String {
    let who = holder.podUID.map { "pod \($0)" } ?? "a process on the host"
    return
      "host port \(port)/\(transport.rawValue) is held by \(who): pid \(holder.pids.map(String.init).joined(separator: ",")) (\(holder.command))"
  }
}

/// A pod that takes host ports (hostNetwork, or hostPort in its spec), as the agent sees it.
public struct HostPortPod: Sendable {
  public var name: String
  public var uid: String
  public var ports: [(port: Int, transport: ListeningSocket.Transport)]
  public init(name: String, uid: String, ports: [(port: Int, transport: ListeningSocket.Transport)]) {
    self.name = name
    self.uid = uid
    self.ports = ports
  }
}

extension PortScanner {
  /// The host ports pods ask for that a process of another pod, or of the host, holds.
  public static func conflicts(_ pods: [HostPortPod], host: Namespace) -> [PortConflict] {
    var out: [PortConflict] = []
    for pod in pods {
      for (port, transport) in pod.ports {
        for h in host.listening where h.socket.port == port && h.socket.transport == transport && h.podUID != pod.uid {
          out.append(PortConflict(pod: pod.name, port: port, transport: transport, holder: h))
          break
        }
      }
    }
    return out
  }
}

extension HostPortPod {
  /// The pods of a PodList (the node's, as the agent lists them) that take host ports: every
  /// container port of a hostNetwork pod, the `hostPort`s of the others. Pods that have ended
  /// take none.
  public static func from(podList json: JSONValue) -> [HostPortPod] {
    guard case .array(let items)? = json["items"] else { return [] }
    return items.compactMap { pod in
      let phase = pod["status"]?["phase"]?.stringValue
      guard phase != "Succeeded", phase != "Failed", let name = pod["metadata"]?["name"]?.stringValue else {
        return nil
      }
      let hostNetwork: Bool
      if case .bool(true)? = pod["spec"]?["hostNetwork"] { hostNetwork = true } else { hostNetwork = false }
      var ports: [(port: Int, transport: ListeningSocket.Transport)] = []
      guard case .array(let containers)? = pod["spec"]?["containers"] else { return nil }
      for container in containers {
        guard case .array(let declared)? = container["ports"] else { continue }
        for p in declared {
          let number = hostNetwork ? p["containerPort"]?.intValue : p["hostPort"]?.intValue
          guard let number, (1...65535).contains(number) else { continue }
          ports.append((Int(number), p["protocol"]?.stringValue == "UDP" ? .udp : .tcp))
        }
      }
      guard !ports.isEmpty else { return nil }
      return HostPortPod(name: name, uid: pod["metadata"]?["uid"]?.stringValue ?? "", ports: ports)
    }
  }
}
