import Foundation
import TarsFramework
import TarsMonitor
import TarsProtocol
import TarsTestSupport
import Testing

/// A quick in-CI guard beside the libFuzzer target (fuzz/run, ≥ 10 million inputs): real frames
/// from Tests/Fixtures, mutated at random, through every decoder. Nothing may crash, and
/// every failure must be a typed error.
@Suite("Mutated inputs")
struct MutationTests {
  static let inputs = 100_000

  @Test func decodersSurviveMutatedFrames() throws {
    var seeds: [[UInt8]] = Capture.all.map(\.frame)
    seeds += CodecVector.all.map(\.bytes)
    var g = Gen(seed: 2024)
    var rejected = 0
    for _ in 0..<Self.inputs {
      var bytes = seeds.randomElement(using: &g)!
      for _ in 0...Int.random(in: 0..<4, using: &g) {
        switch Int.random(in: 0..<6, using: &g) {
        case 0 where !bytes.isEmpty:
          bytes[Int.random(in: 0..<bytes.count, using: &g)] ^= UInt8.random(in: 1...255, using: &g)
        case 1 where !bytes.isEmpty: bytes.removeSubrange(Int.random(in: 0..<bytes.count, using: &g)...)
        case 2: bytes.insert(UInt8.random(in: 0...255, using: &g), at: Int.random(in: 0...bytes.count, using: &g))
        case 3 where bytes.count > 8:  // a huge or negative length somewhere
          let at = Int.random(in: 0..<(bytes.count - 4), using: &g)
          for i in 0..<4 { bytes[at + i] = [0xFF, 0x7F, 0x80, 0x00].randomElement(using: &g)! }
        case 4 where !bytes.isEmpty: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &g))
        default: bytes += bytes.prefix(Int.random(in: 0...16, using: &g))
        }
      }
      let body = Array(bytes.dropFirst(4))
      for input in [bytes, body] {
        do { _ = try RequestPacket(tarsBytes: input) } catch { rejected += 1 }
        do { _ = try ResponsePacket(tarsBytes: input) } catch { rejected += 1 }
        do { _ = try TarsValue.decodeFields(input) } catch { rejected += 1 }
        do { _ = try ServerF.KeepAlive.Args(tarsBytes: input) } catch { rejected += 1 }
        do { _ = try QueryF.FindObjectById4Any.Result(tarsBytes: input) } catch { rejected += 1 }
        do { _ = try StatF.ReportMicMsg.Args(tarsBytes: input) } catch { rejected += 1 }
      }
      var splitter = TarsFrameSplitter()
      splitter.append(bytes)
      while let frame = try? splitter.next() { _ = try? RequestPacket(tarsBytes: frame) }
    }
    #expect(rejected > 0, "mutations should produce inputs the decoders refuse")
  }

  @Test func deepNestingIsRefusedNotRecursedInto() {
    // 100,000 nested STRUCT_BEGINs, then lists: a recursive decoder without a bound would overflow its stack.
    let structs = [UInt8](repeating: 0x0A, count: 100_000)
    let e1 = #expect(throws: TarsDecodeError.self) { try TarsValue.decodeFields(structs) }
    #expect(e1?.kind == .nestingTooDeep(limit: TarsReader.maxDepth))
    let lists = [UInt8]((0..<50_000).flatMap { _ in [0x09, 0x00, 0x01] })
    #expect(throws: TarsDecodeError.self) { try TarsValue.decodeFields(lists) }
    var r = TarsReader(structs)
    #expect(throws: TarsDecodeError.self) { try r.read(TestInfo.self, tag: 0) }
  }

  @Test func hugeDeclaredSizesAreRefusedBeforeAllocating() {
    // A list claiming 2^31−1 elements in 6 bytes, a map claiming 2^30, a string claiming 4 GiB.
    let cases: [[UInt8]] = [
      [0x09, 0x02, 0x7F, 0xFF, 0xFF, 0xFF], [0x08, 0x02, 0x40, 0x00, 0x00, 0x00], [0x07, 0xFF, 0xFF, 0xFF, 0xFF, 0x61],
      [0x0D, 0x00, 0x02, 0x7F, 0xFF, 0xFF, 0xFF],
    ]
    for bytes in cases {
      #expect(throws: TarsDecodeError.self) { try TarsValue.decodeFields(bytes) }
      var r = TarsReader(bytes)
      #expect(throws: TarsDecodeError.self) { _ = try r.read([Int32].self, tag: 0) }
    }
  }
}
