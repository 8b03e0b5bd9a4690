import DiskVault
import Foundation
import XCTest

/// The small images in `<package root>/testdata` (made by scripts/make-testdata with sfdisk, sgdisk and
/// cryptsetup; see testdata/README.md), stored xz-compressed and unpacked once per content into a shared
/// scratch folder. They are part of every clone, so a missing one is a failure, not a skip.
/// The unpacked files are shared between tests: a test that changes one copies it first.
enum TestData {
    static let directory = "\(Fixtures.packageRoot)/testdata"

    /// The passphrase of key slot 0 of luks1.img and luks2.img.
    static let passphrase = "diskvault testdata"

    private static let unpackLock = NSLock()
    nonisolated(unsafe) private static var unpacked: [String: String] = [:]

    /// The path of the unpacked `name` (as "luks2.img", from testdata/luks2.img.xz).
    static func image(_ name: String) throws -> String {
        let archive = "\(directory)/\(name).xz"
        guard FileManager.default.fileExists(atPath: archive) else {
            throw DiskVaultError(
                .notFound, "testdata is incomplete: \(archive) is missing (scripts/make-testdata remakes it)")
        }
        try Tool.require("xz")
        unpackLock.lock()
        defer { unpackLock.unlock() }
        if let path = unpacked[name] { return path }
        // One unpacked copy per archive content, reused by later runs; a remade archive gets a new one.
        let digest = SHA256.digest([UInt8](try Data(contentsOf: URL(fileURLWithPath: archive)))).hex.prefix(16)
        let dir = "\(NSTemporaryDirectory())/diskvault-testdata"
        let path = "\(dir)/\(digest)-\(name)"
        if !FileManager.default.fileExists(atPath: path) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let staging = "\(path).\(getpid())"
            try Tool.sh("xz -dc '\(archive)' > '\(staging)' && mv '\(staging)' '\(path)'")
        }
        unpacked[name] = path
        return path
    }

    /// A text file of testdata (as "luks1.luksDump.txt").
    static func text(_ name: String) throws -> String {
        try String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)
    }
}
