// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "diskvault",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "DiskVault", targets: ["DiskVault"]),
        .executable(name: "diskvault", targets: ["diskvault"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // ISA-L: deflate/inflate of the same zlib format several times faster than zlib, CRC-32, zero detection.
        .systemLibrary(name: "CISAL", pkgConfig: "libisal", providers: [.apt(["libisal-dev"])]),
        // libnbd: the NBD client that reads images qemu serves (qcow2 and other formats, exports of running VMs).
        .systemLibrary(name: "CNBD", pkgConfig: "libnbd", providers: [.apt(["libnbd-dev"])]),
        // libcurl: HTTP(S) to object stores, with AWS Signature V4 signing and connection reuse.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Linux calls Glibc's module does not export (they need _GNU_SOURCE): SEEK_DATA, syncfs, renameat2.
        .target(name: "CLinux"),
        // scrypt's ROMix on vectors; optimised in every build (unoptimised, a key vault's N = 2^20 takes seconds).
        .target(name: "CScrypt", cSettings: [.unsafeFlags(["-O2"])]),
        .target(
            name: "DiskVault",
            dependencies: ["CZlib", "COpenSSL", "CISAL", "CLinux", "CNBD", "CCurl", "CScrypt"]
        ),
        .executableTarget(
            name: "diskvault",
            dependencies: [
                "DiskVault",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // libFuzzer harness for the header parsers (scripts/fuzz); a replayer of inputs when built normally.
        .executableTarget(name: "DiskVaultFuzz", dependencies: ["DiskVault"]),
        .testTarget(
            name: "DiskVaultTests",
            dependencies: ["DiskVault", "diskvault"],
            // The key vault's adversary, in Python against the on-disk format: run by KeyVaultAttackTests.
            exclude: ["KeyVault/keyvault_attack.py", "Image/hostile_nbd.py", "Live/qmp_tool.py", "S3/hostile_s3.py"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
