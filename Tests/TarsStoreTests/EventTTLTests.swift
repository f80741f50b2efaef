import Foundation
import TarsEmbeddedStore
import TarsKube
import TarsProtocol
import Testing

/// Events are a log: the API server drops each `--event-ttl` after its last write, and so does
/// the embedded store, or `up` would keep every notification and controller Event for ever.
@Suite("Event TTL in the embedded store")
struct EventTTLTests {
  @Test func anEventPastItsTTLGoesWhenTheNextIsCreated() async throws {
    let store = try EmbeddedStore(path: nil, eventTTLSeconds: 3600, eventSweepSeconds: 0)
    _ = try await store.create(.namespaces, KubeObject(.namespaces, namespace: nil, name: "tars"))
    func event(_ name: String, lastWritten: Date) -> KubeObject {
      var e = KubeObject.event(
        namespace: "tars", kind: "TServer", name: "test-helloserver", type: "Normal", reason: "Test", message: name,
        component: "test", suffix: name)
      e.json.set(["lastTimestamp"], .string(kubeTimestamp(lastWritten)))
      return e
    }
    func names() async throws -> [String] {
      try await store.list(.events, namespace: "tars", options: ListOptions()).items.map(\.name).sorted()
    }
    _ = try await store.create(.events, event("old", lastWritten: Date().addingTimeInterval(-3700)))
    _ = try await store.create(.events, event("recent", lastWritten: Date().addingTimeInterval(-3500)))
    #expect(try await names() == ["test-helloserver.recent"])
    // Other objects are never swept, whatever their age.
    var template = KubeObject(.configMaps, namespace: "tars", name: "kept")
    template.json.set(["lastTimestamp"], .string(kubeTimestamp(Date().addingTimeInterval(-9999))))
    _ = try await store.create(.configMaps, template)
    _ = try await store.create(.events, event("new", lastWritten: Date()))
    #expect(try await names() == ["test-helloserver.new", "test-helloserver.recent"])
    _ = try await store.get(.configMaps, namespace: "tars", name: "kept")
  }
}
