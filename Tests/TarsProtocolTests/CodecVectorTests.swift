import Foundation
import TarsFramework
import TarsProtocol
import TarsTestSupport
import Testing

/// A value of one of the IDL types the scalar vectors use, built from the vector's JSON input.
enum VectorValue: Equatable {
  case int(Int32), long(Int64), unsignedByte(UInt8), bool(Bool), float(Float), double(Double), string(String)
  case bytes([UInt8]), ints([Int32]), strings([String]), stringMap([String: String]), intMap([Int32: String])

  init(type: String, json: Any, vectorID: Int) {
    switch type {
    case "int": self = .int(Int32((json as! NSNumber).int64Value))
    case "long": self = .long((json as! NSNumber).int64Value)
    case "unsigned byte": self = .unsignedByte(UInt8((json as! NSNumber).intValue))
    case "bool": self = .bool((json as! NSNumber).boolValue)
    case "float": self = .float((json as! NSNumber).floatValue)
    case "double": self = .double((json as! NSNumber).doubleValue)
    case "string":
      // Vectors 12 and 13 describe their long strings instead of spelling them out.
      if vectorID == 12 || vectorID == 13 {
        let n = vectorID == 12 ? 255 : 256
        self = .string(String(decoding: (0..<n).map { UInt8(97 + $0 % 26) }, as: UTF8.self))
      } else {
        self = .string(json as! String)
      }
    case "vector<byte>":
      self = .bytes(vectorID == 19 ? (0..<300).map { UInt8($0 & 0xFF) } : Fixtures.bytes(hex: json as! String))
    case "vector<int>": self = .ints((json as! [NSNumber]).map { Int32($0.int64Value) })
    case "vector<string>": self = .strings(json as! [String])
    case "map<string,string>": self = .stringMap(json as! [String: String])
    case "map<int,string>":
      self = .intMap(Dictionary(uniqueKeysWithValues: (json as! [String: String]).map { (Int32($0.key)!, $0.value) }))
    default: fatalError("vector type \(type) not handled by the test")
    }
  }

  func write(to w: inout TarsWriter, tag: UInt8) {
    switch self {
    case .int(let v): w.write(v, tag: tag)
    case .long(let v): w.write(v, tag: tag)
    case .unsignedByte(let v): w.write(v, tag: tag)
    case .bool(let v): w.write(v, tag: tag)
    case .float(let v): w.write(v, tag: tag)
    case .double(let v): w.write(v, tag: tag)
    case .string(let v): w.write(v, tag: tag)
    case .bytes(let v): w.write(v, tag: tag)
    case .ints(let v): w.write(v, tag: tag)
    case .strings(let v): w.write(v, tag: tag)
    case .stringMap(let v): w.write(v, tag: tag)
    case .intMap(let v): w.write(v, tag: tag)
    }
  }

  /// Reads a value of the same type back.
  func read(from r: inout TarsReader, tag: UInt8) throws -> VectorValue {
    switch self {
    case .int: .int(try r.read(tag: tag))
    case .long: .long(try r.read(tag: tag))
    case .unsignedByte: .unsignedByte(try r.read(tag: tag))
    case .bool: .bool(try r.read(tag: tag))
    case .float: .float(try r.read(tag: tag))
    case .double: .double(try r.read(tag: tag))
    case .string: .string(try r.read(tag: tag))
    case .bytes: .bytes(try r.read(tag: tag))
    case .ints: .ints(try r.read(tag: tag))
    case .strings: .strings(try r.read(tag: tag))
    case .stringMap: .stringMap(try r.read(tag: tag))
    case .intMap: .intMap(try r.read(tag: tag))
    }
  }
}

struct CodecVector: CustomTestStringConvertible, Sendable {
  let file: String
  var testDescription: String { file }

  var object: [String: Any] { try! Fixtures.json("vectors/codec/\(file)") as! [String: Any] }
  var id: Int { (object["id"] as! NSNumber).intValue }
  var bytes: [UInt8] { Fixtures.bytes(hex: object["hex"] as! String) }

  /// The vector with this id, or a test failure that says where the vectors were looked for.
  static func with(id: Int) throws -> CodecVector {
    try #require(all.first { $0.id == id }, "vector \(id) not found in \(Fixtures.url("vectors/codec").path)")
  }

  static let all: [CodecVector] =
    (try? Fixtures.files(in: "vectors/codec", suffix: ".json"))?
    .filter { $0.first!.isNumber && !$0.hasPrefix("99") }.map { CodecVector(file: $0) } ?? []
}

/// Compares our schema-less JSON with the vector's `decoded` tree, as JSON values.
func sameJSON(_ ours: JSONValue, _ theirs: Any) -> Bool {
  let parsed = try! JSONSerialization.jsonObject(with: Data(ours.description.utf8), options: [.fragmentsAllowed])
  return (parsed as! NSObject).isEqual(theirs)
}

@Suite("Recorded test data in Tests/Fixtures")
struct FixturesTests {
  /// The suites read these lists; an empty list would make them pass vacuously.
  @Test func isComplete() {
    #expect(Capture.all.count == 38, "expected the 38 captures in \(Fixtures.url("vectors/captures").path)")
    #expect(CodecVector.all.count == 47, "expected the 47 positive vectors in \(Fixtures.url("vectors/codec").path)")
  }
}

@Suite("Codec vectors in Tests/Fixtures/vectors/codec")
struct CodecVectorTests {

  @Test(
    "scalar and collection vectors encode to their bytes and decode to their values",
    arguments: CodecVector.all.filter { $0.id <= 21 })
  func scalar(_ vector: CodecVector) throws {
    let input = vector.object["input"]!
    var fields: [(UInt8, VectorValue)] = []
    if vector.id == 4 {
      let cases = vector.object["cases"] as! [[String: Any]]
      fields = cases.map { c in (0, VectorValue(type: c["idl_type_needed"] as! String, json: c["value"]!, vectorID: 4))
      }
    } else {
      let list = (input as? [[String: Any]]) ?? [input as! [String: Any]]
      fields = list.map { f in
        let value = f["value"] ?? f["value_hex"]!
        return (
          UInt8((f["tag"] as! NSNumber).intValue),
          VectorValue(type: f["type"] as! String, json: value, vectorID: vector.id)
        )
      }
    }
    var w = TarsWriter()
    for (tag, value) in fields { value.write(to: &w, tag: tag) }
    #expect(Hex.encode(w.bytes) == Hex.encode(vector.bytes))

    var r = TarsReader(vector.bytes)
    for (tag, value) in fields {
      #expect(try value.read(from: &r, tag: tag) == value)
    }
    #expect(r.isAtEnd)
  }

  @Test("struct vectors 22-25 encode to their bytes and decode to their values")
  func structs() throws {
    let v22 = try CodecVector.with(id: 22)
    let info2 = TestInfo2(t: TestInfo(ii: 34, s: "abc"), a: 12345)
    #expect(info2.tarsBytes() == v22.bytes)
    #expect(try TestInfo2(tarsBytes: v22.bytes) == info2)

    let v23 = try CodecVector.with(id: 23)
    var w = TarsWriter()
    w.write(TestInfo(ii: 34, s: "abc"), tag: 0)
    #expect(w.bytes == v23.bytes)
    var r = TarsReader(v23.bytes)
    #expect(try r.read(TestInfo.self, tag: 0) == TestInfo(ii: 34, s: "abc"))

    // A newer struct read with the old schema: tags 3, 4, 5 and 200 are skipped.
    let v24 = try CodecVector.with(id: 24)
    let v2 = TestInfoV2(ii: 7, s: "new", m: ["k": [1, 2]], sub: TestInfo(ii: 0, s: ""), blob: [0xFF], far: 1 << 40)
    #expect(v2.tarsBytes() == v24.bytes)
    #expect(try TestInfoV2(tarsBytes: v24.bytes) == v2)
    #expect(try TestInfo(tarsBytes: v24.bytes) == TestInfo(ii: 7, s: "new"))
    // …and nested one level down, where skipToStructEnd has to consume the unknown tail.
    var nested = TarsWriter()
    nested.write(v2, tag: 1)
    nested.write(Int32(99), tag: 2)
    var nr = TarsReader(nested.bytes)
    #expect(try nr.read(TestInfo.self, tag: 1) == TestInfo(ii: 7, s: "new"))
    #expect(try nr.read(Int32.self, tag: 2) == 99)

    let v25 = try CodecVector.with(id: 25)
    let endpoints = ["node-a", "node-b"].enumerated().map { i, node in
      EndpointF(host: "10.0.0.\(i + 1)", port: 10000, timeout: 60000, istcp: 1, grid: 0, weight: -1, nodeName: node)
    }
    w = TarsWriter()
    w.write(endpoints, tag: 0)
    #expect(w.bytes == v25.bytes)
    r = TarsReader(v25.bytes)
    #expect(try r.read([EndpointF].self, tag: 0) == endpoints)
  }

  @Test("every vector's schema-less decode equals its `decoded` tree", arguments: CodecVector.all)
  func tree(_ vector: CodecVector) throws {
    let object = vector.object
    let body = (object["framed"] as? Bool) == true ? Array(vector.bytes.dropFirst(4)) : vector.bytes
    let fields = try TarsValue.decodeFields(body)
    #expect(sameJSON(.array(fields.map { $0.value.json(tag: $0.tag) }), object["decoded"]!))
    if let expected = object["sBuffer_decoded"] {
      let sBuffer =
        fields.first { $0.tag == 7 && $0.value.wireType == .simpleList }
        ?? fields.first { $0.tag == 6 && $0.value.wireType == .simpleList }
      guard case .simpleList(let args)? = sBuffer?.value else {
        Issue.record("no sBuffer in \(vector.file)")
        return
      }
      let argFields = try TarsValue.decodeFields(args)
      #expect(sameJSON(.array(argFields.map { $0.value.json(tag: $0.tag) }), expected))
    }
  }

  @Test(
    "packet vectors decode to their fields and re-encode to their bytes",
    arguments: CodecVector.all.filter { $0.id >= 26 })
  func packets(_ vector: CodecVector) throws {
    let object = vector.object
    let input = object["input"] as! [String: Any]
    let frame = vector.bytes
    var splitter = TarsFrameSplitter()
    splitter.append(frame)
    let body = try #require(try splitter.next())
    #expect(splitter.bufferedCount == 0)
    let sBuffer = Fixtures.bytes(hex: (input["sBuffer"] as! [String: String])["hex"]!)
    let int = { (k: String) in (input[k] as! NSNumber).int64Value }
    if input["sServantName"] != nil {  // requests, and the TUP reply (47), which is a RequestPacket
      let p = try RequestPacket(tarsBytes: body)
      #expect(Int64(p.iVersion) == int("iVersion"))
      #expect(Int64(p.cPacketType) == int("cPacketType"))
      #expect(Int64(p.iMessageType) == int("iMessageType"))
      #expect(Int64(p.iRequestId) == int("iRequestId"))
      #expect(p.sServantName == input["sServantName"] as! String)
      #expect(p.sFuncName == input["sFuncName"] as! String)
      #expect(p.sBuffer == sBuffer)
      #expect(Int64(p.iTimeout) == int("iTimeout"))
      #expect(p.context == input["context"] as! [String: String])
      #expect(p.status == input["status"] as! [String: String])
      #expect(TarsFrame.encode(p) == frame)
    } else {
      let p = try ResponsePacket(tarsBytes: body)
      #expect(Int64(p.iVersion) == int("iVersion"))
      #expect(Int64(p.cPacketType) == int("cPacketType"))
      #expect(Int64(p.iRequestId) == int("iRequestId"))
      #expect(Int64(p.iMessageType) == int("iMessageType"))
      #expect(Int64(p.iRet) == int("iRet"))
      #expect(p.sBuffer == sBuffer)
      #expect(p.status == input["status"] as! [String: String])
      #expect(p.sResultDesc == input["sResultDesc"] as! String)
      #expect(p.context == input["context"] as! [String: String])
      // Vector 28 is TarsGo's encoding: optional fields at their defaults are left out.
      #expect(TarsFrame.encode(p, omittingDefaults: vector.id == 28) == frame)
    }
  }

  @Test("sBuffers of the packet vectors decode as the framework's method types and re-encode")
  func typedArguments() throws {
    var buffers: [Int: [UInt8]] = [:]
    for id in 26...47 {
      let input = try CodecVector.with(id: id).object["input"] as! [String: Any]
      buffers[id] = Fixtures.bytes(hex: (input["sBuffer"] as! [String: String])["hex"]!)
    }
    func sBuffer(_ id: Int) -> [UInt8] { buffers[id] ?? [] }
    let find = try QueryF.FindObjectById.Args(tarsBytes: sBuffer(26))
    #expect(find.id == "Test.HelloServer.HelloObj")
    #expect(find.tarsBytes() == sBuffer(26))

    let cpp = try QueryF.FindObjectById.Result(tarsBytes: sBuffer(27))
    let go = try QueryF.FindObjectById.Result(tarsBytes: sBuffer(28))
    #expect(cpp.ret.map(\.host) == ["10.0.0.1", "10.0.0.2"])
    #expect(cpp.ret.map(\.nodeName) == ["node-a", "node-b"])
    #expect(go.ret.map(\.weight) == [-1, -1])
    #expect(cpp.tarsBytes() == sBuffer(27))
    #expect(go.tarsBytes(omittingDefaults: true) == sBuffer(28))

    // Requests may carry out-parameters (vector 29); servers read the in-parameters only.
    #expect(try QueryF.FindObjectById4Any.Args(tarsBytes: sBuffer(29)).id == "Test.HelloServer.HelloObj")
    let any = try QueryF.FindObjectById4Any.Result(tarsBytes: sBuffer(30))
    #expect(any.ret == 0 && any.activeEp.count == 1 && any.inactiveEp.isEmpty)
    #expect(any.tarsBytes() == sBuffer(30))

    let keepAlive = try ServerF.KeepAlive.Args(tarsBytes: sBuffer(33))
    #expect(
      keepAlive.serverInfo
        == ServerInfo(
          application: "Test", serverName: "HelloServer", pid: 12345, adapter: "Test.HelloServer.HelloObjAdapter"))
    #expect(keepAlive.tarsBytes() == sBuffer(33))
    #expect(try ServerF.KeepAlive.Result(tarsBytes: sBuffer(35)).ret == 0)
    let version = try ServerF.ReportVersion.Args(tarsBytes: sBuffer(36))
    #expect([version.app, version.serverName, version.version] == ["Test", "HelloServer", "3.0.22"])
    #expect(try AdminF.Notify.Args(tarsBytes: sBuffer(37)).command == "tars.setloglevel DEBUG")
    #expect(
      try AdminF.Notify.Result(tarsBytes: sBuffer(38)).ret
        == "[notify prefix object num:1]\n[1]:set log level [DEBUG] ok\n")
    let report = try Notify.ReportNotifyInfo.Args(tarsBytes: sBuffer(42)).info
    #expect(report.eType == .REPORT && report.eLevel == .NOTIFYNORMAL && report.sMessage == "restart")
    #expect(Notify.ReportNotifyInfo.Args(info: report).tarsBytes() == sBuffer(42))
    let load = try Config.LoadConfig.Args(tarsBytes: sBuffer(43))
    #expect([load.app, load.server, load.filename] == ["Test", "HelloServer", "HelloServer.conf"])
    #expect(
      try Config.LoadConfig.Result(tarsBytes: sBuffer(44)) == .init(ret: 0, config: "<hello>\nkey=value\n</hello>\n"))
    let byInfo = try Config.LoadConfigByInfo.Args(tarsBytes: sBuffer(45)).configInfo
    #expect(byInfo.setdivision == "app.sz.1" && byInfo.filename == "HelloServer.conf")

    // TUP v3 (46, 47): sBuffer is a map of parameter name to the parameter encoded alone at tag 0.
    var r = TarsReader(sBuffer(46))
    let tupArgs: [String: [UInt8]] = try r.read(tag: 0)
    var idReader = TarsReader(tupArgs["id"]!)
    #expect(try idReader.read(String.self, tag: 0) == "Test.HelloServer.HelloObj")
    var tw = TarsWriter()
    tw.write(tupArgs, tag: 0)
    #expect(tw.bytes == sBuffer(46))
    r = TarsReader(sBuffer(47))
    let tupResult: [String: [UInt8]] = try r.read(tag: 0)
    #expect(tupResult[""] == tupResult["tars_ret"])
    var retReader = TarsReader(tupResult["tars_ret"]!)
    #expect(try retReader.read([EndpointF].self, tag: 0).first?.host == "10.0.0.1")
  }
}
