import Foundation
import TarsImage
import TarsTestSupport
import Testing

@Suite("Images built from server packages")
struct BuildTests {
  func build(_ dir: TemporaryDirectory, into layout: String, base: ImageBuild.Base = .scratch) throws
    -> ImageBuild.Result
  {
    var b = ImageBuild()
    b.base = base
    b.package = dir.file("HelloServer.tgz")
    b.server = "Test.HelloServer"
    b.serverType = "cpp"
    b.env = ["TARS_EXAMPLE=1"]
    b.entrypoint = ["/usr/local/server/bin/HelloServer"]
    b.labels = ["org.opencontainers.image.version": "1"]
    return try b.build(into: try ImageLayout(path: dir.file(layout)), tag: "hello-1")
  }

  /// The same package and flags give the same manifest digest — twice here, and the digest this
  /// test pins (so a clone on another machine gets it too: sorted entries, time 0, owner 0,
  /// normalized modes, gzip without name or time).
  @Test func theSameInputsGiveTheSameDigest() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    // A package made byte for byte the same everywhere: our own tar and gzip over fixed entries.
    var tgz: [UInt8] = []
    let gzip = try GzipWriter { tgz += $0 }
    var tar = TarWriter { try gzip.write($0) }
    try tar.begin(TarEntry(path: "HelloServer", kind: .directory, mode: 0o755))
    for (name, content, mode) in [("HelloServer", "#!/bin/sh\necho hi\n", UInt32(0o755)), ("a.conf", "k=v\n", 0o644)] {
      try tar.begin(TarEntry(path: "HelloServer/" + name, kind: .file, mode: mode, size: Int64(content.utf8.count)))
      try tar.write(Array(content.utf8))
    }
    try tar.finish()
    try gzip.finish()
    try Data(tgz).write(to: URL(fileURLWithPath: dir.file("HelloServer.tgz")))

    let first = try build(dir, into: "one")
    let second = try build(dir, into: "two")
    #expect(first.manifest.digest == second.manifest.digest)
    #expect(first.layers == second.layers)
    #expect(
      first.manifest.digest == "sha256:bceda0fe35be445565bb93e71f508d64e0a5fa868097789e972a02670d842807",
      "pinned: a change here changes every image's digest; update it only on purpose")
  }

  /// skopeo reads what we wrote; umoci unpacks the rootfs and config we meant.
  @Test(.needs("/usr/bin/umoci"), .needs("/usr/bin/skopeo"))
  func skopeoAndUmociReadTheImage() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try Archives.hello(dir.file("HelloServer.tgz"))
    let result = try build(dir, into: "layout")
    let inspect = try Tool.run("/usr/bin/skopeo", ["inspect", "oci:\(dir.file("layout")):hello-1"])
    #expect(inspect.status == 0, "\(inspect.stderr)")
    let info = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
    #expect(info?["Digest"] as? String == result.manifest.digest)
    #expect((info?["Env"] as? [String])?.contains("ServerType=cpp") == true)
    let labels = info?["Labels"] as? [String: String]
    #expect(labels?["io.tars.server"] == "Test.HelloServer" && labels?["io.tars.package.digest"] != nil)
    // skopeo copies it to another layout (every blob read and verified).
    let copy = try Tool.run(
      "/usr/bin/skopeo", ["copy", "oci:\(dir.file("layout")):hello-1", "oci:\(dir.file("copy")):hello-1"])
    #expect(copy.status == 0, "\(copy.stderr)")

    let unpack = try Tool.run(
      "/usr/bin/umoci", ["unpack", "--rootless", "--image", "\(dir.file("layout")):hello-1", dir.file("bundle")])
    #expect(unpack.status == 0, "\(unpack.stderr)")
    let root = dir.file("bundle/rootfs/usr/local/server/bin")
    #expect(try String(contentsOfFile: root + "/HelloServer.conf", encoding: .utf8).contains("greeting=Hi"))
    #expect(FileManager.default.isExecutableFile(atPath: root + "/HelloServer"))
    #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/lib/libhello.so") == "libhello.so.1")
    let bundle =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: dir.file("bundle/config.json")))) as? [String: Any]
    let process = bundle?["process"] as? [String: Any]
    #expect(process?["args"] as? [String] == ["/usr/local/server/bin/HelloServer"])
    #expect((process?["env"] as? [String])?.contains("TARS_EXAMPLE=1") == true)
  }

  /// An image built on another (an OCI layout base) keeps the base's layers and config and adds one.
  @Test func aBaseImageKeepsItsLayersAndSettings() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try Archives.hello(dir.file("HelloServer.tgz"))
    var base = ImageBuild()
    base.files = [.init(path: "etc/os-release", source: .bytes(Array("ID=test\n".utf8)), mode: 0o644)]
    base.env = ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"]
    base.user = "65534"
    base.cmd = ["/bin/sh"]
    let baseResult = try base.build(into: try ImageLayout(path: dir.file("base")), tag: "1")
    let built = try build(dir, into: "out", base: .layout(path: dir.file("base"), tag: "1"))
    #expect(built.layers.count == 2 && built.layers[0] == baseResult.layers[0])
    let layout = try ImageLayout(path: dir.file("out"), create: false)
    let config = String(decoding: try layout.blobs.read(built.config), as: UTF8.self)
    #expect(config.contains(#""User": "65534""#) && config.contains("LANG=C.UTF-8"), "\(config)")
    #expect(!config.contains(#""Cmd""#), "a new entrypoint drops the base's Cmd: \(config)")

    for (text, message) in [
      ("docker://debian", "use scratch or oci:DIR[:TAG]"), ("oci:" + dir.file("nowhere"), "is not an OCI image layout"),
      ("oci:" + dir.file("base") + ":2", "has no image tagged 2"),
    ] {
      let error = #expect(throws: ImageError.self) {
        var b = ImageBuild()
        b.base = try ImageBuild.Base(parsing: text)
        _ = try b.build(into: try ImageLayout(path: dir.file("x")), tag: "t")
      }
      #expect(error?.message.contains(message) == true, "\(text): \(error?.message ?? "")")
    }
  }
}
