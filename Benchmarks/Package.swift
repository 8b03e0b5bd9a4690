// swift-tools-version: 6.1
// Throughput benchmarks for DiskVault, kept in their own package so that the main package's
// `swift build` never resolves or builds the benchmark harness.
//
//     cd Benchmarks && swift package benchmark
import PackageDescription

// A path dependency's identity is the name of its directory, which is whatever the checkout is called
// (`main` here, something else in another clone), so derive it rather than spell it.
let mainPackage: String = {
    var name = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "diskvault"
    if name.hasSuffix(".git") { name.removeLast(4) }
    return name.lowercased()
}()

let package = Package(
    name: "diskvault-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        .package(
            url: "https://github.com/ordo-one/benchmark",
            from: "1.38.1",
            traits: ["MallocInterposer"]
        ),
    ],
    targets: [
        .executableTarget(
            name: "Throughput",
            dependencies: [
                .product(name: "DiskVault", package: mainPackage),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/Throughput",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
