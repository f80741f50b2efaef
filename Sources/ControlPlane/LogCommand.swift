import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import TarsAuth
import TarsControlPlaneCore
import TarsLogService
import TarsNIO
import TarsProtocol
import TarsRegistry

struct LogCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "log",
    abstract: "LogObj: servers' remote logs, in files per server and day as tarslog writes them.",
    discussion: """
      Servers whose template names <server> log=tars.tarslog.LogObj send their remote logs here
      (TarsCpp's FDLOG with remote on, TarsGo's remote logger, our runtime's RemoteLog); each
      goes to DIR/App/Server/App.Server_file_YYYYMMDD.log. Files not written for
      --retention-days are deleted, and each server keeps at most --max-mib-per-server (its oldest
      files go first). LogQueryObj on the same port lists and reads them for the admin API.
      Example: tars-controlplane log --log-dir /var/lib/tars-logs
      """)

  @Option(help: "Address to listen on.") var bind = "0.0.0.0"
  @Option(name: .customLong("log-port"), help: "LogObj and LogQueryObj port.") var port = 17896
  @Option(name: .customLong("metrics-port"), help: "The service's Prometheus /metrics (0: off).") var metricsPort = 9467
  @Option(name: .customLong("log-dir"), help: "Where the files go.") var directory = "/var/lib/tars-logs"
  @Option(name: .customLong("retention-days"), help: "Files not written for this many days are deleted.")
  var retentionDays = 7
  @Option(name: .customLong("max-mib-per-server"), help: "Each server's files together, in MiB.")
  var maxMiBPerServer = 1024
  @Option(
    name: .customLong("secret-file"),
    help: "The NodeObj secret, which signs the admin API's LogQueryObj calls (empty: unsigned, loopback only).")
  var secretFile = "/etc/tars/node-secret/secret"

  func validate() throws {
    if secretFile.isEmpty, !["127.0.0.1", "::1", "localhost"].contains(bind) {
      throw ValidationError(
        "LogQueryObj reads servers' logs: give --secret-file (the NodeObj secret) or --bind 127.0.0.1")
    }
    guard (1...3650).contains(retentionDays) else { throw ValidationError("--retention-days must be 1...3650") }
    guard (1...1_048_576).contains(maxMiBPerServer) else {
      throw ValidationError("--max-mib-per-server must be 1...1048576")
    }
  }

  func run() async throws {
    var limits = LogFiles.Limits()
    limits.retentionDays = retentionDays
    limits.maxBytesPerServer = Int64(maxMiBPerServer) << 20
    let files: LogFiles
    do {
      files = try LogFiles(root: directory, limits: limits, log: stderrLog)
    } catch {
      throw StartError(message: "cannot use --log-dir \(directory): \(error)")
    }
    var auth: NodeCallAuth?
    if !secretFile.isEmpty {
      do {
        auth = try NodeCallAuth(secretFile: secretFile)
      } catch {
        throw StartError(message: "cannot use the NodeObj secret \(secretFile): \(error) (--secret-file)")
      }
    }
    let service = LogService(files: files, auth: auth, log: stderrLog)
    let task = Task { await service.run() }
    let server: TarsNIOServer
    do {
      server = try await TarsNIOServer.start(
        endpoint: TarsEndpoint(host: bind, port: port, timeout: 60_000),
        servants: ["tars.tarslog.LogObj": service.logObj, "tars.tarslog.LogQueryObj": service.queryObj],
        group: MultiThreadedEventLoopGroup.singleton)
    } catch let error as ListenError {
      task.cancel()
      throw StartError(
        message: "cannot start: \(error.withFlags(["LogObj+LogQueryObj": "--log-port"], address: "--bind"))")
    }
    var metrics: (any Channel)?
    if metricsPort != 0 {
      do {
        metrics = try await MetricsHTTP.start(
          host: bind, port: metricsPort, group: MultiThreadedEventLoopGroup.singleton
        ) { path in
          path == "/metrics" ? (200, service.exposition()) : path == "/healthz" ? (200, "ok\n") : (404, "not found\n")
        }
      } catch let error as ListenError {
        try? await server.close()
        task.cancel()
        throw StartError(message: "cannot start: \(error.withFlags(["metrics": "--metrics-port"], address: "--bind"))")
      }
    }
    stderrLog(
      "log: LogObj and LogQueryObj \(bind):\(server.port) into \(directory)\(metrics == nil ? "" : ", metrics :\(metricsPort)")"
    )
    let signal = await waitForTermination()
    stderrLog("log: stopping (signal \(signal))")
    try? await server.close()
    try? await metrics?.close()
    task.cancel()
  }
}
