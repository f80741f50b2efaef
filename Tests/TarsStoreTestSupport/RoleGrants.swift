import Foundation
import TarsTestSupport
import Yams

/// What the Roles and ClusterRoles of deploy/ files grant, as `verb group/resource` — the form
/// `ObservedStore` records requests in, so a test compares what a component asks of the API with
/// what its manifest allows.
public enum RoleGrants {
  public static func documents(_ file: String) throws -> [[String: Any]] {
    let url = Fixtures.repositoryRoot.appendingPathComponent("deploy/\(file)")
    return try Yams.load_all(yaml: String(contentsOf: url, encoding: .utf8)).compactMap { $0 as? [String: Any] }
  }

  /// Every rule of every Role and ClusterRole in `files`.
  public static func granted(_ files: String...) throws -> Set<String> {
    var out: Set<String> = []
    for file in files {
      for doc in try documents(file) where ["Role", "ClusterRole"].contains(doc["kind"] as? String) {
        for rule in doc["rules"] as? [[String: Any]] ?? [] {
          for group in rule["apiGroups"] as? [String] ?? [] {
            for resource in rule["resources"] as? [String] ?? [] {
              for verb in rule["verbs"] as? [String] ?? [] { out.insert("\(verb) \(group)/\(resource)") }
            }
          }
        }
      }
    }
    return out
  }
}
