import ArgumentParser
import Foundation
import TarsCtlCore
import TarsProtocol

/// Prints `tarsctl: <message>` on stderr and exits 1: one clear line per failure.
func fail(_ message: String) -> ExitCode {
  FileHandle.standardError.write(Data("tarsctl: \(message)\n".utf8))
  return ExitCode(1)
}

@main
struct Tarsctl: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tarsctl",
    abstract: "The TarsK8s operator's command line.",
    discussion: """
      servers, pods, start, stop, restart, notify, logs, events, notifications, apply, scale, drain, delete, stat
      and property talk to the control plane's admin API (tars-controlplane up); the others speak Tars directly.
      """,
    subcommands: [
      Servers.self, Pods.self, Start.self, Stop.self, Restart.self, Notify.self, Logs.self, Events.self,
      Notifications.self, Apply.self, Scale.self, Drain.self, Delete.self, Ping.self, Decode.self, Query.self,
      Admin.self,
      NodeGroup.self, ImageCommand.self, Release.self, Releases.self, Builds.self, Stat.self, Property.self,
    ])
}

struct TimeoutOption: ParsableArguments {
  @Option(name: .long, help: "Milliseconds to wait for a reply (1 to 3600000).")
  var timeout: Int = 3000

  func validate() throws {
    guard (1...3_600_000).contains(timeout) else { throw ValidationError("--timeout must be 1 to 3600000 ms") }
  }
}

struct Ping: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Call tars_ping on every endpoint of an object and print the round-trip times.",
    discussion: "Example: tarsctl ping 'Test.HelloServer.HelloObj@tcp -h 127.0.0.1 -p 10015'")

  @Argument(help: "The object: 'App.Server.Obj@tcp -h HOST -p PORT[:…]', or a name with --locator.")
  var object: String

  @Option(name: .long, help: "Resolve a bare name through this locator ('tcp -h HOST -p 17890').")
  var locator: String?

  @OptionGroup var options: TimeoutOption

  func run() throws {
    do {
      let results = try TarsCtl(timeoutMs: options.timeout).ping(object, locator: locator)
      var failures: [String] = []
      for r in results {
        switch r.result {
        case .success(let ms): print("tars_ping \(r.endpoint): ok, \(String(format: "%.3f", ms)) ms")
        case .failure(let e): failures.append(e.message)
        }
      }
      if !failures.isEmpty { throw fail(failures.joined(separator: "; ")) }
    } catch let e as TarsCtlError {
      throw fail(e.message)
    }
  }
}

struct Decode: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Decode hex bytes (a framed packet, a packet body or any Tars value) and print JSON.")

  @Argument(help: "The bytes in hex.")
  var hex: String?

  @Option(name: .long, help: "Read the hex from this file ('#' lines are ignored).")
  var file: String?

  func run() throws {
    let text: String
    if let file {
      guard let content = try? String(contentsOfFile: file, encoding: .utf8) else { throw fail("cannot read \(file)") }
      text = content.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("#") }.joined()
    } else if let hex {
      text = hex
    } else {
      throw fail("give the hex as an argument or --file F")
    }
    guard let bytes = Hex.decode(text) else { throw fail("not hexadecimal: \(text.prefix(40))") }
    do {
      print(try PacketDescriber.describe(bytes).pretty())
    } catch {
      throw fail(error.message)
    }
  }
}

struct Query: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Ask a locator (QueryObj) for the active and inactive endpoints of an object.",
    discussion: "Example: tarsctl query --locator 'tcp -h 127.0.0.1 -p 17890' Test.HelloServer.HelloObj")

  @Option(
    name: .long,
    help:
      "The locator: 'tcp -h HOST -p PORT' or 'tars.tarsregistry.QueryObj@tcp -h HOST -p PORT' (default: $TARS_LOCATOR or the one-machine registry, tcp -h 127.0.0.1 -p 17890)."
  )
  var locator: String = ProcessInfo.processInfo.environment["TARS_LOCATOR"] ?? "tcp -h 127.0.0.1 -p 17890"

  @Argument(help: "The object name, App.Server.Obj.")
  var name: String

  @OptionGroup var options: TimeoutOption

  func run() throws {
    do {
      let (active, inactive) = try TarsCtl(timeoutMs: options.timeout).query(locator: locator, name: name)
      print("active endpoints (\(active.count)):")
      for e in active { print("  \(e)") }
      print("inactive endpoints (\(inactive.count)):")
      for e in inactive { print("  \(e)") }
    } catch {
      throw fail(error.message)
    }
  }
}

struct Admin: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Send an admin command to a server's AdminObj and print its reply.",
    discussion: "Example: tarsctl admin 'tcp -h 127.0.0.1 -p 19390' tars.viewstatus")

  @Argument(help: "The server's AdminObj: 'tcp -h HOST -p PORT' (its config's local=) or 'AdminObj@tcp -h …'.")
  var endpoint: String

  @Argument(help: "The command, e.g. tars.viewstatus or 'tars.setloglevel DEBUG'.")
  var command: String

  @OptionGroup var options: TimeoutOption

  func run() throws {
    do {
      let reply = try TarsCtl(timeoutMs: options.timeout).admin(endpoint, command: command)
      print(reply, terminator: reply.hasSuffix("\n") || reply.isEmpty ? "" : "\n")
    } catch {
      throw fail(error.message)
    }
  }
}

/// `tarsctl node ACTION --node …` calls a tarsnode; `tarsctl node ports NODE` asks a node's agent.
struct NodeGroup: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "node",
    abstract: "A tarsnode's NodeObj (state, start, stop, restart, notify), or a node's ports (ports NODE).",
    subcommands: [NodeCommand.self, NodePorts.self], defaultSubcommand: NodeCommand.self)
}

struct NodeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "call",
    abstract: "Talk to one tarsnode's NodeObj directly: state, start, stop, restart, notify.",
    discussion: """
      Example: tarsctl node state --node 'tcp -h 10.0.0.7 -p 19385' --secret-file /etc/tars/node-secret/secret
      Calls that change state (start, stop, restart, notify) are signed with the secret when one is given;
      a tarsnode that has a secret refuses them unsigned. A signature names the pod it is for (--pod, or
      the name the node reports) and is good once.
      """)

  @Argument(help: "state, start, stop, restart or notify")
  var action: String

  @Argument(help: "For notify: the command, e.g. tars.viewstatus.")
  var command: String?

  @Option(name: .long, help: "The NodeObj: 'tcp -h HOST -p 19385' or 'tars.tarsnode.NodeObj@tcp -h …'.")
  var node: String

  @Option(name: .customLong("secret-file"), help: "The shared secret that signs the call.")
  var secretFile: String?

  @Option(name: .long, help: "The pod the signed call is for (default: the name the node reports).")
  var pod: String?

  @Option(name: .long, help: "The server's application (default: the node's own server).")
  var app: String = ""

  @Option(name: .long, help: "The server's name (default: the node's own server).")
  var server: String = ""

  @OptionGroup var options: TimeoutOption

  func run() throws {
    guard let action = TarsCtl.NodeAction(rawValue: action) else {
      throw fail(
        "unknown node action '\(action)': use \(TarsCtl.NodeAction.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    if action == .notify && (command ?? "").isEmpty { throw fail("notify needs a command, e.g. tars.viewstatus") }
    do {
      let reply = try TarsCtl(timeoutMs: options.timeout).node(
        action, node: node, secretFile: secretFile, pod: pod, app: app, server: server, command: command ?? "",
        note: { FileHandle.standardError.write(Data("tarsctl: \($0)\n".utf8)) })
      print(reply, terminator: reply.hasSuffix("\n") || reply.isEmpty ? "" : "\n")
    } catch {
      throw fail(error.message)
    }
  }
}
