import NIOCore
import TarsProtocol

/// Cuts Tars frames out of the byte stream. An impossible length is an error (the pipeline
/// closes the connection) as soon as its four bytes arrive, before any body is buffered.
struct TarsFrameDecoder: ByteToMessageDecoder {
  typealias InboundOut = [UInt8]
  let maxFrameLength: Int

  mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
    guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
    guard length >= TarsFrame.minLength, length <= maxFrameLength else {
      throw TarsFrameError(length: Int(length), maxLength: maxFrameLength)
    }
    guard buffer.readableBytes >= Int(length) else { return .needMoreData }
    buffer.moveReaderIndex(forwardBy: TarsFrame.headerSize)
    context.fireChannelRead(wrapInboundOut(buffer.readBytes(length: Int(length) - TarsFrame.headerSize)!))
    return .continue
  }

  mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
    -> DecodingState
  {
    try decode(context: context, buffer: &buffer)
  }
}

extension ByteBuffer {
  init(tarsPacket bytes: [UInt8]) {
    self.init(bytes: bytes)
  }
}
