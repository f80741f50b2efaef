import Glibc
import TarsAgentF
import TarsAuth
import TarsProtocol

/// `tars.tarsagent.AgentObj`: the node's ports, for the admin API (`tarsctl node ports`) and
/// anyone choosing a host port. It says which processes run on the node, so with a secret
/// every call must be signed for this node (`NodeCallAuth`, the NodeObj signature, its target
/// the node's name) and is good once; without one (a test, a laptop) calls are open.
public final class AgentObjServant: AgentServant {
  public static let name = "tars.tarsagent.AgentObj"
  /// Beside tarsnode's 19385-19387.
  public static let defaultPort = 19388

  let node: String
  let auth: NodeCallAuth?
  let scanner: PortScanner
  let log: (String) -> Void
  var replays = ReplayGuard()

  public init(node: String, auth: NodeCallAuth?, scanner: PortScanner = PortScanner(), log: @escaping (String) -> Void)
  {
    self.node = node
    self.auth = auth
    self.scanner = scanner
    self.log = log
  }

  /// Why the call is refused, or nil.
  func refusal(_ current: TarsCurrent) -> String? {
    guard let auth else { return nil }
    do {
      let now = unixTimeSeconds()
      try replays.admit(try auth.verify(current.request, target: node, now: now), now: now)
      return nil
    } catch {
      log("tarsagent: refused \(current.request.sFuncName) from \(current.peer.map(\.description) ?? "?"): \(error)")
      return "refused: \(error)"
    }
  }

  /// The agent's own network namespace is the node's (it runs on the host network).
  var host: PortScanner.Namespace? { scanner.namespace(of: getpid()) }

  public func listPorts(allNamespaces: Bool, current: TarsCurrent) throws -> Agent.ListPorts.Result {
    if let refused = refusal(current) { return .init(ret: -1, ports: [], result: refused) }
    guard let host else { return .init(ret: -2, ports: [], result: "cannot read this node's network namespace") }
    var out = host.listening.map { Self.holder($0, namespace: "host") }
    if allNamespaces {
      for ns in scanner.scan() where ns.inode != host.inode {
        out += ns.listening.map { Self.holder($0, namespace: "net:[\(ns.inode)]") }
      }
    }
    return .init(ret: 0, ports: out, result: "\(out.count) ports")
  }

  public func freePorts(transport: String, first: Int32, last: Int32, count: Int32, current: TarsCurrent) throws
    -> Agent.FreePorts.Result
  {
    if let refused = refusal(current) { return .init(ret: -1, ports: [], result: refused) }
    guard let t = ListeningSocket.Transport(rawValue: transport) else {
      return .init(ret: -3, ports: [], result: "transport '\(transport)': use tcp or udp")
    }
    guard 1 <= first, first <= last, last <= 65535, (1...1000).contains(count) else {
      return .init(ret: -3, ports: [], result: "ask for 1 to 1000 ports in a range within 1-65535 (first ≤ last)")
    }
    guard let host else { return .init(ret: -2, ports: [], result: "cannot read this node's network namespace") }
    let free = PortScanner.freePorts(in: Int(first)...Int(last), transport: t, namespace: host, count: Int(count))
    return .init(
      ret: 0, ports: free.map { Int32($0) },
      result: free.count < count ? "only \(free.count) free in \(first)-\(last)" : "\(free.count) free")
  }

  static func holder(_ h: PortScanner.Holder, namespace: String) -> PortHolder {
    var p = PortHolder()
    p.transport = h.socket.transport.rawValue
    p.address = h.socket.address
    p.port = Int32(h.socket.port)
    p.pids = h.pids
    p.command = h.command
    p.podUID = h.podUID ?? ""
    p.namespace = namespace
    return p
  }
}
