// The classic Tars example server, in Swift: servant Test.HelloServer.HelloObj answers
// testHello(sReq) with "<greeting> <sReq>". The greeting comes from HelloServer.conf, a file
// ConfigObj serves (a TConfig object), fetched at start-up and again on
// `tarsctl notify Test.HelloServer tars.loadconfig HelloServer.conf`. Each call is counted in
// the property `hello_request_bytes` and written to the remote log `access` (when the
// template names PropertyObj and LogObj), as a TarsCpp server would with
// createPropertyReport and FDLOG("access").
import Glibc
import TarsApplication
import TarsExampleHello
import TarsProtocol

final class HelloImp: HelloServant {
  var greeting = "Hello"
  var served = 0
  var requestBytes: TarsProperty?
  var access: TarsRemoteLog?

  func testHello(sReq: String, current: TarsCurrent) throws -> Hello.TestHello.Result {
    served += 1
    requestBytes?.report(Int32(clamping: sReq.utf8.count))
    access?.write("\(current.peer?.host ?? "")|testHello|\(sReq.utf8.count)")
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
hello.requestBytes = application.property("hello_request_bytes", [.sum, .count, .avg, .max, .distr([8, 64, 512])])
hello.access = application.remoteLog("access")
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
