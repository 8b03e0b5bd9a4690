import Foundation
import XCTest

/// The real encrypted images in ../shared/fixtures (BitLocker made by Windows, LUKS1, LUKS2), unpacked once
/// per test run. Tests that use them skip with a clear message when ../shared is absent (a user's clone).
enum Fixtures {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }  // Support, DiskVaultTests, Tests, root
        return url.path
    }()

    static let sharedDirectory = "\(packageRoot)/../shared/fixtures"
    private static let unpackLock = NSLock()
    nonisolated(unsafe) private static var unpacked: [String: String] = [:]

    /// The folder holding the unpacked `name` archive (bitlocker or luks).
    static func directory(_ name: String) throws -> String {
        let archive = "\(sharedDirectory)/\(name).tar.xz"
        guard FileManager.default.fileExists(atPath: archive) else {
            throw XCTSkip("real \(name) fixtures are not here (\(archive) is absent: ../shared is not beside this clone)")
        }
        unpackLock.lock()
        defer { unpackLock.unlock() }
        if let dir = unpacked[name] { return dir }
        // One unpacked copy per archive version, reused by later runs instead of piling up in /tmp.
        let size = (try? FileManager.default.attributesOfItem(atPath: archive)[.size] as? Int) ?? 0
        let base = "\(NSTemporaryDirectory())/diskvault-fixtures/\(name)-\(size)"
        let dir = "\(base)/\(name)"
        if !FileManager.default.fileExists(atPath: "\(base)/.complete") {
            let staging = "\(base).\(getpid())"
            try? FileManager.default.removeItem(atPath: staging)
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            try Tool.sh("tar xJf \(archive) -C \(staging) && touch \(staging)/.complete")
            try? FileManager.default.removeItem(atPath: base)
            try FileManager.default.moveItem(atPath: staging, toPath: base)
        }
        unpacked[name] = dir
        return dir
    }

    /// Sections of bitlocker/images.conf: image name → key → value.
    static func bitlockerConfig() throws -> [String: [String: String]] {
        let text = try String(contentsOfFile: "\(try directory("bitlocker"))/images.conf", encoding: .utf8)
        var result: [String: [String: String]] = [:]
        var section = ""
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast())
                result[section] = [:]
            } else if let eq = line.firstIndex(of: "="), !section.isEmpty {
                result[section]?[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
        }
        return result
    }
}
