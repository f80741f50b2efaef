import TarsRPC
import TarsTestSupport
import Testing

@Suite("Name resolution without glibc's NSS")
struct DNSTests {
  @Test func readsResolvConfLikeAPod() {
    let c = NameResolution.Configuration(
      parsing: """
        # Kubernetes
        nameserver 10.96.0.10
        search default.svc.cluster.local svc.cluster.local cluster.local
        options ndots:5 timeout:1 attempts:3
        """)
    #expect(c.nameservers == ["10.96.0.10"] && c.ndots == 5 && c.timeoutMs == 1000 && c.attempts == 3)
    #expect(
      NameResolution.candidates("tars-tarsregistry", c) == [
        "tars-tarsregistry.default.svc.cluster.local", "tars-tarsregistry.svc.cluster.local",
        "tars-tarsregistry.cluster.local", "tars-tarsregistry",
      ])
    #expect(NameResolution.candidates("a.b.c.d.e.f", c).first == "a.b.c.d.e.f")
    #expect(NameResolution.candidates("registry.example.", c) == ["registry.example"])
    #expect(NameResolution.Configuration(parsing: "").nameservers == ["127.0.0.1"])
  }

  @Test func readsHostsFiles() {
    let hosts =
      "127.0.0.1 localhost\n10.0.0.5 test-helloserver-0.test-helloserver  Other # comment\n# 1.2.3.4 commented\n"
    #expect(NameResolution.hostsFile("other", text: hosts) == ["10.0.0.5"])
    #expect(NameResolution.hostsFile("commented", text: hosts).isEmpty)
  }

  @Test func asksTheNameserverWithTheSearchList() throws {
    let dns = try TestDNSServer(records: ["tars-tarsregistry.tars.svc.cluster.local": "10.96.7.7"])
    let config = NameResolution.Configuration(
      nameservers: ["127.0.0.1"], search: ["tars.svc.cluster.local", "svc.cluster.local"], ndots: 5, timeoutMs: 1000,
      port: dns.port)
    #expect(try NameResolution.query("tars-tarsregistry", config).get() == ["10.96.7.7"])
    #expect(dns.seen.first == "tars-tarsregistry.tars.svc.cluster.local")
    let missing = NameResolution.query("nothing-here", config)
    #expect(throws: SystemError.self) { try missing.get() }
    #expect(dns.seen.contains("nothing-here.svc.cluster.local") && dns.seen.contains("nothing-here"))

    let aliased = try TestDNSServer(records: ["registry.test": "10.1.1.1"], viaCNAME: true)
    var direct = config
    direct.port = aliased.port
    #expect(try NameResolution.query("registry.test.", direct).get() == ["10.1.1.1"])
    // Nobody listening: a clear failure within the timeout, not a hang.
    var silent = config
    silent.port = freePort()
    silent.timeoutMs = 200
    silent.attempts = 1
    #expect(throws: SystemError.self) { try NameResolution.query("x", silent).get() }
  }
}
