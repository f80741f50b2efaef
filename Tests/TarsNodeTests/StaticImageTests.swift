import Foundation
import TarsTestSupport
import Testing

/// The fully static tarsnode in an image that holds nothing else but /etc/hosts and
/// /etc/resolv.conf, as in a Kubernetes pod: it must still resolve the registry's service name.
let staticTarsnode = Fixtures.repositoryRoot.appendingPathComponent(".build-static/tarsnode").path

@Suite(
  "The static tarsnode in an empty image",
  .enabled(
    if: canUnshare && FileManager.default.isExecutableFile(atPath: staticTarsnode),
    "needs root, unshare(1) and the static build (scripts/build-tarsnode, which scripts/test runs)"))
struct StaticImageTests {
  static let binary = staticTarsnode

  static let dnsServer = """
    import socket, sys
    records = {"tars-tarsregistry.tars.svc.cluster.local": "10.96.7.7"}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    print("dns ready", flush=True)
    while True:
        q, peer = s.recvfrom(512)
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode()); i += 1 + q[i]
        question = q[12:i + 5]
        ip = records.get(".".join(labels).lower())
        flags = b"\\x81\\x80" if ip else b"\\x81\\x83"
        answer = b"\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x3c\\x00\\x04" + bytes(int(x) for x in ip.split(".")) if ip else b""
        s.sendto(q[:2] + flags + b"\\x00\\x01\\x00" + (b"\\x01" if ip else b"\\x00") + b"\\x00\\x00\\x00\\x00" + question + answer, peer)
    """

  @Test func resolvesTheRegistryServiceNameThroughResolvConf() throws {
    let dir = try TemporaryDirectory("tarsnode-image")
    defer { dir.remove() }
    let root = dir.file("root")
    for d in ["etc", "proc"] {
      try FileManager.default.createDirectory(atPath: "\(root)/\(d)", withIntermediateDirectories: true)
    }
    try "127.0.0.1 localhost\n".write(toFile: "\(root)/etc/hosts", atomically: true, encoding: .utf8)
    try "nameserver 127.0.0.1\nsearch tars.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
      .write(toFile: "\(root)/etc/resolv.conf", atomically: true, encoding: .utf8)
    try FileManager.default.copyItem(atPath: Self.binary, toPath: "\(root)/tarsnode")
    try Self.dnsServer.write(toFile: dir.file("dns.py"), atomically: true, encoding: .utf8)
    #expect(
      try FileManager.default.subpathsOfDirectory(atPath: root).sorted() == [
        "etc", "etc/hosts", "etc/resolv.conf", "proc", "tarsnode",
      ])

    // A network namespace of our own, so the fake cluster DNS can own 127.0.0.1:53.
    let script = """
      set -e
      ip link set lo up
      python3 \(dir.file("dns.py")) > \(dir.file("dns.log")) 2>&1 &
      for i in $(seq 50); do grep -q ready \(dir.file("dns.log")) && break; sleep 0.1; done
      mount -t proc proc \(root)/proc
      chroot \(root) /tarsnode --resolve tars-tarsregistry
      chroot \(root) /tarsnode --resolve localhost
      chroot \(root) /tarsnode -- /tarsnode --resolve tars-tarsregistry
      """
    let out = try Tool.run("/usr/bin/unshare", ["--net", "--mount", "--pid", "--fork", "sh", "-c", script])
    #expect(out.status == 0, "\(out.stderr)")
    #expect(
      out.stdout == "tars-tarsregistry: 10.96.7.7\nlocalhost: 127.0.0.1\ntars-tarsregistry: 10.96.7.7\n",
      "\(out.stdout)\(out.stderr)")
  }
}
