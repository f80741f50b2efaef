import Foundation
import Hummingbird
import TarsKube

/// What a token may do. Each role includes the ones before it.
public enum AdminRole: String, Sendable, Comparable, CaseIterable {
  /// Reads: servers, pods, events, notifications, logs.
  case viewer
  /// Commands to pods (start, stop, restart, notify, drain) and scale.
  case `operator`
  /// Changes to what is declared: apply and delete.
  case admin

  public static func < (a: AdminRole, b: AdminRole) -> Bool {
    allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
  }

  /// The role a request needs: reads are the viewer's; apply and delete the admin's; every
  /// other change (a command, scale, drain) the operator's. The path is judged by its
  /// components, as the router matches it (`/apply/` and `//apply` reach the apply route too).
  static func needed(method: HTTPRequest.Method, path: String) -> AdminRole {
    if method == .get || method == .head { return .viewer }
    let route = path.split(separator: "?", maxSplits: 1).first?.split(separator: "/") ?? []
    // Builds and releases change what runs, as apply does.
    if method == .delete || route.last == "apply" || route.contains("images") {
      return .admin
    }
    return .operator
  }
}

/// The tokens the admin API accepts, each with its role and the name calls are recorded under.
/// A file holds one per line: `TOKEN ROLE NAME` (or a bare `TOKEN`, an admin named "admin", as
/// the one-machine mode writes it); `#` starts a comment.
public struct AdminTokens: Sendable {
  public struct Entry: Sendable {
    var token: [UInt8]
    public var role: AdminRole
    public var name: String
  }

  public var entries: [Entry]

  /// One admin token (the one-machine mode's).
  public init(admin token: String) { entries = [Entry(token: Array(token.utf8), role: .admin, name: "admin")] }

  /// Parses a token file; the error names the line and what to change.
  public init(file text: String) throws(AdminTokenError) {
    entries = []
    for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
      let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
      if words.isEmpty { continue }
      guard words[0].count >= 16 else {
        throw AdminTokenError("line \(number + 1): a token shorter than 16 characters: use a random one")
      }
      var entry = Entry(token: Array(words[0].utf8), role: .admin, name: "admin")
      if words.count > 1 {
        guard let role = AdminRole(rawValue: words[1]), words.count == 3 else {
          throw AdminTokenError("line \(number + 1): write TOKEN ROLE NAME, ROLE one of viewer, operator, admin")
        }
        entry.role = role
        entry.name = words[2]
      }
      guard !entries.contains(where: { $0.token == entry.token }) else {
        throw AdminTokenError("line \(number + 1): the same token twice")
      }
      entries.append(entry)
    }
    guard !entries.isEmpty else { throw AdminTokenError("no token in the file: write TOKEN ROLE NAME lines") }
  }

  /// The entry whose token `given` is, comparing against every token in constant time.
  func match(_ given: [UInt8]) -> Entry? {
    var found: Entry?
    for entry in entries {
      var difference = given.count == entry.token.count ? 0 : 1
      for (i, b) in entry.token.enumerated() { difference |= Int(b ^ (i < given.count ? given[i] : 0)) }
      if difference == 0 { found = entry }
    }
    return found
  }
}

public struct AdminTokenError: Error, Sendable, CustomStringConvertible {
  public var description: String
  init(_ description: String) { self.description = description }
}

/// One call that changed something, or was refused: who, what, how it ended. The admin API
/// logs it and records it as an Event about what the call was about, so `kubectl get events`
/// shows who restarted, scaled, drained or applied what, on every replica.
public struct AuditEntry: Sendable {
  public var who: String
  public var role: AdminRole
  public var method: String
  public var path: String
  /// The status code, or "refused, needs ROLE".
  public var outcome: String
  public var refused: Bool

  public var line: String { "admin: audit: \(who) (\(role.rawValue)) \(method) \(path): \(outcome)" }

  /// The object the call was about: the TServer of `/servers/ID…` (`App.Server` or its name),
  /// the pod of `/pods/POD…`; otherwise (apply) the namespace.
  public func involved(namespace: String) -> (kind: String, name: String) {
    let parts = path.split(separator: "/").map(String.init)
    if let i = parts.firstIndex(of: "servers"), i + 1 < parts.count {
      let id = parts[i + 1]
      let split = id.split(separator: ".", maxSplits: 1).map(String.init)
      return ("TServer", split.count == 2 ? "\(split[0])-\(split[1])".lowercased() : id)
    }
    if let i = parts.firstIndex(of: "pods"), i + 1 < parts.count { return ("Pod", parts[i + 1]) }
    return ("Namespace", namespace)
  }

  public func event(namespace: String, time: Date = Date()) -> KubeObject {
    let (kind, name) = involved(namespace: namespace)
    var e = KubeObject.event(
      namespace: namespace, kind: kind, name: name, type: refused ? "Warning" : "Normal",
      reason: refused ? "AdminRefused" : "AdminCall",
      message: "\(who) (\(role.rawValue)) \(method) \(path): \(outcome)",
      component: "tars-tarsadmin",
      suffix: KubeObject.eventSuffix(time))
    if kind == "TServer" { e.json.set(["involvedObject", "apiVersion"], .string("k8s.tars.io/v1beta3")) }
    if kind == "Namespace" { e.json.set(["involvedObject", "namespace"], nil) }
    e.json.set(["metadata", "labels"], .object([("tars.io/audit", .string(who))]))
    return e
  }
}

/// 401 unless `Authorization: Bearer <token>` carries a known token; 403 when its role is below
/// what the call needs. Every call that changes something is recorded with who made it and how
/// it ended (`audit`, awaited before the answer goes out).
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
  let tokens: AdminTokens
  let audit: @Sendable (AuditEntry) async -> Void

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    let header = request.headers[.authorization] ?? ""
    let given = header.hasPrefix("Bearer ") ? Array(header.dropFirst(7).utf8) : []
    guard !given.isEmpty, let who = tokens.match(given) else {
      var error = HTTPError(
        .unauthorized, message: "a bearer token is required: the one in the control plane's admin.token file")
      error.headers[.wwwAuthenticate] = "Bearer"
      throw error
    }
    let path = request.uri.path
    let needed = AdminRole.needed(method: request.method, path: path)
    var entry = AuditEntry(
      who: who.name, role: who.role, method: "\(request.method)", path: path, outcome: "", refused: false)
    guard who.role >= needed else {
      entry.outcome = "refused, needs \(needed.rawValue)"
      entry.refused = true
      await audit(entry)
      throw HTTPError(
        .forbidden,
        message: "\(who.name)'s token is a \(who.role.rawValue)'s; \(request.method) \(path) needs \(needed.rawValue)")
    }
    guard needed > .viewer else { return try await next(request, context) }
    do {
      let response = try await AdminCaller.$name.withValue(who.name) { try await next(request, context) }
      entry.outcome = "\(response.status.code)"
      await audit(entry)
      return response
    } catch {
      let status = (error as? HTTPResponseError)?.status.code ?? 500
      entry.outcome = "\(status) \(error)"
      await audit(entry)
      throw error
    }
  }
}
