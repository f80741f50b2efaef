import Glibc
import TarsProtocol

/// The few API calls the agent's jobs make, as JSON in and out, with the API's Status turned
/// into an error that says what the server said.
extension KubeHTTP {
  /// A JSON answer (2xx), or the Status's message as the error.
  public func json(_ method: String, _ target: String, body: JSONValue? = nil, contentType: String = "application/json")
    throws(KubeHTTPError) -> JSONValue
  {
    let r = try send(method, target, body: body.map { Array($0.description.utf8) }, contentType: contentType)
    let text = String(decoding: r.body, as: UTF8.self)
    let parsed = try? JSONValue(parsing: text)
    guard (200..<300).contains(r.status), let parsed else {
      let message = parsed?["message"]?.stringValue ?? String(text.prefix(200))
      throw KubeHTTPError("\(method) \(target): \(r.status) \(message)", status: r.status)
    }
    return parsed
  }

  /// A list's items and its resourceVersion (what a watch resumes from).
  public func list(_ target: String) throws(KubeHTTPError) -> (items: [JSONValue], resourceVersion: String) {
    let list = try json("GET", target)
    guard case .array(let items)? = list["items"] else { return ([], "") }
    return (items, list["metadata"]?["resourceVersion"]?.stringValue ?? "")
  }

  /// Waits for the first change after `resourceVersion` on the collection `target` (query
  /// included); returns when one comes, when the server ends the watch after `seconds`, or on
  /// an error. The agent's loops relist on any change: level-triggered, so a missed event or a
  /// restart costs nothing but a list.
  public func waitForChange(_ target: String, after resourceVersion: String, seconds: Int = 300) throws(KubeHTTPError) {
    let separator = target.contains("?") ? "&" : "?"
    let status = try watch(
      "\(target)\(separator)watch=1&resourceVersion=\(resourceVersion)&timeoutSeconds=\(seconds)", idleSeconds: 0
    ) { _ in false }
    guard (200..<300).contains(status) else { throw KubeHTTPError("watch \(target): \(status)", status: status) }
  }

  /// A core/v1 Event about an object, as `kubectl describe` shows it (failures are the caller's
  /// to log: an Event is a report, not state).
  public func event(
    about object: JSONValue, kind: String, type: String = "Warning", reason: String, message: String, node: String
  ) throws(KubeHTTPError) {
    let namespace = object["metadata"]?["namespace"]?.stringValue ?? "default"
    let name = object["metadata"]?["name"]?.stringValue ?? ""
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    let now = Self.timestamp(Int64(ts.tv_sec))
    let suffix = String(UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec / 1000), radix: 16)
    var involved: [(String, JSONValue)] = [
      ("kind", .string(kind)), ("name", .string(name)), ("namespace", .string(namespace)),
    ]
    if let uid = object["metadata"]?["uid"]?.stringValue { involved.append(("uid", .string(uid))) }
    let event = JSONValue.object([
      ("apiVersion", .string("v1")), ("kind", .string("Event")),
      ("metadata", .object([("name", .string("\(name).\(suffix)")), ("namespace", .string(namespace))])),
      ("involvedObject", .object(involved)), ("reason", .string(reason)), ("message", .string(message)),
      ("type", .string(type)),
      ("source", .object([("component", .string("tarsagent")), ("host", .string(node))])),
      ("firstTimestamp", .string(now)), ("lastTimestamp", .string(now)), ("count", .integer(1)),
    ])
    _ = try json("POST", "/api/v1/namespaces/\(namespace)/events", body: event)
  }

  /// RFC 3339 in UTC, seconds (what Kubernetes writes).
  static func timestamp(_ seconds: Int64) -> String {
    var t = time_t(seconds)
    var tm = Glibc.tm()
    gmtime_r(&t, &tm)
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return
      "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))Z"
  }
}
