import Foundation
import Hummingbird
import TarsAdminAPI
import TarsImageService
import TarsKube
import TarsProtocol

extension BuildRow: ResponseEncodable {}
extension ReleaseRow: ResponseEncodable {}

/// Who made the call in hand (the admin token's name), for what the call records.
enum AdminCaller {
  @TaskLocal static var name = "admin"
}

extension BuildState {
  var row: BuildRow {
    BuildRow(
      id: id, server: server, serverType: serverType, phase: phase.rawValue, message: message, image: image,
      baseImage: baseImage, createPerson: createPerson, createTime: createTime, mark: mark, handler: handler,
      setRelease: setRelease, log: log, logStart: logStart)
  }
}

/// The image service's routes: upload a package to build a release, follow and cancel builds,
/// list a server's releases and point it at one.
extension AdminRoutes {
  func registerImages(on g: RouterGroup<BasicRequestContext>) {
    g.post("images/:server/builds") { request, context in
      let images = try imageService()
      let server = try context.parameters.require("server")
      let q = request.uri.queryParameters
      let known = tserver(server).map { t in
        t.annotations["tars.io/ServerType"] ?? (TServer(t).subType == "normal" ? "not-tars" : "cpp")
      }
      guard let type = q["type"].map(String.init) ?? known else {
        throw HTTPError(.badRequest, message: "\(server) has no TServer yet: say its type (type=cpp, go, java-jar, …)")
      }
      let release = q["release"].map { $0 == "true" || $0 == "1" } ?? true
      let package = try await receive(request.body, into: images.options.workDirectory + "/uploads")
      let r = BuildRequest(
        server: server, serverType: type, tag: q["tag"].map(String.init).flatMap { $0.isEmpty ? nil : $0 },
        mark: q["mark"].map(String.init) ?? "", person: AdminCaller.name, setRelease: release, package: package)
      do {
        let state = try await images.submit(r)
        return EditedResponse(status: .accepted, response: state.row)
      } catch let error as ImageServiceError {
        throw HTTPError(HTTPResponse.Status(code: error.status), message: error.message)
      }
    }
    g.get("images/builds") { _, _ in try await imageService().list().map(\.row) }
    g.get("images/builds/:id") { request, context in
      let id = try context.parameters.require("id")
      let from = request.uri.queryParameters["from"].flatMap { Int($0) } ?? 0
      guard let state = try await imageService().state(id, logFrom: from) else {
        throw HTTPError(
          .notFound, message: "no build \(id) on this admin replica: tarsctl releases SERVER shows the last one")
      }
      return state.row
    }
    g.delete("images/builds/:id") { _, context in
      let id = try context.parameters.require("id")
      guard let state = try await imageService().cancel(id, by: AdminCaller.name) else {
        throw HTTPError(.notFound, message: "no build \(id) on this admin replica")
      }
      return state.row
    }
    g.get("images/:server/releases") { _, context in
      let server = try context.parameters.require("server")
      let name = BuildState.imageName(server)
      let timage: KubeObject
      do {
        timage = try await d.store.get(.timages, namespace: d.namespace, name: name)
      } catch let error as StoreError {
        if error.code == 404 { return [ReleaseRow]() }
        throw HTTPError(HTTPResponse.Status(code: error.code), message: error.message)
      }
      let current = tserver(server)?.spec?[path: ["release", "id"]]?.stringValue
      return (timage.json["releases"]?.arrayValue ?? []).map { r in
        let id = r["id"]?.stringValue ?? ""
        return ReleaseRow(
          id: id, image: r["image"]?.stringValue ?? "", createPerson: r["createPerson"]?.stringValue ?? "",
          createTime: r["createTime"]?.stringValue ?? "", mark: r["mark"]?.stringValue ?? "", current: id == current)
      }
    }
    g.post("images/:server/release") { request, context in
      let server = try context.parameters.require("server")
      let body = try await request.decode(as: ReleaseRequest.self, context: context)
      do {
        let image = try await imageService().release(server: server, to: body.id)
        return ApplyRow(kind: "TServer", name: server, action: "released \(body.id) (\(image))")
      } catch let error as ImageServiceError {
        throw HTTPError(HTTPResponse.Status(code: error.status), message: error.message)
      }
    }
  }

  func imageService() throws -> ImageService {
    guard let images = d.images else {
      throw HTTPError(
        .serviceUnavailable, message: "this admin runs no image service: start it with --image-work-dir DIR")
    }
    return images
  }

  /// Streams the request body to a new file under `directory`, refusing more than
  /// `maxUploadBytes` (the file is removed then).
  func receive(_ body: RequestBody, into directory: String) async throws -> String {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/" + String(UInt64.random(in: 0...UInt64.max), radix: 16) + ".tgz"
    guard FileManager.default.createFile(atPath: path, contents: nil),
      let handle = FileHandle(forWritingAtPath: path)
    else { throw HTTPError(.internalServerError, message: "cannot write the upload under \(directory)") }
    var received: Int64 = 0
    do {
      for try await buffer in body {
        received += Int64(buffer.readableBytes)
        guard received <= d.maxUploadBytes else {
          throw HTTPError(
            .contentTooLarge,
            message: "the package is over \(d.maxUploadBytes >> 20) MiB: the admin's --max-upload-mib sets the limit")
        }
        try handle.write(contentsOf: buffer.readableBytesView)
      }
      try handle.close()
    } catch {
      try? handle.close()
      unlink(path)
      throw error
    }
    guard received > 0 else {
      unlink(path)
      throw HTTPError(.badRequest, message: "the request has no package: send the .tgz as the body")
    }
    return path
  }
}
