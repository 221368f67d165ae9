// swift-tools-version: 6.1
import PackageDescription

// Micro benchmarks, kept out of the root package so that its build and tests stay fast.
// Run from this directory: swift package benchmark
let package = Package(
    name: "petrel-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "petrel", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PetrelBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MQTTWire", package: "petrel"),
                .product(name: "PetrelCore", package: "petrel"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/PetrelBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        )
    ]
)
