import ArgumentParser
import Foundation
import TarsAdminAPI

struct Stat: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "A server's interfaces today beside yesterday at the same time: calls, timeouts, exceptions, times.",
    discussion: """
      From the reports servers send StatObj (the <client> stat= of their config). By default the
      server's own view of the calls it served; --callers: what its callers reported.
      """)
  @Argument(help: "The server, App.Server.") var server: String
  @Option(name: .long, help: "Only this interface.") var interface: String?
  @Flag(name: .long, help: "The callers' view (their reports) instead of the server's own.") var callers = false
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    guard server.split(separator: ".").count == 2 else {
      throw fail("give the server as App.Server, e.g. Test.HelloServer")
    }
    var query = "/stat?server=\(escape(server))&source=\(callers ? "client" : "server")"
    if let interface { query += "&interface=\(escape(interface))" }
    let rows = try await admin.run { c throws(AdminClientError) in try await c.get(query, as: [InterfaceStatRow].self) }
    if admin.json { return admin.printJSON(rows) }
    func ms(_ v: Double) -> String { String(format: "%.1f", v) }
    printTable(
      ["INTERFACE", "CALLS", "YESTERDAY", "TIMEOUTS", "EXCEPTIONS", "AVG MS", "MAX MS", "AVG MS YESTERDAY"],
      rows.map {
        [
          $0.interface, "\($0.calls)", "\($0.yesterdayCalls)", "\($0.timeouts)", "\($0.exceptions)", ms($0.averageMs),
          "\($0.maxMs)", ms($0.yesterdayAverageMs),
        ]
      })
  }
}

struct Property: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "A server's properties over the last minutes, per policy (what it reports to PropertyObj).")
  @Argument(help: "The server, App.Server.") var server: String
  @Option(name: .long, help: "Minutes back from now (1 to 10080).") var minutes = 60
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    guard server.split(separator: ".").count == 2 else {
      throw fail("give the server as App.Server, e.g. Test.HelloServer")
    }
    guard (1...10_080).contains(minutes) else { throw fail("--minutes must be 1 to 10080") }
    let rows = try await admin.run { c throws(AdminClientError) in
      try await c.get("/property?server=\(escape(server))&minutes=\(minutes)", as: [PropertyStatRow].self)
    }
    if admin.json { return admin.printJSON(rows) }
    printTable(
      ["PROPERTY", "POLICY", "VALUE", "FROM"],
      rows.map { [$0.property, $0.policy, $0.value, $0.ips.joined(separator: ",")] })
  }
}
