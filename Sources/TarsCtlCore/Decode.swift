import TarsProtocol

/// What `tarsctl decode` prints: framed packets with their fields and a schema-less tree of
/// sBuffer, a bare packet body, or any Tars-encoded value as a tag tree.
public enum PacketDescriber {
  /// Describes `bytes` as JSON, trying in turn: one or more complete frames, a packet body, a
  /// bare value tree.
  public static func describe(_ bytes: [UInt8]) throws(TarsCtlError) -> JSONValue {
    guard !bytes.isEmpty else { throw TarsCtlError("nothing to decode") }
    // No Tars writer starts a value with `00 00` (INT1 0 is always written as ZERO_TAG), so
    // that is the start of a frame length.
    if bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 {
      let length = Int(bytes[2]) << 8 | Int(bytes[3])
      if length > bytes.count {
        throw TarsCtlError("incomplete frame: its length says \(length) bytes, \(bytes.count) given")
      }
    }
    if let frames = splitFrames(bytes) {
      var packets: [JSONValue] = []
      for body in frames {
        guard let packet = packet(body, frameLength: body.count + TarsFrame.headerSize) else {
          packets = []
          break
        }
        packets.append(packet)
      }
      if packets.count == 1 { return packets[0] }
      if !packets.isEmpty { return .array(packets) }
    }
    if let packet = packet(bytes, frameLength: nil) { return packet }
    do {
      let fields = try TarsValue.decodeFields(bytes)
      return .object([("value", .array(fields.map { $0.value.json(tag: $0.tag) }))])
    } catch {
      throw TarsCtlError("not a Tars frame, packet or value: \(error)")
    }
  }

  /// The bodies, if `bytes` is exactly a sequence of complete frames.
  static func splitFrames(_ bytes: [UInt8]) -> [[UInt8]]? {
    var splitter = TarsFrameSplitter(maxFrameLength: Int(UInt32.max))
    splitter.append(bytes)
    var bodies: [[UInt8]] = []
    while let body = try? splitter.next() { bodies.append(body) }
    return bodies.isEmpty || splitter.bufferedCount != 0 ? nil : bodies
  }

  static func packet(_ body: [UInt8], frameLength: Int?) -> JSONValue? {
    // The request carries the servant name (a string) at tag 5; the response its iRet (an int).
    guard let fields = try? TarsValue.decodeFields(body), let tag5 = fields.first(where: { $0.tag == 5 }) else {
      return nil
    }
    var members: [(String, JSONValue)] = []
    if let frameLength { members.append(("frameLength", .integer(Int64(frameLength)))) }
    switch tag5.value {
    case .string:
      guard let p = try? RequestPacket(tarsBytes: body) else { return nil }
      members += [
        ("packet", .string("RequestPacket")), ("iVersion", .integer(Int64(p.iVersion))),
        ("cPacketType", .integer(Int64(p.cPacketType))), ("oneway", .bool(p.cPacketType == TarsPacketType.oneway)),
        ("iMessageType", .integer(Int64(p.iMessageType))), ("iRequestId", .integer(Int64(p.iRequestId))),
        ("sServantName", .string(p.sServantName)), ("sFuncName", .string(p.sFuncName)),
        ("sBuffer", buffer(p.sBuffer, version: p.iVersion)), ("iTimeout", .integer(Int64(p.iTimeout))),
        ("context", map(p.context)), ("status", map(p.status)),
      ]
    case .integer:
      guard let p = try? ResponsePacket(tarsBytes: body) else { return nil }
      members += [
        ("packet", .string("ResponsePacket")), ("iVersion", .integer(Int64(p.iVersion))),
        ("cPacketType", .integer(Int64(p.cPacketType))), ("iRequestId", .integer(Int64(p.iRequestId))),
        ("iMessageType", .integer(Int64(p.iMessageType))), ("iRet", .integer(Int64(p.iRet))),
        ("iRetName", .string(TarsReturnCode.name(p.iRet))), ("sBuffer", buffer(p.sBuffer, version: p.iVersion)),
        ("status", map(p.status)), ("sResultDesc", .string(p.sResultDesc)), ("context", map(p.context)),
      ]
    default:
      return nil
    }
    return .object(members)
  }

  static func map(_ m: [String: String]) -> JSONValue {
    .object(m.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
  }

  /// sBuffer as hex and as a tree; for TUP (version 3) also each named parameter's tree.
  static func buffer(_ bytes: [UInt8], version: Int16) -> JSONValue {
    var members: [(String, JSONValue)] = [("len", .integer(Int64(bytes.count))), ("hex", .string(Hex.encode(bytes)))]
    do {
      let fields = try TarsValue.decodeFields(bytes)
      members.append(("decoded", .array(fields.map { $0.value.json(tag: $0.tag) })))
      if version == TarsVersion.tup, case .map(let entries)? = fields.first?.value {
        var params: [(String, JSONValue)] = []
        for e in entries {
          guard case .string(let name, _) = e.key, case .simpleList(let value) = e.value,
            let tree = try? TarsValue.decodeFields(value)
          else { continue }
          params.append((String(decoding: name, as: UTF8.self), .array(tree.map { $0.value.json(tag: $0.tag) })))
        }
        members.append(("tup", .object(params)))
      }
    } catch {
      members.append(("error", .string(error.description)))
    }
    return .object(members)
  }
}
