import Foundation
import TarsAgentCore
import TarsProtocol
import TarsTestSupport
import Testing

/// What the volume provisioner decides from claims and volumes, and how it removes a directory.
@Suite("tarsagent's local volume plan")
struct VolumePlanTests {
  let volumes = LocalVolumes(node: "node-a", root: "/srv/tlv")

  func claim(
    _ name: String, uid: String, node: String? = "node-a", labels: Bool = true, annotations: [String: String] = [:]
  ) throws -> JSONValue {
    var a = annotations
    if let node { a["volume.kubernetes.io/selected-node"] = node }
    let l = labels ? #"{"tars.io/ServerApp": "Test", "tars.io/ServerName": "HelloServer"}"# : "{}"
    let annotationText = a.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
    return try JSONValue(
      parsing: """
        {"metadata": {"name": "\(name)", "namespace": "tars", "uid": "\(uid)", "labels": \(l),
                      "annotations": {\(annotationText)}},
         "spec": {"storageClassName": "tars-storage-class", "accessModes": ["ReadWriteOnce"]}}
        """)
  }

  @Test func onlyThisNodesUnboundClaimsAreProvisionedOnce() throws {
    let mine = try claim("a", uid: "u1", annotations: ["tars.io/LocalVolumeMode": "0700"])
    let other = try claim("b", uid: "u2", node: "node-b")
    let waiting = try claim("c", uid: "u3", node: nil)
    let made = try claim("d", uid: "u4")
    let existing = volumes.volume(for: made, directory: "/srv/tlv/tars/Test.HelloServer/d", reclaimPolicy: "Delete")
    let plan = volumes.plan(claims: [mine, other, waiting, made], volumes: [existing])
    #expect(
      plan == [
        .provision(
          claim: mine, directory: "/srv/tlv/tars/Test.HelloServer/a", owner: .init(uid: 0, gid: 0, mode: 0o700))
      ])
  }

  @Test func claimsThatCannotBeServedAreRefusedSayingWhatToChange() throws {
    let unlabelled = try claim("a", uid: "u1", labels: false)
    let badUID = try claim("b", uid: "u2", annotations: ["tars.io/LocalVolumeUID": "-1"])
    let badMode = try claim("c", uid: "u3", annotations: ["tars.io/LocalVolumeMode": "999"])
    let messages = volumes.plan(claims: [unlabelled, badUID, badMode], volumes: []).map { action -> String in
      if case .refuse(_, let message) = action { return message }
      return "not refused: \(action)"
    }
    #expect(messages.count == 3)
    #expect(messages[0].contains("tars.io/ServerApp and tars.io/ServerName"), "\(messages[0])")
    #expect(messages[1].contains("tLocalVolume.uid"), "\(messages[1])")
    #expect(messages[2].contains("tLocalVolume.mode"), "\(messages[2])")
  }

  @Test func aVolumeIsReleasedWhenItsClaimIsGoneAndOnlyByItsNode() throws {
    let gone = try claim("a", uid: "u1")
    let path = "/srv/tlv/tars/Test.HelloServer/a"
    let ours = volumes.volume(for: gone, directory: path, reclaimPolicy: "Delete")
    let theirs = LocalVolumes(node: "node-b", root: "/srv/tlv").volume(
      for: gone, directory: path, reclaimPolicy: "Delete")
    let deleting = try JSONValue(
      parsing: ours.description.replacingOccurrences(
        of: #""metadata": {"#, with: #""metadata": {"deletionTimestamp": "2026-12-07T00:00:00Z", "#))
    #expect(volumes.plan(claims: [], volumes: [ours, theirs]) == [.release(volume: ours, directory: path)])
    #expect(volumes.plan(claims: [], volumes: [deleting]).isEmpty)
    // Its claim still there (even while being deleted): nothing to do.
    #expect(volumes.plan(claims: [gone], volumes: [ours]).isEmpty)
  }

  @Test func removingADirectoryNeverFollowsALinkOutOfIt() throws {
    let dir = try TemporaryDirectory("tlv")
    defer { dir.remove() }
    let outside = dir.file("outside")
    try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
    try "keep".write(toFile: outside + "/file", atomically: true, encoding: .utf8)
    let volume = dir.file("root/tars/Test.HelloServer/a")
    #expect(VolumeDirectory.make(volume, owner: .init(uid: 1234, gid: 2345, mode: 0o750)) == nil)
    try FileManager.default.createDirectory(atPath: volume + "/sub", withIntermediateDirectories: true)
    try "data".write(toFile: volume + "/sub/data", atomically: true, encoding: .utf8)
    try FileManager.default.createSymbolicLink(atPath: volume + "/link", withDestinationPath: outside)
    #expect(VolumeDirectory.remove(volume) == nil)
    #expect(!FileManager.default.fileExists(atPath: volume))
    #expect(try String(contentsOfFile: outside + "/file", encoding: .utf8) == "keep")
    // A link planted where the volume's directory goes is refused, not followed.
    try FileManager.default.createSymbolicLink(atPath: volume, withDestinationPath: outside)
    #expect(VolumeDirectory.make(volume, owner: .init(uid: 1234, gid: 2345, mode: 0o750))?.contains("open") == true)
    let attributes = try FileManager.default.attributesOfItem(atPath: outside)
    #expect((attributes[.ownerAccountID] as? NSNumber)?.intValue != 1234)
  }
}
