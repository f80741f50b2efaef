import Glibc
import TarsRPC

/// What the agent reads of `/proc`: processes, their descriptors and namespaces. Every reader
/// tolerates a process vanishing mid-scan (it is simply left out).
public struct Proc: Sendable {
  /// The proc file system (a test may point elsewhere).
  public var root: String

  public init(root: String = "/proc") { self.root = root }

  /// Every process id.
  public func pids() -> [Int32] {
    Files.list(root).compactMap { Int32($0) }.sorted()
  }

  /// The inode of `pid`'s network namespace (what `ip netns identify` compares).
  public func networkNamespace(of pid: Int32) -> UInt64? {
    var st = stat()
    guard stat("\(root)/\(pid)/ns/net", &st) == 0 else { return nil }
    return UInt64(st.st_ino)
  }

  /// The socket inodes `pid` holds open.
  public func sockets(of pid: Int32) -> [UInt64] {
    let dir = "\(root)/\(pid)/fd"
    var out: [UInt64] = []
    for fd in Files.list(dir) {
      guard let target = Self.readLink("\(dir)/\(fd)"), target.hasPrefix("socket:[") else { continue }
      if let inode = UInt64(target.dropFirst(8).dropLast()) { out.append(inode) }
    }
    return out
  }

  /// The command name (`comm`).
  public func command(of pid: Int32) -> String {
    guard let text = try? Files.readText("\(root)/\(pid)/comm") else { return "" }
    return String(text.prefix { $0 != "\n" })
  }

  /// The pod UID a process belongs to, from its cgroup path (`…pod<uid>…`, with `_` for `-` under
  /// the systemd driver), nil outside a Kubernetes pod.
  public func podUID(of pid: Int32) -> String? {
    guard let text = try? Files.readText("\(root)/\(pid)/cgroup") else { return nil }
    return Self.podUID(cgroup: text)
  }

  /// The pod UID in a `/proc/PID/cgroup` text.
  public static func podUID(cgroup text: String) -> String? {
    for line in text.split(separator: "\n") {
      for part in line.split(separator: "/") {
        // `kubepods-besteffort-pod<uid>.slice` (systemd) or `pod<uid>` (cgroupfs).
        let bytes = Array(part.utf8)
        guard bytes.count >= 39 else { continue }
        for start in 0...(bytes.count - 39) where bytes[start..<start + 3].elementsEqual("pod".utf8) {
          let uid = bytes[(start + 3)..<(start + 39)].map { $0 == UInt8(ascii: "_") ? UInt8(ascii: "-") : $0 }
          let dashes = [8, 13, 18, 23]
          let valid = uid.enumerated().allSatisfy { i, b in
            dashes.contains(i) ? b == UInt8(ascii: "-") : (b >= 48 && b <= 57) || (b >= 97 && b <= 102)
          }
          if valid { return String(decoding: uid, as: UTF8.self) }
        }
      }
    }
    return nil
  }

  static func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 256)
    let n = readlink(path, &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}
