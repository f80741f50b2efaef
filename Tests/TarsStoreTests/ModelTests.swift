import Foundation
import TarsKube
import TarsProtocol
import Testing

@Suite("Typed views keep what they do not know")
struct ModelTests {
  @Test func settingATypedFieldLeavesEverythingElseAlone() throws {
    let text = """
      {"apiVersion":"k8s.tars.io/v1beta3","kind":"TServer","metadata":{"name":"test-helloserver","namespace":"tars",\
      "annotations":{"other.io/x":"1"}},"spec":{"app":"Test","server":"HelloServer","subType":"tars",\
      "k8s":{"replicas":2,"futureField":{"a":[1,2]}},"tars":{"template":"tars.cpp"}},"status":{"readyReplicas":1}}
      """
    var ts = TServer(KubeObject(try JSONValue(parsing: text)))
    #expect(ts.app == "Test" && ts.server == "HelloServer" && ts.template == "tars.cpp" && ts.replicas == 2)
    ts.replicas = 3
    ts.labels["tars.io/ServerApp"] = "Test"
    let after = ts.object.json
    #expect(after[path: ["spec", "k8s", "futureField"]] == (try JSONValue(parsing: #"{"a":[1,2]}"#)))
    #expect(after[path: ["spec", "k8s", "replicas"]] == .integer(3))
    #expect(ts.annotations == ["other.io/x": "1"] && ts.labels == ["tars.io/ServerApp": "Test"])
    #expect(after.members.map(\.0) == ["apiVersion", "kind", "metadata", "spec", "status"])
  }

  @Test func podConditionsAndAddresses() throws {
    let pod = Pod(
      KubeObject(
        try JSONValue(
          parsing: """
            {"metadata":{"name":"p","deletionTimestamp":"2026-11-28T12:00:00Z"},"spec":{"nodeName":"node-1"},\
            "status":{"phase":"Running","podIP":"10.0.0.5","conditions":[{"type":"tars.io/active","status":"True",\
            "reason":"Active/Active/12","lastProbeTime":null,"lastTransitionTime":null}]}}
            """)))
    #expect(pod.phase == "Running" && pod.podIP == "10.0.0.5" && pod.nodeName == "node-1" && pod.isTerminating)
    #expect(pod.condition("tars.io/active")?.reason == "Active/Active/12")
    #expect(pod.condition("tars.io/active")?.lastTransitionTime == nil)
  }
}
