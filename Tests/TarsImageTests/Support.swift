import Foundation
import TarsImage
import TarsTestSupport
import Testing

/// Archives made by Python's tarfile — an independent writer — including the entries a
/// hostile package would carry, which no well-behaved `tar czf` makes.
enum Archives {
  /// Runs `script` (Python, with `tarfile`, `io` and `out`, the path to write, in scope).
  static func python(_ out: String, _ script: String) throws {
    let program = "import tarfile, io, sys\nout = sys.argv[1]\n" + script
    let r = try Tool.run("/usr/bin/python3", ["-c", program, out])
    guard r.status == 0 else { throw ImageError("python failed: \(r.stderr)") }
  }

  /// A gzip'd tar with `members`: (name, kind, content or link target) in order.
  static func make(_ out: String, _ members: [(String, String, String)]) throws {
    var lines = ["with tarfile.open(out, 'w:gz', format=tarfile.PAX_FORMAT) as t:"]
    for (name, kind, value) in members {
      lines.append("  i = tarfile.TarInfo(\(pyString(name)))")
      switch kind {
      case "file":
        lines.append("  b = \(pyString(value)).encode(); i.size = len(b); i.mode = 0o755")
        lines.append("  t.addfile(i, io.BytesIO(b))")
      case "dir":
        lines.append("  i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)")
      case "symlink":
        lines.append("  i.type = tarfile.SYMTYPE; i.linkname = \(pyString(value)); t.addfile(i)")
      case "hardlink":
        lines.append("  i.type = tarfile.LNKTYPE; i.linkname = \(pyString(value)); t.addfile(i)")
      case "chr":
        lines.append("  i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; t.addfile(i)")
      case "fifo":
        lines.append("  i.type = tarfile.FIFOTYPE; t.addfile(i)")
      default:
        throw ImageError("unknown member kind \(kind)")
      }
    }
    try python(out, lines.joined(separator: "\n") + "\n")
  }

  static func pyString(_ s: String) -> String {
    "'"
      + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
      .replacingOccurrences(of: "\n", with: "\\n") + "'"
  }

  /// The classic package: HelloServer/ with the binary and its config.
  static func hello(_ out: String, binary: String = "#!/bin/sh\necho hello\n") throws {
    try make(
      out,
      [
        ("HelloServer", "dir", ""), ("HelloServer/HelloServer", "file", binary),
        ("HelloServer/HelloServer.conf", "file", "<hello>\ngreeting=Hi\n</hello>\n"),
        ("HelloServer/lib", "dir", ""), ("HelloServer/lib/libhello.so.1", "file", "ELF"),
        ("HelloServer/lib/libhello.so", "symlink", "libhello.so.1"),
      ])
  }
}

extension Trait where Self == ConditionTrait {
  /// Runs only where `tool` is installed (scripts/setup installs it); says so when it is not.
  static func needs(_ tool: String) -> Self {
    .enabled(
      if: FileManager.default.isExecutableFile(atPath: tool), "\(tool) is not installed (scripts/setup installs it)")
  }
}
