import TarsProtocol
import Testing

@Suite("Endpoint and object strings")
struct AddressTests {
  @Test func parsesAndPrintsCanonically() throws {
    let e = try TarsEndpoint(parsing: "tcp -h 10.0.0.1 -p 10015 -t 60000")
    #expect(e == TarsEndpoint(.tcp, host: "10.0.0.1", port: 10015, timeout: 60000))
    #expect(e.description == "tcp -h 10.0.0.1 -p 10015 -t 60000")
    #expect(
      try TarsEndpoint(parsing: "  udp\t-p 9 -h host.example\n").description == "udp -h host.example -p 9 -t 3000")
    #expect(try TarsEndpoint(parsing: "ssl -h * -p 443 -t 0").description == "ssl -h 0.0.0.0 -p 443")
    let all = try TarsEndpoint(parsing: "tcp -h h -p 1 -t 2 -g 3 -q 4 -w 50 -v 1 -e 1 -s app.sz.1")
    #expect(all.description == "tcp -h h -p 1 -t 2 -g 3 -q 4 -w 50 -v 1 -e 1 -s app.sz.1")
    #expect(try TarsEndpoint(parsing: all.description) == all)
    // TarsCpp: static weight without -w means 100; weights are capped at 100.
    #expect(try TarsEndpoint(parsing: "tcp -h h -p 1 -v 1").weight == 100)
    #expect(try TarsEndpoint(parsing: "tcp -h h -p 1 -w 500").weight == 100)
    // Options TarsCpp does not know are skipped (TarsGo's bind address, say).
    #expect(try TarsEndpoint(parsing: "tcp -h h -b 0.0.0.0 -p 5").port == 5)
    #expect(try TarsEndpoint(parsing: "tcp -h ::1 -p 5").host == "::1")
    #expect(try TarsEndpoint(parsing: "tcp -h a -p 1\r\n").port == 1, "CRLF is blank, as in TarsCpp")
  }

  @Test func rejectsBadEndpointsWithAReason() {
    for bad in [
      "", "http -h a -p 1", "tcp -p 1", "tcp -h a -p 70000", "tcp -h a -p x", "tcp -h a -t", "tcp h a", "tcp -h a -e 2",
    ] {
      #expect(throws: TarsAddressError.self, "\(bad)") { try TarsEndpoint(parsing: bad) }
    }
    #expect(throws: TarsAddressError(input: "tcp -p 1", message: "-h is required")) {
      try TarsEndpoint(parsing: "tcp -p 1")
    }
  }

  @Test func objectStrings() throws {
    let direct = try TarsObjectAddress(
      parsing: "Test.HelloServer.HelloObj@tcp -h 10.0.0.1 -p 1 -t 3000:tcp -h 10.0.0.2 -p 2")
    #expect(direct.name == "Test.HelloServer.HelloObj")
    #expect(direct.endpoints.map(\.host) == ["10.0.0.1", "10.0.0.2"])
    #expect(direct.description == "Test.HelloServer.HelloObj@tcp -h 10.0.0.1 -p 1 -t 3000:tcp -h 10.0.0.2 -p 2 -t 3000")
    #expect(try TarsObjectAddress(parsing: direct.description) == direct)

    let byName = try TarsObjectAddress(parsing: " Test.HelloServer.HelloObj#3 ")
    #expect(byName == TarsObjectAddress(name: "Test.HelloServer.HelloObj"))

    // The pitfalls of the reference: hosts containing "tcp" and IPv6 literals.
    let tricky = try TarsObjectAddress(parsing: "A.B.C@tcp -h tcp-gateway.udp.local -p 1 : tcp -h fe80::1 -p 2")
    #expect(tricky.endpoints.map(\.host) == ["tcp-gateway.udp.local", "fe80::1"])
    #expect(tricky.endpoints[0].legacyParserProblem?.contains("TarsCpp") == true)
    #expect(tricky.endpoints[1].legacyParserProblem?.contains("TarsGo") == true)
    #expect(tricky.legacyParserProblem != nil)
    #expect(TarsObjectAddress(name: "A.B.C", endpoints: [tricky.endpoints[1]]).legacyParserProblem == nil)
    #expect(try TarsEndpoint(parsing: "tcp -h 10.0.0.1 -p 1").legacyParserProblem == nil)

    for bad in ["", "@tcp -h a -p 1", "A.B.C@", "A.B.C@tcp -p 1", "two words"] {
      #expect(throws: TarsAddressError.self, "\(bad)") { try TarsObjectAddress(parsing: bad) }
    }
  }
}

@Suite("TC_Config")
struct ConfigTests {
  static let sample = """
    # comment
    <tars>
      <application>
        enableset=n
        <client>
          locator=tars.tarsregistry.QueryObj@tcp -h 10.0.0.10 -p 17890
          sync-invoke-timeout = 3000
        </client>
        <server>
          app=Test
          server=HelloServer
          local=tcp -h 127.0.0.1 -p 19390 -t 10000
          note=a # not a comment
          escaped=x\\=y\\ttab\\\\
          a\\=b=c
          eq=k=v
          allow
          app=Override
          <Test.HelloServer.HelloObjAdapter>
            endpoint=tcp -h 127.0.0.1 -p 10015 -t 60000
            servant=Test.HelloServer.HelloObj
          </Test.HelloServer.HelloObjAdapter>
        </server>
      </application>
    </tars>
    """

  @Test func parsesLikeTarsCpp() throws {
    let c = try TarsConfig(parsing: Self.sample)
    #expect(c["/tars/application/client<locator>"] == "tars.tarsregistry.QueryObj@tcp -h 10.0.0.10 -p 17890")
    #expect(c["/tars/application/client<sync-invoke-timeout>"] == "3000")
    #expect(c["/tars/application/server<note>"] == "a # not a comment")
    #expect(c["/tars/application/server<escaped>"] == "x=y\ttab\\")
    #expect(c["/tars/application/server<a=b>"] == "c")
    #expect(c["/tars/application/server<eq>"] == "k=v")
    #expect(c["/tars/application/server<allow>"] == "")
    #expect(c["/tars/application/server<missing>"] == nil)
    #expect(c["/tars/nowhere<app>"] == nil)
    // A repeated key keeps its last value and moves to the end, as TarsCpp's setParamValue does.
    #expect(c["/tars/application/server<app>"] == "Override")
    #expect(c.domain("/tars/application/server")?.params.last?.key == "app")
    #expect(c.subdomainNames("/tars/application/server") == ["Test.HelloServer.HelloObjAdapter"])
    #expect(c.subdomainNames("/tars/application") == ["client", "server"])
  }

  @Test func rejectsBrokenFilesWithTheLine() {
    let cases: [(String, Int?)] = [
      ("<tars>\n<a>\n</tars>", 3), ("<tars>\nkey=va\\lue\n</tars>", 2), ("</tars>", 1), ("<tars>\nx=1", nil),
      ("<tars\n</tars>", 1), ("<tars>\nx=1\\\n</tars>", 2),
    ]
    for (text, line) in cases {
      let error = #expect(throws: TarsConfigError.self, "\(text)") { try TarsConfig(parsing: text) }
      #expect(error?.line == line, "\(text): \(String(describing: error))")
    }
  }

  @Test func crlfFilesParseLikeLFFiles() throws {
    let lf = try TarsConfig(parsing: Self.sample)
    let crlf = try TarsConfig(parsing: Self.sample.replacingOccurrences(of: "\n", with: "\r\n"))
    #expect(crlf == lf)
    let error = #expect(throws: TarsConfigError.self) { try TarsConfig(parsing: "<tars>\r\nx=\\q\r\n</tars>") }
    #expect(error?.line == 2)
  }

  @Test func reopenedDomainsMerge() throws {
    let c = try TarsConfig(parsing: "<tars>\n<a>\nx=1\n</a>\n<b>\n</b>\n<a>\ny=2\nx=3\n</a>\n</tars>")
    #expect(c.subdomainNames("/tars") == ["a", "b"])
    #expect(c.domain("/tars/a")?.params.map(\.key) == ["y", "x"])
    #expect(c["/tars/a<x>"] == "3")
  }

  @Test func setJoinAndRender() throws {
    var base = try TarsConfig(
      parsing: "<tars>\n<application>\n<server>\napp=A\nlogLevel=DEBUG\n</server>\n</application>\n</tars>")
    let profile = try TarsConfig(
      parsing:
        "<tars>\n<application>\n<server>\nlogLevel=INFO\nextra=1\n</server>\n<client>\nasyncthread=3\n</client>\n</application>\n</tars>"
    )
    var keep = base
    keep.join(profile, override: false)
    #expect(keep["/tars/application/server<logLevel>"] == "DEBUG")
    #expect(keep["/tars/application/server<extra>"] == "1")
    #expect(keep["/tars/application/client<asyncthread>"] == "3")
    base.join(profile, override: true)
    #expect(base["/tars/application/server<logLevel>"] == "INFO")
    try base.set("/tars/application/server<node>", "tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 19386 -t 60000")
    try base.set("/tars/application/server/Test.A.ObjAdapter<servant>", "Test.A.Obj")
    let text = try base.renderPortable()
    #expect(
      text == """
        <tars>
          <application>
            <server>
              app=A
              logLevel=INFO
              extra=1
              node=tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 19386 -t 60000
              <Test.A.ObjAdapter>
                servant=Test.A.Obj
              </Test.A.ObjAdapter>
            </server>
            <client>
              asyncthread=3
            </client>
          </application>
        </tars>

        """)
    #expect(try TarsConfig(parsing: text) == base)
    #expect(base.description == text)
  }

  @Test func portableRenderingRefusesWhatParsersReadDifferently() throws {
    for value in ["a\\b", "x&y", "<b>", "line\nbreak", " padded"] {
      var c = TarsConfig()
      try c.set("/tars<k>", value)
      #expect(throws: TarsConfigError.self, "\(value)") { try c.renderPortable() }
      // The TarsCpp-escaped rendering still reads back to the same value where TarsCpp can.
      if !value.contains("<") && !value.contains(">") && value.first != " " {
        #expect(try TarsConfig(parsing: c.description)["/tars<k>"] == value)
      }
    }
  }
}
