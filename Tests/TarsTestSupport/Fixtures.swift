import Foundation
import TarsProtocol

/// Locates and reads the shared reference material (`../shared` next to the repository, or
/// `$TARS_SHARED_DIR`).
public enum Fixtures {
  public static let repositoryRoot: URL = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  }()

  public static let shared: URL = {
    if let dir = ProcessInfo.processInfo.environment["TARS_SHARED_DIR"] { return URL(fileURLWithPath: dir) }
    return repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared")
  }()

  public static func url(_ relative: String) -> URL { shared.appendingPathComponent(relative) }

  /// Whether the shared material is where the tests look for it.
  public static var sharedIsPresent: Bool {
    FileManager.default.fileExists(atPath: shared.appendingPathComponent("vectors/codec").path)
  }

  /// Parses a JSON file of the shared material.
  public static func json(_ relative: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(contentsOf: url(relative)), options: [.fragmentsAllowed])
  }

  /// Names of the files in a shared directory, sorted.
  public static func files(in relative: String, suffix: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: url(relative).path).filter { $0.hasSuffix(suffix) }.sorted()
  }

  public static func bytes(hex: String) -> [UInt8] {
    guard let b = Hex.decode(hex) else { fatalError("bad hex in fixture: \(hex.prefix(40))") }
    return b
  }
}
