import Foundation
import TarsKube
import TarsProtocol

/// Where a build is. `Waiting`: for the server's build Lease (another replica, or an earlier
/// build of the same server, holds it).
public enum BuildPhase: String, Sendable, Codable {
  case pending = "Pending"
  case waiting = "Waiting"
  case preparing = "Preparing"
  case pulling = "Pulling"
  case building = "Building"
  case pushing = "Pushing"
  case recording = "Recording"
  case done = "Done"
  case failed = "Failed"
  case cancelled = "Cancelled"

  public var finished: Bool { self == .done || self == .failed || self == .cancelled }
}

/// One build request: a package to turn into a release of `server`.
public struct BuildRequest: Sendable {
  /// `App.Server`.
  public var server: String
  public var serverType: String
  /// The image tag (default: the build id).
  public var tag: String?
  public var mark: String
  /// Who asked (the admin token's name).
  public var person: String
  /// Set the TServer's `spec.release` once pushed.
  public var setRelease: Bool
  /// The uploaded package; the service owns the file from now on and deletes it when done.
  public var package: String

  public init(
    server: String, serverType: String, tag: String? = nil, mark: String = "", person: String, setRelease: Bool,
    package: String
  ) {
    self.server = server
    self.serverType = serverType
    self.tag = tag
    self.mark = mark
    self.person = person
    self.setRelease = setRelease
    self.package = package
  }
}

/// A build as the admin API shows it, and as the TImage records it (`build.running`,
/// `build.last`: K8SFramework's TImageBuildState fields).
public struct BuildState: Sendable {
  public var id: String
  public var server: String
  public var serverType: String
  public var phase: BuildPhase = .pending
  public var message = "waiting for a build slot"
  /// The image pushed: `REGISTRY/REPO:TAG@sha256:…` once known, the reference before.
  public var image: String
  public var baseImage = ""
  public var createPerson: String
  public var createTime: String
  public var mark: String
  /// The admin replica that runs it.
  public var handler: String
  public var setRelease: Bool
  /// The log, from line `logStart` on (older lines are dropped past a bound).
  public var log: [String] = []
  public var logStart = 0

  /// The TImage's record of it.
  var record: JSONValue {
    .object([
      ("id", .string(id)), ("baseImage", .string(baseImage)), ("image", .string(image)),
      ("serverType", .string(serverType)), ("createPerson", .string(createPerson)),
      ("createTime", .string(createTime)), ("mark", .string(mark)), ("phase", .string(phase.rawValue)),
      ("message", .string(message)), ("handler", .string(handler)),
    ])
  }

  /// The TImage's name for a server: `app-server`, lower case (K8SFramework's).
  public static func imageName(_ server: String) -> String {
    server.replacingOccurrences(of: ".", with: "-").lowercased()
  }
}
