import Foundation
import XCTest

/// Backups record the layout they found, keep ciphertext away from the compressor, and notice when a disk's
/// encryption changes between points.
final class BackupLayoutTests: XCTestCase {
    func backup(_ image: String, _ vault: String, disk: String, _ extra: [String] = []) throws -> [String: Any] {
        let r = try Tool.run(Tool.diskvault, ["backup", image, "--vault", vault, "--disk", disk, "--json"] + extra)
        XCTAssertEqual(r.status, 0, r.output)
        return try r.json()
    }

    func testDiskThatBecomesEncryptedAndChangesUUIDIsRecorded() throws {
        try Tool.require("cryptsetup", "mkfs.ext4")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10").status, 0)
        try Tool.sh("mkfs.ext4 -q -F \(image) 24M")
        let plain = try backup(image, vault, disk: "d")
        let plainVolumes = (plain["layout"] as? [String: Any])?["volumes"] as? [[String: Any]]
        XCTAssertEqual((plainVolumes?.first?["encryption"] as? [String: Any])?["format"] as? String, "none")
        XCTAssertNil(plain["layoutChanges"])

        try Tool.sh("printf 'pw' | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \(image) 2>/dev/null")
        let uuid = try Tool.sh("cryptsetup luksUUID \(image)").trimmingCharacters(in: .whitespacesAndNewlines)
        let encrypted = try backup(image, vault, disk: "d", ["--without-keys"])
        XCTAssertEqual(encrypted["keyBackupWaived"] as? Bool, true)
        let changes = encrypted["layoutChanges"] as? [String] ?? []
        XCTAssertEqual(changes, ["the disk became encrypted (luks2 \(uuid))"])

        let newUUID = "11111111-2222-3333-4444-555555555555"
        try Tool.sh("cryptsetup luksUUID -q --uuid \(newUUID) \(image)")
        let relabelled = try backup(image, vault, disk: "d", ["--without-keys"])
        XCTAssertEqual(relabelled["layoutChanges"] as? [String], ["the disk LUKS UUID changed from \(uuid) to \(newUUID)"])

        let points = try Tool.dv("points", "--vault", vault, "--disk", "d")
        XCTAssertTrue(points.stdout.contains("became encrypted"), points.stdout)
        XCTAssertTrue(points.stdout.contains("LUKS UUID changed"), points.stdout)
    }

    /// Declared ciphertext never reaches the compressor, even when it would compress.
    func testDeclaredEncryptedRegionIsNeverCompressed() throws {
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("text.img")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10").status, 0)
        try Tool.sh("yes 'the same line of text, again and again' | head -c 8M > \(image); head -c 64 /dev/urandom | dd of=\(image) bs=1M seek=3 conv=notrunc status=none")
        let declared = try backup(image, vault, disk: "declared", ["--declare-encrypted", "disk", "--without-keys"])
        XCTAssertEqual((declared["stats"] as? [String: Any])?["compressedChunks"] as? Int, 0)
        let volumes = (declared["layout"] as? [String: Any])?["volumes"] as? [[String: Any]]
        XCTAssertEqual((volumes?.first?["encryption"] as? [String: Any])?["format"] as? String, "declared")
        // The same bytes, not declared, in a new vault: they compress.
        XCTAssertEqual(try Tool.dv("vault", "init", s.file("vault2"), "--chunk-size", "1MiB", "--kdf-work-factor", "10").status, 0)
        let plain = try backup(image, s.file("vault2"), disk: "plain")
        XCTAssertGreaterThan((plain["stats"] as? [String: Any])?["compressedChunks"] as? Int ?? 0, 0)
    }

    func testDamagedHeaderDoesNotStopTheBackupButIsRecorded() throws {
        let s = try Scratch(self)
        let template = try Fixtures.directory("luks") + "/luks2_valid_hdr.img"
        let image = s.file("broken.img"), vault = s.file("vault")
        // Both LUKS2 copies damaged: inspect fails clearly, a backup still protects the bytes.
        try Tool.sh("cp \(template) \(image); printf 'X' | dd of=\(image) bs=1 seek=5000 conv=notrunc status=none; printf 'X' | dd of=\(image) bs=1 seek=21000 conv=notrunc status=none")
        let inspect = try Tool.dv("inspect", image)
        XCTAssertEqual(inspect.status, 1)
        XCTAssertTrue(inspect.stderr.contains("both copies") && inspect.stderr.contains(image), inspect.stderr)
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        let m = try backup(image, vault, disk: "d")
        let volumes = (m["layout"] as? [String: Any])?["volumes"] as? [[String: Any]]
        XCTAssertEqual((volumes?.first?["encryption"] as? [String: Any])?["format"] as? String, "unreadable")
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", s.file("r.img")).status, 0)
        XCTAssertTrue(try fileBytesEqual(image, s.file("r.img")))
    }
}
