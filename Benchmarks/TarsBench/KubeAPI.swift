import Foundation
import TarsAdmin
import TarsEmbeddedStore
import TarsKube
import TarsProtocol

/// An API server for the agent's benchmark: the embedded store behind `KubeFront` on loopback,
/// with the namespace `tars` and `PODS` running pods on `NODE` (every tenth with a host port),
/// so tarsagent's volume and pod jobs list and watch as on a node. The benchmark puts TLS in
/// front of it. Prints `ready PORT`, then serves until killed.
///   tars-bench kube-api TOKEN NODE PODS
func kubeAPI(_ a: [String]) async throws {
  guard a.count == 3, let pods = Int(a[2]) else {
    print("usage: tars-bench kube-api TOKEN NODE PODS")
    exit(2)
  }
  let store = try EmbeddedStore(path: nil)
  _ = try await store.create(
    .namespaces,
    KubeObject(try JSONValue(parsing: #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"tars"}}"#)))
  for i in 0..<pods {
    let hostPort = i % 10 == 0 ? #", "hostPort": \#(20000 + i)"# : ""
    _ = try await store.create(
      .pods,
      KubeObject(
        try JSONValue(
          parsing: """
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "bench-\(i)", "namespace": "tars",
                          "labels": {"tars.io/ServerApp": "Bench", "tars.io/ServerName": "Server\(i)"}},
             "spec": {"nodeName": "\(a[1])",
                      "containers": [{"name": "server", "image": "bench",
                                      "ports": [{"containerPort": \(10000 + i)\(hostPort)}]}]},
             "status": {"phase": "Running"}}
            """)))
  }
  let front = try await KubeFront.start(store: store, host: "127.0.0.1", port: 0, token: a[0]) { _ in }
  FileHandle.standardOutput.write(Data("ready \(front.port)\n".utf8))
  while true { try await Task.sleep(for: .seconds(3600)) }
}
