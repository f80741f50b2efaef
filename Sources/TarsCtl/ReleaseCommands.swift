import ArgumentParser
import Foundation
import TarsAdminAPI

/// `tarsctl release`: a package to a running release in one command, through the admin's
/// image service (build on the type's base, push to the framework's registry, record it in
/// the TImage, set the TServer's `spec.release`); or back to a recorded release.
struct Release: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Release a server package: build, push, record and roll out (or --to ID: an earlier release).",
    discussion: """
      The admin builds the image on the base for the server's type (TFrameworkConfig
      imageBuild.bases), pushes it to imageUpload.registry, records it in the server's TImage and
      sets the TServer's spec.release; the controller rolls the pods. The build's log follows
      until it ends (Ctrl-C leaves it running; tarsctl builds ID --cancel stops it).
      Examples: tarsctl release Test.HelloServer HelloServer.tgz --mark "fix timeouts"
                tarsctl release Test.HelloServer --to v20261207101500-3f2a
      """)

  @Argument(help: "App.Server") var server: String
  @Argument(help: "The server package (.tgz).") var package: String?
  @Option(name: .customLong("type"), help: "cpp, go, java-jar, java-war, nodejs or not-tars (default: the TServer's).")
  var serverType: String?
  @Option(help: "The image tag (default: the build id).") var tag: String?
  @Option(help: "Why: recorded with the release.") var mark: String?
  @Flag(name: .customLong("no-rollout"), help: "Build, push and record only; leave the TServer's release.")
  var noRollout = false
  @Flag(help: "Print the build id and return; do not follow the build.") var detach = false
  @Option(help: "Point the TServer at this recorded release instead (tarsctl releases lists them).") var to: String?
  @OptionGroup var admin: AdminOptions

  func validate() throws {
    guard server.split(separator: ".").count == 2 else { throw ValidationError("\(server): write App.Server") }
    guard (package == nil) != (to == nil) else {
      throw ValidationError("give a package to build, or --to ID to roll back to, not both")
    }
  }

  func run() async throws {
    if let to {
      let row = try await admin.run { c throws(AdminClientError) in
        try await c.post("/images/\(server)/release", ReleaseRequest(id: to), as: ApplyRow.self)
      }
      return admin.json ? admin.printJSON(row) : print("\(row.kind.lowercased())/\(row.name) \(row.action)")
    }
    guard let package else { return }
    var query = ["release=\(!noRollout)"]
    if let serverType { query.append("type=\(serverType)") }
    if let tag { query.append("tag=\(tag)") }
    if let mark { query.append("mark=\(mark)") }
    let route = "/images/\(server)/builds?" + Self.query(query)
    let size = ((try? FileManager.default.attributesOfItem(atPath: package))?[.size] as? NSNumber)?.int64Value ?? 0
    let bar = Progress("uploading \(package)", total: size)
    var build = try await admin.run { c throws(AdminClientError) in
      try await c.upload(package, to: route, as: BuildRow.self) { bar.update($0) }
    }
    if !admin.json { bar.finish(size) }
    if !admin.json { print("build \(build.id) on \(build.handler): \(build.image)") }
    if detach { return admin.json ? admin.printJSON(build) : () }
    build = try await Self.follow(build.id, admin: admin)
    if admin.json { admin.printJSON(build) }
    guard build.phase == "Done" else { throw ExitCode(1) }
  }

  /// Prints the build's new log lines until it ends.
  static func follow(_ id: String, admin: AdminOptions) async throws -> BuildRow {
    var next = 0
    while true {
      let from = next
      let build = try await admin.run { c throws(AdminClientError) in
        try await c.get("/images/builds/\(id)?from=\(from)", as: BuildRow.self)
      }
      if !admin.json { for line in build.log { print(line) } }
      next = build.logStart + build.log.count
      if build.finished { return build }
      try await Task.sleep(for: .milliseconds(500))
    }
  }

  static func query(_ pairs: [String]) -> String {
    var allowed = CharacterSet.urlQueryAllowed
    allowed.remove(charactersIn: "&+=")
    return pairs.map { pair in
      let (k, v) = (pair.prefix { $0 != "=" }, pair.drop { $0 != "=" }.dropFirst())
      return "\(k)=\(String(v).addingPercentEncoding(withAllowedCharacters: allowed) ?? "")"
    }.joined(separator: "&")
  }
}

struct Releases: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "List a server's recorded releases, newest first.")
  @Argument(help: "App.Server") var server: String
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    let rows = try await admin.run { c throws(AdminClientError) in
      try await c.get("/images/\(server)/releases", as: [ReleaseRow].self)
    }
    if admin.json { return admin.printJSON(rows) }
    printTable(
      ["ID", "CURRENT", "CREATED", "BY", "IMAGE", "MARK"],
      rows.map { [$0.id, $0.current ? "*" : "", $0.createTime, $0.createPerson, $0.image, $0.mark] })
  }
}

struct Builds: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "List the image builds of the admin replica, follow one (ID), or stop it (ID --cancel).")
  @Argument(help: "A build id.") var id: String?
  @Flag(help: "Stop the build.") var cancel = false
  @OptionGroup var admin: AdminOptions

  func run() async throws {
    guard let id else {
      let rows = try await admin.run { c throws(AdminClientError) in
        try await c.get("/images/builds", as: [BuildRow].self)
      }
      if admin.json { return admin.printJSON(rows) }
      return printTable(
        ["ID", "SERVER", "PHASE", "BY", "IMAGE", "MESSAGE"],
        rows.map { [$0.id, $0.server, $0.phase, $0.createPerson, $0.image, $0.message] })
    }
    if cancel {
      let row = try await admin.run { c throws(AdminClientError) in
        let bytes = try await c.send(.DELETE, "/images/builds/\(id)")
        return try c.decode(bytes) as BuildRow
      }
      return admin.json ? admin.printJSON(row) : print("build \(row.id): \(row.phase): \(row.message)")
    }
    let row = try await Release.follow(id, admin: admin)
    if admin.json { admin.printJSON(row) }
    guard row.phase == "Done" else { throw ExitCode(1) }
  }
}
