import TarsFramework
import TarsProtocol
import TarsRPC

/// A description that cannot be used: the file, and what is wrong in it.
public struct DescriptorError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// The server's description (profile, async threads, adapters) in the forms tarsnode reads: the
/// registry's `ServerDescriptor`, and a file in JSON or in the Tars config format, so tarsnode
/// also works without any control plane. The last description that worked is kept as JSON.
public enum DescriptorFile {
  /// Reads JSON (`{…}`) or the Tars config format (`<descriptor>…`), told apart by the first
  /// character.
  public static func parse(_ text: String, source: String) throws(DescriptorError) -> ServerDescriptor {
    let first = text.first { !($0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" || $0 == "\r\n") }
    if first == "{" {
      do {
        return try fromJSON(JSONValue(parsing: text), source: source)
      } catch let e as DescriptorError {
        throw e
      } catch {
        throw DescriptorError("\(source): \(error)")
      }
    }
    do {
      return try fromConfig(TarsConfig(parsing: text), source: source)
    } catch let e as DescriptorError {
      throw e
    } catch {
      throw DescriptorError("\(source): \(error)")
    }
  }

  public static func load(_ path: String) throws(DescriptorError) -> ServerDescriptor {
    let text: String
    do {
      text = try Files.readText(path)
    } catch {
      throw DescriptorError("cannot read the description: \(error)")
    }
    return try parse(text, source: path)
  }

  static func fromJSON(_ json: JSONValue, source: String) throws(DescriptorError) -> ServerDescriptor {
    guard case .object = json else { throw DescriptorError("\(source): expected a JSON object") }
    var d = ServerDescriptor()
    if let p = json["profile"] {
      guard let text = p.stringValue else { throw DescriptorError("\(source): profile must be a string") }
      d.profile = text
    }
    if let n = json["asyncThreadNum"] {
      guard let v = n.intValue, let v32 = Int32(exactly: v) else {
        throw DescriptorError("\(source): asyncThreadNum must be a number")
      }
      d.asyncThreadNum = v32
    }
    if let adapters = json["adapters"] {
      guard case .object(let members) = adapters else { throw DescriptorError("\(source): adapters must be an object") }
      for (name, a) in members {
        func text(_ key: String, default value: String? = nil) throws(DescriptorError) -> String {
          guard let v = a[key] else {
            guard let value else { throw DescriptorError("\(source): adapter \(name) needs \(key)") }
            return value
          }
          guard let s = v.stringValue else {
            throw DescriptorError("\(source): adapter \(name): \(key) must be a string")
          }
          return s
        }
        func number(_ key: String, default value: Int32) throws(DescriptorError) -> Int32 {
          guard let v = a[key] else { return value }
          guard let n = v.intValue, let n32 = Int32(exactly: n) else {
            throw DescriptorError("\(source): adapter \(name): \(key) must be a number")
          }
          return n32
        }
        d.adapters[name] = AdapterDescriptor(
          adapterName: name, endpoint: try text("endpoint"), threadNum: try number("threadNum", default: 1),
          maxConnections: try number("maxConnections", default: 10_000), allowIp: try text("allowIp", default: ""),
          servant: try text("servant"), queuecap: try number("queuecap", default: 10_000),
          queuetimeout: try number("queuetimeout", default: 60_000), protocol: try text("protocol", default: "tars"))
      }
    }
    try validate(d, source: source)
    return d
  }

  static func fromConfig(_ config: TarsConfig, source: String) throws(DescriptorError) -> ServerDescriptor {
    guard let root = config.domain("/descriptor") else {
      throw DescriptorError("\(source): expected a <descriptor> block (or a JSON object)")
    }
    var d = ServerDescriptor()
    if let n = root["asyncThreadNum"] {
      guard let v = Int32(n) else { throw DescriptorError("\(source): asyncThreadNum must be a number") }
      d.asyncThreadNum = v
    }
    if let profile = root.subdomain("profile") {
      d.profile = TarsConfig(root: TarsConfig.Domain(name: "", subdomains: profile.subdomains)).description
    }
    for a in root.subdomain("adapters")?.subdomains ?? [] {
      func number(_ key: String, default value: Int32) throws(DescriptorError) -> Int32 {
        guard let text = a[key] else { return value }
        guard let v = Int32(text) else {
          throw DescriptorError("\(source): adapter \(a.name): \(key) must be a number")
        }
        return v
      }
      guard let endpoint = a["endpoint"], let servant = a["servant"] else {
        throw DescriptorError("\(source): adapter \(a.name) needs endpoint and servant")
      }
      d.adapters[a.name] = AdapterDescriptor(
        adapterName: a.name, endpoint: endpoint, threadNum: try number("threadNum", default: 1),
        maxConnections: try number("maxConnections", default: 10_000), allowIp: a["allowIp"] ?? "", servant: servant,
        queuecap: try number("queuecap", default: 10_000), queuetimeout: try number("queuetimeout", default: 60_000),
        protocol: a["protocol"] ?? "tars")
    }
    try validate(d, source: source)
    return d
  }

  static func validate(_ d: ServerDescriptor, source: String) throws(DescriptorError) {
    for (name, a) in d.adapters {
      let endpoint = a.endpoint.replacingPlaceholder("${localip}", with: "127.0.0.1")
      do {
        _ = try TarsEndpoint(parsing: endpoint)
      } catch {
        throw DescriptorError("\(source): adapter \(name): \(error)")
      }
      if name.contains("/") || name.contains("<") || name.contains(">") {
        throw DescriptorError("\(source): adapter name '\(name)' cannot be a config domain")
      }
    }
    if !d.profile.isEmpty {
      do {
        _ = try TarsConfig(parsing: d.profile)
      } catch {
        throw DescriptorError("\(source): profile: \(error)")
      }
    }
  }

  /// The JSON form, used for the cache of the last good description.
  public static func json(_ d: ServerDescriptor) -> String {
    let adapters = d.adapters.sorted { $0.key < $1.key }.map { name, a -> (String, JSONValue) in
      (
        name,
        .object([
          ("endpoint", .string(a.endpoint)), ("servant", .string(a.servant)),
          ("threadNum", .integer(Int64(a.threadNum))),
          ("maxConnections", .integer(Int64(a.maxConnections))), ("allowIp", .string(a.allowIp)),
          ("queuecap", .integer(Int64(a.queuecap))), ("queuetimeout", .integer(Int64(a.queuetimeout))),
          ("protocol", .string(a.protocol)),
        ])
      )
    }
    return JSONValue.object([
      ("profile", .string(d.profile)), ("asyncThreadNum", .integer(Int64(d.asyncThreadNum))),
      ("adapters", .object(adapters)),
    ]).pretty() + "\n"
  }
}

extension String {
  /// Replaces every occurrence of `placeholder`, comparing bytes (no regular expressions,
  /// no Foundation: tarsnode links neither).
  func replacingPlaceholder(_ placeholder: String, with value: String) -> String {
    let text = Array(utf8)
    let needle = Array(placeholder.utf8)
    guard !needle.isEmpty, text.count >= needle.count else { return self }
    var out: [UInt8] = []
    out.reserveCapacity(text.count)
    var i = 0
    var replaced = false
    while i < text.count {
      if text[i] == needle[0] && i + needle.count <= text.count && text[i..<(i + needle.count)].elementsEqual(needle) {
        out += value.utf8
        i += needle.count
        replaced = true
      } else {
        out.append(text[i])
        i += 1
      }
    }
    return replaced ? String(decoding: out, as: UTF8.self) : self
  }
}
