import Foundation
import NIOPosix
import Synchronization
import TarsAuth
import TarsLogService
import TarsMonitor
import TarsNIO
import TarsProtocol
import TarsTestSupport
import Testing

/// Polls `condition` for up to five seconds (a ONEWAY report has no answer to wait for).
func waitUntil(_ condition: () -> Bool) -> Bool {
  for _ in 0..<500 {
    if condition() { return true }
    usleep(10_000)
  }
  return condition()
}

/// What the service logged.
final class LogLines: Sendable {
  let lines = Mutex<[String]>([])
  func append(_ line: String) { lines.withLock { $0.append(line) } }
  func withLock<T>(_ body: ([String]) -> T) -> T { lines.withLock { body($0) } }
}

/// The log service on a real socket, over a temporary directory, with a clock the test moves.
struct LogHarness {
  let dir: TemporaryDirectory
  let service: LogService
  let server: TarsNIOServer
  let client = TarsNIOClient(group: MultiThreadedEventLoopGroup.singleton)
  let clock: TestClock
  let lines = LogLines()

  /// 2026-12-07 10:20:30 in the machine's time zone: file names use local time, as tarslog's.
  static let noon: Int64 = {
    var c = DateComponents()
    (c.year, c.month, c.day, c.hour, c.minute, c.second) = (2026, 12, 7, 10, 20, 30)
    return Int64(Calendar.current.date(from: c)!.timeIntervalSince1970)
  }()

  /// The day of `noon`, as file names have it.
  static let noonDay = "20261207"

  init(limits: LogFiles.Limits = .init(), auth: NodeCallAuth? = nil, port: Int = 0) async throws {
    dir = try TemporaryDirectory("tars-log")
    let clock = TestClock(Self.noon)
    self.clock = clock
    let lines = self.lines
    let files = try LogFiles(root: dir.file("logs"), limits: limits) { line in lines.append(line) }
    service = LogService(files: files, auth: auth, clock: { clock.now })
    server = try await TarsNIOServer.start(
      endpoint: TarsEndpoint(host: "127.0.0.1", port: port, timeout: 60_000),
      servants: ["tars.tarslog.LogObj": service.logObj, "tars.tarslog.LogQueryObj": service.queryObj],
      group: MultiThreadedEventLoopGroup.singleton)
  }

  /// A two-way call, as TarsCpp's logger thread makes it, from a node that names itself.
  func call<M: TarsMethod>(_ m: M.Type, _ servant: String, _ args: M.Args, node: String = "node-a") async throws
    -> M.Result
  {
    let request = M.request(
      servant: servant, args,
      options: TarsCallOptions(timeoutMs: 5000, context: node.isEmpty ? [:] : ["node_name": node]))
    return try M.result(
      from: try await client.invoke(
        request, to: TarsEndpoint(host: "127.0.0.1", port: server.port, timeout: 5000), timeoutMs: 5000))
  }

  func log(_ info: LogInfo, _ buffer: [String], node: String = "node-a") async throws {
    _ = try await call(Log.LoggerbyInfo.self, "tars.tarslog.LogObj", .init(info: info, buffer: buffer), node: node)
  }

  func read(_ relative: String) -> String? {
    try? String(contentsOfFile: dir.file("logs/" + relative), encoding: .utf8)
  }

  func stop() async {
    try? await server.close()
    dir.remove()
  }
}

/// A `LogInfo` as TarsCpp's `RemoteTimeLogger` fills it, every field set.
func logInfo(
  file: String = "access", format: String = "%Y%m%d", set: String = "", suffix: Bool = true, prefix: Bool = true,
  concat: String = "_", separator: String = "|", type: String = ""
) -> LogInfo {
  var i = LogInfo()
  i.appname = "Test"
  i.servername = "HelloServer"
  i.sFilename = file
  i.sFormat = format
  i.setdivision = set
  i.bHasSufix = suffix
  i.bHasAppNamePrefix = prefix
  i.bHasSquareBracket = false
  i.sConcatStr = concat
  i.sSepar = separator
  i.sLogType = type
  return i
}

@Suite("Remote logs (LogObj) over real sockets", .serialized)
struct LogServiceTests {
  @Test func linesGoToTarslogsFilesWithTheSendersNode() async throws {
    let h = try await LogHarness()
    defer { Task { await h.stop() } }
    // TarsCpp's FDLOG("access") lines carry their time and end in a newline.
    try await h.log(logInfo(), ["2026-12-07 10:20:30|first\n", "2026-12-07 10:20:31|second\n"])
    #expect(
      h.read("Test/HelloServer/Test.HelloServer_access_20261207.log")
        == "node-a|2026-12-07 10:20:30|first\nnode-a|2026-12-07 10:20:31|second\n")
    // The default file (no name), another node by address, a line without its newline.
    try await h.log(logInfo(file: ""), ["plain"], node: "")
    #expect(h.read("Test/HelloServer/Test.HelloServer_20261207.log") == "127.0.0.1|plain\n")
    // The old call, `logger(app, server, file, format, buffer)`.
    _ = try await h.call(
      Log.Logger.self, "tars.tarslog.LogObj",
      .init(app: "Test", server: "HelloServer", file: "old", format: "%Y%m%d%H", buffer: ["x\n"]))
    #expect(h.read("Test/HelloServer/Test.HelloServer_old_2026120710.log") == "node-a|x\n")
    // Every LogInfo field: a set, no app prefix, another concat string, no suffix, a separator,
    // files by two hours.
    try await h.log(
      logInfo(
        file: "pay", format: "", set: "sz.a.1", suffix: false, prefix: false, concat: "-", separator: "#",
        type: "2hour"), ["y\n"])
    #expect(h.read("Test/sza1/HelloServer/pay-2026120710") == "node-a#y\n")
    try await h.log(logInfo(file: "m", format: "", set: "sz.a.*", type: "10minute"), ["z\n"])
    #expect(h.read("Test/sza/HelloServer/Test.HelloServer_m_202612071020.log") == "node-a|z\n")
    // The call-chain trace goes where tarslog puts it, after the app and server.
    try await h.log(logInfo(file: "_t_trace_"), ["t\n"])
    #expect(h.read("_tars_/_trace_/_tars_._trace___t_trace__20261207.log") == "node-a|Test|HelloServer|t\n")
    // The next day is a new file.
    h.clock.set(h.clock.now + 86_400)
    try await h.log(logInfo(), ["tomorrow\n"])
    #expect(h.read("Test/HelloServer/Test.HelloServer_access_20261208.log") == "node-a|tomorrow\n")
    #expect(h.service.files.counters.lines == 8)

    // LogQueryObj lists them (set folders included) and reads the end, from a whole line.
    let list = try await h.call(
      LogQuery.ListFiles.self, "tars.tarslog.LogQueryObj", .init(app: "Test", server: "HelloServer"))
    #expect(list.ret == 0)
    #expect(
      Set(list.files.map(\.name)) == [
        "HelloServer/Test.HelloServer_access_20261207.log", "HelloServer/Test.HelloServer_20261207.log",
        "HelloServer/Test.HelloServer_old_2026120710.log", "sza1/HelloServer/pay-2026120710",
        "sza/HelloServer/Test.HelloServer_m_202612071020.log", "HelloServer/Test.HelloServer_access_20261208.log",
      ])
    let tail = try await h.call(
      LogQuery.Tail.self, "tars.tarslog.LogQueryObj",
      .init(app: "Test", server: "HelloServer", name: "HelloServer/Test.HelloServer_access_20261207.log", maxBytes: 40))
    #expect(tail.ret == 0 && tail.text == "node-a|2026-12-07 10:20:31|second\n", "\(tail)")
    for bad in ["../../etc/passwd", "HelloServer/../x", "Other/Test.HelloServer_20261207.log", "HelloServer/nope.log"] {
      let r = try await h.call(
        LogQuery.Tail.self, "tars.tarslog.LogQueryObj",
        .init(app: "Test", server: "HelloServer", name: bad, maxBytes: 100))
      #expect(r.ret == -1 && r.result.contains("tarsctl logs --remote lists them") && r.text.isEmpty, "\(bad): \(r)")
    }
  }

  /// Frames real TarsCpp sent (its own LogPrx, and the remote FDLOG path): each two-way call is
  /// answered with 0, and the lines land where tarslog puts them.
  @Test func tarsCppsCapturedReportsAreWrittenAsTarslogWould() async throws {
    let h = try await LogHarness()
    defer { Task { await h.stop() } }
    let socket = try RawSocket(port: h.server.port)
    for name in [
      "log_loggerbyInfo_allfields_req", "log_loggerbyInfo_defaults_req", "log_logger_req", "log_fdlog_remote_req",
    ] {
      socket.send(try MonitorHarness.capture(name))
      let reply = try #require(socket.readResponse(), "\(name) answered")
      #expect(reply.iRet == 0, "\(name): \(reply.sResultDesc)")
    }
    socket.send(try MonitorHarness.capture("log_loggerbyInfo_allfields_oneway_req"))
    // Every field: set sz.a.1, no app prefix, concat "-", no suffix, separator "#" after the
    // context's node_name; the format has no hour, so the 2-hour step changes nothing in the name.
    let all = "node-a#2026-12-07 10:20:30|first\nnode-a#2026-12-07 10:20:31|second\n"
    #expect(waitUntil { h.read("Test/sza1/HelloServer/access-20261207") == all + all })
    #expect(
      h.read("Test/HelloServer/Test.HelloServer_access_20261207.log")
        == "127.0.0.1|x\n127.0.0.1|2026-12-07 06:56:01|hello\n")
    #expect(h.read("Test/HelloServer/Test.HelloServer_old_2026120710.log") == "127.0.0.1|y\n")
  }

  /// Names from the wire never leave the root: each bad field is refused with its name.
  @Test(arguments: [
    (logInfo(file: "../../escape"), "sFilename"), (logInfo(file: "a/b"), "sFilename"),
    (logInfo(file: ".hidden"), "sFilename"), (logInfo(file: "", prefix: false), "sFilename"),
    (logInfo(format: "%s"), "format"), (logInfo(format: "%Y/%m"), "format"),
    (logInfo(set: "a./.b"), "setdivision"), (logInfo(concat: "/"), "sConcatStr"),
    (logInfo(separator: "\n"), "sSepar"), (logInfo(type: "0hour"), "sLogType"),
  ])
  func aBadReportIsRefusedNamingTheField(_ info: LogInfo, _ field: String) async throws {
    let h = try await LogHarness()
    defer { Task { await h.stop() } }
    await #expect {
      try await h.log(info, ["x\n"])
    } throws: { error in
      "\(error)".contains(field)
    }
    var badApp = logInfo()
    badApp.appname = ".."
    await #expect(throws: TarsCallError.self) { try await h.log(badApp, ["x\n"]) }
    #expect(h.service.refusedReports == 2)
    #expect(h.service.files.counters.lines == 0)
    #expect(h.service.exposition().contains("tars_log_refused_reports_total 2"))
    let escaped = FileManager.default.enumerator(atPath: h.dir.path)?.allObjects.compactMap { $0 as? String } ?? []
    #expect(escaped.allSatisfy { $0 == "logs" || $0.hasPrefix("logs/") && !$0.contains("escape") }, "\(escaped)")
  }

  /// With the NodeObj secret, LogQueryObj answers signed calls only, each once; LogObj stays
  /// open, as every Tars server sends to it unsigned.
  @Test func queriesMustBeSignedWhenThereIsASecret() async throws {
    let auth = try NodeCallAuth(secret: Array("a-secret-of-thirty-two-bytes-or-more!".utf8))
    let h = try await LogHarness(auth: auth)
    defer { Task { await h.stop() } }
    try await h.log(logInfo(), ["x\n"])
    let args = LogQuery.ListFiles.Args(app: "Test", server: "HelloServer")
    let unsigned = try await h.call(LogQuery.ListFiles.self, "tars.tarslog.LogQueryObj", args)
    #expect(unsigned.ret == -2 && unsigned.result.hasPrefix("refused") && unsigned.files.isEmpty, "\(unsigned)")
    var request = LogQuery.ListFiles.request(servant: "tars.tarslog.LogQueryObj", args, options: .init(timeoutMs: 5000))
    auth.sign(&request, target: LogService.queryTarget, timestamp: unixTimeSeconds())
    let endpoint = TarsEndpoint(host: "127.0.0.1", port: h.server.port, timeout: 5000)
    let signed = try LogQuery.ListFiles.result(from: try await h.client.invoke(request, to: endpoint, timeoutMs: 5000))
    #expect(signed.ret == 0 && signed.files.count == 1, "\(signed)")
    let replayed = try LogQuery.ListFiles.result(
      from: try await h.client.invoke(request, to: endpoint, timeoutMs: 5000))
    #expect(replayed.ret == -2, "a signed call is good once: \(replayed)")
    var other = LogQuery.ListFiles.request(servant: "tars.tarslog.LogQueryObj", args, options: .init(timeoutMs: 5000))
    auth.sign(&other, target: "node-a", timestamp: unixTimeSeconds())
    let wrongTarget = try LogQuery.ListFiles.result(
      from: try await h.client.invoke(other, to: endpoint, timeoutMs: 5000))
    #expect(wrongTarget.ret == -2, "signed for a node, not for the log service: \(wrongTarget)")
  }

  @Test func aLineOverTheLimitIsDroppedAndCountedWhileTheOthersAreWritten() async throws {
    var limits = LogFiles.Limits()
    limits.maxLineBytes = 100
    let h = try await LogHarness(limits: limits)
    defer { Task { await h.stop() } }
    try await h.log(logInfo(), ["short\n", String(repeating: "x", count: 101), "after\n"])
    #expect(h.read("Test/HelloServer/Test.HelloServer_access_20261207.log") == "node-a|short\nnode-a|after\n")
    #expect(h.service.files.counters.longLines == 1)
    #expect(h.service.exposition().contains("tars_log_long_lines_total 1"))
  }

  /// The size bound per server: the oldest files go first; the file being written is kept and,
  /// when it alone fills the budget, its lines are dropped and counted.
  @Test func aServerOverItsBytesLosesItsOldestFilesThenDropsLines() async throws {
    var limits = LogFiles.Limits()
    limits.maxBytesPerServer = 1000
    let h = try await LogHarness(limits: limits)
    defer { Task { await h.stop() } }
    let line = String(repeating: "a", count: 92) + "\n"  // 100 bytes with "node-a|"
    // Three days of 300 bytes each; another server's file beside them.
    for day in 0..<3 {
      try await h.log(logInfo(), Array(repeating: line, count: 3))
      _ = try await h.call(
        Log.Logger.self, "tars.tarslog.LogObj",
        .init(app: "Test", server: "Other", file: "", format: "", buffer: [line]))
      if day < 2 { h.clock.set(h.clock.now + 86_400) }
      // mtimes follow the clock, so "oldest" is by the days.
      let name = "Test/HelloServer/Test.HelloServer_access_2026120\(7 + day).log"
      let t = timespec(tv_sec: Int(LogHarness.noon) + day * 86_400, tv_nsec: 0)
      #expect(utimensat(AT_FDCWD, h.dir.file("logs/" + name), [t, t], 0) == 0)
    }
    // 900 bytes; 200 more pass 1000: the oldest day goes, nothing else.
    try await h.log(logInfo(), [line, line])
    #expect(h.read("Test/HelloServer/Test.HelloServer_access_20261207.log") == nil)
    #expect(h.read("Test/HelloServer/Test.HelloServer_access_20261208.log") != nil)
    #expect(h.read("Test/HelloServer/Test.HelloServer_access_20261209.log")?.utf8.count == 500)
    #expect(h.read("Test/Other/Test.Other_20261209.log") != nil)
    #expect(
      h.lines.withLock { $0 }.contains {
        $0.contains("Test.HelloServer_access_20261207.log (300 bytes): over --max-bytes-per-server")
      })
    // 800 now; 400 more: the 8th goes, and the current file takes 200 and then is alone and full.
    try await h.log(logInfo(), Array(repeating: line, count: 4))
    try await h.log(logInfo(), Array(repeating: line, count: 4))
    #expect(h.read("Test/HelloServer/Test.HelloServer_access_20261208.log") == nil)
    #expect(h.read("Test/HelloServer/Test.HelloServer_access_20261209.log")?.utf8.count == 900)
    #expect(h.service.files.counters.droppedLines == 4)
    #expect(h.service.files.counters.deletedForSize == 2)
    #expect(h.lines.withLock { $0 }.contains { $0.contains("Test.HelloServer is at its 1000 bytes") })
    // The other server kept its files all along.
    #expect(h.read("Test/Other/Test.Other_20261207.log") != nil)
  }

  @Test func filesNotWrittenForTheRetentionAreDeleted() async throws {
    var limits = LogFiles.Limits()
    limits.retentionDays = 2
    let h = try await LogHarness(limits: limits)
    defer { Task { await h.stop() } }
    try await h.log(logInfo(), ["old\n"])
    try await h.log(logInfo(file: "kept"), ["new\n"])
    let old = h.dir.file("logs/Test/HelloServer/Test.HelloServer_access_20261207.log")
    let t = timespec(tv_sec: Int(LogHarness.noon) - 3 * 86_400, tv_nsec: 0)
    #expect(utimensat(AT_FDCWD, old, [t, t], 0) == 0)
    #expect(h.service.files.prune(now: LogHarness.noon) == 1)
    #expect(!FileManager.default.fileExists(atPath: old))
    #expect(h.read("Test/HelloServer/Test.HelloServer_kept_20261207.log") == "node-a|new\n")
    #expect(
      h.lines.withLock { $0 }.contains {
        $0.contains("Test.HelloServer_access_20261207.log (11 bytes): older than 2 days")
      })
    #expect(h.service.exposition().contains("tars_log_deleted_files_total{reason=\"age\"} 1"))
    // Written again after the deletion: a new file, not a write into the deleted one.
    try await h.log(logInfo(), ["again\n"])
    #expect(h.read("Test/HelloServer/Test.HelloServer_access_20261207.log") == "node-a|again\n")
  }
}
