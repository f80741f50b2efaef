import Foundation
import TarsAuth
import TarsFramework
import TarsNodeCore
import TarsProtocol
import TarsTestSupport
import Testing

@Suite("SHA-256, HMAC and NodeObj call signing")
struct AuthTests {
  @Test func sha256KnownAnswers() {
    #expect(
      Hex.encode(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(Hex.encode(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(
      Hex.encode(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
        == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    #expect(
      Hex.encode(SHA256.hash([UInt8](repeating: 0x61, count: 1_000_000)))
        == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }

  @Test func hmacRFC4231() {
    let cases: [(key: [UInt8], data: [UInt8], mac: String)] = [
      (
        [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
      ),
      (
        Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
      ),
      (
        [UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
      ),
      (
        [UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
      ),
    ]
    for c in cases { #expect(Hex.encode(HMACSHA256.mac(key: c.key, message: c.data)) == c.mac) }
  }

  @Test func signedCallsVerifyAndTamperingIsRefused() throws {
    let auth = try NodeCallAuth(secret: Array("a shared secret of 32 bytes!!!!!".utf8))
    var request = Node.StopServer.request(servant: "tars.tarsnode.NodeObj", .init(application: "A", serverName: "B"))
    auth.sign(&request, target: "a-b-0", timestamp: 1_000_000)
    _ = try auth.verify(request, target: "a-b-0", now: 1_000_030)
    _ = try auth.verify(request, target: "a-b-0", now: 999_950)

    let stale = #expect(throws: NodeAuthError.self) { try auth.verify(request, target: "a-b-0", now: 1_000_061) }
    #expect(stale?.message.hasPrefix("stale signature") == true)
    let elsewhere = #expect(throws: NodeAuthError.self) { try auth.verify(request, target: "a-b-1", now: 1_000_000) }
    #expect(elsewhere?.message.contains("not signed for this pod (a-b-1)") == true, "\(String(describing: elsewhere))")
    var other = request
    other.sBuffer = Node.StopServer.Args(application: "A", serverName: "C").tarsBytes()
    #expect(throws: NodeAuthError.self) { try auth.verify(other, target: "a-b-0", now: 1_000_000) }
    var renamed = request
    renamed.sFuncName = "startServer"
    #expect(throws: NodeAuthError.self) { try auth.verify(renamed, target: "a-b-0", now: 1_000_000) }
    let wrongKey = try NodeCallAuth(secret: Array("another secret, 32 bytes long!!!".utf8))
    let bad = #expect(throws: NodeAuthError.self) { try wrongKey.verify(request, target: "a-b-0", now: 1_000_000) }
    #expect(bad?.message.hasPrefix("bad signature") == true)
    var unsigned = request
    unsigned.context = [:]
    let none = #expect(throws: NodeAuthError.self) { try auth.verify(unsigned, target: "a-b-0", now: 1_000_000) }
    #expect(none?.message.hasPrefix("unsigned") == true)
    var garbled = request
    garbled.context[NodeCallAuth.contextKey] = "v2:abc:n:zz"
    #expect(throws: NodeAuthError.self) { try auth.verify(garbled, target: "a-b-0", now: 1_000_000) }
    // Timestamps at the ends of Int64, and separators hidden in a nonce, are refused, not a crash.
    for bad in [
      "v2:-9223372036854775808:0011223344556677:00", "v2:9223372036854775807:0011223344556677:00",
      "v2:1000000:00112233\n4455:00",
    ] {
      var r = request
      r.context[NodeCallAuth.contextKey] = bad
      let e = #expect(throws: NodeAuthError.self) { try auth.verify(r, target: "a-b-0", now: 1_000_000) }
      #expect(e?.message.hasPrefix("malformed signature") == true, "\(bad): \(String(describing: e))")
    }
    var old = request
    old.context[NodeCallAuth.contextKey] = "v1:1000000:" + String(repeating: "ab", count: 32)
    let v1 = #expect(throws: NodeAuthError.self) { try auth.verify(old, target: "a-b-0", now: 1_000_000) }
    #expect(v1?.message.hasPrefix("v1 signature") == true)
    #expect(throws: NodeAuthError.self) { try NodeCallAuth(secret: Array("short".utf8)) }
  }

  @Test func eachSignatureIsGoodOnce() throws {
    let auth = try NodeCallAuth(secret: Array("a shared secret of 32 bytes!!!!!".utf8))
    var request = Node.RestartServer.request(servant: "tars.tarsnode.NodeObj", .init(application: "", serverName: ""))
    auth.sign(&request, target: "p-0", timestamp: 1_000_000)
    var replays = ReplayGuard()
    try replays.admit(try auth.verify(request, target: "p-0", now: 1_000_000), now: 1_000_000)
    let again = #expect(throws: NodeAuthError.self) {
      try replays.admit(try auth.verify(request, target: "p-0", now: 1_000_010), now: 1_000_010)
    }
    #expect(again?.message.hasPrefix("replayed signature") == true)
    // The same MAC in capitals is the same signature.
    var shouting = request
    let parts = request.context[NodeCallAuth.contextKey]!.split(separator: ":")
    shouting.context[NodeCallAuth.contextKey] = "\(parts[0]):\(parts[1]):\(parts[2]):\(parts[3].uppercased())"
    #expect(throws: NodeAuthError.self) {
      try replays.admit(try auth.verify(shouting, target: "p-0", now: 1_000_010), now: 1_000_010)
    }
    // A second call with the same arguments in the same second has its own nonce.
    var second = request
    auth.sign(&second, target: "p-0", timestamp: 1_000_000)
    try replays.admit(try auth.verify(second, target: "p-0", now: 1_000_001), now: 1_000_001)
  }

  @Test func secretFilesLoseTrailingNewlines() throws {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    try "0123456789abcdef0123\n".write(toFile: dir.file("secret"), atomically: true, encoding: .utf8)
    let fromFile = try NodeCallAuth(secretFile: dir.file("secret"))
    let direct = try NodeCallAuth(secret: Array("0123456789abcdef0123".utf8))
    var request = Node.StartServer.request(servant: "tars.tarsnode.NodeObj", .init(application: "", serverName: ""))
    fromFile.sign(&request, target: "p", timestamp: 5)
    _ = try direct.verify(request, target: "p", now: 5)
    #expect(throws: NodeAuthError.self) { try NodeCallAuth(secretFile: dir.file("missing")) }
  }
}

@Suite("JSON reader")
struct JSONTests {
  @Test func parses() throws {
    let v = try JSONValue(parsing: #" { "a": [1, -2.5, "x\n\u00e9\ud83d\ude00", true, null], "b": {} } "#)
    #expect(v["a"] == .array([.integer(1), .number(-2.5), .string("x\né😀"), .bool(true), .null]))
    #expect(v["b"] == .object([]))
    for bad in ["", "{", "[1,]", "{\"a\" 1}", "\"\\q\"", "01x", "[1] 2", String(repeating: "[", count: 100)] {
      #expect(throws: JSONParseError.self, "\(bad)") { try JSONValue(parsing: bad) }
    }
    // What we print, we read back.
    let printed = JSONValue.object([("k", .string("a\"b\\c\u{1}")), ("n", .integer(-7))])
    #expect(try JSONValue(parsing: printed.description) == printed)
  }
}

@Suite("tarsnode settings")
struct SettingsTests {
  let env = ["ServerApp": "Test", "ServerName": "HelloServer", "PodName": "test-helloserver-0", "PodIP": "10.1.2.3"]

  @Test func readsThePodContract() throws {
    let s = try NodeSettings.parse(arguments: [], environment: env)
    #expect(s.mode == .server && s.serverID == "Test.HelloServer" && s.podIP == "10.1.2.3")
    #expect(s.baseDir == "/usr/local/app/tars/tarsnode/data/Test.HelloServer")
    #expect(s.configFile == "/usr/local/app/tars/tarsnode/data/Test.HelloServer/conf/Test.HelloServer.config.conf")
    #expect(s.outputLog == "/usr/local/app/tars/app_log/Test/HelloServer/Test.HelloServer.stdout.log")
    #expect(s.binDir == "/usr/local/app/tars/tarsnode/data/Test.HelloServer/bin")
    let flags = try NodeSettings.parse(
      arguments: ["--app=Other", "--base-dir", "/tmp/x", "--grace", "10", "--caps", "NET_BIND_SERVICE, chown"],
      environment: env)
    #expect(flags.app == "Other" && flags.baseDir == "/tmp/x" && flags.graceSeconds == 10)
    #expect(flags.keepCapabilities == ["NET_BIND_SERVICE", "chown"])
  }

  @Test func refusesWhatItCannotUse() throws {
    let missing = #expect(throws: NodeSettingsError.self) { try NodeSettings.parse(arguments: [], environment: [:]) }
    #expect(
      missing?.message.hasPrefix("missing identity: set ServerApp (--app), ServerName (--server), PodName") == true)
    for args in [["--grace", "0"], ["--server-type", "rust"], ["--nope"], ["--app"], ["--"], ["--restart=1"]] {
      #expect(throws: NodeSettingsError.self, "\(args)") { try NodeSettings.parse(arguments: args, environment: env) }
    }
    let plain = try? NodeSettings.parse(arguments: ["--", "sleep", "1"], environment: [:])
    let caps = #expect(throws: NodeSettingsError.self) {
      try NodeSettings.parse(arguments: ["--caps", "NET_BIND_SERVICE,FLY"], environment: env)
    }
    #expect(caps?.message.contains("unknown capability 'FLY'") == true)
    let kept = try? NodeSettings.parse(arguments: ["--caps", "net_bind_service, CAP_CHOWN"], environment: env)
    #expect(kept?.keepCapabilities == ["net_bind_service", "CAP_CHOWN"])
    #expect(plain?.mode == .plainInit(command: ["sleep", "1"]) && plain?.serverType == .notTars)
    // A not-tars server's argv after --, spaces kept, still in server mode.
    let exact = try NodeSettings.parse(
      arguments: ["--server-type", "not-tars", "--", "nginx", "-g", "daemon off;"], environment: env)
    #expect(exact.mode == .server && exact.command == ["nginx", "-g", "daemon off;"])
    #expect(throws: NodeSettingsError.self) {
      try NodeSettings.parse(arguments: ["--server-type", "not-tars", "--command", "a", "--", "b"], environment: env)
    }
  }
}

@Suite("Server descriptions and the rendered config")
struct RenderTests {
  static let descriptorJSON = """
    {
      "profile": "<tars>\\n<application>\\n<client>\\nasyncthread=${asyncthread}\\nlocator=${locator}\\n</client>\\n<server>\\nlogLevel=INFO\\nenv=JAVA_HOME=/opt/jdk;MODE=prod\\nhearttimeout=30\\ndeactivating-timeout=2000\\nmodule=${modulename} at ${localip}\\n</server>\\n</application>\\n</tars>\\n",
      "asyncThreadNum": 4,
      "adapters": {
        "Test.HelloServer.HelloObjAdapter": {
          "endpoint": "tcp -h ${localip} -p 10015 -t 60000", "servant": "Test.HelloServer.HelloObj",
          "threadNum": 5, "maxConnections": 100000, "allowIp": "", "queuecap": 10000, "queuetimeout": 60000, "protocol": "tars"
        }
      }
    }
    """

  static var settings: NodeSettings {
    var s = try! NodeSettings.parse(
      arguments: [],
      environment: [
        "ServerApp": "Test", "ServerName": "HelloServer", "PodName": "test-helloserver-0", "PodIP": "10.1.2.3",
      ])
    s.locator = "tars.tarsregistry.QueryObj@tcp -h tars-tarsregistry -p 17890"
    return s
  }

  /// The golden file: what an unchanged TarsCpp server reads. (The profile sets `locator`
  /// again, so — as in TarsCpp's joinConfig — the key moves to the end of its block.)
  static let golden = """
    <tars>
      <application>
        enableset=n
        setdivision=NULL
        <client>
          modulename=Test.HelloServer
          asyncthread=4
          locator=tars.tarsregistry.QueryObj@tcp -h tars-tarsregistry -p 17890
        </client>
        <server>
          app=Test
          server=HelloServer
          localip=10.1.2.3
          local=tcp -h 127.0.0.1 -p 19387 -t 3000
          node=tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 19386 -t 60000
          basepath=/usr/local/app/tars/tarsnode/data/Test.HelloServer/bin/
          datapath=/usr/local/app/tars/tarsnode/data/Test.HelloServer/data/
          logpath=/usr/local/app/tars/app_log/
          closecout=0
          logLevel=INFO
          env=JAVA_HOME=/opt/jdk;MODE=prod
          hearttimeout=30
          deactivating-timeout=2000
          module=Test.HelloServer at 10.1.2.3
          <Test.HelloServer.HelloObjAdapter>
            endpoint=tcp -h 10.1.2.3 -p 10015 -t 60000
            allow
            queuecap=10000
            queuetimeout=60000
            maxconns=100000
            threads=5
            servant=Test.HelloServer.HelloObj
            protocol=tars
          </Test.HelloServer.HelloObjAdapter>
        </server>
      </application>
    </tars>

    """

  @Test func rendersTheGoldenFile() throws {
    let descriptor = try DescriptorFile.parse(Self.descriptorJSON, source: "test")
    let rendered = try ConfigRenderer(settings: Self.settings).render(descriptor)
    #expect(rendered.text == Self.golden)
    // …and it reads back, through the protocol core's TC_Config reader, to the expected tree.
    let tree = try TarsConfig(parsing: rendered.text)
    #expect(tree == rendered.config)
    #expect(tree.subdomainNames("/tars/application/server") == ["Test.HelloServer.HelloObjAdapter"])
    #expect(tree["/tars/application/server/Test.HelloServer.HelloObjAdapter<servant>"] == "Test.HelloServer.HelloObj")
    #expect(tree["/tars/application/server<node>"] == "tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 19386 -t 60000")
    #expect(tree["/tars/application/server<closecout>"] == "0")
    #expect(rendered.heartbeatAdapters == ["Test.HelloServer.HelloObjAdapter", "AdminAdapter"])
    #expect(rendered.adminEndpoint == TarsEndpoint(host: "127.0.0.1", port: 19387, timeout: 3000))
    #expect(rendered.heartTimeoutSeconds == 30 && rendered.deactivatingTimeoutMs == 2000)
    #expect(rendered.environment.map { "\($0.0)=\($0.1)" } == ["JAVA_HOME=/opt/jdk", "MODE=prod"])
  }

  @Test func theSameDescriptionInTheTarsConfigFormat() throws {
    let text = """
      <descriptor>
        asyncThreadNum=4
        <adapters>
          <Test.HelloServer.HelloObjAdapter>
            endpoint=tcp -h ${localip} -p 10015 -t 60000
            servant=Test.HelloServer.HelloObj
            threadNum=5
            maxConnections=100000
          </Test.HelloServer.HelloObjAdapter>
        </adapters>
        <profile>
          <tars>
            <application>
              <client>
                asyncthread=${asyncthread}
                locator=${locator}
              </client>
              <server>
                logLevel=INFO
                env=JAVA_HOME=/opt/jdk;MODE=prod
                hearttimeout=30
                deactivating-timeout=2000
                module=${modulename} at ${localip}
              </server>
            </application>
          </tars>
        </profile>
      </descriptor>
      """
    let descriptor = try DescriptorFile.parse(text, source: "test")
    #expect(try ConfigRenderer(settings: Self.settings).render(descriptor).text == Self.golden)
    // The JSON it is cached as reads back to the same description.
    #expect(try DescriptorFile.parse(DescriptorFile.json(descriptor), source: "cache") == descriptor)
  }

  @Test func badDescriptionsAreRefusedWithTheReason() {
    let cases: [(String, String)] = [
      (#"{"adapters": {"A": {"servant": "x"}}}"#, "adapter A needs endpoint"),
      (#"{"adapters": {"A": {"endpoint": "tcp -p 1", "servant": "x"}}}"#, "-h is required"),
      (#"{"profile": "<tars>"}"#, "profile"),
      (#"{"asyncThreadNum": "x"}"#, "asyncThreadNum must be a number"),
      ("<nothing>\n</nothing>", "expected a <descriptor> block"),
      ("{", "JSON"),
    ]
    for (text, reason) in cases {
      let e = #expect(throws: DescriptorError.self, "\(text)") { try DescriptorFile.parse(text, source: "f") }
      #expect(e?.message.contains(reason) == true, "\(text): \(String(describing: e))")
    }
    // A profile value neither TarsCpp nor TarsGo would read as written is refused, not written.
    var d = ServerDescriptor()
    d.profile = "<tars>\n<application>\n<server>\nx=a&b\n</server>\n</application>\n</tars>\n"
    #expect(throws: DescriptorError.self) { try ConfigRenderer(settings: Self.settings).render(d) }
  }
}

@Suite("The README documents tarsnode")
struct ReadmeTests {
  /// The README promises every flag and environment variable; this keeps the promise when a flag
  /// is added.
  @Test func everyFlagAndVariableIsInTheReadme() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    for line in NodeSettings.usage.split(separator: "\n") {
      #expect(readme.contains(line.dropFirst(line.hasPrefix("    ") ? 4 : 0)), "README lacks: \(line)")
    }
    for variable in [
      "ServerApp", "ServerName", "ServerType", "PodName", "PodIP", "Namespace", "TarsRegistry", "TarsLocator",
      "TarsNotify", "TARS_NODE_SECRET_FILE", "NODE_AGENT_BIN", "NOTIFY_SOCKET", "LD_LIBRARY_PATH",
    ] {
      #expect(readme.contains("`\(variable)`"), "README lacks \(variable)")
    }
  }
}
