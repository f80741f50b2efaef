// The classic Tars example server, in Swift: servant Test.HelloServer.HelloObj answers
// testHello(sReq) with "<greeting> <sReq>". The greeting comes from HelloServer.conf, a file
// ConfigObj serves (a TConfig object), fetched at start-up and again on
// `tarsctl notify Test.HelloServer tars.loadconfig HelloServer.conf`.
import Glibc
import TarsApplication
import TarsExampleHello
import TarsProtocol

final class HelloImp: HelloServant {
  var greeting = "Hello"
  var served = 0

  func testHello(sReq: String, current: TarsCurrent) throws -> Hello.TestHello.Result {
    served += 1
    return .init(ret: 0, sRsp: "\(greeting) \(sReq)")
  }

  /// `<hello> greeting=… </hello>` in HelloServer.conf.
  func load(_ text: String, into application: TarsApplication) {
    do {
      if let greeting = try TarsConfig(parsing: text)["/hello<greeting>"], !greeting.isEmpty {
        self.greeting = greeting
      }
      application.log(.info, "greeting is now '\(greeting)'")
    } catch {
      application.log(.error, "HelloServer.conf: \(error); keeping greeting '\(greeting)'")
    }
  }
}

let application: TarsApplication
do {
  application = try TarsApplication()
} catch {
  print("HelloServer: \(error)")
  exit(1)
}
let hello = HelloImp()
application.addServant("HelloObj", hello)
application.addAdminCommand("hello.count", help: "how many testHello calls this process served") { _, reply in
  reply("\(hello.served)")
}
application.onConfigLoaded { file, content in
  if file == "HelloServer.conf" { hello.load(content, into: application) }
}
exit(
  application.run { app in
    do {
      hello.load(try app.loadConfig("HelloServer.conf"), into: app)
    } catch {
      app.log(.warn, "no HelloServer.conf (\(error)); greeting '\(hello.greeting)'")
    }
  })
