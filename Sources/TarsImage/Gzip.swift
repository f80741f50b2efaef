import CompressNIO
import NIOCore

/// Gzip over a stream, through zlib (compress-nio): the same bytes in give the same bytes out
/// (no name or time in the header, a fixed level), so a layer's digest depends on its content
/// only. Input of any size passes through a fixed window; nothing is held whole.
public final class GzipWriter {
  let compressor: ZlibCompressor
  let emit: ([UInt8]) throws -> Void
  var window: ByteBuffer
  static let windowSize = 1 << 16

  public init(level: Int32 = 6, emit: @escaping ([UInt8]) throws -> Void) throws(ImageError) {
    do {
      compressor = try ZlibCompressor(algorithm: .gzip, configuration: ZlibConfiguration(compressionLevel: level))
    } catch {
      throw ImageError("cannot start gzip: \(error)")
    }
    self.emit = emit
    window = ByteBufferAllocator().buffer(capacity: Self.windowSize)
  }

  func drain() throws {
    if window.readableBytes > 0 { try emit(window.readBytes(length: window.readableBytes) ?? []) }
    window.clear()
  }

  public func write(_ bytes: [UInt8]) throws {
    var input = ByteBufferAllocator().buffer(bytes: bytes)
    while input.readableBytes > 0 {
      if window.writableBytes == 0 { try drain() }
      do {
        try compressor.deflate(from: &input, to: &window, flush: .no)
      } catch let error as CompressNIOError where error == .bufferOverflow {
        try drain()
      }
    }
  }

  /// The rest of the stream and the gzip trailer.
  public func finish() throws {
    while true {
      if window.writableBytes == 0 { try drain() }
      var empty = ByteBufferAllocator().buffer(capacity: 0)
      do {
        try compressor.deflate(from: &empty, to: &window, flush: .finish)
        break
      } catch let error as CompressNIOError where error == .bufferOverflow {
        try drain()
      }
    }
    try drain()
  }
}

/// Gunzip over a stream: `read(max)` gives decompressed bytes as a tar reader asks for them,
/// pulling compressed chunks from `source` (empty at its end). What follows the first gzip
/// member is ignored (a package is one member).
public final class GzipReader {
  let decompressor: ZlibDecompressor
  let source: () throws -> [UInt8]
  var input = ByteBufferAllocator().buffer(capacity: 0)
  var output = ByteBufferAllocator().buffer(capacity: 1 << 16)
  var sourceDone = false
  var ended = false

  public init(source: @escaping () throws -> [UInt8]) throws(ImageError) {
    do {
      decompressor = try ZlibDecompressor(algorithm: .gzip)
    } catch {
      throw ImageError("cannot start gunzip: \(error)")
    }
    self.source = source
  }

  public func read(max: Int) throws -> [UInt8] {
    while output.readableBytes == 0 {
      if ended { return [] }
      if input.readableBytes == 0 {
        if sourceDone { return [] }
        try refill()
        continue
      }
      output.clear()
      let before = input.readableBytes
      do {
        try decompressor.inflate(from: &input, to: &output)
        // The member's end was reached before (no progress on what is left).
        if input.readableBytes == before && output.readableBytes == 0 { ended = true }
      } catch let error as CompressNIOError where error == .bufferOverflow {
        // The window is full: give it.
      } catch let error as CompressNIOError where error == .inputBufferOverflow {
        if output.readableBytes == 0 {
          if sourceDone { throw ImageError("the gzip stream ends early: the file is truncated") }
          try refill()
        }
      } catch {
        throw ImageError("not gzip, or corrupt: \(error)")
      }
    }
    return output.readBytes(length: min(max, output.readableBytes)) ?? []
  }

  func refill() throws {
    let chunk = try source()
    if chunk.isEmpty {
      sourceDone = true
      return
    }
    var next = ByteBufferAllocator().buffer(capacity: input.readableBytes + chunk.count)
    next.writeBuffer(&input)
    next.writeBytes(chunk)
    input = next
  }
}
