import Foundation
import TarsProtocol

/// Locates and reads the recorded test data in `Tests/Fixtures/`: the codec vectors and real
/// TarsCpp captures (`vectors/`) and the Kubernetes API exchanges (`kube/`). It is factual data
/// copied into the repository, so a plain clone tests itself with nothing beside it.
public enum Fixtures {
  public static let repositoryRoot: URL = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  }()

  public static let directory = repositoryRoot.appendingPathComponent("Tests/Fixtures")

  public static func url(_ relative: String) -> URL { directory.appendingPathComponent(relative) }

  /// Parses a JSON file of the recorded data.
  public static func json(_ relative: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(contentsOf: url(relative)), options: [.fragmentsAllowed])
  }

  /// Names of the files in a fixture directory, sorted.
  public static func files(in relative: String, suffix: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: url(relative).path).filter { $0.hasSuffix(suffix) }.sorted()
  }

  public static func bytes(hex: String) -> [UInt8] {
    guard let b = Hex.decode(hex) else { fatalError("bad hex in fixture: \(hex.prefix(40))") }
    return b
  }
}
