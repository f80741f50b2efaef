import TarsKube
import TarsProtocol
import TarsRegistry
import Testing

@Suite("TServer validation")
struct ValidationTests {
  let templates: Set<String> = ["tars.default"]

  func tserver(
    name: String = "test-helloserver", app: String = "Test", server: String = "HelloServer",
    template: String = "tars.default", ports: [Int64] = [10015]
  )
    -> KubeObject
  {
    KubeObject(
      .tservers, namespace: "tars", name: name,
      spec: .object([
        ("app", .string(app)), ("server", .string(server)), ("subType", .string("tars")),
        (
          "tars",
          .object([
            ("template", .string(template)),
            (
              "servants",
              .array(ports.enumerated().map { i, p in .object([("name", .string("Obj\(i)")), ("port", .integer(p))]) })
            ),
          ])
        ),
        ("k8s", .object([("replicas", .integer(2))])),
      ]))
  }

  @Test func aGoodOneHasNoProblems() {
    #expect(TServerValidation.problems(tserver(), templates: templates).isEmpty)
  }

  @Test func eachMistakeIsNamed() {
    #expect(
      TServerValidation.problems(tserver(template: "tars.nope"), templates: templates) == [
        "spec.tars.template 'tars.nope' does not exist"
      ])
    #expect(
      TServerValidation.problems(tserver(ports: [10015, 10015]), templates: templates) == [
        "servant Obj1: port 10015 is already used by servant Obj0"
      ])
    #expect(
      TServerValidation.problems(tserver(ports: [19385]), templates: templates) == [
        "servant Obj0: port 19385 is reserved for tarsnode (19385 NodeObj, 19386 ServerObj, 19387 AdminObj)"
      ])
    #expect(
      TServerValidation.problems(tserver(name: "hello"), templates: templates) == [
        "metadata.name 'hello' must be 'test-helloserver' (lower(app)-lower(server))"
      ])
    #expect(
      TServerValidation.problems(tserver(name: "test-hello-server", server: "Hello-Server"), templates: templates).first
        == "spec.server 'Hello-Server' must start with a letter and hold only letters and digits (at most 63)")
    #expect(
      TServerValidation.problems(tserver(ports: [0]), templates: templates) == ["servant Obj0: port must be 1-65535"])
  }
}
