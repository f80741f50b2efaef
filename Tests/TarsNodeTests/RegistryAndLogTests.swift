import Foundation
import TarsFramework
import TarsNodeCore
import TarsProtocol
import TarsTestSupport
import Testing

@Suite("tarsnode and the registry", .serialized)
struct RegistryTests {
  static func descriptor(port: Int) -> ServerDescriptor {
    ServerDescriptor(
      profile: TestPod.profile(), asyncThreadNum: 1,
      adapters: [
        "Test.HelloServer.HelloObjAdapter": AdapterDescriptor(
          adapterName: "Test.HelloServer.HelloObjAdapter", endpoint: "tcp -h ${localip} -p \(port) -t 60000",
          threadNum: 1,
          maxConnections: 1000, allowIp: "", servant: "Test.HelloServer.HelloObj", queuecap: 1000, queuetimeout: 5000,
          protocol: "tars")
      ])
  }

  @Test func reportsEveryTransitionAndStartsFromTheLastDescriptionWhenTheRegistryIsGone() throws {
    let pod = try TestPod()
    defer { pod.dir.remove() }
    let registryPort = freePort()
    let fake = FakeRegistry(Self.descriptor(port: pod.adapterPort))
    var registry: LoopServer? = try LoopServer(servants: ["tars.tarsregistry.RegistryObj": fake], port: registryPort)
    let address = "tars.tarsregistry.RegistryObj@tcp -h 127.0.0.1 -p \(registryPort) -t 3000"

    // 1. With the registry: the description comes from it, and every transition is reported
    //    with the pid in context "PID".
    var node = try NodeProcess(pod.arguments(registry: address), dir: pod.dir)
    #expect(eventually { fake.presents.contains("Active") }, "\(fake.presents) \(node.stderr)")
    let reports = fake.reports.withLock { $0 }
    #expect(reports.first?.present == "Inactive" || reports.first?.present == "Activating")
    #expect(Array(fake.presents.drop { $0 != "Activating" }.prefix(2)) == ["Activating", "Active"])
    let pid = pod.state()?.pid ?? 0
    #expect(reports.contains { $0.present == "Active" && $0.pid == String(pid) && $0.setting == "Active" })
    // Level-triggered: the state comes again without any change (report interval 500 ms).
    let count = fake.reports.withLock { $0.count }
    #expect(eventually(5) { fake.reports.withLock { $0.count } >= count + 2 })
    _ = try pod.ctl(.stop)
    #expect(
      eventually {
        fake.presents.suffix(3).contains("Deactivating") && fake.reports.withLock { $0.last?.setting } == "Inactive"
      })
    node.terminate()

    // 2. The registry goes away; a new tarsnode (a restarted container) starts the server from
    //    the description the first one kept, and keeps supervising.
    registry?.stop()
    registry = nil
    node = try NodeProcess(pod.arguments(registry: address), dir: pod.dir)
    defer { node.terminate() }
    #expect(eventually { pod.state()?.present == "Active" }, "\(node.stderr)")
    #expect(node.stderr.contains("the registry is unreachable"), "\(node.stderr)")
    let before = fake.reports.withLock { $0.count }

    // 3. The registry comes back on its address: the current state reaches it without a restart.
    registry = try LoopServer(servants: ["tars.tarsregistry.RegistryObj": fake], port: registryPort)
    defer { registry?.stop() }
    #expect(
      eventually(15) { fake.reports.withLock { $0.count } > before && fake.presents.last == "Active" }, "\(node.stderr)"
    )
    #expect(node.stderr.contains("the registry is reachable again"))
  }
}

@Suite("The server's output")
struct OutputTests {
  /// Reads every `<id>.stdout.log*` file of a plain-init run, oldest first.
  static func logFiles(_ dir: String, name: String) -> [String] {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    let rotated = files.compactMap { f -> Int? in
      guard f.hasPrefix(name + ".") else { return nil }
      return Int(f.dropFirst(name.count + 1))
    }.sorted(by: >)
    return rotated.map { "\(dir)/\(name).\($0)" } + (files.contains(name) ? ["\(dir)/\(name)"] : [])
  }

  @Test func rotatesAtLineBoundariesAndLosesNoLine() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    // seq writes numbered lines at full speed, in 4 KiB blocks that cut lines in two.
    let lines = 800_000
    let node = try NodeProcess(
      [
        "--log-dir", dir.file("logs"), "--log-max-bytes", "49152", "--log-files", "1000", "--", "seq", "1",
        String(lines),
      ],
      dir: dir)
    defer { node.terminate() }
    #expect(node.wait(seconds: 120) == 0, "\(node.stderr)")

    let logDir = dir.file("logs/plain/seq")
    let files = Self.logFiles(logDir, name: "plain.seq.stdout.log")
    #expect(files.count >= 100, "\(files.count) files: expected at least 100 rotations")
    var next = 1
    for file in files {
      let text = try String(contentsOfFile: file, encoding: .utf8)
      #expect(text.hasSuffix("\n"), "\(file) ends inside a line")
      #expect(text.utf8.count <= 49152, "\(file) is over the limit")
      for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
        guard Int(line) == next else {
          Issue.record("\(file): expected line \(next), found '\(line)'")
          return
        }
        next += 1
      }
    }
    #expect(next == lines + 1, "every line exactly once across the files")
    // The copy on tarsnode's stdout (what kubectl logs shows) is complete too.
    let copy = node.stdout.split(separator: "\n")
    #expect(copy.count == lines && copy.first == "1" && copy.last == Substring(String(lines)))
  }

  @Test func aStalledDiskDoesNotHoldTheServer() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    // The log file is a FIFO nobody reads: opening it blocks forever, like a hung mount.
    try FileManager.default.createDirectory(atPath: dir.file("logs/plain/seq"), withIntermediateDirectories: true)
    #expect(mkfifo(dir.file("logs/plain/seq/plain.seq.stdout.log"), 0o644) == 0)
    let start = Date()
    let node = try NodeProcess(
      ["--log-dir", dir.file("logs"), "--no-stdout-copy", "--", "seq", "1", "3000000"], dir: dir)
    defer { node.terminate() }
    // ~21 MB of output against an 8 MiB queue: the server must finish anyway.
    #expect(node.wait(seconds: 60) == 0)
    #expect(Date().timeIntervalSince(start) < 30)
    #expect(node.stderr.contains("dropped"), "\(node.stderr)")
  }

  @Test func outputLogUnitRotation() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let log = OutputLog(path: dir.file("out.log"), maxBytes: 100, files: 3, copyToStdout: false)
    log.start()
    // Lines arriving in fragments, a line longer than the limit, and a last line without newline.
    for chunk in ["aaaa\nbb", "bb\ncccc", "\n", String(repeating: "x", count: 150) + "\n", "tail"] {
      _ = log.append(Array(chunk.utf8))
    }
    log.finish()
    let current = try String(contentsOfFile: dir.file("out.log"), encoding: .utf8)
    let previous = try String(contentsOfFile: dir.file("out.log.1"), encoding: .utf8)
    let oldest = try String(contentsOfFile: dir.file("out.log.2"), encoding: .utf8)
    #expect(oldest == "aaaa\nbbbb\ncccc\n")
    #expect(previous == String(repeating: "x", count: 150) + "\n", "a long line goes alone into a file")
    #expect(current == "tail")
  }
}

@Suite("Readiness of not-tars servers", .serialized)
struct ReadinessTests {
  /// A not-tars pod running `command` (split at spaces, as --command is).
  func startPod(_ extra: [String], command: String) throws -> (TestPod, NodeProcess) {
    let pod = try TestPod()
    let node = try NodeProcess(
      pod.arguments(["--server-type", "not-tars", "--command", command] + extra), dir: pod.dir)
    return (pod, node)
  }

  @Test func activeWhenTheServerSaysReadyOnNotifySocket() throws {
    let script = try TemporaryDirectory()
    defer { script.remove() }
    try """
    import os, socket, time
    time.sleep(1.5)
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
    time.sleep(60)
    """.write(toFile: script.file("ready.py"), atomically: true, encoding: .utf8)
    let (pod, node) = try startPod(["--ready-notify"], command: "python3 \(script.file("ready.py"))")
    defer {
      node.terminate()
      pod.dir.remove()
    }
    #expect(eventually { pod.state()?.present == "Activating" }, "\(node.stderr)")
    #expect(eventually { pod.state()?.present == "Active" }, "\(node.stderr)")
  }

  @Test func activeWhenTheHTTPProbeAnswers2xx() throws {
    let port = freePort()
    let (pod, node) = try startPod(
      ["--ready-http", "http://127.0.0.1:\(port)/"], command: "python3 -m http.server \(port) --bind 127.0.0.1")
    defer {
      node.terminate()
      pod.dir.remove()
    }
    #expect(eventually(15) { pod.state()?.present == "Active" }, "\(node.stderr)")
  }

  @Test func withoutAProbeANotTarsServerIsActiveOnceItRuns() throws {
    let (pod, node) = try startPod([], command: "sleep 60")
    defer {
      node.terminate()
      pod.dir.remove()
    }
    #expect(eventually { pod.state()?.present == "Active" }, "\(node.stderr)")
  }
}
