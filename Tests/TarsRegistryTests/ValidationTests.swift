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
        "spec.tars.template 'tars.nope' does not exist: apply the TTemplate first"
      ])
    #expect(
      TServerValidation.problems(tserver(ports: [10015, 10015]), templates: templates) == [
        "spec.tars: ports must be unique across spec.tars.servants and spec.tars.ports"
      ])
    #expect(
      TServerValidation.problems(tserver(ports: [19385]), templates: templates) == [
        "spec.tars: ports 19385-19387 are reserved for tarsnode (NodeObj, ServerObj, AdminObj)"
      ])
    #expect(
      TServerValidation.problems(tserver(name: "hello"), templates: templates) == [
        "metadata.name must be lower(spec.app)-lower(spec.server)"
      ])
    #expect(
      TServerValidation.problems(tserver(name: "test-hello-server", server: "Hello-Server"), templates: templates).first
        == "spec.server 'Hello-Server' must start with a letter and hold only letters and digits (at most 63)")
    #expect(
      TServerValidation.problems(tserver(ports: [0]), templates: templates) == ["servant Obj0: port must be 1-65535"])
  }
}
