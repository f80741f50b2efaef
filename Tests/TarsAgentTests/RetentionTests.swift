import Foundation
import Glibc
import TarsAgentCore
import TarsTestSupport
import Testing

/// Log retention on a real small file system (a 4 MiB tmpfs): each rule deletes exactly the
/// files it should, oldest first, never one a process has open for writing, and says why.
@Suite("Log retention on a small tmpfs", .serialized, .enabled(if: getuid() == 0, "needs root to mount a tmpfs"))
struct RetentionTests {
  final class Mounted {
    let dir: TemporaryDirectory
    var root: String { dir.path }
    init() throws {
      dir = try TemporaryDirectory("tars-retention")
      let r = try Tool.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir.path])
      guard r.status == 0 else { throw TestFailure("mount: \(r.stderr)") }
    }
    deinit {
      _ = try? Tool.run("/usr/bin/umount", [dir.path])
      dir.remove()
    }

    /// A file of `kib` KiB, last modified `days` ago.
    func file(_ path: String, kib: Int, days: Int = 0) throws {
      let full = root + "/" + path
      try FileManager.default.createDirectory(
        atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      // Written through a descriptor no child inherits (O_CLOEXEC): a process another test spawns
      // meanwhile would otherwise hold the file open for writing — kept by the rule, and its
      // space not freed when deleted.
      let fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
      #expect(fd >= 0)
      let zeros = [UInt8](repeating: 0, count: kib << 10)
      #expect(zeros.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == zeros.count)
      close(fd)
      let when = time(nil) - days * 86_400
      var times = [timespec(tv_sec: when, tv_nsec: 0), timespec(tv_sec: when, tv_nsec: 0)]
      #expect(utimensat(AT_FDCWD, full, &times, 0) == 0)
    }

    func names() -> Set<String> {
      Set(Retention.scan(root, patterns: ["*"]).map { String($0.path.dropFirst(root.count + 1)) })
    }

    /// One pass as the agent makes it: scan, plan, delete; the log lines.
    func run(_ policy: RetentionPolicy, dryRun: Bool = false) -> [String] {
      let files = Retention.scan(root, patterns: policy.patterns)
      let plan = Retention.plan(
        files, policy: policy, now: Int64(time(nil)), free: Retention.freeBytes(root) ?? 0,
        open: Proc().openForWriting())
      var lines: [String] = []
      Retention.apply(plan, dryRun: dryRun) { lines.append($0) }
      return lines
    }
  }

  @Test func ageDeletesOldFilesOnlyAndNeverAnOpenOne() throws {
    let m = try Mounted()
    try m.file("Test/HelloServer/Test.HelloServer_2026-11-01.log", kib: 8, days: 30)
    try m.file("Test/HelloServer/Test.HelloServer.log", kib: 8, days: 1)
    try m.file("Test/HelloServer/core.1234", kib: 8, days: 9)
    try m.file("Test/HelloServer/HelloServer.conf", kib: 1, days: 99)  // not a log: never touched
    try m.file("Test/HelloServer/open_2026-11-01.log", kib: 8, days: 30)
    // A server writing its log (opened for appending, as a logger does): kept however old.
    let fd = open(m.root + "/Test/HelloServer/open_2026-11-01.log", O_WRONLY | O_APPEND | O_CLOEXEC)
    #expect(fd >= 0)
    defer { close(fd) }
    var policy = RetentionPolicy()
    policy.maxAgeSeconds = 5 * 86_400

    let dry = m.run(policy, dryRun: true)
    #expect(dry.count == 2 && dry.allSatisfy { $0.hasPrefix("retention: would delete") }, "\(dry)")
    #expect(m.names().count == 5, "a dry run deletes nothing")

    let lines = m.run(policy)
    #expect(
      m.names() == [
        "Test/HelloServer/Test.HelloServer.log", "Test/HelloServer/HelloServer.conf",
        "Test/HelloServer/open_2026-11-01.log",
      ])
    #expect(lines.count == 2, "\(lines)")
    #expect(
      lines.contains { $0.contains("Test.HelloServer_2026-11-01.log") && $0.contains("older than 432000 s (30 days)") })
    #expect(lines.contains { $0.contains("core.1234") && $0.contains("(9 days)") })
  }

  /// A scan keeps each file's name in its directory's one buffer: every path comes back as it
  /// was written, non-ASCII and spaces included, with its server and size, in 48 bytes a file.
  @Test func aScanGivesBackEveryPathFromItsDirectorysNames() throws {
    let m = try Mounted()
    let paths = [
      "A/One/a.log", "A/One/b.log.1", "A/One/journal d'été.log", "A/Two/core.77", "B/One/x.stdout.log",
      "top.log",
    ]
    for (i, path) in paths.enumerated() { try m.file(path, kib: i + 1) }
    try m.file("A/One/notes.txt", kib: 1)  // matches no pattern
    let files = Retention.scan(m.root, patterns: RetentionPolicy().patterns)
    #expect(Set(files.map { String($0.path.dropFirst(m.root.count + 1)) }) == Set(paths))
    let byName = Dictionary(uniqueKeysWithValues: files.map { ($0.name, $0) })
    #expect(byName["journal d'été.log"]?.server == "A.One")
    #expect(byName["journal d'été.log"]?.bytes == 3 << 10)
    #expect(byName["core.77"]?.server == "A.Two")
    #expect(byName["top.log"]?.server == "")
    #expect(MemoryLayout<LogFile>.stride == 48)
  }

  @Test func aFileGoneBeforeItsTurnIsNotCountedAsDeleted() throws {
    let m = try Mounted()
    for day in 6...8 { try m.file("Test/HelloServer/Test.HelloServer_\(day).log", kib: 4, days: day) }
    var policy = RetentionPolicy()
    policy.maxAgeSeconds = 5 * 86_400
    let plan = Retention.plan(
      Retention.scan(m.root, patterns: policy.patterns), policy: policy, now: Int64(time(nil)), free: 0, open: [])
    #expect(plan.count == 3 && plan.allSatisfy { $0.rule == .age })
    // Someone else removed the middle one between the plan and the deletions.
    #expect(unlink(plan[1].file.path) == 0)
    var lines: [String] = []
    let done = Retention.apply(plan, dryRun: false) { lines.append($0) }
    #expect(done == [plan[0], plan[2]])
    #expect(lines.filter { $0.hasPrefix("retention: deleted") }.count == 2)
    #expect(lines.contains { $0.hasPrefix("retention: cannot delete") && $0.contains("No such file") }, "\(lines)")
    #expect(m.names().isEmpty)
  }

  @Test func sizePerServerDeletesThatServersOldestUntilUnder() throws {
    let m = try Mounted()
    for day in 1...4 { try m.file("Test/Big/Test.Big_\(day).log", kib: 256, days: 10 - day) }  // 1 MiB
    try m.file("Test/Small/Test.Small.log", kib: 256, days: 20)
    var policy = RetentionPolicy()
    policy.maxBytesPerServer = 600 << 10
    let lines = m.run(policy)
    #expect(
      m.names() == ["Test/Big/Test.Big_3.log", "Test/Big/Test.Big_4.log", "Test/Small/Test.Small.log"], "\(lines)")
    #expect(lines.allSatisfy { $0.contains("Test.Big keeps") && $0.contains("over 614400 per server") }, "\(lines)")
  }

  @Test func diskPressureDeletesTheOldestAnywhereUntilThereIsRoom() throws {
    let m = try Mounted()
    // 4 MiB of tmpfs: 3 MiB of logs leaves 1 MiB free; ask for 2.5 MiB free: two must go.
    try m.file("A/One/a.log", kib: 1024, days: 3)
    try m.file("B/Two/b.log", kib: 1024, days: 2)
    try m.file("A/One/c.log", kib: 1024, days: 1)
    let before = try #require(Retention.freeBytes(m.root))
    #expect(before < 2 << 20)
    var policy = RetentionPolicy()
    policy.minFreeBytes = 5 << 19
    let lines = m.run(policy)
    #expect(m.names() == ["A/One/c.log"], "the two oldest go, the newest stays: \(lines)")
    #expect(lines.allSatisfy { $0.contains("disk pressure") }, "\(lines)")
    #expect((Retention.freeBytes(m.root) ?? 0) >= 5 << 19)
  }
}
