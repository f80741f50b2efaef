import Foundation
import TarsKubeClient
import Testing

@Suite("Kubernetes client configuration")
struct KubeConfigTests {
  let kubeconfig = """
    apiVersion: v1
    kind: Config
    current-context: dev
    clusters:
    - name: local
      cluster:
        server: https://127.0.0.1:6443
        certificate-authority-data: \(Data("CA PEM".utf8).base64EncodedString())
    - name: other
      cluster:
        server: https://10.0.0.1:6443
        insecure-skip-tls-verify: true
    contexts:
    - name: dev
      context: {cluster: local, user: admin, namespace: tars}
    - name: cert
      context: {cluster: other, user: certuser}
    users:
    - name: admin
      user: {token: abc123}
    - name: certuser
      user:
        client-certificate-data: \(Data("CERT".utf8).base64EncodedString())
        client-key-data: \(Data("KEY".utf8).base64EncodedString())
    """

  @Test func readsTheCurrentContextWithAToken() throws {
    let c = try KubeConfig.parse(kubeconfig: kubeconfig)
    #expect(c.server == "https://127.0.0.1:6443" && c.token == "abc123" && c.namespace == "tars")
    #expect(c.caPEM == Array("CA PEM".utf8) && !c.insecureSkipTLSVerify)
  }

  @Test func readsANamedContextWithAClientCertificate() throws {
    let c = try KubeConfig.parse(kubeconfig: kubeconfig, context: "cert")
    #expect(c.server == "https://10.0.0.1:6443" && c.token == nil && c.insecureSkipTLSVerify)
    #expect(c.clientCertificatePEM == Array("CERT".utf8) && c.clientKeyPEM == Array("KEY".utf8))
  }

  @Test func refusesWhatItCannotUseWithTheReason() {
    let missing = #expect(throws: KubeConfig.ConfigError.self) {
      try KubeConfig.parse(kubeconfig: kubeconfig, context: "nope")
    }
    #expect(missing?.message == "the kubeconfig has no context named 'nope'")
    #expect(throws: KubeConfig.ConfigError.self) { try KubeConfig.parse(kubeconfig: "just text") }
    #expect(throws: KubeConfig.ConfigError.self) { try KubeConfig.parse(kubeconfig: "a: [unclosed") }
    let notInPod = #expect(throws: KubeConfig.ConfigError.self) { try KubeConfig.inCluster(environment: [:]) }
    #expect(notInPod?.message.contains("KUBERNETES_SERVICE_HOST") == true)
  }

  @Test func insideAPodReadsTheServiceAccount() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sa-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try "token-1\n".write(to: dir.appendingPathComponent("token"), atomically: true, encoding: .utf8)
    try "CA".write(to: dir.appendingPathComponent("ca.crt"), atomically: true, encoding: .utf8)
    try "tars".write(to: dir.appendingPathComponent("namespace"), atomically: true, encoding: .utf8)
    let c = try KubeConfig.inCluster(
      environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: dir.path)
    #expect(
      c.server == "https://10.96.0.1:443" && c.token == "token-1" && c.namespace == "tars"
        && c.caPEM == Array("CA".utf8))
    #expect(c.tokenFile == dir.path + "/token")
  }
}
