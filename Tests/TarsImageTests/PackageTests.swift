import Foundation
import Glibc
import TarsImage
import TarsTestSupport
import Testing

@Suite("Server packages, hostile ones refused")
struct PackageTests {
  @Test func aClassicPackageUnpacksBelowItsTopDirectory() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try Archives.hello(dir.file("HelloServer.tgz"))
    try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: false)
    let unpacked = try ServerPackage.unpack(dir.file("HelloServer.tgz"), into: dir.file("out"))
    #expect(unpacked.files == 3)
    let sha = try Tool.run("/usr/bin/sha256sum", [dir.file("HelloServer.tgz")]).stdout
    #expect(sha.hasPrefix(unpacked.digest.hex), "the package's digest is the file's")
    #expect(try String(contentsOfFile: dir.file("out/HelloServer.conf"), encoding: .utf8).contains("greeting=Hi"))
    #expect(access(dir.file("out/HelloServer"), X_OK) == 0)
    #expect(
      try FileManager.default.destinationOfSymbolicLink(atPath: dir.file("out/lib/libhello.so")) == "libhello.so.1")
  }

  /// What one-machine mode runs of a released image: `/usr/local/server/bin` with every layer
  /// applied in order (a whiteout removes), nothing from elsewhere, nothing climbing out.
  @Test func anImagesServerFilesAreItsLayersInOrder() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let bin = "usr/local/server/bin"
    try Archives.make(
      dir.file("one.tgz"),
      [("etc/os-release", "file", "x"), ("\(bin)/Hello", "file", "v1"), ("\(bin)/old.conf", "file", "o")])
    try Archives.make(
      dir.file("two.tgz"),
      [("\(bin)/.wh.old.conf", "file", ""), ("\(bin)/Hello", "file", "v2"), ("\(bin)/new.conf", "file", "n")])
    var b = ImageBuild()
    b.tarballs = [dir.file("one.tgz"), dir.file("two.tgz")]
    let layout = try ImageLayout(path: dir.file("layout"))
    _ = try b.build(into: layout, tag: "t")
    try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: false)
    #expect(try layout.extract(tag: "t", below: bin, into: dir.file("out")) == 4, "files written, layer by layer")
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("out")).sorted() == ["Hello", "new.conf"])
    #expect(try String(contentsOfFile: dir.file("out/Hello"), encoding: .utf8) == "v2")

    try Archives.make(dir.file("evil.tgz"), [("\(bin)/../../../../tmp/evil", "file", "x")])
    var evil = ImageBuild()
    evil.tarballs = [dir.file("evil.tgz")]
    _ = try evil.build(into: layout, tag: "evil")
    try FileManager.default.createDirectory(atPath: dir.file("evil"), withIntermediateDirectories: false)
    let error = #expect(throws: ImageError.self) { try layout.extract(tag: "evil", below: bin, into: dir.file("evil")) }
    #expect(error?.message.contains("climbs out") == true, "\(error?.message ?? "")")
  }

  /// Each way a package could reach outside its tree, or hurt the builder, is refused with the reason.
  @Test(arguments: [
    ([("H", "dir", ""), ("H/../../etc/passwd", "file", "x")], "climbs out of the package with '..'"),
    ([("/etc/cron.d/evil", "file", "x")], "is an absolute path"),
    ([("H", "dir", ""), ("H/out", "symlink", "../../../etc")], "leaves the package's tree"),
    ([("H", "dir", ""), ("H/abs", "symlink", "/etc/passwd")], "an absolute path outside the package"),
    (
      [("H", "dir", ""), ("H/d", "symlink", "."), ("H/d/x", "file", "x")],
      "would be written through the link d"
    ),
    ([("H", "dir", ""), ("H/null", "chr", "")], "is a character device"),
    ([("H", "dir", ""), ("H/pipe", "fifo", "")], "is a FIFO"),
    ([("H", "dir", ""), ("H/h", "hardlink", "/etc/shadow")], "outside the package's tree"),
    ([("HelloServer", "file", "x")], "is at the top of"),
    ([("H", "dir", "")], "holds no file below its top directory"),
  ])
  func hostileEntriesAreRefused(_ members: [(String, String, String)], _ reason: String) throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try Archives.make(dir.file("bad.tgz"), members)
    try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: false)
    let error = #expect(throws: ImageError.self) {
      try ServerPackage.unpack(dir.file("bad.tgz"), into: dir.file("out"))
    }
    #expect(error?.message.contains(reason) == true, "\(error?.message ?? "no error")")
    #expect(!FileManager.default.fileExists(atPath: "/tmp/../etc/cron.d/evil"))
  }

  @Test func sizesOverTheLimitsAndBrokenArchivesAreRefused() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try Archives.hello(dir.file("HelloServer.tgz"), binary: String(repeating: "x", count: 5000))
    func unpack(_ path: String, _ limits: PackageLimits) -> String {
      let out = dir.file("out-\(UInt32.random(in: 0...UInt32.max))")
      try? FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
      do {
        _ = try ServerPackage.unpack(path, into: out, limits: limits)
        return "accepted"
      } catch {
        return error.message
      }
    }
    var limits = PackageLimits()
    limits.fileBytes = 4096
    #expect(unpack(dir.file("HelloServer.tgz"), limits).contains("over the limit of 4096 per file"))
    limits = PackageLimits()
    limits.totalBytes = 5010
    #expect(unpack(dir.file("HelloServer.tgz"), limits).contains("unpacks to more than 5010 bytes"))
    limits = PackageLimits()
    limits.entries = 3
    #expect(unpack(dir.file("HelloServer.tgz"), limits).contains("more than 3 entries"))

    // Cut short, or not gzip at all.
    let whole = try Data(contentsOf: URL(fileURLWithPath: dir.file("HelloServer.tgz")))
    try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: dir.file("cut.tgz")))
    let cut = unpack(dir.file("cut.tgz"), PackageLimits())
    #expect(cut.contains("ends") || cut.contains("truncated"), "\(cut)")
    try Data("just text, not a package".utf8).write(to: URL(fileURLWithPath: dir.file("text.tgz")))
    #expect(unpack(dir.file("text.tgz"), PackageLimits()).contains("not gzip"))
    #expect(unpack(dir.file("missing.tgz"), PackageLimits()).contains("cannot open"))
  }
}
