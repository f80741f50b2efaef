import Foundation
import Synchronization

/// Progress of a transfer for a person: on a terminal one line rewritten in place with the
/// bytes and the rate; otherwise (a log, a pipe) nothing until the step ends, then one line.
/// Written to standard output, in order with the other lines.
final class Progress: Sendable {
  let label: String
  let total: Int64
  let terminal: Bool
  let start = ContinuousClock.now
  let last = Mutex<(ContinuousClock.Instant, Int64)?>(nil)

  init(_ label: String, total: Int64, terminal: Bool = isatty(STDOUT_FILENO) == 1) {
    self.label = label
    self.total = total
    self.terminal = terminal
  }

  /// `done` bytes so far; redrawn at most 10 times a second.
  func update(_ done: Int64) {
    guard terminal else { return }
    let now = ContinuousClock.now
    let due = last.withLock { l -> Bool in
      if let l, now - l.0 < .milliseconds(100), done < total { return false }
      l = (now, done)
      return true
    }
    if due { FileHandle.standardOutput.write(Data("\r\u{1B}[K\(line(done))".utf8)) }
  }

  /// The step's last line (after the in-place one on a terminal).
  func finish(_ done: Int64) {
    FileHandle.standardOutput.write(Data(((terminal ? "\r\u{1B}[K" : "") + line(done) + "\n").utf8))
  }

  func line(_ done: Int64) -> String {
    let seconds = max((ContinuousClock.now - start) / .seconds(1), 0.001)
    let rate = Int64(Double(done) / seconds)
    return "\(label)  \(Self.size(done))/\(Self.size(total))  \(Self.size(rate))/s"
  }

  /// Bytes in the largest binary unit that keeps a digit before the point: 512 B, 1.5 MiB.
  static func size(_ bytes: Int64) -> String {
    var value = Double(bytes)
    for unit in ["B", "KiB", "MiB", "GiB"] {
      if value < 1024 || unit == "GiB" {
        return unit == "B" ? "\(Int(value)) B" : String(format: "%.1f %@", value, unit)
      }
      value /= 1024
    }
    return "\(bytes) B"
  }
}
