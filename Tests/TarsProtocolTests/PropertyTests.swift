import Foundation
import TarsFramework
import TarsMonitor
import TarsProtocol
import TarsTestSupport
import Testing

/// Every type, and every framework struct, survives encode → decode in both writer styles.
@Suite("Round-trip properties")
struct PropertyTests {
  static let iterations = 500

  func roundTrips<T: TarsStruct & Arbitrary>(_: T.Type, seed: UInt64) throws {
    var g = Gen(seed: seed)
    for i in 0..<Self.iterations {
      let value: T = g.any()
      for omit in [false, true] {
        let bytes = value.tarsBytes(omittingDefaults: omit)
        let decoded = try T(tarsBytes: bytes)
        #expect(decoded == value, "\(T.self) #\(i) (seed \(seed), omitting defaults: \(omit)) did not round-trip")
        if decoded != value { return }
        // As a nested field too, where the reader has to find the struct's end.
        var w = TarsWriter(omitsDefaultOptionals: omit)
        w.write(value, tag: 200)
        w.write(Int32(-1), tag: 201)
        var r = TarsReader(w.bytes)
        #expect(try r.read(T.self, tag: 200) == value)
        #expect(try r.read(Int32.self, tag: 201) == -1)
        // The schema-less reader accepts everything the writer produces.
        _ = try TarsValue.decodeFields(bytes)
      }
    }
  }

  @Test func everything() throws { try roundTrips(Everything.self, seed: 1) }
  @Test func testStructs() throws {
    try roundTrips(TestInfo.self, seed: 2)
    try roundTrips(TestInfoV2.self, seed: 3)
  }
  @Test func packets() throws {
    try roundTrips(RequestPacket.self, seed: 4)
    try roundTrips(ResponsePacket.self, seed: 5)
  }
  @Test func frameworkStructs() throws {
    try roundTrips(EndpointF.self, seed: 6)
    try roundTrips(ObjectItem.self, seed: 7)
    try roundTrips(GetMasterSlaveLock.self, seed: 8)
    try roundTrips(ServerInfo.self, seed: 9)
    try roundTrips(ReportInfo.self, seed: 10)
    try roundTrips(NotifyKey.self, seed: 11)
    try roundTrips(NotifyInfo.self, seed: 12)
    try roundTrips(ConfigInfo.self, seed: 13)
    try roundTrips(GetConfigListInfo.self, seed: 14)
    try roundTrips(StatMicMsgHead.self, seed: 15)
    try roundTrips(StatMicMsgBody.self, seed: 16)
    try roundTrips(StatSampleMsg.self, seed: 17)
    try roundTrips(StatPropMsgHead.self, seed: 18)
    try roundTrips(StatPropMsgBody.self, seed: 19)
    try roundTrips(LogInfo.self, seed: 20)
    try roundTrips(ServerStateInfo.self, seed: 21)
    try roundTrips(AdapterDescriptor.self, seed: 22)
    try roundTrips(ServerDescriptor.self, seed: 23)
  }

  @Test func mapsKeyedByStructsRoundTrip() throws {
    var g = Gen(seed: 24)
    for _ in 0..<Self.iterations {
      let args = StatF.ReportMicMsg.Args(msg: g.any(), bFromClient: g.any())
      #expect(try StatF.ReportMicMsg.Args(tarsBytes: args.tarsBytes()) == args)
      // Keys are written in the order TarsCpp's std::map would use, so equal maps give equal bytes.
      #expect(
        StatF.ReportMicMsg.Args(
          msg: args.msg.reversed().reduce(into: [:]) { $0[$1.key] = $1.value }, bFromClient: args.bFromClient
        ).tarsBytes() == args.tarsBytes())
    }
  }

  @Test func framesSplitAnywhere() throws {
    var g = Gen(seed: 25)
    for _ in 0..<100 {
      let packets: [RequestPacket] = (0..<g.count(6)).map { _ in g.any() }
      let stream = packets.flatMap { TarsFrame.encode($0) }
      var splitter = TarsFrameSplitter()
      var decoded: [RequestPacket] = []
      var i = 0
      while i < stream.count {
        let n = Int.random(in: 1...max(1, stream.count / 3), using: &g)
        splitter.append(stream[i..<min(stream.count, i + n)])
        i += n
        while let body = try splitter.next() { decoded.append(try RequestPacket(tarsBytes: body)) }
      }
      #expect(decoded == packets)
      #expect(splitter.bufferedCount == 0)
    }
  }
}

/// A second opinion: the independent `tarsio` codec (Rust, from PyPI) reads what we write.
@Suite("Cross-check with tarsio")
struct TarsioCrossCheckTests {
  static let script = """
    import sys, json, tarsio
    def walk(node, depth, out):
        for c in node.children:
            t = c.jce_type
            if t in ("List", "StructBegin"): v = str(len(c.children))
            elif t == "Map": v = str(len(c.children) // 2)
            elif t in ("String1", "String4"): v = c.value.encode("utf-8", "surrogatepass").hex()
            elif t == "SimpleList": v = bytes(c.value).hex()
            elif t in ("Float", "Double"): v = repr(float(c.value))
            else: v = str(int(c.value))
            out.append([depth, c.tag, t, v])
            if t in ("List", "StructBegin", "Map"): walk(c, depth + 1, out)
    for line in sys.stdin:
        out = []
        walk(tarsio.decode_trace(bytes.fromhex(line.strip())), 0, out)
        print(json.dumps(out))
    """

  static let typeNames: [TarsWireType: String] = [
    .int1: "Int1", .int2: "Int2", .int4: "Int4", .int8: "Int8", .float: "Float", .double: "Double",
    .string1: "String1", .string4: "String4", .map: "Map", .list: "List", .structBegin: "StructBegin",
    .zero: "ZeroTag", .simpleList: "SimpleList",
  ]

  static func flatten(_ tag: UInt8, _ v: TarsValue, _ depth: Int, _ out: inout [[String]]) {
    let value: String
    switch v {
    case .integer(let i, _): value = String(i)
    case .float(let f): value = pythonRepr(Double(f))
    case .double(let d): value = pythonRepr(d)
    case .string(let b, _): value = Hex.encode(b)
    case .simpleList(let b): value = Hex.encode(b)
    case .list(let items): value = String(items.count)
    case .map(let entries): value = String(entries.count)
    case .structure(let fields): value = String(fields.count)
    }
    out.append([String(depth), String(tag), typeNames[v.wireType]!, value])
    switch v {
    case .list(let items): for item in items { flatten(0, item, depth + 1, &out) }
    case .map(let entries):
      for e in entries {
        flatten(0, e.key, depth + 1, &out)
        flatten(1, e.value, depth + 1, &out)
      }
    case .structure(let fields): for f in fields { flatten(f.tag, f.value, depth + 1, &out) }
    default: break
    }
  }

  /// Python's float repr and Swift's description are both the shortest round-tripping form;
  /// they differ only in spelling.
  static func pythonRepr(_ d: Double) -> String {
    if d.isInfinite { return d > 0 ? "inf" : "-inf" }
    var s = "\(d)"
    if let e = s.firstIndex(of: "e") {
      var mantissa = String(s[..<e])
      if mantissa.hasSuffix(".0") { mantissa.removeLast(2) }
      var exp = String(s[s.index(after: e)...])
      let sign = exp.hasPrefix("-") ? "-" : "+"
      exp = exp.trimmingCharacters(in: CharacterSet(charactersIn: "+-"))
      s = mantissa + "e" + sign + (exp.count < 2 ? "0" + exp : exp)
    }
    return s
  }

  static var tarsioAvailable: Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import tarsio"]
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
  }

  @Test func tarsioReadsWhatWeWrite() throws {
    guard Self.tarsioAvailable else {
      print("SKIPPED: python3 with tarsio is not installed (pip install tarsio); .ci/run installs it")
      return
    }
    var g = Gen(seed: 99)
    var samples: [[UInt8]] = []
    for _ in 0..<300 {
      let e: Everything = g.any()
      samples.append(e.tarsBytes(omittingDefaults: Bool.random(using: &g)))
      let p: RequestPacket = g.any()
      samples.append(p.tarsBytes())
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", Self.script]
    let input = Pipe()
    let output = Pipe()
    p.standardInput = input
    p.standardOutput = output
    try p.run()
    let text = samples.map { Hex.encode($0) }.joined(separator: "\n") + "\n"
    DispatchQueue.global().async {
      input.fileHandleForWriting.write(Data(text.utf8))
      try? input.fileHandleForWriting.close()
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
    #expect(lines.count == samples.count)
    for (sample, line) in zip(samples, lines) {
      let theirs = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [[Any]]
      var ours: [[String]] = []
      for f in try TarsValue.decodeFields(sample) { Self.flatten(f.tag, f.value, 0, &ours) }
      let theirsText = theirs.map { $0.map { "\($0)" } }
      #expect(ours == theirsText, "tarsio disagrees on \(Hex.encode(sample))")
      if ours != theirsText { return }
    }
  }
}
