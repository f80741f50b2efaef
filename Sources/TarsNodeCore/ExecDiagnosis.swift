import Glibc
import TarsRPC

/// Why exec(2) said "No such file or directory" (or "Exec format error") for a file that is
/// there: the kernel reports the *interpreter* missing as the program missing. A dynamically
/// linked TarsCpp server copied onto a scratch or musl image is the usual case, and the bare
/// errno sends operators looking for the wrong file. Read only after exec failed.
enum ExecDiagnosis {
  /// What is really missing, or nil when the file itself is the problem.
  static func explain(_ path: String, errno code: Int32) -> String? {
    guard code == ENOENT || code == ENOEXEC, let head = readHead(path, count: 4096), head.count >= 4 else { return nil }
    if head[0] == 0x23 && head[1] == 0x21 {  // "#!"
      let line = head.dropFirst(2).prefix { $0 != 10 }
      let words = line.split(whereSeparator: { $0 == 32 || $0 == 9 })
      guard let first = words.first else { return nil }
      if line.last == 13 && access(String(decoding: first, as: UTF8.self), X_OK) != 0 {
        return "its #! line ends in a carriage return (Windows line endings: convert the file with dos2unix)"
      }
      let interpreter = String(decoding: first, as: UTF8.self)
      if access(interpreter, X_OK) != 0 {
        return "its interpreter \(interpreter) (its #! line) is missing from this image"
      }
      return nil
    }
    guard head[0] == 0x7f && head[1] == 0x45 && head[2] == 0x4c && head[3] == 0x46, head.count >= 64 else { return nil }
    let is64 = head[4] == 2
    let machine = Int(head[18]) | Int(head[19]) << 8
    let ours = Self.machine
    if code == ENOEXEC, machine != ours, let name = machineNames[machine] {
      return "it is built for \(name), and this machine is \(machineNames[ours] ?? "another architecture")"
    }
    guard let interpreter = interpreter(path, head: head, is64: is64) else { return nil }
    if access(interpreter, F_OK) != 0 {
      return "its ELF interpreter \(interpreter) is missing from this image (a dynamically linked program needs its C "
        + "library in the image: use a base image that has it, or link the server statically)"
    }
    return nil
  }

  /// Debian's multiarch directories, which its ld.so searches by default.
  static var multiarch: [String] {
    #if arch(x86_64)
      return ["x86_64-linux-gnu"]
    #elseif arch(arm64)
      return ["aarch64-linux-gnu"]
    #else
      return []
    #endif
  }

  static let machineNames: [Int: String] = [3: "x86 (32-bit)", 62: "x86-64", 40: "ARM (32-bit)", 183: "arm64"]

  static var machine: Int {
    #if arch(x86_64)
      return 62
    #elseif arch(arm64)
      return 183
    #else
      return 0
    #endif
  }

  /// The PT_INTERP path named in the program headers.
  static func interpreter(_ path: String, head: [UInt8], is64: Bool) -> String? {
    func u(_ at: Int, _ size: Int, in b: [UInt8]) -> Int {
      (0..<size).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) }
    }
    let phoff = is64 ? u(32, 8, in: head) : u(28, 4, in: head)
    let phentsize = is64 ? u(54, 2, in: head) : u(42, 2, in: head)
    let phnum = is64 ? u(56, 2, in: head) : u(44, 2, in: head)
    guard phentsize > 0, phnum <= 256, let table = readHead(path, count: phentsize * phnum, offset: phoff),
      table.count == phentsize * phnum
    else { return nil }
    for i in 0..<phnum {
      let at = i * phentsize
      guard u(at, 4, in: table) == 3 else { continue }  // PT_INTERP
      let offset = is64 ? u(at + 8, 8, in: table) : u(at + 4, 4, in: table)
      let size = is64 ? u(at + 32, 8, in: table) : u(at + 16, 4, in: table)
      guard size > 0, size <= 4096, let bytes = readHead(path, count: size, offset: offset) else { return nil }
      return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
    return nil
  }

  /// The first shared library the program needs (DT_NEEDED) that is nowhere the dynamic loader
  /// looks — its RPATH/RUNPATH (with `$ORIGIN`), `LD_LIBRARY_PATH`, the directories of
  /// /etc/ld.so.conf and the default ones — said as what to fix. Read when the server exits
  /// with 127 at once: the loader's own message went into the server's output, not to the
  /// operator. Only the program's direct dependencies are checked.
  static func missingLibrary(_ path: String, libraryPath: String?) -> String? {
    guard let head = readHead(path, count: 64), head.count == 64, head[0] == 0x7f, head[1] == 0x45, head[4] == 2,
      head[5] == 1  // 64-bit little-endian: the layouts this code reads
    else { return nil }
    func u(_ b: [UInt8], _ at: Int, _ size: Int) -> Int { (0..<size).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) } }
    let phoff = u(head, 32, 8)
    let phentsize = u(head, 54, 2)
    let phnum = u(head, 56, 2)
    guard phentsize >= 56, phnum <= 256, let table = readHead(path, count: phentsize * phnum, offset: phoff),
      table.count == phentsize * phnum
    else { return nil }
    var loads: [(vaddr: Int, offset: Int, size: Int)] = []
    var dynamic: (offset: Int, size: Int)?
    for i in 0..<phnum {
      let at = i * phentsize
      switch u(table, at, 4) {
      case 1: loads.append((u(table, at + 16, 8), u(table, at + 8, 8), u(table, at + 32, 8)))  // PT_LOAD
      case 2: dynamic = (u(table, at + 8, 8), u(table, at + 32, 8))  // PT_DYNAMIC
      default: break
      }
    }
    guard let dynamic, dynamic.size <= 65536, let entries = readHead(path, count: dynamic.size, offset: dynamic.offset)
    else { return nil }
    var needed: [Int] = []
    var searchPaths: [Int] = []
    var strtab: Int?
    var at = 0
    while at + 16 <= entries.count {
      let tag = u(entries, at, 8)
      let value = u(entries, at + 8, 8)
      if tag == 0 { break }
      switch tag {
      case 1: needed.append(value)  // DT_NEEDED
      case 5: strtab = value  // DT_STRTAB (an address)
      case 15, 29: searchPaths.append(value)  // DT_RPATH, DT_RUNPATH
      default: break
      }
      at += 16
    }
    guard let strtab, let base = loads.first(where: { strtab >= $0.vaddr && strtab < $0.vaddr + $0.size }) else {
      return nil
    }
    let strtabOffset = base.offset + (strtab - base.vaddr)
    func string(_ index: Int) -> String? {
      guard let bytes = readHead(path, count: 256, offset: strtabOffset + index) else { return nil }
      return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
    let origin = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    var directories = searchPaths.compactMap(string).flatMap { $0.split(separator: ":").map(String.init) }.map {
      $0.replacingOrigin(with: origin)
    }
    directories += (libraryPath ?? "").split(separator: ":").map(String.init)
    directories += configuredDirectories("/etc/ld.so.conf", depth: 0)
    directories +=
      multiarch.flatMap { ["/lib/\($0)", "/usr/lib/\($0)"] } + ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    for index in needed {
      guard let name = string(index), !name.isEmpty else { continue }
      if name.contains("/") {
        if access(name, F_OK) != 0 { return "it needs the library \(name), which is missing from this image" }
        continue
      }
      if !directories.contains(where: { access($0 + "/" + name, F_OK) == 0 }) {
        return "it needs the library \(name), which is in none of the directories the loader searches "
          + "(LD_LIBRARY_PATH, the binary's RUNPATH, /etc/ld.so.conf, /lib, /usr/lib): add it to the image, "
          + "or put it in the server's bin/lib"
      }
    }
    return nil
  }

  /// The directories listed in an ld.so.conf, following `include` lines (globs of a directory's
  /// `*.conf` files, as Debian writes them).
  static func configuredDirectories(_ file: String, depth: Int) -> [String] {
    guard depth < 4, let bytes = try? Files.read(file) else { return [] }
    var out: [String] = []
    for raw in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
      let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
      let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
      guard let first = words.first else { continue }
      if first == "include" {
        for pattern in words.dropFirst() {
          let parts = pattern.split(separator: "/", omittingEmptySubsequences: false)
          let directory = parts.dropLast().joined(separator: "/")
          let glob = String(parts.last ?? "")
          let suffix = glob.hasPrefix("*") ? String(glob.dropFirst()) : nil
          for name in Files.list(directory).sorted() where suffix.map({ name.hasSuffix($0) }) ?? (name == glob) {
            out += configuredDirectories(directory + "/" + name, depth: depth + 1)
          }
        }
      } else if first.hasPrefix("/") {
        out.append(first)
      }
    }
    return out
  }

  static func readHead(_ path: String, count: Int, offset: Int = 0) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: count)
    let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
    return n < 0 ? nil : Array(buffer.prefix(n))
  }
}

extension String {
  /// An RPATH entry with a leading `$ORIGIN` / `${ORIGIN}` (the program's directory) replaced, as
  /// the loader does; ld.so allows the token elsewhere too, which no server build uses.
  fileprivate func replacingOrigin(with origin: String) -> String {
    if hasPrefix("${ORIGIN}") { return origin + dropFirst(9) }
    if hasPrefix("$ORIGIN") { return origin + dropFirst(7) }
    return self
  }
}
