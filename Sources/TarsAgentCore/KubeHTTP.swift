import CTarsAgent
import Glibc
import TarsRPC

/// What went wrong talking to the API server.
public struct KubeHTTPError: Error, Sendable, CustomStringConvertible {
  public var message: String
  /// The HTTP status when the server answered (nil: it could not be reached).
  public var status: Int?
  public init(_ message: String, status: Int? = nil) {
    self.message = message
    self.status = status
  }
  public var description: String { message }
}

/// The agent's API-server client: HTTPS through libcurl with the service account's CA and
/// token (read again for each request: the kubelet rotates it), synchronous — the agent runs
/// one loop and has nothing else to do while it waits. JSON is the caller's.
public struct KubeHTTP: Sendable {
  /// `https://HOST:PORT` (or `http://` for a test server).
  public var server: String
  public var caFile: String?
  public var tokenFile: String?
  public var timeoutMs = 30_000

  public init(server: String, caFile: String? = nil, tokenFile: String? = nil) {
    self.server = server
    self.caFile = caFile
    self.tokenFile = tokenFile
  }

  static let serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"

  /// In a pod: `KUBERNETES_SERVICE_HOST`/`_PORT` and the service account's CA and token; nil
  /// elsewhere.
  public static func inCluster() -> KubeHTTP? {
    guard let host = getenv("KUBERNETES_SERVICE_HOST").map({ String(cString: $0) }),
      let port = getenv("KUBERNETES_SERVICE_PORT").map({ String(cString: $0) })
    else { return nil }
    let h = host.contains(":") ? "[\(host)]" : host
    return KubeHTTP(
      server: "https://\(h):\(port)", caFile: serviceAccount + "/ca.crt", tokenFile: serviceAccount + "/token")
  }

  public struct Response: Sendable {
    public var status: Int
    public var body: [UInt8]
  }

  /// One request; the response whatever its status (the caller reads the API's Status).
  public func send(_ method: String, _ target: String, body: [UInt8]? = nil, contentType: String = "application/json")
    throws(KubeHTTPError) -> Response
  {
    let sink = Sink()
    let status = try perform(method, target, body: body, contentType: contentType, sink: sink, timeoutMs: timeoutMs)
    return Response(status: status, body: sink.body)
  }

  /// A watch: `event` gets each line (one JSON event) as it arrives, until the server ends the
  /// watch, `event` returns false, or nothing (not even a bookmark) comes for `idleSeconds`.
  /// The status of the response.
  public func watch(_ target: String, idleSeconds: Int = 300, event: @escaping ([UInt8]) -> Bool)
    throws(KubeHTTPError) -> Int
  {
    let sink = Sink(lines: event)
    let status = try perform("GET", target, body: nil, contentType: "", sink: sink, timeoutMs: 0, idle: idleSeconds)
    sink.flush()
    return status
  }

  func perform(
    _ method: String, _ target: String, body: [UInt8]?, contentType: String, sink: Sink, timeoutMs: Int,
    idle: Int = 0
  ) throws(KubeHTTPError) -> Int {
    var token: String?
    if let tokenFile {
      do {
        token = String(decoding: try Files.read(tokenFile), as: UTF8.self).filter { !$0.isWhitespace }
      } catch {
        throw KubeHTTPError("cannot read the service account token \(tokenFile): \(error)")
      }
    }
    var status = 0
    var error = [CChar](repeating: 0, count: 256)
    let context = Unmanaged.passUnretained(sink).toOpaque()
    let rc = (body ?? []).withUnsafeBytes { bytes in
      ctars_http(
        method, server + target, caFile, token, body == nil ? nil : contentType,
        body == nil ? nil : bytes.baseAddress, bytes.count, timeoutMs, idle,
        { data, length, context in
          let sink = Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue()
          return sink.take(UnsafeRawBufferPointer(start: data, count: length)) ? 0 : 1
        }, context, &status, &error)
    }
    if rc != 0 && !sink.stopped {
      let text = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      throw KubeHTTPError("\(method) \(server)\(target): \(text)")
    }
    return status
  }

  /// Where the response goes: kept whole, or cut into lines for a watch.
  final class Sink {
    var body: [UInt8] = []
    let lines: (([UInt8]) -> Bool)?
    var stopped = false

    init() { lines = nil }
    init(lines: @escaping ([UInt8]) -> Bool) { self.lines = lines }

    func take(_ bytes: UnsafeRawBufferPointer) -> Bool {
      body.append(contentsOf: bytes)
      guard let lines else { return true }
      // Lines are handed out from a moving start; what they took is dropped once, at the end.
      var start = body.startIndex
      defer { body.removeSubrange(..<start) }
      while let newline = body[start...].firstIndex(of: UInt8(ascii: "\n")) {
        let line = Array(body[start..<newline])
        start = newline + 1
        if !line.isEmpty, !lines(line) {
          stopped = true
          return false
        }
      }
      return true
    }

    /// A last line without its newline.
    func flush() {
      if let lines, !body.isEmpty, !stopped { _ = lines(body) }
      body = []
    }
  }
}
