import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// What went wrong talking to the admin API, said so the operator knows what to do.
public struct AdminClientError: Error, Sendable, CustomStringConvertible {
  public var status: Int?
  public var message: String
  public init(status: Int? = nil, _ message: String) {
    self.status = status
    self.message = message
  }
  public var description: String { message }
}

/// `tarsctl`'s side of the admin API: bearer-token requests, JSON answers, errors with the
/// reason the server gave.
public struct AdminClient: Sendable {
  public var baseURL: String
  public var token: String
  public var timeout: TimeAmount

  public init(baseURL: String, token: String, timeout: TimeAmount = .seconds(30)) {
    self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
    self.token = token
    self.timeout = timeout
  }

  /// Reads the token `tars-controlplane up` wrote.
  public static func token(fromFile path: String) throws(AdminClientError) -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
      throw AdminClientError(
        "cannot read the admin token \(path): run tarsctl where `tars-controlplane up` keeps its state (./.tars), or pass --token-file"
      )
    }
    return text.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// Sends a request and returns the body; non-2xx answers become errors carrying the API's message.
  public func send(
    _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json"
  ) async throws(AdminClientError) -> [UInt8] {
    var request = HTTPClientRequest(url: baseURL + AdminAPI.prefix + path)
    request.method = method
    request.headers.add(name: "Authorization", value: "Bearer \(token)")
    if let body {
      request.headers.add(name: "Content-Type", value: contentType)
      request.body = .bytes(ByteBuffer(bytes: body))
    }
    return try await finish(request, timeout: timeout)
  }

  /// Runs `request`; the body of a 2xx answer, or the API's reason as the error.
  func finish(_ request: HTTPClientRequest, timeout: TimeAmount) async throws(AdminClientError) -> [UInt8] {
    let status: Int
    let bytes: [UInt8]
    do {
      let response = try await HTTPClient.shared.execute(request, timeout: timeout)
      status = Int(response.status.code)
      var buffer = try await response.body.collect(upTo: 64 << 20)
      bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
    } catch {
      throw AdminClientError("cannot reach the admin API at \(baseURL) (\(error)): is `tars-controlplane up` running?")
    }
    guard (200..<300).contains(status) else {
      let reason = (try? JSONDecoder().decode(ErrorBody.self, from: Data(bytes)))?.error.message
      if status == 401 {
        throw AdminClientError(
          status: status, "the admin API refused the token (401): use the token file of the running control plane")
      }
      throw AdminClientError(status: status, "\(status): \(reason ?? String(decoding: bytes, as: UTF8.self))")
    }
    return bytes
  }

  /// Sends the file at `path` as the body, streamed (never whole in memory); `sent` hears
  /// how many bytes have gone out.
  public func upload<T: Decodable>(
    _ path: String, to route: String, as: T.Type = T.self, sent: @escaping @Sendable (Int64) -> Void = { _ in }
  ) async throws(AdminClientError) -> T {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw AdminClientError("cannot read \(path): name the server package (.tgz)")
    }
    defer { try? handle.close() }
    let size = (try? handle.seekToEnd()).map(Int64.init) ?? 0
    _ = try? handle.seek(toOffset: 0)
    var request = HTTPClientRequest(url: baseURL + AdminAPI.prefix + route)
    request.method = .POST
    request.headers.add(name: "Authorization", value: "Bearer \(token)")
    request.headers.add(name: "Content-Type", value: "application/gzip")
    request.body = .stream(FileChunks(handle: handle, sent: sent), length: .known(size))
    return try decode(try await finish(request, timeout: .hours(1)))
  }

  public func get<T: Decodable>(_ path: String, as: T.Type = T.self) async throws(AdminClientError) -> T {
    try decode(try await send(.GET, path))
  }

  public func post<T: Decodable, B: Encodable>(_ path: String, _ body: B, as: T.Type = T.self)
    async throws(AdminClientError) -> T
  {
    let data: Data
    do {
      data = try JSONEncoder().encode(body)
    } catch {
      throw AdminClientError("cannot encode the request: \(error)")
    }
    return try decode(try await send(.POST, path, body: Array(data)))
  }

  public func decode<T: Decodable>(_ bytes: [UInt8]) throws(AdminClientError) -> T {
    do {
      return try JSONDecoder().decode(T.self, from: Data(bytes))
    } catch {
      throw AdminClientError("the admin API answered something unexpected: \(error)")
    }
  }
}

/// A file as a stream of 1 MiB buffers, for uploads.
struct FileChunks: AsyncSequence, Sendable {
  typealias Element = ByteBuffer
  let handle: FileHandle
  let sent: @Sendable (Int64) -> Void

  struct AsyncIterator: AsyncIteratorProtocol {
    let handle: FileHandle
    let sent: @Sendable (Int64) -> Void
    var total: Int64 = 0

    mutating func next() async throws -> ByteBuffer? {
      guard let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else { return nil }
      total += Int64(data.count)
      sent(total)
      return ByteBuffer(bytes: data)
    }
  }

  func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: handle, sent: sent) }
}
