import CTarsSpawn
import Glibc
import TarsRPC

/// The server could not be started: which step failed and why.
public struct SpawnError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  /// The program (or what it needs to run) is not there: a shell's 127, not 126.
  public var notFound = false
  public init(_ message: String, notFound: Bool = false) {
    self.message = message
    self.notFound = notFound
  }
  public var description: String { message }
}

/// How to start one process.
public struct SpawnRequest: Sendable {
  public var path: String
  public var arguments: [String]
  /// `KEY=VALUE` entries; nil passes tarsnode's own environment on unchanged.
  public var environment: [String]?
  public var workingDirectory: String?
  public var stdin: Int32 = -1
  public var stdout: Int32 = -1
  public var stderr: Int32 = -1
  /// Its own process group (its pid), so signals can reach what it starts.
  public var newProcessGroup = true
  /// Give the terminal on stdin (if any) to the new process group.
  public var foreground = false
  /// Look `path` up in PATH (in the child, like execvp) when it has no '/'.
  public var searchPath = false
  public var noNewPrivileges = true
  public var uid: UInt32?
  public var gid: UInt32?
  /// Capability numbers to keep; nil leaves them alone.
  public var keepCapabilities: [Int32]?

  /// `LD_LIBRARY_PATH` as the process will see it.
  var libraryPath: String? {
    environment == nil ? getenv("LD_LIBRARY_PATH").map { String(cString: $0) } : environmentValue("LD_LIBRARY_PATH")
  }

  /// A variable of `environment` (nil when it is not set there).
  func environmentValue(_ name: String) -> String? {
    let prefix = name + "="
    return environment?.first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
  }

  public init(path: String, arguments: [String], environment: [String]?) {
    self.path = path
    self.arguments = arguments
    self.environment = environment
  }
}

public enum Spawner {
  /// Starts the process: fork, a clean signal state in the child, then exec. Exec failures are
  /// reported here, not discovered later as a mysterious exit 127.
  public static func spawn(_ r: SpawnRequest) throws(SpawnError) -> pid_t {
    let argv = r.arguments.map { strdup($0) } + [nil]
    let envp = (r.environment ?? []).map { strdup($0) } + [nil]
    defer {
      for p in argv { free(p) }
      for p in envp { free(p) }
    }
    let caps = r.keepCapabilities ?? []
    var failedStep: UnsafePointer<CChar>?
    let pid: pid_t = r.path.withCString { path in
      argv.withUnsafeBufferPointer { argvBuffer in
        envp.withUnsafeBufferPointer { envpBuffer in
          caps.map { Int32($0) }.withUnsafeBufferPointer { capsBuffer in
            withOptionalCString(r.workingDirectory) { cwd in
              var o = ctars_spawn_options()
              o.path = path
              o.argv = argvBuffer.baseAddress
              o.envp = r.environment == nil ? nil : envpBuffer.baseAddress
              o.cwd = cwd
              o.stdin_fd = r.stdin
              o.stdout_fd = r.stdout
              o.stderr_fd = r.stderr
              o.new_process_group = r.newProcessGroup ? 1 : 0
              o.foreground = r.foreground ? 1 : 0
              o.search_path = r.searchPath ? 1 : 0
              o.no_new_privs = r.noNewPrivileges ? 1 : 0
              if let uid = r.uid ?? (r.gid != nil ? getuid() : nil) {
                o.set_ids = 1
                o.uid = uid
                o.gid = r.gid ?? getgid()
              }
              if r.keepCapabilities != nil {
                o.drop_caps = 1
                o.keep_caps = capsBuffer.baseAddress
                o.keep_caps_count = Int32(capsBuffer.count)
              }
              return ctars_spawn(&o, &failedStep)
            }
          }
        }
      }
    }
    if pid < 0 {
      let step = failedStep.map { String(cString: $0) } ?? "start"
      // A bare name was looked up in PATH by the child: diagnose the file it found.
      let found =
        r.searchPath && !r.path.contains("/")
        ? Files.findExecutable(r.path, path: r.environmentValue("PATH") ?? getenv("PATH").map { String(cString: $0) })
        : r.path
      if step == "exec", let found, let why = ExecDiagnosis.explain(found, errno: -pid) {
        throw SpawnError("cannot start \(r.path): \(why)", notFound: -pid == ENOENT)
      }
      throw SpawnError(
        "cannot start \(r.path): \(step) failed: \(String(cString: strerror(-pid)))", notFound: -pid == ENOENT)
    }
    return pid
  }

  /// The capability number of a name such as `NET_BIND_SERVICE` or `cap_chown`.
  public static func capability(named name: String) -> Int32? {
    let v = ctars_capability_from_name(name)
    return v < 0 ? nil : v
  }
}

func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
  guard let s else { return body(nil) }
  return s.withCString { body($0) }
}

/// What a reaped process's wait status means.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
  case exited(Int32)
  case signaled(Int32)

  public init(waitStatus status: Int32) {
    let signal = status & 0x7f
    self = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
  }

  /// The status a supervisor exits with to pass this one on: the code, or 128 + the signal.
  public var shellCode: Int32 {
    switch self {
    case .exited(let c): c
    case .signaled(let s): 128 + s
    }
  }

  public var description: String {
    switch self {
    case .exited(let c): "exit with code \(c)"
    case .signaled(let s): "exit with signal \(s)"
    }
  }
}
