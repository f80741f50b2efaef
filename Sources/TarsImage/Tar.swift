/// One member of a tar stream, as layers and server packages carry them. Paths are relative,
/// `/`-separated, without a leading `/` or `./`.
public struct TarEntry: Sendable, Equatable {
  public enum Kind: Sendable, Equatable {
    case file
    case directory
    case symlink(target: String)
    case hardlink(target: String)
    /// Devices, FIFOs and the rest: never unpacked (a package has no business making one).
    case other(typeflag: UInt8)
  }

  public var path: String
  public var kind: Kind
  public var mode: UInt32
  public var size: Int64
  public var uid: Int = 0
  public var gid: Int = 0

  public init(path: String, kind: Kind, mode: UInt32, size: Int64 = 0) {
    self.path = path
    self.kind = kind
    self.mode = mode
    self.size = size
  }
}

/// Writes a POSIX tar stream (ustar headers, a PAX record for a path or link over 100 bytes),
/// every entry owned by 0:0 at `mtime`, so the same entries give the same bytes: the basis of
/// a reproducible layer digest.
public struct TarWriter {
  /// The fixed modification time of every entry (1970-01-01: what reproducible builds use
  /// when no SOURCE_DATE_EPOCH is given).
  public static let mtime: Int64 = 0
  let emit: ([UInt8]) throws -> Void
  var pendingPadding = 0

  public init(emit: @escaping ([UInt8]) throws -> Void) { self.emit = emit }

  /// The header of `e`; a file's `e.size` content bytes follow through `write(_:)`.
  public mutating func begin(_ e: TarEntry) throws {
    try padPrevious()
    var name = e.path
    if case .directory = e.kind, !name.hasSuffix("/") { name += "/" }
    var link = ""
    let flag: UInt8
    switch e.kind {
    case .file: flag = UInt8(ascii: "0")
    case .directory: flag = UInt8(ascii: "5")
    case .symlink(let target):
      flag = UInt8(ascii: "2")
      link = target
    case .hardlink(let target):
      flag = UInt8(ascii: "1")
      link = target
    case .other(let f): flag = f
    }
    var pax: [(String, String)] = []
    if name.utf8.count > 100 { pax.append(("path", name)) }
    if link.utf8.count > 100 { pax.append(("linkpath", link)) }
    if !pax.isEmpty {
      let body = Self.paxRecords(pax)
      try emit(
        Self.header(
          name: "PaxHeaders/" + String(name.utf8.prefix(80))!, flag: UInt8(ascii: "x"), mode: 0o644,
          size: Int64(body.count), link: ""))
      try emit(body + [UInt8](repeating: 0, count: Self.padding(body.count)))
    }
    try emit(
      Self.header(
        name: String(name.utf8.prefix(100))!, flag: flag, mode: e.mode,
        size: e.kind == .file ? e.size : 0, link: String(link.utf8.prefix(100))!, uid: e.uid, gid: e.gid))
    pendingPadding = e.kind == .file ? Self.padding(Int(e.size)) : 0
  }

  /// Content of the current file; the caller writes exactly its size.
  public func write(_ bytes: [UInt8]) throws { try emit(bytes) }

  /// The end of the archive: two zero blocks.
  public mutating func finish() throws {
    try padPrevious()
    try emit([UInt8](repeating: 0, count: 1024))
  }

  mutating func padPrevious() throws {
    if pendingPadding > 0 { try emit([UInt8](repeating: 0, count: pendingPadding)) }
    pendingPadding = 0
  }

  static func padding(_ size: Int) -> Int { (512 - size % 512) % 512 }

  /// `LEN key=value\n` records, LEN counting itself.
  static func paxRecords(_ records: [(String, String)]) -> [UInt8] {
    var out: [UInt8] = []
    for (key, value) in records {
      let rest = " \(key)=\(value)\n".utf8.count
      var length = rest + 1
      while String(length).utf8.count + rest != length { length = String(length).utf8.count + rest }
      out += Array("\(length) \(key)=\(value)\n".utf8)
    }
    return out
  }

  static func header(name: String, flag: UInt8, mode: UInt32, size: Int64, link: String, uid: Int = 0, gid: Int = 0)
    -> [UInt8]
  {
    var h = [UInt8](repeating: 0, count: 512)
    func put(_ s: String, at offset: Int, width: Int) {
      for (i, b) in s.utf8.prefix(width).enumerated() { h[offset + i] = b }
    }
    func octal(_ v: Int64, at offset: Int, width: Int) {
      put(String(v, radix: 8).leftPadded(width - 1), at: offset, width: width - 1)
    }
    put(name, at: 0, width: 100)
    octal(Int64(mode & 0o7777), at: 100, width: 8)
    octal(Int64(uid), at: 108, width: 8)
    octal(Int64(gid), at: 116, width: 8)
    octal(size, at: 124, width: 12)
    octal(mtime, at: 136, width: 12)
    h[156] = flag
    put(link, at: 157, width: 100)
    put("ustar", at: 257, width: 6)
    put("00", at: 263, width: 2)
    octal(0, at: 329, width: 8)
    octal(0, at: 337, width: 8)
    for i in 148..<156 { h[i] = UInt8(ascii: " ") }
    let sum = h.reduce(0) { $0 + Int($1) }
    put(String(sum, radix: 8).leftPadded(6), at: 148, width: 6)
    h[154] = 0
    h[155] = UInt8(ascii: " ")
    return h
  }
}

/// Reads a tar stream (ustar, PAX `path`/`linkpath`/`size`, GNU long names) from `read`, which
/// fills up to the given count and returns how many it gave (0 at the end).
public struct TarReader {
  let source: (Int) throws -> [UInt8]
  var remaining: Int64 = 0
  var padding = 0
  var globalPax: [String: String] = [:]

  public init(source: @escaping (Int) throws -> [UInt8]) { self.source = source }

  func exactly(_ n: Int) throws -> [UInt8]? {
    var out: [UInt8] = []
    out.reserveCapacity(n)
    while out.count < n {
      let chunk = try source(n - out.count)
      if chunk.isEmpty { return out.isEmpty ? nil : out }
      out += chunk
    }
    return out
  }

  /// The next entry's header; its content (for files) through `read(max:)` before the next.
  public mutating func next() throws(ImageError) -> TarEntry? {
    do {
      try skipRest()
      var pax: [String: String] = [:]
      var longName: String?
      var longLink: String?
      while true {
        guard let block = try exactly(512) else { return nil }
        guard block.count == 512 else { throw ImageError("the archive ends inside a header") }
        if block.allSatisfy({ $0 == 0 }) { return nil }
        try Self.verifyChecksum(block)
        let flag = block[156]
        let size = try Self.number(block[124..<136])
        switch flag {
        case UInt8(ascii: "x"), UInt8(ascii: "g"):
          guard size <= 1 << 20 else { throw ImageError("a PAX header of \(size) bytes: not a package") }
          let body = try content(Int(size))
          let records = try Self.parsePax(body)
          if flag == UInt8(ascii: "x") { pax.merge(records) { $1 } } else { globalPax.merge(records) { $1 } }
          continue
        case UInt8(ascii: "L"), UInt8(ascii: "K"):
          guard size <= 1 << 16 else { throw ImageError("a GNU long name of \(size) bytes: not a package") }
          let body = try content(Int(size))
          let text = String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
          if flag == UInt8(ascii: "L") { longName = text } else { longLink = text }
          continue
        default: break
        }
        let values = globalPax.merging(pax) { $1 }
        var name = longName ?? values["path"] ?? Self.string(block[0..<100])
        if longName == nil, values["path"] == nil, block[257..<262].elementsEqual("ustar".utf8) {
          let prefix = Self.string(block[345..<500])
          if !prefix.isEmpty { name = prefix + "/" + name }
        }
        let link = longLink ?? values["linkpath"] ?? Self.string(block[157..<257])
        let fullSize = values["size"].flatMap { Int64($0) } ?? size
        let mode = UInt32(truncatingIfNeeded: (try? Self.number(block[100..<108])) ?? 0o644)
        let kind: TarEntry.Kind
        switch flag {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .file
        case UInt8(ascii: "5"): kind = .directory
        case UInt8(ascii: "2"): kind = .symlink(target: link)
        case UInt8(ascii: "1"): kind = .hardlink(target: link)
        default: kind = .other(typeflag: flag)
        }
        if case .directory = kind, name.hasSuffix("/") { name.removeLast() }
        if kind == .file, name.hasSuffix("/") { throw ImageError("\(name): a file whose name ends in /") }
        var entry = TarEntry(path: name, kind: kind, mode: mode, size: kind == .file ? fullSize : 0)
        entry.uid = Int((try? Self.number(block[108..<116])) ?? 0)
        entry.gid = Int((try? Self.number(block[116..<124])) ?? 0)
        remaining = kind == .file ? fullSize : size
        padding = TarWriter.padding(Int(truncatingIfNeeded: remaining))
        return entry
      }
    } catch let e as ImageError {
      throw e
    } catch {
      throw ImageError("cannot read the archive: \(error)")
    }
  }

  /// Up to `max` bytes of the current file's content; empty at its end.
  public mutating func read(max: Int) throws(ImageError) -> [UInt8] {
    guard remaining > 0 else { return [] }
    let want = Int(min(Int64(max), remaining))
    let chunk: [UInt8]
    do {
      chunk = try source(want)
    } catch {
      throw ImageError("cannot read the archive: \(error)")
    }
    guard !chunk.isEmpty else { throw ImageError("the archive ends inside a file") }
    remaining -= Int64(chunk.count)
    return chunk
  }

  mutating func content(_ n: Int) throws -> [UInt8] {
    guard let body = try exactly(n), body.count == n else { throw ImageError("the archive ends inside a header") }
    let pad = TarWriter.padding(n)
    if pad > 0 { _ = try exactly(pad) }
    return body
  }

  mutating func skipRest() throws {
    while remaining > 0 {
      let chunk = try source(Int(min(remaining, 1 << 16)))
      guard !chunk.isEmpty else { throw ImageError("the archive ends inside a file") }
      remaining -= Int64(chunk.count)
    }
    if padding > 0 {
      guard let pad = try exactly(padding), pad.count == padding else {
        throw ImageError("the archive ends inside a file's padding")
      }
      padding = 0
    }
  }

  static func string(_ field: ArraySlice<UInt8>) -> String {
    String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
  }

  /// An octal field (NUL or space ended), or base-256 (the high bit set) for large values.
  static func number(_ field: ArraySlice<UInt8>) throws -> Int64 {
    if let first = field.first, first & 0x80 != 0 {
      var v: Int64 = Int64(first & 0x7f)
      for b in field.dropFirst() {
        guard v < Int64.max >> 8 else { throw ImageError("a size too large for any package") }
        v = v << 8 | Int64(b)
      }
      return v
    }
    let text = String(decoding: field.prefix { $0 != 0 && $0 != 32 }.drop { $0 == 32 }, as: UTF8.self)
    if text.isEmpty { return 0 }
    guard let v = Int64(text, radix: 8) else { throw ImageError("a header field '\(text)' is not a number") }
    return v
  }

  static func verifyChecksum(_ block: [UInt8]) throws {
    let stored = try number(block[148..<156])
    var sum = 0
    for (i, b) in block.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
    guard Int64(sum) == stored else { throw ImageError("a tar header's checksum is wrong: not a tar archive") }
  }

  static func parsePax(_ body: [UInt8]) throws -> [String: String] {
    var out: [String: String] = [:]
    var rest = body[...]
    while !rest.isEmpty {
      guard let space = rest.firstIndex(of: 32), let length = Int(String(decoding: rest[..<space], as: UTF8.self)),
        length > 0, length <= rest.count
      else { throw ImageError("a PAX header record is malformed") }
      let record = rest[rest.startIndex..<rest.startIndex + length]
      rest = rest[(rest.startIndex + length)...]
      let text = record[(space + 1)...].dropLast()
      guard let equals = text.firstIndex(of: UInt8(ascii: "=")) else {
        throw ImageError("a PAX header record has no '='")
      }
      out[String(decoding: text[..<equals], as: UTF8.self)] = String(decoding: text[(equals + 1)...], as: UTF8.self)
    }
    return out
  }
}
