import Foundation
import TarsFramework
import TarsProtocol
import TarsTestSupport
import Testing

/// Runs the real `tarsctl` executable against our own servers.
enum Tarsctl {
  static func run(_ arguments: String...) throws -> Tool.Output { try Tool.run("tarsctl", arguments) }
}

@Suite("tarsctl against our servers", .serialized)
struct TarsctlTests {
  @Test(arguments: ServerKind.allCases)
  func ping(_ kind: ServerKind) async throws {
    let server = try await kind.start([helloName: HelloImpl()])
    let ok = try Tarsctl.run("ping", "\(helloName)@tcp -h 127.0.0.1 -p \(server.port)")
    #expect(ok.status == 0)
    #expect(ok.stdout.contains("tars_ping tcp -h 127.0.0.1 -p \(server.port)") && ok.stdout.contains(" ms"))
    #expect(ok.stderr.isEmpty)
    // The wrong servant name: the server answers −4, which is a failure.
    let wrong = try Tarsctl.run("ping", "No.Such.Obj@tcp -h 127.0.0.1 -p \(server.port)")
    #expect(wrong.status != 0 && wrong.stderr.contains("TARSSERVERNOSERVANTERR"))
    await server.stop()
  }

  @Test func failuresAreOneLineOnStderr() async throws {
    let refused = try Tarsctl.run("ping", "A.B.C@tcp -h 127.0.0.1 -p 1")
    #expect(refused.status != 0 && refused.stdout.isEmpty)
    #expect(refused.stderr.hasPrefix("tarsctl: ") && refused.stderr.contains("Connection refused"))
    #expect(refused.stderr.split(separator: "\n").count == 1)

    let badAddress = try Tarsctl.run("ping", "A.B.C@tcp -p 1")
    #expect(
      badAddress.status != 0 && badAddress.stderr.hasPrefix("tarsctl: invalid address")
        && badAddress.stderr.hasSuffix("-h is required\n"))

    let notHex = try Tarsctl.run("decode", "xyz")
    #expect(notHex.status != 0 && notHex.stderr.hasPrefix("tarsctl: not hexadecimal"))

    let truncated = try Tarsctl.run("decode", "0000005c10012c")
    #expect(
      truncated.status != 0 && truncated.stderr == "tarsctl: incomplete frame: its length says 92 bytes, 7 given\n")

    // A server that accepts the call but never answers: −7 after --timeout.
    let hanging = try PosixTestServer(servants: ["AdminObj": AdminImpl()])
    let start = Date()
    let timeout = try Tarsctl.run("admin", "tcp -h 127.0.0.1 -p \(hanging.port)", "hang", "--timeout", "300")
    #expect(timeout.status != 0 && timeout.stderr.contains("no reply within 300 ms (TARSINVOKETIMEOUT)"))
    #expect(Date().timeIntervalSince(start) < 3)
    hanging.stop()
    let never = try Tarsctl.run("ping", "\(helloName)@tcp -h 10.255.255.1 -p 9", "--timeout", "300")
    #expect(never.status != 0 && never.stderr.hasPrefix("tarsctl: "))
  }

  @Test func decodePrintsPacketsAndTrees() throws {
    let frame =
      "0000005c10012c3c4007561a746172732e7461727372656769737472792e51756572794f626a660e66696e644f626a656374427949647d00001b1619546573742e48656c6c6f5365727665722e48656c6c6f4f626a810bb8980ca80c"
    let r = try Tarsctl.run("decode", frame)
    #expect(r.status == 0)
    let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
    #expect(json["packet"] as? String == "RequestPacket")
    #expect(json["sServantName"] as? String == "tars.tarsregistry.QueryObj")
    #expect(json["sFuncName"] as? String == "findObjectById")
    #expect(json["iRequestId"] as? Int == 7 && json["iTimeout"] as? Int == 3000 && json["frameLength"] as? Int == 92)
    let buffer = json["sBuffer"] as! [String: Any]
    let tree = buffer["decoded"] as! [[String: Any]]
    #expect(tree.first?["tag"] as? Int == 1 && tree.first?["value"] as? String == "Test.HelloServer.HelloObj")

    // A capture file, as Tests/Fixtures stores it.
    let capture = try Tarsctl.run("decode", "--file", Fixtures.url("vectors/captures/err_decode_rsp.hex").path)
    let rsp = try JSONSerialization.jsonObject(with: Data(capture.stdout.utf8)) as! [String: Any]
    #expect(rsp["packet"] as? String == "ResponsePacket" && rsp["iRet"] as? Int == -1)
    #expect(rsp["iRetName"] as? String == "TARSSERVERDECODEERR")
    #expect(rsp["sResultDesc"] as? String == "require field not exist, tag: 1")

    // A bare value, not a packet: the tree of vector 22.
    let value = try Tarsctl.run("decode", "1a102226036162630b213039")
    let v = try JSONSerialization.jsonObject(with: Data(value.stdout.utf8)) as! [String: Any]
    let fields = v["value"] as! [[String: Any]]
    #expect(fields.count == 2 && fields[0]["type"] as? String == "STRUCT" && fields[1]["value"] as? Int == 12345)

    // TUP (vector 46): the named parameters are decoded too.
    let vector46 = try Fixtures.json("vectors/codec/46_req_TUP3_findObjectById.json") as! [String: Any]
    let tup = try Tarsctl.run("decode", vector46["hex"] as! String)
    let t = try JSONSerialization.jsonObject(with: Data(tup.stdout.utf8)) as! [String: Any]
    let params = (t["sBuffer"] as! [String: Any])["tup"] as! [String: Any]
    #expect(((params["id"] as! [[String: Any]]).first?["value"] as? String) == "Test.HelloServer.HelloObj")
  }

  @Test(arguments: ServerKind.allCases)
  func queryAndAdmin(_ kind: ServerKind) async throws {
    let locator = FixedLocator([helloName: [EndpointF(TarsEndpoint(host: "10.0.0.1", port: 10015, timeout: 60000))]])
    let registry = try await kind.start(["tars.tarsregistry.QueryObj": locator])
    let q = try Tarsctl.run("query", "--locator", "tcp -h 127.0.0.1 -p \(registry.port)", helloName)
    #expect(q.status == 0)
    #expect(
      q.stdout
        == "active endpoints (1):\n  tcp -h 10.0.0.1 -p 10015 -t 60000\ninactive endpoints (1):\n  tcp -h 10.9.9.9 -p 1 -t 3000\n"
    )
    let full = try Tarsctl.run(
      "query", "--locator", "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p \(registry.port)", "No.Such.Obj")
    #expect(full.status == 0 && full.stdout.hasPrefix("active endpoints (0):"))

    let admin = AdminImpl()
    let server = try await kind.start(["AdminObj": admin])
    let a = try Tarsctl.run("admin", "tcp -h 127.0.0.1 -p \(server.port)", "tars.viewstatus")
    #expect(a.status == 0 && a.stdout == "[notify prefix object num:1]\n[1]:app=Test server=HelloServer\n")
    let unknown = try Tarsctl.run("admin", "AdminObj@tcp -h 127.0.0.1 -p \(server.port)", "tars.pingfail")
    #expect(unknown.status == 0 && unknown.stdout.isEmpty, "TarsCpp answers an unknown command with an empty string")
    await server.stop()
    await registry.stop()
  }
}
