// swift-tools-version: 6.2
import PackageDescription

/// Every target of ours builds in Swift 6 mode with warnings as errors.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
  name: "TarsK8s",
  products: [
    .library(name: "TarsProtocol", targets: ["TarsProtocol"]),
    .library(name: "TarsFramework", targets: ["TarsFramework"]),
    .library(name: "TarsRPC", targets: ["TarsRPC"]),
    .library(name: "TarsNIO", targets: ["TarsNIO"]),
    .executable(name: "tarsctl", targets: ["tarsctl"]),
    .executable(name: "tars2swift", targets: ["tars2swift"]),
    .executable(name: "tars-controlplane", targets: ["tars-controlplane"]),
    .executable(name: "tarsagent", targets: ["tarsagent"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
    .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
  ],
  targets: [
    // The protocol core: codec, packets, framing, endpoints, config files, dispatch rules.
    // Imports neither Foundation nor SwiftNIO so tarsnode can carry it.
    .target(name: "TarsProtocol", swiftSettings: strict),
    // Framework interfaces generated from idl/*.tars, plus the locator's endpoint cache.
    .target(name: "TarsFramework", dependencies: ["TarsProtocol"], swiftSettings: strict),
    // The stat, property and log interfaces (idl/StatF, PropertyF, LogF): servers report to them;
    // tarsnode does not need them, so they stay out of its binary.
    .target(name: "TarsMonitor", dependencies: ["TarsProtocol"], swiftSettings: strict),
    // Linux calls Swift cannot reach directly (epoll, eventfd, signalfd, variadic functions).
    .target(name: "CTarsSys"),
    // fork/exec of the supervised server with a clean signal state, ids and capabilities (libcap).
    .target(name: "CTarsSpawn", linkerSettings: [.linkedLibrary("cap")]),
    // HMAC-SHA256 signing of NodeObj calls, shared by tarsnode and the control plane.
    .target(name: "TarsAuth", dependencies: ["TarsProtocol"], swiftSettings: strict),
    // tarsnode's logic: settings, description and config rendering, launching, supervision,
    // ServerObj/NodeObj, output logs. No Foundation, no SwiftNIO.
    .target(
      name: "TarsNodeCore",
      dependencies: ["TarsProtocol", "TarsFramework", "TarsRPC", "TarsAuth", "CTarsSys", "CTarsSpawn"],
      swiftSettings: strict),
    .executableTarget(
      name: "tarsnode", dependencies: ["TarsNodeCore"], path: "Sources/TarsNode", swiftSettings: strict),
    // Dependency-free RPC on POSIX sockets and epoll (tarsnode, tarsctl).
    .target(name: "TarsRPC", dependencies: ["TarsProtocol", "TarsFramework", "CTarsSys"], swiftSettings: strict),
    // SwiftNIO server and client (control plane).
    .target(
      name: "TarsNIO",
      dependencies: [
        "TarsProtocol", "TarsFramework",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict),
    // The Swift Tars server runtime (TarsCpp's Application): config, AdminObj, heartbeats,
    // admin commands, ConfigObj, NotifyObj, the locator. No Foundation.
    .target(
      name: "TarsApplication", dependencies: ["TarsProtocol", "TarsFramework", "TarsMonitor", "TarsRPC", "CTarsSys"],
      swiftSettings: strict),
    // The example: the classic Hello interface, a server and a client.
    .target(
      name: "TarsExampleHello", dependencies: ["TarsProtocol"], path: "Examples/Hello", exclude: ["idl"],
      swiftSettings: strict),
    .executableTarget(
      name: "HelloServer", dependencies: ["TarsApplication", "TarsExampleHello"], path: "Examples/HelloServer",
      swiftSettings: strict),
    .executableTarget(
      name: "hello-client", dependencies: ["TarsApplication", "TarsExampleHello", "TarsRPC"],
      path: "Examples/HelloClient", swiftSettings: strict),
    // The .tars IDL parser and Swift generator behind tars2swift.
    // Kubernetes objects, selectors, patches, errors, the store interface and the informer:
    // what the control plane's logic is written against.
    .target(name: "TarsKube", dependencies: ["TarsProtocol"], swiftSettings: strict),
    // The Tars CRDs' CEL rules, in Swift, for the embedded store and the admin API.
    .target(name: "TarsCRD", dependencies: ["TarsKube"], swiftSettings: strict),
    // The embedded store (SQLite through GRDB) with the API server's semantics.
    .target(
      name: "TarsEmbeddedStore", dependencies: ["TarsKube", "TarsCRD", .product(name: "GRDB", package: "GRDB.swift")],
      swiftSettings: strict),
    // The real Kubernetes API as an ObjectStore (AsyncHTTPClient; kubeconfig through Yams).
    .target(
      name: "TarsKubeClient",
      dependencies: [
        "TarsKube", .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Yams", package: "Yams"),
      ], swiftSettings: strict),
    // The registry: QueryObj and RegistryObj from the store's pods and TServers.
    .target(
      name: "TarsRegistry",
      dependencies: [
        "TarsKube", "TarsCRD", "TarsFramework", "TarsNIO", .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
      ], swiftSettings: strict),
    // OCI images without a daemon: server packages unpacked with care, reproducible layers,
    // image layouts (and, for tarsctl and the image service, registries).
    .target(
      name: "TarsImage",
      dependencies: [
        "TarsKube", "TarsProtocol", .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "CompressNIO", package: "compress-nio"), .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "Yams", package: "Yams"),
      ], swiftSettings: strict),
    // What the control plane's subcommands share: choosing the store, waiting for SIGTERM.
    .target(
      name: "TarsControlPlaneCore", dependencies: ["TarsKube", "TarsEmbeddedStore", "TarsKubeClient", "TarsProtocol"],
      swiftSettings: strict),
    .executableTarget(
      name: "tars-controlplane",
      dependencies: [
        "TarsControlPlaneCore", "TarsRegistry", "TarsOneMachine", "TarsAdminAPI", "TarsProtocol", "TarsController",
        "TarsAdmin", "TarsAuth", "TarsConfigService", "TarsNotifyService", "TarsNIO", "TarsKube", "TarsFramework",
        "TarsImageService", "TarsMonitorService", "TarsLogService",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ], path: "Sources/ControlPlane", swiftSettings: strict),
    // The admin API's documents and the client tarsctl uses.
    .target(
      name: "TarsAdminAPI",
      dependencies: [
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
      ], swiftSettings: strict),
    // tarsagent's logic: ports from /proc, log retention (no Foundation, no NIO).
    .target(
      name: "TarsAgentCore", dependencies: ["TarsRPC", "TarsProtocol", "TarsAgentF", "TarsAuth", "CTarsAgent"],
      swiftSettings: strict),
    // tars.tarsagent.AgentObj's interface (idl/AgentF.tars): the agent serves it, the admin calls it.
    .target(name: "TarsAgentF", dependencies: ["TarsProtocol"], swiftSettings: strict),
    .executableTarget(
      name: "tarsagent", dependencies: ["TarsAgentCore"], path: "Sources/TarsAgent", swiftSettings: strict),
    // libcurl and libsystemd behind plain C functions (curl_easy_setopt is variadic); libsystemd
    // is loaded only under systemd. scripts/build-agent links a static libcurl instead.
    .target(name: "CTarsAgent", linkerSettings: [.linkedLibrary("curl")]),
    // The image service: uploaded packages built, pushed and recorded as releases (TImage).
    .target(
      name: "TarsImageService",
      dependencies: ["TarsImage", "TarsKube", "TarsProtocol", .product(name: "NIOPosix", package: "swift-nio")],
      swiftSettings: strict),
    // tars.tarsstat.StatObj, tars.tarsproperty.PropertyObj, tars.tarslog.LogObj: reports summed per
    // minute in memory, written to SQLite or PostgreSQL, queried for the admin API and /metrics.
    .target(
      name: "TarsMonitorService",
      dependencies: [
        "TarsMonitor", "TarsProtocol", .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict),
    // tars.tarslog.LogObj: servers' remote logs in tarslog's day files, bounded by age and size;
    // LogQueryObj reads them back for the admin API.
    .target(name: "TarsLogService", dependencies: ["TarsMonitor", "TarsProtocol", "TarsAuth"], swiftSettings: strict),
    // The admin HTTP API (Hummingbird): servers, pods, commands fanned out to NodeObj, manifests.
    .target(
      name: "TarsAdmin",
      dependencies: [
        "TarsAdminAPI", "TarsKube", "TarsRegistry", "TarsNotifyService", "TarsNIO", "TarsAuth", "TarsFramework",
        "TarsImageService", "TarsAgentF", "TarsMonitorService", "TarsMonitor",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Yams", package: "Yams"),
      ], swiftSettings: strict),
    // One-machine mode's kubelet: TServer replicas as tarsnode processes on 127.x addresses.
    .target(
      name: "TarsLocalRuntime",
      dependencies: ["TarsKube", "TarsProtocol", "TarsImage", "TarsImageService", "CTarsSpawn"],
      swiftSettings: strict),
    // The controller: TServers into StatefulSets/DaemonSets and Services.
    .target(name: "TarsController", dependencies: ["TarsKube", "TarsCRD", "TarsProtocol"], swiftSettings: strict),
    // `tars-controlplane up`: every service on the embedded store, plus the local runtime.
    .target(
      name: "TarsOneMachine",
      dependencies: [
        "TarsAdmin", "TarsAdminAPI", "TarsLocalRuntime", "TarsRegistry", "TarsConfigService", "TarsNotifyService",
        "TarsEmbeddedStore", "TarsKube", "TarsNIO", "TarsAuth", "TarsFramework", "TarsController", "TarsImageService",
        "TarsMonitorService", "TarsLogService", .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOCore", package: "swift-nio"),
      ], swiftSettings: strict),
    // tars.tarsconfig.ConfigObj from TConfig objects.
    .target(
      name: "TarsConfigService", dependencies: ["TarsKube", "TarsFramework", "TarsProtocol"], swiftSettings: strict),
    // tars.tarsnotify.NotifyObj with a bounded in-memory history.
    .target(
      name: "TarsNotifyService", dependencies: ["TarsFramework", "TarsProtocol", "TarsKube"], swiftSettings: strict),
    .target(name: "TarsIDL", swiftSettings: strict),
    .executableTarget(
      name: "tars2swift",
      dependencies: ["TarsIDL", .product(name: "ArgumentParser", package: "swift-argument-parser")],
      swiftSettings: strict),
    // What tarsctl's commands do, importable by tests.
    .target(
      name: "TarsCtlCore", dependencies: ["TarsProtocol", "TarsFramework", "TarsRPC", "TarsAuth"], swiftSettings: strict
    ),
    .executableTarget(
      name: "tarsctl",
      dependencies: [
        "TarsCtlCore", "TarsAdminAPI", "TarsImage", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Sources/TarsCtl", swiftSettings: strict),
    // Prints codec and RPC figures (Benchmarks/run); not a test.
    .executableTarget(
      name: "tars-bench",
      dependencies: [
        "TarsProtocol", "TarsFramework", "TarsRPC", "TarsNIO", "TarsRegistry", "TarsEmbeddedStore", "TarsKube",
        "TarsAuth", "TarsController", "TarsMonitor", "TarsMonitorService", "TarsAdmin",
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
      ],
      path: "Benchmarks/TarsBench", swiftSettings: strict),

    // Test-only helpers: fixture loading and the types generated from Tests/TarsTestSupport/idl.
    .target(
      name: "TarsTestSupport", dependencies: ["TarsProtocol", "TarsRPC"], path: "Tests/TarsTestSupport",
      exclude: ["idl"],
      swiftSettings: strict),
    // A business server stand-in that talks to tarsnode the way TarsCpp servers do.
    .executableTarget(
      name: "tars-test-server", dependencies: ["TarsRPC", "TarsFramework", "TarsTestSupport", "TarsExampleHello"],
      path: "Tests/TarsTestServer", swiftSettings: strict),
    .testTarget(
      name: "TarsProtocolTests",
      dependencies: ["TarsProtocol", "TarsFramework", "TarsMonitor", "TarsTestSupport", "TarsExampleHello"],
      swiftSettings: strict),
    .testTarget(
      name: "TarsNodeTests",
      dependencies: [
        "TarsNodeCore", "TarsAuth", "TarsProtocol", "TarsFramework", "TarsRPC", "TarsCtlCore", "TarsTestSupport",
      ],
      swiftSettings: strict),
    .testTarget(
      name: "TarsStoreTests",
      dependencies: ["TarsKube", "TarsEmbeddedStore", "TarsKubeClient", "TarsAdmin", "TarsTestSupport"],
      swiftSettings: strict),
    .testTarget(
      name: "TarsRegistryTests",
      dependencies: [
        "TarsRegistry", "TarsConfigService", "TarsNotifyService", "TarsEmbeddedStore", "TarsKube", "TarsRPC",
        "TarsCtlCore", "TarsCRD", "TarsTestSupport", "TarsNIO", "TarsStoreTestSupport",
        .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Yams", package: "Yams"),
      ], swiftSettings: strict),
    .testTarget(
      name: "TarsKubeClientTests",
      dependencies: [
        "TarsKubeClient", "TarsKube", "TarsTestSupport", "TarsAgentCore",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ], swiftSettings: strict),
    .testTarget(
      name: "TarsOneMachineTests",
      dependencies: [
        "TarsAdminAPI", "TarsAdmin", "TarsEmbeddedStore", "TarsKube", "TarsProtocol", "TarsTestSupport",
        "TarsLocalRuntime", "TarsOneMachine", "TarsStoreTestSupport", "TarsControlPlaneCore", "TarsAuth", "TarsNIO",
        "TarsNotifyService", .product(name: "Yams", package: "Yams"), .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
      ],
      swiftSettings: strict),
    // The embedded store seen through what a component asks of it, and what deploy/'s Roles grant.
    .target(
      name: "TarsStoreTestSupport",
      dependencies: ["TarsKube", "TarsEmbeddedStore", "TarsTestSupport", .product(name: "Yams", package: "Yams")],
      path: "Tests/TarsStoreTestSupport", swiftSettings: strict),
    .testTarget(
      name: "TarsControllerTests",
      dependencies: [
        "TarsController", "TarsKube", "TarsProtocol", "TarsEmbeddedStore", "TarsTestSupport", "TarsStoreTestSupport",
      ],
      swiftSettings: strict),
    .testTarget(name: "TarsIDLTests", dependencies: ["TarsIDL", "TarsTestSupport"], swiftSettings: strict),
    .testTarget(
      name: "TarsAgentTests",
      dependencies: ["TarsAgentCore", "TarsAgentF", "TarsAuth", "TarsRPC", "TarsProtocol", "TarsTestSupport"],
      swiftSettings: strict),
    .testTarget(
      name: "TarsMonitorTests",
      dependencies: [
        "TarsMonitorService", "TarsLogService", "TarsMonitor", "TarsNIO", "TarsProtocol", "TarsTestSupport",
        "TarsApplication", "TarsAuth",
        .product(name: "NIOPosix", package: "swift-nio"), .product(name: "PostgresNIO", package: "postgres-nio"),
      ],
      swiftSettings: strict),
    .testTarget(
      name: "TarsImageTests",
      dependencies: [
        "TarsImage", "TarsImageService", "TarsTestSupport", "TarsProtocol", "TarsFramework", "TarsExampleHello",
        "TarsAdmin", "TarsAdminAPI", "TarsAuth", "TarsEmbeddedStore", "TarsKube", "TarsNIO", "TarsStoreTestSupport",
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict),
    .testTarget(
      name: "TarsRPCTests",
      dependencies: [
        "TarsProtocol", "TarsFramework", "TarsRPC", "TarsNIO", "TarsCtlCore", "TarsTestSupport", "TarsExampleHello",
        .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict),
  ],
  swiftLanguageModes: [.v6]
)
