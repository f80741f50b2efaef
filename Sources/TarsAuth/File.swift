import Glibc

/// The contents of a file, or nil if it cannot be read.
func readWholeFile(_ path: String) -> [UInt8]? {
  let fd = open(path, O_RDONLY | O_CLOEXEC)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var out: [UInt8] = []
  var chunk = [UInt8](repeating: 0, count: 4096)
  while true {
    let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
    if n < 0 { return nil }
    if n == 0 { return out }
    out += chunk[0..<n]
  }
}

/// The wall clock in Unix seconds.
public func unixTimeSeconds() -> Int64 {
  var ts = timespec()
  clock_gettime(CLOCK_REALTIME, &ts)
  return Int64(ts.tv_sec)
}
