import Foundation
import XCTest

final class SparseAndStreamTests: XCTestCase {
    /// A 1 GiB file holding four small data extents: the holes are never read, the restore is sparse.
    func testSparseImageHolesAreNotReadAndRestoreIsSparse() throws {
        let s = try Scratch(self)
        let image = s.file("sparse.img"), vault = s.file("vault")
        try Tool.sh("""
            truncate -s 1G \(image)
            head -c 3M /dev/urandom | dd of=\(image) bs=1M seek=10 conv=notrunc status=none
            head -c 1M /dev/urandom | dd of=\(image) bs=1M seek=300 conv=notrunc status=none
            yes 'sparse but not empty' | head -c 2M | dd of=\(image) bs=1M seek=700 conv=notrunc status=none
            head -c 5000 /dev/urandom | dd of=\(image) bs=1 seek=$((1024*1024*1024 - 5000)) conv=notrunc status=none
            """)
        let allocated = try allocatedBytes(image)
        XCTAssertLessThan(allocated, 8 << 20, "the file system keeps the test image sparse")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        let backup = try Tool.dv("backup", image, "--vault", vault, "--disk", "sparse", "--json")
        XCTAssertEqual(backup.status, 0, backup.output)
        let stats = try XCTUnwrap(try backup.json()["stats"] as? [String: Any])
        let read = try XCTUnwrap(stats["readBytes"] as? Int)
        let holes = try XCTUnwrap(stats["holeBytes"] as? Int)
        // Only the allocated extents are read (the file system allocates in 4 KiB blocks).
        XCTAssertEqual(UInt64(read), allocated, "read exactly the allocated data, not the holes")
        XCTAssertEqual(read + holes, 1 << 30)
        XCTAssertEqual(stats["chunks"] as? Int, 256)
        // 10–13 MiB spans chunks 2 and 3; 300, 700 and the tail one chunk each.
        XCTAssertEqual(stats["newChunks"] as? Int, 5)

        let target = s.file("restored.img")
        let restore = try Tool.dv("restore", "--vault", vault, "--disk", "sparse", "--target", target, "--json")
        XCTAssertEqual(restore.status, 0, restore.output)
        XCTAssertTrue(try fileBytesEqual(image, target))
        // Zero chunks are holes: the restored file allocates the data chunks (5 × 4 MiB at most), not 1 GiB.
        XCTAssertLessThanOrEqual(try allocatedBytes(target), 20 << 20)
        XCTAssertEqual(try restore.json()["holeBytes"] as? Int, (1 << 30) - 5 * (4 << 20))
    }

    func testBackupFromStandardInputEqualsBackupFromTheFile() throws {
        let s = try Scratch(self)
        let image = s.file("disk.img"), vault = s.file("vault")
        try Tool.sh("""
            head -c 8M /dev/urandom > \(image)
            head -c 4M /dev/zero >> \(image)
            yes 'text that compresses' | head -c 3000000 >> \(image)
            """)
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        let fromFile = try Tool.dv("backup", image, "--vault", vault, "--disk", "a", "--json")
        XCTAssertEqual(fromFile.status, 0, fromFile.output)
        let fromStdin = try Tool.dv("backup", "-", "--vault", vault, "--disk", "b", "--json", stdinPath: image)
        XCTAssertEqual(fromStdin.status, 0, fromStdin.output)
        let a = try fromFile.json(), b = try fromStdin.json()
        XCTAssertEqual(a["indexDigest"] as? String, b["indexDigest"] as? String, "same content digest")
        XCTAssertEqual((b["source"] as? [String: Any])?["kind"] as? String, "stream")
        XCTAssertEqual((b["source"] as? [String: Any])?["size"] as? Int, 12 * (1 << 20) + 3_000_000)
        // Everything the stream held was already in the vault.
        let statsB = try XCTUnwrap(b["stats"] as? [String: Any])
        XCTAssertEqual(statsB["newChunks"] as? Int, 0)
        XCTAssertEqual(statsB["zeroChunks"] as? Int, 1)
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "b", "--target", s.file("r.img")).status, 0)
        XCTAssertTrue(try fileBytesEqual(image, s.file("r.img")))
    }

    func testEmptyAndTinyImages() throws {
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--kdf-work-factor", "10").status, 0)
        try Tool.sh("touch \(s.file("empty.img")); printf 'x' > \(s.file("one.img"))")
        for name in ["empty", "one"] {
            let r = try Tool.dv("backup", s.file("\(name).img"), "--vault", vault, "--disk", name)
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", name, "--target", s.file("\(name).out")).status, 0)
            XCTAssertTrue(try fileBytesEqual(s.file("\(name).img"), s.file("\(name).out")))
        }
    }

    func testBackupOfABlockDeviceEqualsBackupOfItsFile() throws {
        try Tool.require("losetup")
        let s = try Scratch(self)
        let image = s.file("disk.img"), vault = s.file("vault")
        try Tool.sh("head -c 6M /dev/urandom > \(image); head -c 2M /dev/zero >> \(image)")
        let attach = try Tool.run("/bin/bash", ["-c", "losetup -f --show \(image)"])
        guard attach.status == 0 else { throw XCTSkip("no loop devices here: \(attach.output)") }
        let device = attach.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        addTeardownBlock { _ = try? Tool.run("/bin/bash", ["-c", "losetup -d \(device)"]) }
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        let file = try Tool.dv("backup", image, "--vault", vault, "--disk", "f", "--json")
        let dev = try Tool.dv("backup", device, "--vault", vault, "--disk", "b", "--json")
        XCTAssertEqual(dev.status, 0, dev.output)
        XCTAssertEqual((try dev.json()["source"] as? [String: Any])?["kind"] as? String, "block-device")
        XCTAssertEqual((try dev.json()["source"] as? [String: Any])?["size"] as? Int, 8 << 20)
        XCTAssertEqual(try file.json()["indexDigest"] as? String, try dev.json()["indexDigest"] as? String)
    }
}
