// swift-tools-version: 6.1
import PackageDescription

let strictConcurrency: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// The hot path (decode, route, deliver; and the load generator's) in release builds: exclusive access is proven by the compiler for
/// everything it can see statically; the dynamic checks it adds for class properties cost several per cent of a
/// routed message (`swift_beginAccess` in the profiles of BENCHMARKS.md), so release builds leave them out.
/// Debug builds and the tests keep them.
let hotPath: [SwiftSetting] = strictConcurrency + [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "petrel",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "petrel", targets: ["petrel"]),
        .library(name: "MQTTWire", targets: ["MQTTWire"]),
        .library(name: "PetrelCore", targets: ["PetrelCore"]),
        .library(name: "PetrelServer", targets: ["PetrelServer"]),
        .library(name: "PetrelStorage", targets: ["PetrelStorage"]),
        .library(name: "PetrelAdmin", targets: ["PetrelAdmin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", exact: "7.10.0"),
        // jwt-kit 5 needs swift-crypto 4.1 or later.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        // What swift-configuration reads YAML with; a configuration file's list of listeners is read with it directly.
        .package(url: "https://github.com/jpsim/Yams.git", "5.4.0"..<"7.0.0"),
    ],
    targets: [
        .target(
            name: "MQTTWire",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: hotPath
        ),
        .target(
            name: "PetrelCore",
            dependencies: [
                "MQTTWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: hotPath
        ),
        .target(name: "CPetrelLinux"),
        .target(
            name: "PetrelServer",
            dependencies: [
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                "MQTTWire",
                "PetrelCore",
                "CPetrelLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: hotPath
        ),
        .target(
            name: "PetrelStorage",
            dependencies: [
                "MQTTWire",
                "PetrelCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictConcurrency
        ),
        // The operators' HTTP listener: /metrics, /health, /ready and the admin API.
        .target(
            name: "PetrelAdmin",
            dependencies: [
                "MQTTWire",
                "PetrelCore",
                "PetrelServer",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictConcurrency
        ),
        .executableTarget(
            name: "petrel",
            dependencies: [
                "PetrelAdmin",
                "PetrelServer",
                "PetrelStorage",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictConcurrency
        ),
        .executableTarget(
            name: "petrel-bench",
            dependencies: [
                "MQTTWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: hotPath
        ),
        // What several test targets share: a small-stack runner and the deepest topics, for depth regressions.
        .target(name: "PetrelTestSupport", path: "Tests/PetrelTestSupport"),
        // What the libFuzzer targets of scripts/fuzz.sh run, also run over the corpus by PetrelCoreTests.
        .target(
            name: "PetrelFuzzTargets",
            dependencies: ["MQTTWire", "PetrelCore", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/Targets"
        ),
        .testTarget(
            name: "MQTTWireTests",
            dependencies: [
                "MQTTWire",
                "PetrelTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "PetrelCoreTests",
            dependencies: [
                "PetrelCore",
                "PetrelFuzzTargets",
                "PetrelTestSupport",
                "MQTTWire",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "PetrelStorageTests",
            dependencies: [
                "PetrelStorage",
                "PetrelCore",
                "MQTTWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "PetrelServerTests",
            dependencies: [
                "PetrelAdmin",
                "PetrelServer",
                "PetrelStorage",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ]
)
