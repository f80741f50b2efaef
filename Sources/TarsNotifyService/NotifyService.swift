import Foundation
import Synchronization
import TarsFramework
import TarsProtocol

/// One notification: a framework event ("restart", "[alarm] server exit with signal 9") or a
/// business alarm.
public struct NotifyRecord: Sendable, Equatable {
  /// `App.Server`.
  public var server: String
  /// Pod, node or caller address it came from.
  public var source: String
  public var level: Int32
  public var message: String
  public var time: Date
  /// REPORT (framework event) or NOTIFY (business alarm).
  public var isAlarm: Bool

  public init(server: String, source: String, level: Int32, message: String, time: Date, isAlarm: Bool) {
    self.server = server
    self.source = source
    self.level = level
    self.message = message
    self.time = time
    self.isAlarm = isAlarm
  }
}

/// `tars.tarsnotify.NotifyObj`: takes `reportNotifyInfo` (what current servers send, ONEWAY)
/// and the three legacy calls older binaries and K8SFramework's tarsnode still send, and keeps
/// the newest `capacity` notifications in memory, newest first per server on query.
public final class NotifyService: NotifyServant, Sendable {
  public let capacity: Int
  let items = Mutex<[NotifyRecord]>([])
  /// `getNotifyInfo` pages.
  public static let pageSize = 20

  public init(capacity: Int = 10_000) { self.capacity = max(1, capacity) }

  public func record(_ n: NotifyRecord) {
    items.withLock {
      $0.append(n)
      if $0.count > capacity { $0.removeFirst($0.count - capacity) }
    }
  }

  /// The newest first, of one server (`App.Server`) or all.
  public func recent(server: String? = nil, limit: Int = 100) -> [NotifyRecord] {
    items.withLock { all in
      Array(all.reversed().lazy.filter { server == nil || $0.server == server }.prefix(limit))
    }
  }

  func source(_ current: TarsCurrent, _ given: String = "") -> String {
    given.isEmpty ? (current.peer?.host ?? "") : given
  }

  // MARK: NotifyObj

  public func reportNotifyInfo(info: ReportInfo, current: TarsCurrent) throws {
    // TarsJava sends "App.Server" as sServer; the others the bare server name.
    let server = info.sServer.contains(".") ? info.sServer : "\(info.sApp).\(info.sServer)"
    record(
      NotifyRecord(
        server: server, source: source(current, info.sNodeName), level: info.eLevel.rawValue,
        message: info.sMessage, time: Date(), isAlarm: info.eType == .NOTIFY))
  }

  public func reportServer(sServerName: String, sThreadId: String, sMessage: String, current: TarsCurrent) throws {
    record(
      NotifyRecord(
        server: sServerName, source: source(current), level: NOTIFYLEVEL.NOTIFYNORMAL.rawValue, message: sMessage,
        time: Date(), isAlarm: false))
  }

  public func notifyServer(sServerName: String, level: NOTIFYLEVEL, sMessage: String, current: TarsCurrent) throws {
    record(
      NotifyRecord(
        server: sServerName, source: source(current), level: level.rawValue, message: sMessage, time: Date(),
        isAlarm: true))
  }

  public func getNotifyInfo(stKey: NotifyKey, current: TarsCurrent) throws -> Notify.GetNotifyInfo.Result {
    let page = max(0, Int(stKey.page))
    let matching = recent(server: stKey.name, limit: (page + 1) * Self.pageSize + 1)
    let slice = matching.dropFirst(page * Self.pageSize).prefix(Self.pageSize)
    var info = NotifyInfo()
    info.nextpage = matching.count > (page + 1) * Self.pageSize ? Int32(page + 1) : -1
    info.notifyItems = slice.map { n in
      var item = NotifyItem()
      item.sTimeStamp = Self.format(n.time)
      item.sServerId = n.source.isEmpty ? n.server : "\(n.server)_\(n.source)"
      item.iLevel = n.level
      item.sMessage = n.message
      return item
    }
    return .init(ret: 0, stInfo: info)
  }

  static func format(_ date: Date) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return f.string(from: date)
  }
}
