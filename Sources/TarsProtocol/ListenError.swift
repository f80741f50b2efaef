/// A server could not listen: which service, on which address, why — and, once the program
/// that owns the setting has said so, which flag to change. Every listener of every executable
/// fails with one of these, so an operator reads "QueryObj cannot listen on 127.0.0.1:17890:
/// address in use (another tars-controlplane? use --query-port)" instead of a bare errno.
public struct ListenError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Reason: Sendable, Equatable {
    case addressInUse
    case addressNotAvailable
    case permissionDenied
    case other(String)

    /// The reason for a bind(2)/listen(2) errno (Linux numbering: this code runs on Linux only).
    public init(errno: Int32, detail: String) {
      switch errno {
      case 98: self = .addressInUse  // EADDRINUSE
      case 99: self = .addressNotAvailable  // EADDRNOTAVAIL
      case 13: self = .permissionDenied  // EACCES
      default: self = .other(detail)
      }
    }
  }

  /// What listens: a servant's short name (`QueryObj`), `admin API`, `metrics`.
  public var service: String
  public var host: String
  public var port: Int
  public var reason: Reason
  /// The setting that chooses the port (`--query-port`), and the program it belongs to.
  public var setting: String?
  public var program: String?
  /// The setting that chooses the address, when one does (`--bind`).
  public var addressSetting: String?

  public init(service: String, host: String, port: Int, reason: Reason) {
    self.service = service
    self.host = host
    self.port = port
    self.reason = reason
  }

  /// This error with the settings an operator changes to fix it.
  public func changing(_ setting: String, of program: String, address: String? = nil) -> ListenError {
    var e = self
    e.setting = setting
    e.program = program
    e.addressSetting = address
    return e
  }

  /// The short name of a servant (`tars.tarsregistry.QueryObj` → `QueryObj`).
  public static func serviceName(servants: some Sequence<String>) -> String {
    servants.map { $0.split(separator: ".").last.map(String.init) ?? $0 }.sorted().joined(separator: "+")
  }

  public var description: String {
    let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    let use = setting.map { "use \($0)" }
    let why: String
    switch reason {
    case .addressInUse:
      why = "address in use (another \(program ?? "process")?\(use.map { " \($0)" } ?? ""))"
    case .addressNotAvailable:
      why = "\(host) is not an address of this machine\(addressSetting.map { " (use \($0))" } ?? "")"
    case .permissionDenied:
      why =
        (port < 1024
          ? "permission denied: a port below 1024 needs root or CAP_NET_BIND_SERVICE"
          : "permission denied (a security policy refuses it)") + (use.map { " (\($0))" } ?? "")
    case .other(let detail):
      why = detail + (use.map { " (\($0))" } ?? "")
    }
    return "\(service) cannot listen on \(address): \(why)"
  }
}
