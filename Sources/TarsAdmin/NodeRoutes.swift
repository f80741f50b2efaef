import Hummingbird
import TarsAdminAPI
import TarsAgentF
import TarsAuth
import TarsKube
import TarsProtocol

/// A node's ports, from the tarsagent on it (`tars.tarsagent.AgentObj`, on the node's address
/// since the agent runs on the host network): what holds which port, and free host ports. The
/// calls are signed with the node secret for that node, as NodeObj calls are for their pod.
extension AdminRoutes {
  func registerNodes(on g: RouterGroup<BasicRequestContext>) {
    g.get("nodes/:node/ports") { request, context in
      let node = try context.parameters.require("node")
      let all = request.uri.queryParameters["all"] == "true"
      let result = try await callAgent(node: node, Agent.ListPorts.self, .init(allNamespaces: all))
      guard result.ret == 0 else { throw HTTPError(.badGateway, message: "tarsagent on \(node): \(result.result)") }
      // Pods by uid, to name the Tars pod that holds a port.
      var pods: [String: String] = [:]
      for o in d.pods.objects.values { pods[o.uid] = o.name }
      return result.ports.map { p in
        NodePortRow(
          transport: p.transport, address: p.address, port: Int(p.port), pids: p.pids.map(Int.init),
          command: p.command, pod: pods[p.podUID] ?? "", podUID: p.podUID, namespace: p.namespace)
      }
    }
    g.get("nodes/:node/ports/free") { request, context in
      let node = try context.parameters.require("node")
      let q = request.uri.queryParameters
      let transport = q["transport"].map(String.init) ?? "tcp"
      guard let first = Int32(q["first"].map(String.init) ?? "30000"),
        let last = Int32(q["last"].map(String.init) ?? "32767"),
        let count = Int32(q["count"].map(String.init) ?? "1")
      else { throw HTTPError(.badRequest, message: "first, last and count must be numbers") }
      let result = try await callAgent(
        node: node, Agent.FreePorts.self, .init(transport: transport, first: first, last: last, count: count))
      guard result.ret == 0 else {
        throw HTTPError(result.ret == -3 ? .badRequest : .badGateway, message: "tarsagent on \(node): \(result.result)")
      }
      return FreePortsRow(node: node, transport: transport, ports: result.ports.map(Int.init), message: result.result)
    }
  }

  /// Calls the agent on `node`, signed for it; 404 when no agent runs there.
  func callAgent<M: TarsMethod>(node: String, _ method: M.Type, _ args: M.Args) async throws -> M.Result {
    let agents = try await storeCall {
      try await d.store.list(
        .pods, namespace: d.namespace,
        options: ListOptions(
          labelSelector: try LabelSelector(parsing: "app.kubernetes.io/name=tars-tarsagent"),
          fieldSelector: "spec.nodeName=\(node)"))
    }
    guard let ip = agents.items.lazy.compactMap({ $0.value("status.podIP")?.stringValue }).first else {
      throw HTTPError(
        .notFound,
        message:
          "no running tarsagent on node \(node): label the node tars.io/node, or check kubectl -n \(d.namespace) get pods -l app.kubernetes.io/name=tars-tarsagent -o wide"
      )
    }
    var request = M.request(servant: "tars.tarsagent.AgentObj", args, options: TarsCallOptions(timeoutMs: 10_000))
    d.nodeAuth.sign(&request, target: node, timestamp: unixTimeSeconds())
    do {
      let response = try await d.nodeClient.invoke(
        request, to: TarsEndpoint(host: ip, port: d.agentPort, timeout: 10_000), timeoutMs: 10_000)
      return try M.result(from: response)
    } catch {
      throw HTTPError(.badGateway, message: "tarsagent on \(node) at \(ip):\(d.agentPort): \(error)")
    }
  }
}
