import ArgumentParser
import Foundation
import TarsAdminAPI

/// Where the admin API is and how to prove who we are; how to print.
struct AdminOptions: ParsableArguments {
  @Option(name: .customLong("admin"), help: "The admin API (default: $TARS_ADMIN_URL or http://127.0.0.1:17880).")
  var url: String?

  @Option(
    name: .customLong("token-file"),
    help: "The bearer token file (default: $TARS_ADMIN_TOKEN_FILE or ./.tars/admin.token).")
  var tokenFile: String?

  @Option(name: [.customShort("o"), .customLong("output")], help: "table or json.")
  var output = "table"

  func validate() throws {
    guard output == "table" || output == "json" else { throw ValidationError("-o must be table or json") }
  }

  var json: Bool { output == "json" }

  func client() throws -> AdminClient {
    let env = ProcessInfo.processInfo.environment
    let path = tokenFile ?? env["TARS_ADMIN_TOKEN_FILE"] ?? ".tars/\(AdminAPI.tokenFileName)"
    do {
      return AdminClient(
        baseURL: url ?? env["TARS_ADMIN_URL"] ?? AdminAPI.defaultURL, token: try AdminClient.token(fromFile: path))
    } catch {
      throw fail(error.message)
    }
  }

  /// Runs a request; failures become one `tarsctl:` line and exit 1.
  func run<T>(_ body: (AdminClient) async throws(AdminClientError) -> T) async throws -> T {
    let c = try client()
    do {
      return try await body(c)
    } catch {
      throw fail(error.message)
    }
  }

  func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self))
  }
}

/// Columns padded to their widest cell, kubectl style.
func printTable(_ header: [String], _ rows: [[String]]) {
  var widths = header.map(\.count)
  for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
  for r in [header] + rows {
    let cells = r.enumerated().map { i, c in
      i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
    }
    print(cells.joined(separator: "   "))
  }
}

struct Servers: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "List the Tars servers and how many pods are active.")
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    let rows = try await admin.run { c throws(AdminClientError) in try await c.get("/servers", as: [ServerRow].self) }
    if admin.json { return admin.printJSON(rows) }
    printTable(
      ["SERVER", "TYPE", "REPLICAS", "PODS", "ACTIVE", "IMAGE"],
      rows.map { [$0.id, $0.subType, "\($0.replicas)", "\($0.pods)", "\($0.activePods)", $0.image] })
  }
}

struct Pods: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "List the pods, their addresses and Tars states.")
  @Argument(help: "Only this server's pods (App.Server).") var server: String?
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    let query =
      server.map { "?server=\($0.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? $0)" } ?? ""
    let rows = try await admin.run { c throws(AdminClientError) in try await c.get("/pods" + query, as: [PodRow].self) }
    if admin.json { return admin.printJSON(rows) }
    printTable(
      ["POD", "SERVER", "IP", "PHASE", "READY", "ACTIVE", "RESTARTS", "PID", "STATE"],
      rows.map {
        [
          $0.name, $0.server, $0.ip, $0.phase, $0.ready ? "yes" : "no", $0.active ? "yes" : "no", "\($0.restarts)",
          $0.pid.map(String.init) ?? "-", $0.state,
        ]
      })
  }
}

/// start, stop, restart: the control plane calls each pod's NodeObj.
enum ServerAction {
  static func perform(_ action: String, server: String, admin: AdminOptions) async throws {
    let rows = try await admin.run { c throws(AdminClientError) in
      try c.decode(try await c.send(.POST, "/servers/\(escape(server))/\(action)")) as [PodCallResult]
    }
    if admin.json {
      admin.printJSON(rows)
    } else {
      printTable(["POD", "OK", "RESULT"], rows.map { [$0.pod, $0.ok ? "yes" : "no", $0.result] })
    }
    if rows.contains(where: { !$0.ok }) { throw ExitCode(1) }
  }
}

/// Seconds since 1970 as `2026-12-07T06:10:00Z`.
func isoTime(_ seconds: Int64) -> String {
  Date(timeIntervalSince1970: TimeInterval(seconds)).ISO8601Format()
}

func escape(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? s }

struct Start: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Start every pod's server (through its tarsnode).")
  @Argument(help: "App.Server") var server: String
  @OptionGroup var admin: AdminOptions
  func run() async throws { try await ServerAction.perform("start", server: server, admin: admin) }
}

struct Stop: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Stop every pod's server; the pods stay, inactive, until start.")
  @Argument(help: "App.Server") var server: String
  @OptionGroup var admin: AdminOptions
  func run() async throws { try await ServerAction.perform("stop", server: server, admin: admin) }
}

struct Restart: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Restart every pod's server.")
  @Argument(help: "App.Server") var server: String
  @OptionGroup var admin: AdminOptions
  func run() async throws { try await ServerAction.perform("restart", server: server, admin: admin) }
}

struct Notify: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Send an admin command to every pod of a server and print each reply.",
    discussion: "Example: tarsctl notify Test.HelloServer tars.viewstatus")
  @Argument(help: "App.Server") var server: String
  @Argument(parsing: .remaining, help: "The command and its arguments, e.g. tars.setloglevel DEBUG.")
  var command: [String] = []
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    guard !command.isEmpty else { throw fail("give a command, e.g. tars.viewstatus (tars.help lists them)") }
    let body = NotifyRequest(command: command.joined(separator: " "))
    let rows = try await admin.run { c throws(AdminClientError) in
      try await c.post("/servers/\(escape(server))/notify", body, as: [PodCallResult].self)
    }
    if admin.json {
      admin.printJSON(rows)
    } else {
      for r in rows {
        print("== \(r.pod)\(r.ok ? "" : " (failed)")")
        print(r.result, terminator: r.result.hasSuffix("\n") || r.result.isEmpty ? "" : "\n")
      }
    }
    if rows.contains(where: { !$0.ok }) { throw ExitCode(1) }
  }
}

struct Logs: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print the end of a pod's server output, or of a server's remote log (--remote).",
    discussion: """
      tarsctl logs test-helloserver-0 prints what the pod's server wrote to stdout and stderr.
      tarsctl logs --remote Test.HelloServer prints what the server sent to tars.tarslog.LogObj
      (its newest file; --list shows them all, --file picks one).
      """)
  @Argument(help: "The pod (e.g. test-helloserver-0), or with --remote the server (App.Server).") var name: String
  @Option(name: .long, help: "Lines to print.") var tail = 100
  @Flag(name: .long, help: "tarsnode's own log instead of the server's output.") var node = false
  @Flag(name: .long, help: "The server's remote log, kept by the log service.") var remote = false
  @Flag(name: .long, help: "With --remote: list the server's files.") var list = false
  @Option(name: .long, help: "With --remote: the file, as --list names it (default: the newest).") var file: String?
  @OptionGroup var admin: AdminOptions

  func validate() throws {
    if !remote, list || file != nil { throw ValidationError("--list and --file go with --remote") }
    if remote, node { throw ValidationError("--node is for a pod's tarsnode log, not with --remote") }
  }

  func run() async throws {
    if remote, list {
      let rows = try await admin.run { c throws(AdminClientError) in
        try await c.get("/servers/\(escape(name))/remote-logs", as: [RemoteLogFileRow].self)
      }
      if admin.json { return admin.printJSON(rows) }
      return printTable(["FILE", "BYTES", "MODIFIED"], rows.map { [$0.name, "\($0.size)", isoTime($0.modified)] })
    }
    let path =
      remote
      ? "/servers/\(escape(name))/remote-logs/tail?tail=\(tail)" + (file.map { "&name=\(escape($0))" } ?? "")
      : "/pods/\(escape(name))/logs?tail=\(tail)\(node ? "&node=1" : "")"
    let bytes = try await admin.run { c throws(AdminClientError) in try await c.send(.GET, path) }
    let text = String(decoding: bytes, as: UTF8.self)
    print(text, terminator: text.hasSuffix("\n") || text.isEmpty ? "" : "\n")
  }
}

struct Events: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "List recent events: pods created, started, stopped.")
  @Option(name: .long, help: "How many.") var limit = 50
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    let rows = try await admin.run { c throws(AdminClientError) in
      try await c.get("/events?limit=\(limit)", as: [EventRow].self)
    }
    if admin.json { return admin.printJSON(rows) }
    printTable(
      ["TIME", "OBJECT", "TYPE", "REASON", "MESSAGE"],
      rows.map { [$0.time, $0.object, $0.type, $0.reason, $0.message] })
  }
}

struct Notifications: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "List what servers reported to NotifyObj (restarts, admin commands, alarms), newest first.")
  @Argument(help: "Only this server (App.Server).") var server: String?
  @Option(name: .long, help: "How many.") var limit = 50
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    let query = "?limit=\(limit)" + (server.map { "&server=\($0)" } ?? "")
    let rows = try await admin.run { c throws(AdminClientError) in
      try await c.get("/notifications" + query, as: [NotificationRow].self)
    }
    if admin.json { return admin.printJSON(rows) }
    printTable(
      ["TIME", "SERVER", "SOURCE", "KIND", "MESSAGE"],
      rows.map { [$0.time, $0.server, $0.source, $0.alarm ? "alarm" : "report", $0.message] })
  }
}

struct Apply: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Apply TServer, TTemplate, TConfig and TFrameworkConfig manifests; bad objects are rejected with the reason.")
  @Option(name: .shortAndLong, help: "A YAML file, or a folder of them.") var file: String
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    guard let files = AdminAPI.manifestFiles(at: file) else { throw fail("no such file \(file)") }
    // One request for the whole folder, as `up --manifests` reads it: a TServer may name a
    // template defined in a file that sorts after it.
    var documents: [String] = []
    for f in files {
      guard let text = try? String(contentsOfFile: f, encoding: .utf8) else { throw fail("cannot read \(f)") }
      documents.append(text)
    }
    let yaml = documents.joined(separator: "\n---\n")
    let all = try await admin.run { c throws(AdminClientError) in
      try c.decode(try await c.send(.POST, "/apply", body: Array(yaml.utf8), contentType: "application/yaml"))
        as [ApplyRow]
    }
    if admin.json {
      admin.printJSON(all)
    } else {
      for r in all {
        print(
          "\(r.kind.lowercased())/\(r.name) \(r.action)"
            + (r.problems.isEmpty ? "" : ": " + r.problems.joined(separator: "; ")))
      }
    }
    if all.contains(where: { !$0.problems.isEmpty }) { throw ExitCode(1) }
  }
}

struct Scale: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Set a server's replicas (spec.k8s.replicas).")
  @Argument(help: "App.Server") var server: String
  @Argument(help: "Replicas, 0-100.") var replicas: Int
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    let row = try await admin.run { c throws(AdminClientError) in
      try await c.post("/servers/\(escape(server))/scale", ScaleRequest(replicas: replicas), as: ApplyRow.self)
    }
    if admin.json { return admin.printJSON(row) }
    print("tserver/\(row.name) \(row.action)")
  }
}

struct Drain: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Take a pod out of the registry's active endpoints, its server left running (--undo: back in).",
    discussion: """
      Clients stop getting the pod's endpoints at their next refresh; calls in flight finish. A
      deleted or replaced pod is drained by its preStop hook without this.
      """)
  @Argument(help: "The pod (tarsctl pods lists them).") var pod: String
  @Flag(help: "Put the pod back among the active endpoints.") var undo = false
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    let row = try await admin.run { c throws(AdminClientError) in
      try await c.post("/pods/\(escape(pod))/drain", DrainRequest(drained: !undo), as: ApplyRow.self)
    }
    if admin.json { return admin.printJSON(row) }
    print("pod/\(row.name) \(row.action)")
  }
}

struct Delete: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Delete a server: its pods stop gracefully and their directories are removed.")
  @Argument(help: "App.Server") var server: String
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    let row = try await admin.run { c throws(AdminClientError) in
      try c.decode(try await c.send(.DELETE, "/servers/\(escape(server))")) as ApplyRow
    }
    if admin.json { return admin.printJSON(row) }
    print("tserver/\(row.name) \(row.action)")
  }
}

struct NodePorts: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ports",
    abstract: "The ports in use on a node and who holds them, or free host ports (--free), from its tarsagent.",
    discussion: """
      Examples: tarsctl node ports node-1          (the node's own network)
                tarsctl node ports node-1 --all    (and every pod's network on it)
                tarsctl node ports node-1 --free 30000-30100 --count 3 [--udp]
      """)
  @Argument(help: "The node's name (kubectl get nodes).") var node: String
  @Flag(name: .long, help: "Every pod's network namespace on the node as well.") var all = false
  @Option(name: .long, help: "Free host ports in FIRST-LAST instead.") var free: String?
  @Option(name: .long, help: "How many free ports (with --free).") var count = 1
  @Flag(name: .long, help: "UDP instead of TCP (with --free).") var udp = false
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    let node = node.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? node
    if let free {
      let bounds = free.split(separator: "-").compactMap { Int($0) }
      guard bounds.count == 2, (1...65535).contains(bounds[0]), bounds[0] <= bounds[1], bounds[1] <= 65535 else {
        throw fail("--free takes FIRST-LAST within 1-65535, e.g. 30000-30100")
      }
      guard (1...1000).contains(count) else { throw fail("--count must be 1 to 1000") }
      let row = try await admin.run { c throws(AdminClientError) in
        try await c.get(
          "/nodes/\(node)/ports/free?transport=\(udp ? "udp" : "tcp")&first=\(bounds[0])&last=\(bounds[1])&count=\(count)",
          as: FreePortsRow.self)
      }
      if admin.json { return admin.printJSON(row) }
      guard !row.ports.isEmpty else { throw fail("no free \(row.transport) port in \(free) on \(row.node)") }
      print(row.ports.map(String.init).joined(separator: "\n"))
      return
    }
    let rows = try await admin.run { c throws(AdminClientError) in
      try await c.get("/nodes/\(node)/ports\(all ? "?all=true" : "")", as: [NodePortRow].self)
    }
    if admin.json { return admin.printJSON(rows) }
    printTable(
      ["PROTO", "ADDRESS", "PORT", "PID", "COMMAND", "POD", "NETWORK"],
      rows.map {
        [
          $0.transport, $0.address, "\($0.port)", $0.pids.map(String.init).joined(separator: ","), $0.command,
          $0.pod.isEmpty ? ($0.podUID.isEmpty ? "-" : $0.podUID) : $0.pod, $0.namespace,
        ]
      })
  }
}
