// swift-tools-version: 6.0
import PackageDescription

let package = Package(
  name: "TarsK8s",
  products: [
    .library(name: "TarsProtocol", targets: ["TarsProtocol"]),
    .library(name: "TarsFramework", targets: ["TarsFramework"]),
    .library(name: "TarsRPC", targets: ["TarsRPC"]),
    .library(name: "TarsNIO", targets: ["TarsNIO"]),
    .executable(name: "tarsctl", targets: ["tarsctl"]),
    .executable(name: "tars2swift", targets: ["tars2swift"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
  ],
  targets: [
    // The protocol core: codec, packets, framing, endpoints, config files, dispatch rules.
    // Imports neither Foundation nor SwiftNIO so tarsnode can carry it.
    .target(name: "TarsProtocol"),
    // Framework interfaces generated from idl/*.tars, plus the locator's endpoint cache.
    .target(name: "TarsFramework", dependencies: ["TarsProtocol"]),
    // Linux calls Swift cannot reach directly (epoll, eventfd, variadic functions).
    .target(name: "CTarsSys"),
    // Dependency-free RPC on POSIX sockets and epoll (tarsnode, tarsctl).
    .target(name: "TarsRPC", dependencies: ["TarsProtocol", "TarsFramework", "CTarsSys"]),
    // SwiftNIO server and client (control plane).
    .target(
      name: "TarsNIO",
      dependencies: [
        "TarsProtocol", "TarsFramework",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ]),
    // The .tars IDL parser and Swift generator behind tars2swift.
    .target(name: "TarsIDL"),
    .executableTarget(
      name: "tars2swift",
      dependencies: ["TarsIDL", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    // What tarsctl's commands do, importable by tests.
    .target(name: "TarsCtlCore", dependencies: ["TarsProtocol", "TarsFramework", "TarsRPC"]),
    .executableTarget(
      name: "tarsctl",
      dependencies: ["TarsCtlCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
      path: "Sources/TarsCtl"),
    // Test-only helpers: fixture loading and the types generated from Tests/TarsTestSupport/idl.
    .target(name: "TarsTestSupport", dependencies: ["TarsProtocol"], path: "Tests/TarsTestSupport", exclude: ["idl"]),
    .testTarget(name: "TarsProtocolTests", dependencies: ["TarsProtocol", "TarsFramework", "TarsTestSupport"]),
    .testTarget(name: "TarsIDLTests", dependencies: ["TarsIDL", "TarsTestSupport"]),
    .testTarget(
      name: "TarsRPCTests",
      dependencies: ["TarsProtocol", "TarsFramework", "TarsRPC", "TarsNIO", "TarsCtlCore", "TarsTestSupport"]),
  ],
  swiftLanguageModes: [.v6]
)
