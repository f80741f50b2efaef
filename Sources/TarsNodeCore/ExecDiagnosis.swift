import Glibc

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
    if machine != ours, let name = machineNames[machine] {
      return "it is built for \(name), and this machine is \(machineNames[ours] ?? "another architecture")"
    }
    guard let interpreter = interpreter(path, head: head, is64: is64) else { return nil }
    if access(interpreter, F_OK) != 0 {
      return "its ELF interpreter \(interpreter) is missing from this image (a dynamically linked program needs its C "
        + "library in the image: use a base image that has it, or link the server statically)"
    }
    return nil
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

  static func readHead(_ path: String, count: Int, offset: Int = 0) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: count)
    let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
    return n < 0 ? nil : Array(buffer.prefix(n))
  }
}
