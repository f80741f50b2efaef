// Calls Test.HelloServer.HelloObj by name through the registry, as any Tars client does:
//   hello-client [--locator OBJ] [--object NAME] [--count N] [--stat OBJ] [MESSAGE]
// Prints one line per reply; exits 1 on the first failed call. Its calls are counted and sent
// to --stat (default tars.tarsstat.StatObj, found through the locator; "" for none) as
// TarsCpp clients report them, under the caller name hello-client.
import Glibc
import TarsApplication
import TarsExampleHello
import TarsProtocol
import TarsRPC

var locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"
var object = "Test.HelloServer.HelloObj"
var count = 1
var stat = "tars.tarsstat.StatObj"
var message = "world"
var arguments = Array(CommandLine.arguments.dropFirst())
while !arguments.isEmpty {
  let a = arguments.removeFirst()
  func value() -> String {
    guard !arguments.isEmpty else {
      print("hello-client: \(a) needs a value")
      exit(2)
    }
    return arguments.removeFirst()
  }
  switch a {
  case "--locator": locator = value()
  case "--object": object = value()
  case "--count": count = Int(value()) ?? 1
  case "--stat": stat = value()
  case "-h", "--help":
    print("usage: hello-client [--locator OBJ] [--object NAME] [--count N] [--stat OBJ] [MESSAGE]")
    exit(0)
  default: message = a
  }
}

do {
  let communicator = try TarsCommunicator(locator: locator)
  if !stat.isEmpty { try communicator.reportStats(to: stat, module: "hello-client") }
  let proxy = try communicator.proxy(object)
  defer { communicator.flushStats() }
  for i in 0..<count {
    let r = try proxy.callBlocking(
      Hello.TestHello.self, .init(sReq: count > 1 ? "\(message) \(i + 1)" : message),
      options: TarsCallOptions(timeoutMs: 3000))
    print("\(object): ret=\(r.ret) \(r.sRsp)")
  }
} catch {
  print("hello-client: \(error)")
  exit(1)
}
