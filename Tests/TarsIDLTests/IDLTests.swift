import Foundation
import TarsIDL
import TarsTestSupport
import Testing

@Suite("IDL parser and Swift generator")
struct IDLTests {
  @Test func generatedFilesAreCurrent() throws {
    let outputs = try GenerationPlan.project(root: Fixtures.repositoryRoot.path).render()
    #expect(
      outputs.count == 17,
      "RequestF, nine framework files, four monitor files, the agent's, the test IDL and the example")
    for (path, text) in outputs {
      let committed = try? String(contentsOfFile: path, encoding: .utf8)
      #expect(committed == text, "\(path) is stale: run `swift run tars2swift --project`")
    }
  }

  @Test func parsesTagsTypesDefaultsAndOperations() throws {
    let file = try IDLParser.parse(
      file: "t.tars",
      text: """
        #include "Other.tars"
        module M {
          /* block doc */
          enum E { A, B = 5, C };
          const int LIMIT = 0x10;
          // field doc
          struct S {
            0 require unsigned int u = 7;
            1 optional vector<map<string, Other::T>> v;
            3 optional float f = 1.5f;
            255 optional E e = B;
          };
          key[S, u];
          interface I { void f(); int g(string a, out vector<byte> b, out S c); };
        };
        """)
    #expect(file.includes == ["Other.tars"])
    let defs = file.modules[0].definitions
    guard case .enumeration(let e) = defs[0], case .constant(let c) = defs[1], case .interface(let i) = defs[3] else {
      Issue.record("unexpected definitions \(defs)")
      return
    }
    #expect(e.members.map(\.value) == [0, 5, 6] && e.doc == "block doc")
    #expect(c.value == .integer(16))
    #expect(i.operations[1].parameters.map(\.tag) == [1, 2, 3])
    #expect(i.operations[1].parameters.map(\.isOut) == [false, true, true])
    #expect(i.operations[0].returnType == nil)
  }

  @Test func rejectsWhatWouldBreakTheWire() {
    let cases: [(String, String)] = [
      ("module M { struct S { 1 require int a; 0 require int b; }; };", "must be greater than the previous tag"),
      ("module M { struct S { 256 require int a; }; };", "outside 0...255"),
      ("module M { struct S { 1 int a; }; };", "expected 'require' or 'optional'"),
      ("module M { interface I { void f(out int a, int b); }; };", "follows an out-parameter"),
      ("module M { struct S { 0 require int a; 1 require int a; }; };", "duplicate field a"),
      ("module M { key[S, a]; };", "unknown struct S"),
      ("module M { struct S { 0 require int a = \"x; }; };", "unterminated string literal"),
    ]
    for (text, message) in cases {
      let error = #expect(throws: IDLError.self, "\(text)") { try IDLParser.parse(file: "bad.tars", text: text) }
      #expect(error?.message.contains(message) == true, "\(text): \(String(describing: error))")
      #expect(error?.line == 1)
    }
    let unknownType = #expect(throws: IDLError.self) {
      try SwiftGenerator(files: [IDLParser.parse(file: "u.tars", text: "module M { struct S { 0 require Nope n; }; };")]
      )
    }
    #expect(unknownType?.message.contains("unknown type Nope") == true)
    let unorderedKey = #expect(throws: IDLError.self) {
      try SwiftGenerator(files: [
        IDLParser.parse(file: "k.tars", text: "module M { struct S { 0 require map<vector<int>, int> m; }; };")
      ])
    }
    #expect(unorderedKey?.message.contains("not orderable") == true)
  }

  @Test func reservedNamesAndCRLFComments() throws {
    let reserved = #expect(throws: IDLError.self) {
      try SwiftGenerator(files: [
        IDLParser.parse(file: "r.tars", text: "module M { struct Result { 0 require int a; }; };")
      ])
    }
    #expect(reserved?.message.contains("reserved") == true)
    let crlf = try IDLParser.parse(
      file: "c.tars", text: "module M {\r\n  /* one\r\n   * two */\r\n  struct S { 0 require int a; };\r\n};\r\n")
    let swift = try SwiftGenerator(files: [crlf]).generate(crlf)
    #expect(!swift.contains("\r"))
    #expect(swift.contains("/// one\n/// two\npublic struct S"))
  }

  @Test func generatedServantsDispatchByFunctionName() throws {
    let file = try IDLParser.parse(
      file: "x.tars", text: "module M { interface Calc { int add(int a, int b, out long sum); }; };")
    let swift = try SwiftGenerator(files: [file]).generate(file)
    #expect(swift.contains("public enum Add: TarsMethod {"))
    #expect(swift.contains("func add(a: Int32, b: Int32, current: TarsCurrent) throws -> Calc.Add.Result"))
    #expect(swift.contains("case \"add\":"))
    #expect(swift.contains("return .noSuchFunction"))
  }
}
