import Foundation
import TarsKube
import TarsProtocol
import TarsTestSupport
import Testing

@testable import TarsController

/// What a real kube-apiserver (v1.28.0) stored for workloads this controller created, read back
/// with `kubectl get -o json` (`Tests/Fixtures/kube-stored/`). The API server fills in defaults
/// and drops `omitempty` zero values; neither may look like a change, or the controller would
/// write every object on every pass — which the embedded store, storing what it is given, never
/// shows.
@Suite("Objects as the API server stored them")
struct StoredByAPIServerTests {
  /// The options the recording ran with (`--node-image registry.local/tars/node:1`).
  let options = WorkloadOptions(nodeImage: "registry.local/tars/node:1")

  func stored(_ file: String) throws -> KubeObject {
    KubeObject(try JSONValue(parsing: String(contentsOf: Fixtures.url("kube-stored/\(file).json"), encoding: .utf8)))
  }

  @Test(arguments: [
    ("test-helloserver", ["statefulset-test-helloserver", "service-test-helloserver"]),
    ("test-agentish", ["daemonset-test-agentish"]), ("test-later", ["statefulset-test-later", "service-test-later"]),
  ])
  func anUnchangedTServerWritesNothing(_ server: String, _ files: [String]) throws {
    let tserver = try stored("tserver-\(server)")
    let desired = try Workloads.desired(tserver, options: options)
    #expect(desired.count == files.count)
    for file in files {
      let current = try stored(file)
      let want = try #require(desired.first { $0.kind == current.kind })
      let merged = Reconciler.merge(want, into: current)
      #expect(!Reconciler.needsWrite(merged, current), "\(file): \(merged.json.description)")
    }
  }

  @Test func aNewReleaseStillWrites() throws {
    var tserver = try stored("tserver-test-helloserver")
    tserver.json.set(["spec", "release", "image"], .string("registry.local/test/hello:10002"))
    let current = try stored("statefulset-test-helloserver")
    let want = try Workloads.desired(tserver, options: options)[0]
    #expect(Reconciler.needsWrite(Reconciler.merge(want, into: current), current))
  }

  /// A member dropped inside a container (its resources, envFrom, a mount's readOnly) is a
  /// change, though what is left is still a subset of what is stored.
  @Test(arguments: [["k8s", "resources"], ["k8s", "envFrom"], ["k8s", "mounts"]])
  func aDroppedMemberOfTheContainerStillWrites(_ path: [String]) throws {
    var tserver = try stored("tserver-test-helloserver")
    if path.last == "mounts" {
      // The certs mount loses its readOnly.
      let mounts = (tserver.spec?[path: ["k8s", "mounts"]]?.arrayValue ?? []).map { m -> JSONValue in
        m["name"]?.stringValue == "certs" ? m.setting(path: ["readOnly"], nil) : m
      }
      tserver.json.set(["spec", "k8s", "mounts"], .array(mounts))
    } else {
      tserver.json.set(["spec"] + path, nil)
    }
    let current = try stored("statefulset-test-helloserver")
    let want = try Workloads.desired(tserver, options: options)[0]
    #expect(Reconciler.needsWrite(Reconciler.merge(want, into: current), current), "\(path)")
  }

  @Test func zeroValuesMatchWhatTheAPIServerLeftOut() throws {
    let ours = try JSONValue(parsing: #"{"name": "a", "readOnly": false, "subPath": "", "items": [], "n": 0}"#)
    #expect(ours.isSubset(of: try JSONValue(parsing: #"{"name": "a"}"#)))
    #expect(!ours.isSubset(of: try JSONValue(parsing: #"{"name": "a", "readOnly": true}"#)))
    #expect(!(try JSONValue(parsing: #"{"readOnly": true}"#)).isSubset(of: try JSONValue(parsing: "{}")))
  }
}
