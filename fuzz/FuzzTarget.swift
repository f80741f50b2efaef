// libFuzzer entry point: every decoder and parser of the protocol core over arbitrary bytes.
// Built by fuzz/run (which compiles the protocol core and the generated framework types into
// one module with -sanitize=fuzzer,address); never part of the package build.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))

  // Packet bodies and schema-less trees.
  _ = try? RequestPacket(tarsBytes: bytes)
  _ = try? ResponsePacket(tarsBytes: bytes)
  _ = try? TarsValue.decodeFields(bytes)

  // Framework types with nested structs, lists, maps and struct-keyed maps.
  var r = TarsReader(bytes)
  _ = try? r.read([EndpointF].self, tag: 0)
  _ = try? QueryF.FindObjectById4Any.Result(tarsBytes: bytes)
  _ = try? ServerDescriptor(tarsBytes: bytes)
  _ = try? ReportInfo(tarsBytes: bytes)
  _ = try? StatF.ReportMicMsg.Args(tarsBytes: bytes)
  _ = try? PropertyF.ReportPropMsg.Args(tarsBytes: bytes)
  _ = try? ServerStateInfo(tarsBytes: bytes)

  // The frame splitter, fed in chunks whose sizes come from the input itself.
  var splitter = TarsFrameSplitter(maxFrameLength: 1 << 16)
  var i = 0
  var chunk = 1
  while i < bytes.count {
    let n = min(bytes.count - i, chunk)
    splitter.append(bytes[i..<(i + n)])
    i += n
    chunk = Int(bytes[i - 1] % 17) + 1
    while let body = try? splitter.next() {
      if let request = try? RequestPacket(tarsBytes: body) { _ = try? TarsValue.decodeFields(request.sBuffer) }
    }
  }

  // Text formats.
  let text = String(decoding: bytes, as: UTF8.self)
  _ = try? TarsConfig(parsing: text)
  _ = try? TarsEndpoint(parsing: text)
  _ = try? TarsObjectAddress(parsing: text)
  return 0
}
