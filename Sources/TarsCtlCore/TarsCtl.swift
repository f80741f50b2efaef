import TarsAuth
import TarsFramework
import TarsProtocol
import TarsRPC

/// A command failed: one line that says what went wrong.
public struct TarsCtlError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// The operator's protocol tools, as functions the `tarsctl` executable and the tests call.
/// Each call runs its own event loop and returns when the answer (or the timeout) is in.
public struct TarsCtl {
  public var timeoutMs: Int
  let loop: TarsEventLoop
  let client: TarsClient

  public init(timeoutMs: Int = 3000) throws(TarsCtlError) {
    self.timeoutMs = timeoutMs
    do {
      loop = try TarsEventLoop()
    } catch {
      throw TarsCtlError("cannot start: \(error)")
    }
    client = TarsClient(loop: loop, options: .init(connectTimeoutMs: timeoutMs))
  }

  static func address(_ text: String, defaultName: String? = nil) throws(TarsCtlError) -> TarsObjectAddress {
    var text = text
    // A bare endpoint ("tcp -h … -p …") addresses `defaultName` there.
    if let defaultName, let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).first,
      TarsEndpoint.Transport(rawValue: first.lowercased()) != nil
    {
      text = defaultName + "@" + text
    }
    do {
      return try TarsObjectAddress(parsing: text)
    } catch {
      throw TarsCtlError(error.description)
    }
  }

  func blocking<T>(_ start: (@escaping (Result<T, TarsCallError>) -> Void) -> Void) throws(TarsCtlError) -> T {
    var outcome: Result<T, TarsCallError>?
    start { outcome = $0 }
    loop.run(until: { outcome != nil })
    switch outcome! {
    case .success(let v): return v
    case .failure(let e): throw TarsCtlError(e.description)
    }
  }

  public struct PingResult: Sendable {
    public var endpoint: TarsEndpoint
    /// Round trip in milliseconds, or the failure.
    public var result: Result<Double, TarsCtlError>
  }

  /// `tars_ping` every endpoint of `address` (or, by name, the locator's active endpoints).
  public func ping(_ address: String, locator: String? = nil) throws(TarsCtlError) -> [PingResult] {
    var target = try Self.address(address)
    if target.endpoints.isEmpty {
      guard let locator else {
        throw TarsCtlError("\(target.name) has no endpoints; give '\(target.name)@tcp -h HOST -p PORT' or --locator")
      }
      let (active, _) = try query(locator: locator, name: target.name)
      guard !active.isEmpty else { throw TarsCtlError("the locator knows no active endpoint of \(target.name)") }
      target.endpoints = active
    }
    var results: [PingResult] = []
    for endpoint in target.endpoints {
      let request = RequestPacket(
        iVersion: 1, cPacketType: 0, iMessageType: 0, iRequestId: 0, sServantName: target.name, sFuncName: "tars_ping",
        sBuffer: [], iTimeout: Int32(clamping: timeoutMs), context: [:], status: [:])
      let start = TarsEventLoop.now()
      do throws(TarsCtlError) {
        let reply = try blocking { client.invoke(request, to: endpoint, timeoutMs: timeoutMs, completion: $0) }
        let elapsed = Double(TarsEventLoop.now() - start) / 1_000_000
        do {
          try reply.checkSuccess()
          results.append(PingResult(endpoint: endpoint, result: .success(elapsed)))
        } catch {
          results.append(PingResult(endpoint: endpoint, result: .failure(TarsCtlError(error.description))))
        }
      } catch {
        results.append(PingResult(endpoint: endpoint, result: .failure(error)))
      }
    }
    return results
  }

  /// Asks the locator for the active and inactive endpoints of `name` (findObjectById4Any).
  public func query(locator: String, name: String) throws(TarsCtlError) -> (
    active: [TarsEndpoint], inactive: [TarsEndpoint]
  ) {
    let proxy = TarsProxy(client: client, address: try Self.address(locator, defaultName: "tars.tarsregistry.QueryObj"))
    let r = try blocking {
      proxy.call(QueryF.FindObjectById4Any.self, .init(id: name), options: .init(timeoutMs: timeoutMs), completion: $0)
    }
    guard r.ret == 0 else { throw TarsCtlError("the locator answered \(r.ret) for \(name)") }
    return (r.activeEp.map(TarsEndpoint.init), r.inactiveEp.map(TarsEndpoint.init))
  }

  /// Sends `command` to a server's AdminObj (`AdminF.notify`) and returns its reply.
  public func admin(_ endpoint: String, command: String) throws(TarsCtlError) -> String {
    let proxy = TarsProxy(client: client, address: try Self.address(endpoint, defaultName: "AdminObj"))
    return try blocking {
      proxy.call(AdminF.Notify.self, .init(command: command), options: .init(timeoutMs: timeoutMs), completion: $0)
    }.ret
  }
}

extension TarsCtl {
  /// What `tarsctl node` can ask one tarsnode.
  public enum NodeAction: String, CaseIterable, Sendable {
    case state, start, stop, restart, notify
  }

  /// Calls one tarsnode's NodeObj directly, signing the call when a secret file is given — for
  /// the pod `pod`, or, without it, for the pod the node names in its (unsigned) state.
  /// Returns the node's answer; a refusal or failure throws.
  public func node(
    _ action: NodeAction, node: String, secretFile: String?, pod: String? = nil, app: String = "", server: String = "",
    command: String = "", note: (String) -> Void = { _ in }
  ) throws(TarsCtlError) -> String {
    let address = try Self.address(node, defaultName: "tars.tarsnode.NodeObj")
    let auth: NodeCallAuth?
    do {
      auth = try secretFile.map { path throws(NodeAuthError) in try NodeCallAuth(secretFile: path) }
    } catch {
      throw TarsCtlError(error.message)
    }
    let proxy = TarsProxy(client: client, address: address)
    var target = pod
    func call<M: TarsMethod>(_ m: M.Type, _ args: M.Args) throws(TarsCtlError) -> M.Result {
      var request = M.request(servant: address.name, args, options: .init(timeoutMs: timeoutMs))
      if let auth, M.self != Node.GetStateInfo.self {
        if target == nil {
          let state = try call(Node.GetStateInfo.self, .init(application: "", serverName: ""))
          guard state.ret == 0, !state.info.nodeName.isEmpty else {
            throw TarsCtlError("the node did not say its pod name (\(state.result)): pass --pod")
          }
          target = state.info.nodeName
          // The name comes from an unsigned answer: say whom the signature is for.
          note("signing for pod \(state.info.nodeName), the name the node reports (--pod pins it)")
        }
        auth.sign(&request, target: target ?? "", timestamp: unixTimeSeconds())
      }
      let reply = try blocking { proxy.invoke(request, timeoutMs: timeoutMs, completion: $0) }
      do {
        return try M.result(from: reply)
      } catch {
        throw TarsCtlError(error.description)
      }
    }
    func check(_ ret: Int32, _ result: String) throws(TarsCtlError) -> String {
      guard ret == 0 else { throw TarsCtlError(result.isEmpty ? "the node answered \(ret)" : result) }
      return result
    }
    switch action {
    case .state:
      let r = try call(Node.GetStateInfo.self, .init(application: app, serverName: server))
      _ = try check(r.ret, r.result)
      let i = r.info
      var lines = [
        "server: \(i.application).\(i.serverName)", "node: \(i.nodeName)", "setting: \(i.settingState)",
        "present: \(i.serverState)", "pid: \(i.processId)",
      ]
      for (k, v) in i.exState.sorted(by: { $0.key < $1.key }) { lines.append("\(k): \(v)") }
      return lines.joined(separator: "\n")
    case .start:
      let r = try call(Node.StartServer.self, .init(application: app, serverName: server))
      return try check(r.ret, r.result)
    case .stop:
      let r = try call(Node.StopServer.self, .init(application: app, serverName: server))
      return try check(r.ret, r.result)
    case .restart:
      let r = try call(Node.RestartServer.self, .init(application: app, serverName: server))
      return try check(r.ret, r.result)
    case .notify:
      let r = try call(Node.NotifyServer.self, .init(application: app, serverName: server, command: command))
      return try check(r.ret, r.result)
    }
  }
}
