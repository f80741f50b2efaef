import Foundation
import NIOCore
import NIOPosix
import Synchronization
import TarsKube
import TarsProtocol

/// One recorded exchange of Tests/Fixtures/kube.
struct Exchange: Sendable, CustomStringConvertible {
  let folder: String
  let method: String
  /// Path and query as sent.
  let target: String
  let contentType: String?
  let requestBody: [UInt8]
  let responseHead: [UInt8]
  let responseBody: [UInt8]
  /// The body with its HTTP/1.1 chunk framing as captured, when the folder has it.
  let rawChunked: [UInt8]?
  let status: Int
  let retryAfter: Int?

  var description: String { folder }
  var path: String { String(target.split(separator: "?", maxSplits: 1)[0]) }
  var query: [(String, String)] { Self.queryPairs(target) }
  func queryValue(_ name: String) -> String? { query.first { $0.0 == name }?.1 }
  var isWatch: Bool { queryValue("watch") != nil }
  var isChunked: Bool {
    String(decoding: responseHead, as: UTF8.self).lowercased().contains("transfer-encoding: chunked")
  }
  var responseJSON: JSONValue? { try? JSONValue(bytes: responseBody) }
  var requestJSON: JSONValue? { try? JSONValue(bytes: requestBody) }

  init(folder: String, in directory: URL) throws {
    self.folder = folder
    let dir = directory.appendingPathComponent(folder)
    let request = try Data(contentsOf: dir.appendingPathComponent("request.txt"))
    let text = String(decoding: request, as: UTF8.self)
    let headEnd = text.range(of: "\n\n") ?? text.range(of: "\r\n\r\n")!
    let headLines = text[..<headEnd.lowerBound].split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    let first = headLines[0].split(separator: " ")
    method = String(first[0])
    target = String(first[1])
    contentType = headLines.dropFirst().first { $0.lowercased().hasPrefix("content-type:") }.map {
      $0.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces)
    }
    requestBody = Array(text[headEnd.upperBound...].utf8)
    responseHead = Array(try Data(contentsOf: dir.appendingPathComponent("response.headers")))
    responseBody = Array(try Data(contentsOf: dir.appendingPathComponent("response.body")))
    rawChunked = try? Array(Data(contentsOf: dir.appendingPathComponent("response.body.raw-chunked")))
    let head = String(decoding: responseHead, as: UTF8.self)
    status = Int(head.split(separator: " ")[1]) ?? 0
    retryAfter = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("retry-after:") }.flatMap {
      Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
    }
  }

  /// The response bytes on the wire: the recorded headers, then the body — with the captured
  /// chunk framing when there is one, one chunk per event for other watches (what the API
  /// server does), one chunk otherwise.
  var wire: [UInt8] {
    var out = responseHead
    guard isChunked else { return out + responseBody }
    if let rawChunked { return out + rawChunked }
    func chunk(_ bytes: ArraySlice<UInt8>) {
      out += Array(String(bytes.count, radix: 16).utf8) + [13, 10] + bytes + [13, 10]
    }
    if isWatch {
      var start = 0
      for (i, b) in responseBody.enumerated() where b == 10 {
        chunk(responseBody[start...i])
        start = i + 1
      }
      if start < responseBody.count { chunk(responseBody[start...]) }
    } else if !responseBody.isEmpty {
      chunk(responseBody[...])
    }
    return out + Array("0\r\n\r\n".utf8)
  }
}

/// An HTTP/1.1 server that answers each request with the exchange it is told to expect, byte
/// for byte, and records how the request differed from the recorded one.
final class ReplayServer: Sendable {
  let channel: any Channel
  let box: Box

  final class Box: Sendable {
    let state = Mutex(State())
  }

  struct State {
    var expected: Exchange?
    var mismatches: [String] = []
    var served = 0
  }

  var port: Int { channel.localAddress?.port ?? 0 }

  init() async throws {
    let box = Box()
    self.box = box
    channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(Handler(box: box))
        }
      }
      .bind(host: "127.0.0.1", port: 0).get()
  }

  func expect(_ e: Exchange) {
    box.state.withLock {
      $0.expected = e
      $0.mismatches = []
    }
  }

  var mismatches: [String] { box.state.withLock { $0.mismatches } }
  var served: Int { box.state.withLock { $0.served } }

  func close() async { try? await channel.close() }

  final class Handler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let box: Box
    var buffer: [UInt8] = []

    init(box: Box) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      buffer += Array(unwrapInboundIn(data).readableBytesView)
      while let request = takeRequest() {
        let e = box.state.withLock { s -> Exchange? in
          guard let e = s.expected else {
            s.mismatches.append("an unexpected request: \(request.line)")
            return nil
          }
          s.mismatches += Self.compare(request, e)
          s.served += 1
          return e
        }
        guard let e else {
          context.close(promise: nil)
          return
        }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: e.wire)), promise: nil)
      }
    }

    struct Request {
      var line: String
      var headers: [String: String]
      var body: [UInt8]
    }

    func takeRequest() -> Request? {
      let separator: [UInt8] = [13, 10, 13, 10]
      guard let end = (0..<max(0, buffer.count - 3)).first(where: { Array(buffer[$0..<$0 + 4]) == separator }) else {
        return nil
      }
      let head = String(decoding: buffer[..<end], as: UTF8.self).split(separator: "\r\n")
      var headers: [String: String] = [:]
      for line in head.dropFirst() {
        let kv = line.split(separator: ":", maxSplits: 1)
        if kv.count == 2 { headers[kv[0].lowercased()] = kv[1].trimmingCharacters(in: .whitespaces) }
      }
      let length = Int(headers["content-length"] ?? "0") ?? 0
      guard buffer.count >= end + 4 + length else { return nil }
      let body = Array(buffer[(end + 4)..<(end + 4 + length)])
      buffer.removeFirst(end + 4 + length)
      return Request(line: String(head[0]), headers: headers, body: body)
    }

    static func compare(_ r: Request, _ e: Exchange) -> [String] {
      var out: [String] = []
      let parts = r.line.split(separator: " ")
      let method = String(parts[0])
      let target = String(parts[1])
      if method != e.method { out.append("method \(method), recorded \(e.method)") }
      let path = String(target.split(separator: "?", maxSplits: 1)[0]).removingPercentEncoding ?? ""
      if path != e.path.removingPercentEncoding { out.append("path \(path), recorded \(e.path)") }
      let sent = Exchange.queryPairs(target).sorted { $0.0 + $0.1 < $1.0 + $1.1 }
      let recorded = e.query.sorted { $0.0 + $0.1 < $1.0 + $1.1 }
      if sent.map({ "\($0.0)=\($0.1)" }) != recorded.map({ "\($0.0)=\($0.1)" }) {
        out.append("query \(sent), recorded \(recorded)")
      }
      if let ct = e.contentType, ct != "application/yaml", r.headers["content-type"] != ct {
        out.append("content type \(r.headers["content-type"] ?? "none"), recorded \(ct)")
      }
      if e.contentType != nil && e.contentType != "application/apply-patch+yaml" {
        // JSON bodies compare as JSON; anything else (a truncated body) byte for byte.
        let same = e.requestJSON.map { (try? JSONValue(bytes: r.body)) == $0 } ?? (r.body == e.requestBody)
        if !same {
          out.append(
            "body \(String(decoding: r.body, as: UTF8.self)), recorded \(String(decoding: e.requestBody, as: UTF8.self))"
          )
        }
      }
      return out
    }
  }
}

extension Exchange {
  static func queryPairs(_ target: String) -> [(String, String)] {
    let parts = target.split(separator: "?", maxSplits: 1)
    guard parts.count == 2 else { return [] }
    return parts[1].split(separator: "&").map { item in
      let kv = item.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
      return (kv[0], kv.count > 1 ? kv[1] : "")
    }
  }
}
