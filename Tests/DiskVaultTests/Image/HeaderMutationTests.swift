import DiskVault
import Foundation
import XCTest

/// Flips random bytes of real headers thousands of times: every read must end in a layout or a clear
/// `DiskVaultError` — no crash, no hang, no other error.
final class HeaderMutationTests: XCTestCase {
    func mutate(_ fixture: String, regions: [Range<UInt64>], iterations: Int, seed: UInt64) throws -> (errors: Int, layouts: Int) {
        let s = try Scratch(self)
        let path = s.file("mutant.img")
        try Tool.sh("cp --sparse=always '\(fixture)' \(path)")
        let file = try FileDescriptor(path: path, flags: O_RDWR)
        let size = try file.status().size
        var rng = SeededRandom(seed: seed)
        var errors = 0, layouts = 0
        for iteration in 0..<iterations {
            var saved: [(UInt64, UInt8)] = []
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let region = regions.randomElement(using: &rng)!
                let at = UInt64.random(in: region, using: &rng)
                guard at < size else { continue }
                var old: UInt8 = 0
                _ = try withUnsafeMutableBytes(of: &old) { try file.read(into: $0, at: at) }
                saved.append((at, old))
                var new = UInt8.random(in: 0...255, using: &rng)
                if new == old { new ^= 0xFF }
                try withUnsafeBytes(of: &new) { try file.write($0, at: at) }
            }
            do {
                _ = try LayoutReader.read(file: file, image: path, size: size, strict: true)
                layouts += 1
            } catch {
                // Typed throws: only a DiskVaultError can arrive here; it must name the image.
                XCTAssertEqual(error.path, path, "iteration \(iteration) (seed \(seed)): \(error)")
                errors += 1
            }
            for (at, old) in saved.reversed() {
                var b = old
                try withUnsafeBytes(of: &b) { try file.write($0, at: at) }
            }
        }
        return (errors, layouts)
    }

    func testMutatedLUKSHeaders() throws {
        let dir = try Fixtures.directory("luks")
        let luks1 = try mutate("\(dir)/luks1-images/luks1_aes-xts-plain64-sha256.img", regions: [0..<592], iterations: 1500, seed: 1)
        XCTAssertGreaterThan(luks1.errors, 0, "some mutations must be caught")
        XCTAssertGreaterThan(luks1.layouts, 0)
        // LUKS2: both header copies, binary and JSON.
        let luks2 = try mutate("\(dir)/luks2_valid_hdr.img", regions: [0..<4096, 4096..<6000, 16384..<20480, 20480..<22000], iterations: 1500, seed: 2)
        XCTAssertGreaterThan(luks2.layouts, 0)
    }

    func testMutatedBitLockerHeaders() throws {
        let dir = try Fixtures.directory("bitlocker")
        for (n, name) in ["bitlk-aes-xts-128.img", "bitlk-aes-cbc-elephant-128.img", "bitlk-togo-aes-xts-128.img", "bitlk-aes-xts-128-startup-key.img"].enumerated() {
            let path = "\(dir)/\(name)"
            // The FVE metadata blocks: their offsets, as found by the reader, plus the boot sector.
            let volume = try FileDescriptor(path: path, flags: O_RDONLY)
            var regions: [Range<UInt64>] = [0..<512]
            let boot = try VolumeBytes(file: volume, image: path, offset: 0, size: volume.status().size).read(0, 512, what: "boot sector")
            let base = name.contains("togo") ? 440 : 176
            for i in 0..<3 {
                if let offset = try? boot.u64le(base + 8 * i, "metadata offset"), offset > 0, offset < 1 << 40 {
                    regions.append(offset..<offset + 4096)
                }
            }
            XCTAssertEqual(regions.count, 4, "\(name): three metadata blocks found")
            let result = try mutate(path, regions: regions, iterations: 800, seed: 10 + UInt64(n))
            XCTAssertGreaterThan(result.layouts, 0, name)
        }
    }

    func testMutatedPartitionTables() throws {
        try Tool.require("sfdisk")
        let s = try Scratch(self)
        let mbr = s.file("mbr.img"), gpt = s.file("gpt.img")
        try Tool.sh("""
            truncate -s 64M \(mbr) \(gpt)
            printf 'label: dos\\nstart=2048, size=16384, type=83\\nstart=18432, type=5\\nstart=20480, size=8192, type=83\\nstart=30720, size=8192, type=7\\n' | sfdisk -q \(mbr)
            printf 'label: gpt\\nsize=8M, type=uefi\\nsize=16M, type=linux\\nsize=16M, type=linux\\n' | sfdisk -q \(gpt)
            """)
        _ = try mutate(mbr, regions: [446..<512, (18432 * 512)..<(18432 * 512 + 512), (28672 * 512)..<(28672 * 512 + 512)], iterations: 2000, seed: 20)
        let size: UInt64 = 64 << 20
        _ = try mutate(gpt, regions: [512..<604, 1024..<1536, (size - 512)..<(size - 420)], iterations: 2000, seed: 21)
    }
}
