import Foundation
import XCTest

/// Restore onto a block device (a real loop device): in place, zero chunks zeroed, refused when the device is
/// too small, in use, or not blank (always for an encrypted disk, unless --replace for a clear one).
final class BlockDeviceRestoreTests: XCTestCase {
    /// A loop device over a new file of `megabytes` MiB filled with 0xff (so that zero chunks must be zeroed).
    func loopDevice(_ s: Scratch, _ name: String, megabytes: Int) throws -> (device: String, backing: String) {
        let backing = s.file("\(name).backing")
        try Tool.sh("head -c \(megabytes)M /dev/zero | tr '\\0' '\\377' > \(backing)")
        let r = try Tool.run("/bin/bash", ["-c", "losetup -f --show \(backing)"])
        let device = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard r.status == 0, device.hasPrefix("/dev/") else { throw XCTSkip("losetup cannot make a loop device here: \(r.output)") }
        addTeardownBlock { _ = try? Tool.run("/bin/bash", ["-c", "losetup -d \(device)"]) }
        return (device, backing)
    }

    func testRestoreOntoABlockDevice() throws {
        try Tool.require("losetup", "blkid", "python3")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--encryption", "none").status, 0)
        try Images.ext4(image, megabytes: 16, scratch: s)
        try Tool.sh("truncate -s 24M \(image)")
        XCTAssertEqual(try Tool.dv("backup", image, "--vault", vault, "--disk", "d").status, 0)

        // Too small: refused, nothing written.
        let small = try loopDevice(s, "small", megabytes: 16)
        let tooSmall = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", small.device)
        XCTAssertEqual(tooSmall.status, 2, tooSmall.output)
        XCTAssertTrue(tooSmall.stderr.contains("less than the disk"), tooSmall.stderr)

        // A blank device (0xff, no signature), named through a symbolic link as /dev/disk/by-id names it.
        let (device, backing) = try loopDevice(s, "big", megabytes: 32)
        let link = s.file("by-id-link")
        try Tool.sh("ln -s \(device) \(link)")
        let allocatedBefore = try Tool.sh("stat -c %b \(backing)").trimmingCharacters(in: .whitespacesAndNewlines)
        let r = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", link, "--json")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(try r.json()["target"] as? String, device)
        // The disk's 24 MiB are exactly the image (zero chunks zeroed, not left 0xff); the rest is untouched.
        _ = try Tool.sh("cmp -n 25165824 \(device) \(image)")
        XCTAssertEqual(try Tool.sh("tail -c 8388608 \(device) | tr -d '\\377' | wc -c").trimmingCharacters(in: .whitespacesAndNewlines), "0")
        XCTAssertTrue(r.stderr.contains("more than the disk"), r.stderr)
        let allocatedAfter = try Tool.sh("stat -c %b \(backing)").trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertLessThan(Int(allocatedAfter) ?? .max, Int(allocatedBefore) ?? 0, "zeroed chunks were unmapped, not written")
        for suffix in [".attach.json", ".libvirt.xml", ".qemu-args"] { XCTAssertFalse(FileManager.default.fileExists(atPath: device + suffix)) }

        // Now it holds an ext4: refused without --replace, written with it.
        let notBlank = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", device)
        XCTAssertEqual(notBlank.status, 1, notBlank.output)
        XCTAssertTrue(notBlank.stderr.contains("not blank") && notBlank.stderr.contains("ext4"), notBlank.stderr)
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", device, "--replace").status, 0)
        _ = try Tool.sh("cmp -n 25165824 \(device) \(image)")

        // Held by another program (O_EXCL, as a mount or device-mapper holds it): refused.
        let holder = try Tool.start(["-c", "import os, time; fd = os.open('\(device)', os.O_RDONLY | os.O_EXCL); open('\(s.file("held"))', 'w').close(); time.sleep(60)"], executable: "python3")
        defer { holder.terminate(); holder.waitUntilExit() }
        waitUntilExists(s.file("held"), seconds: 10)
        let busy = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", device, "--replace")
        XCTAssertEqual(busy.status, 1, busy.output)
        XCTAssertTrue(busy.stderr.contains("in use"), busy.stderr)
    }

    /// An encrypted disk's point goes only onto a blank device, --replace or not.
    func testAnEncryptedPointGoesOnlyOntoABlankDevice() throws {
        try Tool.require("losetup", "blkid", "cryptsetup", "wipefs")
        let t = try EncryptedBackupTests.Setup(self)
        let image = t.s.file("luks2.img"), key = t.s.file("key")
        let uuid = try Images.luks2(image, key: key)
        try t.run("keyvault", "secret", "set", t.kv, "--name", "k", "--file", key, "--volume", uuid)
        _ = try t.backup(image, disk: "enc")
        let (device, _) = try loopDevice(t.s, "enc", megabytes: 24)
        try Tool.sh("mkfs.ext4 -q -F \(device) >/dev/null")
        let refused = try t.restore(disk: "enc", target: device, expect: 1)
        XCTAssertTrue(refused.stderr.contains("never restored over existing data"), refused.stderr)
        _ = try t.restore(disk: "enc", target: device, ["--replace"], expect: 2)
        try Tool.sh("wipefs -a -q \(device)")
        _ = try t.restore(disk: "enc", target: device)
        _ = try Tool.sh("cmp -n 20971520 \(device) \(image)")
        _ = try Tool.sh("cryptsetup open --test-passphrase --key-file \(key) \(device)")
    }
}
