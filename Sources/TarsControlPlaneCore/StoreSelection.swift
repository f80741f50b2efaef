import Foundation
import TarsEmbeddedStore
import TarsKube
import TarsKubeClient

/// Which store the control plane's services run on: the embedded one (`--store PATH`, one
/// machine), a cluster through a kubeconfig (`--kubeconfig`), or the cluster the process runs
/// in (the service account). The services themselves only see `ObjectStore`.
public struct StoreSelection: Sendable {
  public var embeddedPath: String?
  public var kubeconfig: String?
  public var context: String?

  public init(embeddedPath: String? = nil, kubeconfig: String? = nil, context: String? = nil) {
    self.embeddedPath = embeddedPath
    self.kubeconfig = kubeconfig
    self.context = context
  }

  public struct Opened: Sendable {
    public var store: any ObjectStore
    /// The namespace the configuration names (kubeconfig context, pod), if any.
    public var namespace: String?
    public var description: String
    let client: KubeClient?

    public func close() async { await client?.shutdown() }
  }

  public struct SelectionError: Error, CustomStringConvertible {
    public var description: String
  }

  public func open() throws -> Opened {
    if let path = embeddedPath {
      if kubeconfig != nil { throw SelectionError(description: "use --store or --kubeconfig, not both") }
      let directory = (path as NSString).deletingLastPathComponent
      if !directory.isEmpty {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      }
      return Opened(
        store: try EmbeddedStore(path: path), namespace: nil, description: "embedded store \(path)", client: nil)
    }
    let config: KubeConfig
    if let kubeconfig {
      config = try KubeConfig.load(kubeconfig: kubeconfig, context: context)
    } else if let env = ProcessInfo.processInfo.environment["KUBECONFIG"], !env.isEmpty,
      ProcessInfo.processInfo.environment["KUBERNETES_SERVICE_HOST"] == nil
    {
      config = try KubeConfig.load(
        kubeconfig: env.split(separator: ":").first.map(String.init) ?? env, context: context)
    } else {
      config = try KubeConfig.inCluster()
    }
    let client = try KubeClient(config: config)
    return Opened(
      store: client, namespace: config.namespace, description: "Kubernetes API \(config.server)", client: client)
  }
}

/// Waits for SIGTERM or SIGINT (Kubernetes stops pods with SIGTERM).
public func waitForTermination() async -> Int32 {
  let (stream, continuation) = AsyncStream<Int32>.makeStream()
  var sources: [any DispatchSourceSignal] = []
  for sig in [SIGTERM, SIGINT] {
    signal(sig, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
    source.setEventHandler { continuation.yield(sig) }
    source.resume()
    sources.append(source)
  }
  var received: Int32 = SIGTERM
  for await sig in stream {
    received = sig
    break
  }
  for s in sources { s.cancel() }
  return received
}
