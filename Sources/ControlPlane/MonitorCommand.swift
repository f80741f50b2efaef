import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import TarsControlPlaneCore
import TarsMonitorService
import TarsNIO
import TarsProtocol
import TarsRegistry

/// Where the monitor keeps its minutes: `postgres://…` (a cluster) or `sqlite:PATH`.
enum MonitorDatabase {
  /// The environment variable the Deployments fill from the Secret `tars-monitor-database`.
  static let environment = "TARS_MONITOR_DATABASE"

  static func open(_ text: String) throws -> any MonitorStore {
    if text.hasPrefix("sqlite:") {
      let path = String(text.dropFirst(7))
      guard !path.isEmpty else { throw ValidationError("--database sqlite:PATH needs a file") }
      return try SQLiteMonitorStore(path: path)
    }
    do {
      return PostgresMonitorStore(configuration: try PostgresMonitorStore.configuration(url: text))
    } catch {
      throw ValidationError("--database (or $\(environment)): \(error); or sqlite:PATH for a file")
    }
  }
}

struct MonitorCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "monitor",
    abstract: "StatObj and PropertyObj: call statistics and properties, summed per minute, written to a database.",
    discussion: """
      Servers report to tars.tarsstat.StatObj and tars.tarsproperty.PropertyObj (their template's
      <client> stat= and property=); the registry names this service for both. Each minute is
      written once it is over; replicas' rows add up. /metrics has the calls for Prometheus.
      Example: tars-controlplane monitor --database postgres://tars:SECRET@db:5432/tars
      """)

  @Option(help: "Address to listen on.") var bind = "0.0.0.0"
  @Option(name: .customLong("monitor-port"), help: "StatObj and PropertyObj port.") var port = 17894
  @Option(name: .customLong("metrics-port"), help: "The calls' Prometheus /metrics (0: off).") var metricsPort = 9466
  @Option(help: "postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=…] or sqlite:PATH (default: $TARS_MONITOR_DATABASE).")
  var database: String?
  @Option(name: .customLong("retention-days"), help: "Minutes older than this are deleted.") var retentionDays = 31
  @Option(name: .customLong("max-pending-rows"), help: "Rows kept while the database is away; beyond, dropped.")
  var maxPendingRows = 1_000_000

  func validate() throws {
    guard (1...3650).contains(retentionDays) else { throw ValidationError("--retention-days must be 1...3650") }
    guard (1_000...100_000_000).contains(maxPendingRows) else {
      throw ValidationError("--max-pending-rows must be 1000...100000000")
    }
  }

  func run() async throws {
    guard let url = database ?? ProcessInfo.processInfo.environment[MonitorDatabase.environment], !url.isEmpty else {
      throw StartError(
        message: "no database: give --database postgres://… (or sqlite:PATH), or set $\(MonitorDatabase.environment)")
    }
    let store = try MonitorDatabase.open(url)
    do {
      try await store.migrate()
    } catch {
      await store.close()
      throw StartError(message: "cannot prepare the monitor's tables: \(String(reflecting: error))")
    }
    var options = MonitorService.Options()
    options.retentionDays = Int64(retentionDays)
    options.maxPendingRows = maxPendingRows
    let monitor = MonitorService(store: store, options: options, log: stderrLog)
    let task = Task { await monitor.run() }
    let server: TarsNIOServer
    do {
      server = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: bind, port: port, timeout: 60_000),
        servants: ["tars.tarsstat.StatObj": monitor.stat, "tars.tarsproperty.PropertyObj": monitor.property],
        group: MultiThreadedEventLoopGroup.singleton)
    } catch let error as ListenError {
      task.cancel()
      await store.close()
      throw StartError(
        message: "cannot start: \(error.withFlags(["PropertyObj+StatObj": "--monitor-port"], address: "--bind"))")
    }
    var metrics: (any Channel)?
    if metricsPort != 0 {
      do {
        metrics = try await MetricsHTTP.start(
          host: bind, port: metricsPort, group: MultiThreadedEventLoopGroup.singleton
        ) { path in
          path == "/metrics" ? (200, monitor.exposition()) : path == "/healthz" ? (200, "ok\n") : (404, "not found\n")
        }
      } catch let error as ListenError {
        try? await server.close()
        task.cancel()
        await store.close()
        throw StartError(message: "cannot start: \(error.withFlags(["metrics": "--metrics-port"], address: "--bind"))")
      }
    }
    stderrLog(
      "monitor: StatObj and PropertyObj \(bind):\(server.port)\(metrics == nil ? "" : ", metrics :\(metricsPort)")")
    let signal = await waitForTermination()
    stderrLog("monitor: stopping (signal \(signal)); writing what it holds")
    try? await server.close()
    try? await metrics?.close()
    task.cancel()
    await task.value
    await store.close()
  }
}
