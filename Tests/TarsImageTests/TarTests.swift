import Foundation
import TarsImage
import TarsTestSupport
import Testing

@Suite("Tar and gzip streams")
struct TarTests {
  /// What we write, GNU tar lists; what Python's tarfile writes (PAX long names included), we read.
  @Test func ourTarIsReadByGNUTarAndOursReadsPythons() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let long = String(repeating: "d", count: 120) + "/file"
    var bytes: [UInt8] = []
    var tar = TarWriter { bytes += $0 }
    try tar.begin(TarEntry(path: "usr", kind: .directory, mode: 0o755))
    try tar.begin(TarEntry(path: "usr/hello", kind: .file, mode: 0o755, size: 6))
    try tar.write(Array("hello\n".utf8))
    try tar.begin(TarEntry(path: long, kind: .file, mode: 0o644, size: 3))
    try tar.write(Array("abc".utf8))
    try tar.begin(TarEntry(path: "usr/link", kind: .symlink(target: "hello"), mode: 0o777))
    try tar.finish()
    #expect(bytes.count % 512 == 0)
    try Data(bytes).write(to: URL(fileURLWithPath: dir.file("a.tar")))
    let listed = try Tool.run("/usr/bin/tar", ["-tvf", dir.file("a.tar"), "--numeric-owner"])
    #expect(listed.status == 0, "\(listed.stderr)")
    let lines = listed.stdout.split(separator: "\n").map(String.init)
    #expect(lines.count == 4)
    #expect(lines[1].hasPrefix("-rwxr-xr-x 0/0") && lines[1].contains("1970-01-01 00:00 usr/hello"), "\(lines)")
    #expect(lines[2].hasSuffix(long) && lines[3].hasSuffix("usr/link -> hello"), "\(lines)")

    try Archives.make(dir.file("p.tgz"), [("top", "dir", ""), ("top/" + long, "file", "xyz")])
    let file = FileHandle(forReadingAtPath: dir.file("p.tgz"))!
    let gunzip = try GzipReader { Array(file.readData(ofLength: 100)) }  // tiny chunks on purpose
    var reader = TarReader { try gunzip.read(max: $0) }
    var seen: [(String, [UInt8])] = []
    while let e = try reader.next() {
      var content: [UInt8] = []
      while case let chunk = try reader.read(max: 7), !chunk.isEmpty { content += chunk }
      seen.append((e.path, content))
    }
    #expect(seen.map(\.0) == ["top", "top/" + long])
    #expect(seen.last?.1 == Array("xyz".utf8))
  }

  /// Same input, same gzip bytes (no name, no time in the header); gunzip(1) reads them.
  @Test func gzipIsDeterministicAndStandard() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    func gzip(_ input: [UInt8]) throws -> [UInt8] {
      var out: [UInt8] = []
      let g = try GzipWriter { out += $0 }
      for start in stride(from: 0, to: input.count, by: 10_000) {
        try g.write(Array(input[start..<min(start + 10_000, input.count)]))
      }
      try g.finish()
      return out
    }
    let input = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 7 + $0 / 1000) }
    let a = try gzip(input)
    #expect(try gzip(input) == a)
    #expect(a[4..<8].allSatisfy { $0 == 0 }, "no modification time")
    try Data(a).write(to: URL(fileURLWithPath: dir.file("x.gz")))
    let r = try Tool.run("/usr/bin/gzip", ["-t", dir.file("x.gz")])
    #expect(r.status == 0, "\(r.stderr)")
    let back = try Tool.run("/usr/bin/sha256sum", [dir.file("x.gz")])
    #expect(back.stdout.hasPrefix(Digest.of(a).hex))
  }
}
