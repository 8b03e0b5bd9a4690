import Foundation
import XCTest

/// Real LUKS1 images made by qemu-img over a real ext4 file system, changed through qemu-io, judged by
/// qemu-img and cryptsetup.
final class LUKSRoundTripTests: XCTestCase {
    func testRoundTripAndIncrementalOfARealLUKS1Image() throws {
        try Tool.require("qemu-img", "qemu-io", "mkfs.ext4", "cryptsetup")
        let s = try Scratch(self)
        let plain = s.file("plain.img"), luks = s.file("luks.img"), vault = s.file("vault")
        try Images.ext4(plain, megabytes: 40, scratch: s)
        try Images.luks1(from: plain, to: luks)
        // 1 MiB chunks so that the change below touches a countable handful.
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10").status, 0)

        // The keys are the key vault tests' concern; here the data path alone.
        let first = try Tool.dv("backup", luks, "--vault", vault, "--disk", "web", "--json", "--without-keys")
        XCTAssertEqual(first.status, 0, first.output)
        let m1 = try first.json()
        let stats1 = try XCTUnwrap(m1["stats"] as? [String: Any])
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: luks)[.size] as? Int)
        XCTAssertEqual((m1["source"] as? [String: Any])?["size"] as? Int, size)
        XCTAssertEqual(stats1["chunks"] as? Int, (size + (1 << 20) - 1) >> 20)
        try Tool.sh("cp --sparse=always \(luks) \(s.file("before.img"))")

        // Change 3 MiB of plaintext through the LUKS layer: real new ciphertext.
        try Images.luksWrite(luks, pattern: 0x5a, offset: "2M", length: "2M")
        try Images.luksWrite(luks, pattern: 0x33, offset: "25M", length: "1M")
        let changedChunks = try differingChunks(s.file("before.img"), luks, chunkSize: 1 << 20)
        XCTAssertGreaterThanOrEqual(changedChunks, 3)
        XCTAssertLessThanOrEqual(changedChunks, 5)

        let second = try Tool.dv("backup", luks, "--vault", vault, "--disk", "web", "--json", "--without-keys")
        XCTAssertEqual(second.status, 0, second.output)
        let stats2 = try XCTUnwrap(try second.json()["stats"] as? [String: Any])
        XCTAssertEqual(stats2["newChunks"] as? Int, changedChunks, "the second point stores exactly the changed chunks")
        XCTAssertEqual((stats2["reusedChunks"] as? Int ?? 0) + (stats2["zeroChunks"] as? Int ?? 0) + changedChunks, stats2["chunks"] as? Int)
        // Ciphertext is never worth compressing: nothing new was deflated.
        XCTAssertEqual(stats2["compressedChunks"] as? Int, 0)

        let id1 = try XCTUnwrap(m1["id"] as? String)
        let id2 = try XCTUnwrap(try second.json()["id"] as? String)
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "web", "--point", id1, "--target", s.file("r1.img")).status, 0)
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "web", "--target", s.file("r2.img")).status, 0)
        XCTAssertTrue(try fileBytesEqual(s.file("r1.img"), s.file("before.img")), "first point restores byte for byte")
        XCTAssertTrue(try fileBytesEqual(s.file("r2.img"), luks), "latest point restores byte for byte")
        _ = id2

        // Independent readers accept the restored disk: cryptsetup opens its key slot, qemu-img decrypts it.
        let open = try Tool.run("/bin/bash", ["-c", "printf '%s' '\(Images.passphrase)' | cryptsetup open --test-passphrase --type luks1 \(s.file("r1.img"))"])
        XCTAssertEqual(open.status, 0, open.output)
        try Images.luksDecrypt(s.file("r1.img"), to: s.file("r1.raw"))
        XCTAssertTrue(try fileBytesEqual(s.file("r1.raw"), plain), "decrypted restore equals the original file system")
        try Tool.sh("e2fsck -fn \(s.file("r1.raw")) >/dev/null")

        let verify = try Tool.dv("verify", "--vault", vault, "--json")
        XCTAssertEqual(verify.status, 0, verify.output)
        XCTAssertEqual(try verify.json()["ok"] as? Bool, true)

        let points = try Tool.dv("points", "--vault", vault, "--disk", "web", "--json")
        let listed = try XCTUnwrap(try points.json()["points"] as? [[String: Any]])
        XCTAssertEqual(listed.map { $0["id"] as? String }, [id1, id2])
        XCTAssertEqual((listed[1]["stats"] as? [String: Any])?["newChunks"] as? Int, changedChunks)
    }

    /// Counts the chunks in which two files differ, read independently of diskvault.
    func differingChunks(_ a: String, _ b: String, chunkSize: Int) throws -> Int {
        let x = try Data(contentsOf: URL(fileURLWithPath: a)), y = try Data(contentsOf: URL(fileURLWithPath: b))
        XCTAssertEqual(x.count, y.count)
        var n = 0
        var offset = 0
        while offset < x.count {
            let end = min(offset + chunkSize, x.count)
            if x[offset..<end] != y[offset..<end] { n += 1 }
            offset = end
        }
        return n
    }
}
