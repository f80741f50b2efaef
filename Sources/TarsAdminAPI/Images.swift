/// One image build, as `POST /images/{App.Server}/builds` answers and
/// `GET /images/builds/{id}?from=N` follows it (its log from line `logStart`).
public struct BuildRow: Codable, Sendable, Equatable {
  public var id: String
  public var server: String
  public var serverType: String
  /// Pending, Waiting, Preparing, Pulling, Building, Pushing, Recording, Done, Failed, Cancelled.
  public var phase: String
  public var message: String
  /// The image: its reference while building, pinned (`…@sha256:…`) once pushed.
  public var image: String
  public var baseImage: String
  public var createPerson: String
  public var createTime: String
  public var mark: String
  /// The admin replica running it.
  public var handler: String
  public var setRelease: Bool
  public var log: [String]
  /// The number of the first line in `log`; ask with `from` = `logStart + log.count` for more.
  public var logStart: Int

  public init(
    id: String, server: String, serverType: String, phase: String, message: String, image: String, baseImage: String,
    createPerson: String, createTime: String, mark: String, handler: String, setRelease: Bool, log: [String],
    logStart: Int
  ) {
    self.id = id
    self.server = server
    self.serverType = serverType
    self.phase = phase
    self.message = message
    self.image = image
    self.baseImage = baseImage
    self.createPerson = createPerson
    self.createTime = createTime
    self.mark = mark
    self.handler = handler
    self.setRelease = setRelease
    self.log = log
    self.logStart = logStart
  }

  public var finished: Bool { ["Done", "Failed", "Cancelled"].contains(phase) }
}

/// A recorded release of a server (its TImage's `releases`, newest first).
public struct ReleaseRow: Codable, Sendable, Equatable {
  public var id: String
  public var image: String
  public var createPerson: String
  public var createTime: String
  public var mark: String
  /// Whether the TServer's `spec.release` is this one.
  public var current: Bool

  public init(id: String, image: String, createPerson: String, createTime: String, mark: String, current: Bool) {
    self.id = id
    self.image = image
    self.createPerson = createPerson
    self.createTime = createTime
    self.mark = mark
    self.current = current
  }
}

/// `POST /images/{App.Server}/release`: point the TServer at a recorded release.
public struct ReleaseRequest: Codable, Sendable {
  public var id: String
  public init(id: String) { self.id = id }
}
