import Foundation
import TarsKube
import TarsProtocol

/// The two Secrets a cluster install needs and a repository must never hold: the NodeObj
/// secret every tarsnode checks call signatures with, and the admin API's token. The Job in
/// `deploy/framework/secrets.yaml` makes them at install, so `kubectl apply -k deploy/` is the
/// whole install; one that exists is kept as it is (re-applying, or an operator's own token
/// file, never rotates a secret under running pods).
public enum InstallSecrets {
  /// Mounted by every Tars pod (key `secret`) and by the admin API.
  public static let nodeSecret = "tars-node-secret"
  /// Mounted by the admin API (key `token`): one bare token, an admin (see `AdminTokens`).
  public static let adminToken = "tars-admin-token"

  public struct Outcome: Sendable, Equatable {
    public var name: String
    public var created: Bool
  }

  /// Creates each Secret that does not exist, with 32 bytes from the kernel's CSPRNG as hex.
  /// Only `create` is asked of the API (an existing one answers 409), so the Job's Role needs
  /// no read access to Secrets.
  public static func ensure(store: any ObjectStore, namespace: String) async throws(StoreError) -> [Outcome] {
    var outcomes: [Outcome] = []
    for (name, key) in [(nodeSecret, "secret"), (adminToken, "token")] {
      let object = KubeObject(
        .object([
          ("apiVersion", .string("v1")), ("kind", .string("Secret")),
          (
            "metadata",
            .object([
              ("name", .string(name)), ("namespace", .string(namespace)),
              ("labels", .object([("app.kubernetes.io/part-of", .string("tars"))])),
            ])
          ),
          ("type", .string("Opaque")),
          ("data", .object([(key, .string(Data((randomHex() + "\n").utf8).base64EncodedString()))])),
        ]))
      do {
        _ = try await store.create(.secrets, object)
        outcomes.append(Outcome(name: name, created: true))
      } catch  where error.code == 409 {
        outcomes.append(Outcome(name: name, created: false))
      }
    }
    return outcomes
  }

  static func randomHex() -> String {
    // SystemRandomNumberGenerator is the kernel's CSPRNG (getrandom) on Linux.
    var generator = SystemRandomNumberGenerator()
    return Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
  }
}
