import TarsFramework
import TarsKube
import TarsProtocol

/// `tars.tarsregistry.QueryObj`: what every Tars client's locator calls. Answers come from the
/// registry's in-memory table; the return value is always 0, unknown or malformed ids get
/// empty lists (K8SFramework's behaviour).
public final class QueryServant: QueryFServant, Sendable {
  let view: RegistryView

  public init(view: RegistryView) { self.view = view }

  public func findObjectById(id: String, current: TarsCurrent) throws -> [EndpointF] { view.lookup(id).active }

  public func findObjectById4Any(id: String, current: TarsCurrent) throws -> QueryF.FindObjectById4Any.Result {
    let l = view.lookup(id)
    return .init(ret: 0, activeEp: l.active, inactiveEp: l.inactive)
  }

  public func findObjectById4All(id: String, current: TarsCurrent) throws -> QueryF.FindObjectById4All.Result {
    let l = view.lookup(id)
    return .init(ret: 0, activeEp: l.active, inactiveEp: l.inactive)
  }

  public func findObjectByIdInSameGroup(id: String, current: TarsCurrent) throws
    -> QueryF.FindObjectByIdInSameGroup.Result
  {
    let l = view.lookup(id)
    return .init(ret: 0, activeEp: l.active, inactiveEp: l.inactive)
  }

  public func findObjectByIdInSameStation(id: String, sStation: String, current: TarsCurrent) throws
    -> QueryF.FindObjectByIdInSameStation.Result
  {
    let l = view.lookup(id)
    return .init(ret: 0, activeEp: l.active, inactiveEp: l.inactive)
  }

  public func findObjectByIdInSameSet(id: String, setId: String, current: TarsCurrent) throws
    -> QueryF.FindObjectByIdInSameSet.Result
  {
    let l = view.lookup(id)
    return .init(ret: 0, activeEp: l.active, inactiveEp: l.inactive)
  }

  public func findObjectNodeName(id: String, current: TarsCurrent) throws -> QueryF.FindObjectNodeName.Result {
    .init(ret: 0, nodeName: [])
  }

  public func registerChange(timestamp: [String: String], name: String, current: TarsCurrent) throws -> Int32 { 0 }
  public func registerQuery(id: String, name: String, current: TarsCurrent) throws -> Int32 { 0 }
  public func getLocker(req: GetMasterSlaveLock, current: TarsCurrent) throws -> Int32 { -1 }
}

/// QueryObj's fast path: the lookups every proxy makes answer with bytes encoded once per
/// table version and id; everything else goes to `QueryServant`'s generated dispatch.
public final class QueryDispatcher: TarsDispatcher, Sendable {
  let servant: QueryServant

  public init(view: RegistryView) { servant = QueryServant(view: view) }

  public func tarsDispatch(function: String, arguments: [UInt8], current: TarsCurrent) throws -> TarsDispatchOutcome {
    let activeOnly: Bool
    switch function {
    case "findObjectById": activeOnly = true
    case "findObjectById4Any", "findObjectById4All", "findObjectByIdInSameGroup": activeOnly = false
    default: return try servant.tarsDispatch(function: function, arguments: arguments, current: current)
    }
    var reader = TarsReader(arguments)
    let id: String
    do throws(TarsDecodeError) {
      id = try reader.read(tag: 1)
    } catch {
      return .badArguments(error)
    }
    return .reply(servant.view.encodedLookup(id, activeOnly: activeOnly))
  }
}

/// `tars.tarsregistry.RegistryObj`: what tarsnode calls. `getServerDescriptor` from the TServer
/// and its template chain; `updateServerState` queued for the pod's condition, answered at once.
public final class RegistryServantImpl: RegistryServant, Sendable {
  let view: RegistryView
  let patcher: StatePatcher
  static let states: Set<String> = ["Active", "Inactive", "Activating", "Deactivating"]

  public init(view: RegistryView, patcher: StatePatcher) {
    self.view = view
    self.patcher = patcher
  }

  public func getServerDescriptor(serverApp: String, serverName: String, current: TarsCurrent) throws
    -> Registry.GetServerDescriptor.Result
  {
    guard let spec = view.serverSpec(app: serverApp, server: serverName) else {
      throw TarsServantError(
        code: -1,
        "no TServer \(ServerSpec.resourceName(app: serverApp, server: serverName)) in namespace \(view.options.namespace)"
      )
    }
    do throws(TemplateError) {
      return .init(ret: 0, serverDescriptor: try Descriptors.make(server: spec, templates: view.templateObjects()))
    } catch {
      throw TarsServantError(code: -1, error.message)
    }
  }

  public func updateServerState(podName: String, settingState: String, presentState: String, current: TarsCurrent)
    throws
  {
    guard Self.states.contains(settingState), Self.states.contains(presentState) else {
      throw TarsServantError(
        code: -1, "unknown state \(settingState)/\(presentState): use Active, Inactive, Activating or Deactivating")
    }
    guard LabelSelector.isValidKey(podName) || !podName.isEmpty else {
      throw TarsServantError(code: -1, "empty pod name")
    }
    patcher.submit(pod: podName, setting: settingState, present: presentState, pid: current.context["PID"] ?? "")
  }
}
