import Foundation
import TarsAuth
import TarsCtlCore
import TarsFramework
import TarsProtocol
import TarsRPC
import TarsTestSupport
import Testing

@Suite("Signed NodeObj calls are bound to their pod and good once", .serialized)
struct NodeCallReplayTests {
  @Test func aCapturedRestartIsRefusedWhenReplayedAndOnAnotherReplica() throws {
    let pods = [try TestPod(profile: TestPod.profile()), try TestPod(profile: TestPod.profile())]
    defer { for p in pods { p.dir.remove() } }
    let secret = pods[0].dir.file("secret")
    try "0123456789abcdef0123456789abcdef\n".write(toFile: secret, atomically: true, encoding: .utf8)
    let nodes = try pods.enumerated().map { i, pod in
      try NodeProcess(
        pod.arguments([
          "--secret-file", secret, "--pod-ip", "127.0.0.\(2 + i)", "--pod-name", "test-helloserver-\(i)",
        ]), dir: pod.dir)
    }
    defer { for n in nodes { n.terminate() } }
    let addresses = pods.enumerated().map { i, pod in "tcp -h 127.0.0.\(2 + i) -p \(pod.nodeObjPort)" }
    let ctl = try TarsCtl(timeoutMs: 5000)
    for (address, node) in zip(addresses, nodes) {
      #expect(
        eventually { (try? ctl.node(.state, node: address, secretFile: nil))?.contains("present: Active") == true },
        "\(node.stderr)")
    }
    // One restart, signed for pod 0, as someone on the network would capture it.
    var captured = Node.RestartServer.request(servant: "tars.tarsnode.NodeObj", .init(application: "", serverName: ""))
    try NodeCallAuth(secretFile: secret).sign(&captured, target: "test-helloserver-0", timestamp: unixTimeSeconds())

    let first = try sendRaw(captured, as: Node.RestartServer.self, to: addresses[0])
    #expect(first.ret == 0 && first.result == "Success", "\(first)")
    let replayed = try sendRaw(captured, as: Node.RestartServer.self, to: addresses[0])
    #expect(replayed.ret == -1 && replayed.result.hasPrefix("refused: replayed signature"), "\(replayed)")
    let elsewhere = try sendRaw(captured, as: Node.RestartServer.self, to: addresses[1])
    #expect(
      elsewhere.ret == -1 && elsewhere.result.contains("not signed for this pod (test-helloserver-1)"), "\(elsewhere)")
    #expect(nodes[1].stderr.contains("refused restartServer"), "the refusal is logged: \(nodes[1].stderr)")

    // tarsctl signs for the pod the node names, fresh each time: two restarts in a row pass.
    #expect(
      eventually { (try? ctl.node(.state, node: addresses[1], secretFile: nil))?.contains("present: Active") == true })
    #expect(try ctl.node(.restart, node: addresses[1], secretFile: secret) == "Success")
    #expect(try ctl.node(.restart, node: addresses[1], secretFile: secret) == "Success")
    let wrongPod = #expect(throws: TarsCtlError.self) {
      try ctl.node(.stop, node: addresses[1], secretFile: secret, pod: "test-helloserver-0")
    }
    #expect(wrongPod?.message.hasPrefix("refused: bad signature") == true, "\(String(describing: wrongPod))")
  }
}

@Suite("Failures that say what to change", .serialized)
struct FailureMessageTests {
  /// A copy of a dynamically linked system binary whose ELF interpreter names a file that does
  /// not exist — a TarsCpp server on an image without its C library, in miniature.
  func binaryWithAMissingInterpreter(in dir: TemporaryDirectory) throws -> (path: String, interpreter: String) {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/bin/true")))
    let real = Array("/lib64/ld-linux-x86-64.so.2".utf8)
    let missing = "/lib64/ld-nopex-x86-64.so.2"
    guard let at = (0...(bytes.count - real.count)).first(where: { bytes[$0..<($0 + real.count)].elementsEqual(real) })
    else {
      throw TarsServantError("/bin/true has no /lib64/ld-linux-x86-64.so.2 interpreter (not x86-64 glibc?)")
    }
    bytes.replaceSubrange(at..<(at + real.count), with: Array(missing.utf8))
    let path = dir.file("image/HelloServer")
    try? FileManager.default.removeItem(atPath: path)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    chmod(path, 0o755)
    return (path, missing)
  }

  @Test func aMissingELFInterpreterIsNamedOnceWhileRetryingQuietly() throws {
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let (_, interpreter) = try binaryWithAMissingInterpreter(in: pod.dir)
    let node = try NodeProcess(pod.arguments(), dir: pod.dir)
    defer { node.terminate() }
    // Backoff from 200 ms: 200, 400, 800 → at least four attempts in 2.5 s.
    usleep(2_500_000)
    let said = node.stderr.components(separatedBy: "ELF interpreter \(interpreter)").count - 1
    #expect(said == 1, "said once, not every backoff step: \(node.stderr)")
    #expect(node.stderr.contains("is missing from this image"), "\(node.stderr)")
    #expect(node.process.isRunning, "tarsnode keeps retrying")
    #expect(!node.stderr.contains("exec failed: No such file or directory"), "\(node.stderr)")
  }

  @Test func aMissingSharedLibraryIsNamedOnceWhileRetryingQuietly() throws {
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    // /bin/true, needing libq.so.6 instead of libc.so.6: exec works, the loader exits 127.
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/bin/true")))
    let real = Array("libc.so.6\0".utf8)
    let at = try #require(
      (0...(bytes.count - real.count)).first { bytes[$0..<($0 + real.count)].elementsEqual(real) },
      "/bin/true does not need libc.so.6")
    bytes[at + 3] = UInt8(ascii: "q")
    let path = pod.dir.file("image/HelloServer")
    try FileManager.default.removeItem(atPath: path)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    chmod(path, 0o755)
    let node = try NodeProcess(pod.arguments(), dir: pod.dir)
    defer { node.terminate() }
    usleep(2_500_000)
    let said = node.stderr.components(separatedBy: "it needs the library libq.so.6").count - 1
    #expect(said == 1, "said once, not every backoff step: \(node.stderr)")
    #expect(node.process.isRunning, "tarsnode keeps retrying")
    #expect(node.stderr.components(separatedBy: "exit with code 127").count <= 2, "\(node.stderr)")
    // It did keep trying: the loader's own line, once per attempt, is in the server's output.
    let output =
      (try? String(contentsOfFile: pod.dir.file("logs/Test/HelloServer/Test.HelloServer.stdout.log"), encoding: .utf8))
      ?? ""
    #expect(output.components(separatedBy: "libq.so.6: cannot open shared object file").count - 1 >= 3, "\(output)")
  }

  @Test func plainInitNamesAMissingInterpreterToo() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try FileManager.default.createDirectory(atPath: dir.file("image"), withIntermediateDirectories: true)
    let (path, interpreter) = try binaryWithAMissingInterpreter(in: dir)
    let script = dir.file("script")
    try "#!/no/such/shell\necho hi\n".write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    let binary = try Tool.run("tarsnode", ["--", path])
    #expect(binary.status == 127)
    #expect(binary.stderr.contains("ELF interpreter \(interpreter) is missing from this image"), "\(binary.stderr)")
    let shebang = try Tool.run("tarsnode", ["--", script])
    #expect(shebang.status == 127)
    #expect(shebang.stderr.contains("interpreter /no/such/shell (its #! line) is missing"), "\(shebang.stderr)")
  }

  @Test func theNotifySocketSaysWhereAndWhichFlag() throws {
    let pod = try TestPod()
    defer { pod.dir.remove() }
    // A directory where the socket goes: bind fails, and unlink cannot clear it.
    try FileManager.default.createDirectory(
      atPath: pod.dir.file("base/notify.sock/x"), withIntermediateDirectories: true)
    let node = try NodeProcess(
      pod.arguments(["--server-type", "not-tars", "--command", "sleep 60", "--ready-notify"]), dir: pod.dir)
    defer { node.terminate() }
    #expect(node.wait(seconds: 10) == 1)
    #expect(
      node.stderr.contains(
        "NOTIFY_SOCKET cannot listen on \(pod.dir.file("base/notify.sock")): Address already in use (--ready-notify puts it in --base-dir)"
      ),
      "\(node.stderr)")
  }

  @Test(arguments: ["--server-obj-port", "--node-obj-port"])
  func aTakenPortNamesTheServiceTheAddressAndTheFlag(_ flag: String) throws {
    let pod = try TestPod(profile: TestPod.profile())
    defer { pod.dir.remove() }
    let port = flag == "--server-obj-port" ? pod.serverObjPort : pod.nodeObjPort
    let holder = try ListeningSocket(port: port)
    defer { holder.close() }
    let node = try NodeProcess(pod.arguments(), dir: pod.dir)
    defer { node.terminate() }
    #expect(node.wait(seconds: 10) == 1)
    let service = flag == "--server-obj-port" ? "ServerObj" : "NodeObj"
    #expect(
      node.stderr.contains(
        "tarsnode: \(service) cannot listen on 127.0.0.1:\(port): address in use (another tarsnode? use \(flag))"),
      "\(node.stderr)")
  }
}

@Suite("tarsnode --install")
struct InstallTests {
  /// What the node image's init container runs: a copy of tarsnode that runs on its own.
  @Test func copiesItselfIntoADirectory() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let out = try Tool.run("tarsnode", ["--install", dir.file("bin")])
    #expect(out.status == 0, "\(out.stderr)")
    let copy = dir.file("bin/tarsnode")
    #expect(FileManager.default.contentsEqual(atPath: copy, andPath: Tool.path("tarsnode")))
    #expect(FileManager.default.isExecutableFile(atPath: copy))
    let help = try Tool.run(copy, ["--help"])
    #expect(help.status == 0 && help.stdout.contains("tarsnode --install DIR"), "\(help.stdout)")
    let refused = try Tool.run("tarsnode", ["--install", "/proc/nope"])
    #expect(refused.status == 1 && refused.stderr.contains("cannot install into /proc/nope"), "\(refused.stderr)")
  }

  /// The preStop hook: waits the seconds asked, then lets the kubelet stop the pod.
  @Test func drainWaitsTheSecondsAskedAndRefusesNonsense() throws {
    let start = ContinuousClock.now
    let out = try Tool.run("tarsnode", ["--drain", "1"])
    let took = ContinuousClock.now - start
    #expect(out.status == 0 && out.stdout.contains("draining for 1 s"), "\(out)")
    #expect(took >= .seconds(1) && took < .seconds(10), "\(took)")
    let bad = try Tool.run("tarsnode", ["--drain", "soon"])
    #expect(bad.status == 2 && bad.stderr.contains("--drain takes the seconds to wait, 0...3600, not 'soon'"))
  }
}
