import Foundation
import XCTest

/// Damage, kills and a full disk: each named clearly, nothing lost, nothing half-written.
final class DamageAndFailureTests: XCTestCase {
    func makeVaultWithPoint(_ s: Scratch, megabytes: Int = 12, chunkSize: String = "1MiB") throws -> (vault: String, image: String, point: String) {
        let vault = s.file("vault"), image = s.file("disk.img")
        try Tool.sh("""
            head -c \(megabytes / 2)M /dev/urandom > \(image)
            yes 'a line of a text file on a disk' | head -c \(megabytes / 2)M >> \(image)
            """)
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", chunkSize, "--encryption", "none").status, 0)
        let r = try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual(r.status, 0, r.output)
        return (vault, image, try XCTUnwrap(try r.json()["id"] as? String))
    }

    func blobs(_ vault: String) -> [String] {
        treeListing("\(vault)/chunks").filter { $0.split(separator: "/").last?.count == 64 }.map { "\(vault)/chunks/\($0)" }
    }

    func assertDamageIsNamed(_ s: Scratch, vault: String, point: String, chunk: String, kind: String) throws {
        let verify = try Tool.dv("verify", "--vault", vault)
        XCTAssertEqual(verify.status, 1, verify.output)
        XCTAssertTrue(verify.stdout.contains(chunk), "names the chunk: \(verify.output)")
        XCTAssertTrue(verify.stdout.contains("d@\(point)"), "names the point: \(verify.output)")
        XCTAssertTrue(verify.stdout.contains(kind.uppercased()), verify.output)
        let json = try Tool.dv("verify", "--vault", vault, "--disk", "d", "--point", point, "--json")
        XCTAssertEqual(json.status, 1)
        let problems = try XCTUnwrap(try json.json()["problems"] as? [[String: Any]])
        XCTAssertEqual(problems.count, 1)
        XCTAssertEqual(problems.first?["chunk"] as? String, chunk)
        XCTAssertEqual(problems.first?["kind"] as? String, kind)

        let target = s.file("restored-\(kind).img")
        let restore = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target)
        XCTAssertEqual(restore.status, 1, restore.output)
        XCTAssertTrue(restore.stderr.contains(chunk), restore.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: target), "no target after a failed restore")
        XCTAssertEqual(treeListing(s.path).filter { $0.contains("diskvault-restore") }, [], "no temporary file left")
    }

    func testFlippedByteInABlobIsNamedAndRestoreLeavesNoTarget() throws {
        let s = try Scratch(self)
        let (vault, _, point) = try makeVaultWithPoint(s)
        let victim = try XCTUnwrap(blobs(vault).sorted().first)
        try Tool.sh("""
            size=$(stat -c %s \(victim)); at=$((size / 2))
            b=$(dd if=\(victim) bs=1 skip=$at count=1 status=none | xxd -p)
            printf "$(printf '\\\\x%02x' $(( 0x$b ^ 0x40 )))" | dd of=\(victim) bs=1 seek=$at conv=notrunc status=none
            """)
        try assertDamageIsNamed(s, vault: vault, point: point, chunk: FileSystemName.last(victim), kind: "damaged")
    }

    func testDeletedBlobIsNamedAndRestoreLeavesNoTarget() throws {
        let s = try Scratch(self)
        let (vault, _, point) = try makeVaultWithPoint(s)
        let victim = try XCTUnwrap(blobs(vault).sorted().last)
        try FileManager.default.removeItem(atPath: victim)
        try assertDamageIsNamed(s, vault: vault, point: point, chunk: FileSystemName.last(victim), kind: "missing")
    }

    func testRestoreRefusesAnExistingTargetUnlessReplace() throws {
        let s = try Scratch(self)
        let (vault, image, _) = try makeVaultWithPoint(s)
        let target = s.file("existing.img")
        try Tool.sh("echo precious > \(target)")
        let refused = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("--replace"), refused.output)
        XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8), "precious\n")
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target, "--replace").status, 0)
        XCTAssertTrue(try fileBytesEqual(image, target))
    }

    /// kill -9 at several moments of a backup: the vault verifies clean, no partial point is visible,
    /// and the next backup succeeds and restores exactly.
    func testBackupKilledAtAnyMomentLeavesAVaultThatVerifiesClean() throws {
        let s = try Scratch(self)
        let (vault, image, _) = try makeVaultWithPoint(s, megabytes: 4, chunkSize: "64KiB")
        let big = s.file("big.img")
        try Tool.sh("""
            head -c 40M /dev/urandom > \(big)
            yes 'compressible filler for a bigger disk image' | head -c 40M >> \(big)
            """)
        _ = image
        var completed = 1
        var killed = 0
        for delay in [0.02, 0.08, 0.15, 0.3, 0.5, 0.8] {
            let process = try Tool.start(["backup", big, "--vault", vault, "--disk", "d"])
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let wasKilled = process.terminationReason == .uncaughtSignal
            if wasKilled { killed += 1 } else { XCTAssertEqual(process.terminationStatus, 0) }
            let points = try Tool.dv("points", "--vault", vault, "--disk", "d", "--json")
            XCTAssertEqual(points.status, 0, points.output)
            let visible = (try points.json()["points"] as? [Any])?.count ?? -1
            // A kill that lands after the manifest's rename leaves a complete point, rightly visible; a backup
            // that exited 0 has always committed one.
            if wasKilled {
                XCTAssertTrue(visible == completed || visible == completed + 1, "after kill at \(delay) s: \(visible) points, \(completed) before")
            } else {
                XCTAssertEqual(visible, completed + 1, "a finished backup's point is visible")
            }
            completed = visible
            let verify = try Tool.dv("verify", "--vault", vault)
            XCTAssertEqual(verify.status, 0, "after kill at \(delay) s: \(verify.output)")
        }
        XCTAssertGreaterThan(killed, 0, "at least one backup was killed mid-way")
        let last = try Tool.dv("backup", big, "--vault", vault, "--disk", "d")
        XCTAssertEqual(last.status, 0, last.output)
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", s.file("r.img")).status, 0)
        XCTAssertTrue(try fileBytesEqual(big, s.file("r.img")))
    }

    /// Ctrl-C (SIGINT) or SIGTERM mid-way: no half-written disk beside the target, no lock left behind.
    func testInterruptedRestoreAndBackupLeaveNothingBehind() throws {
        let s = try Scratch(self)
        let (vault, _, _) = try makeVaultWithPoint(s, megabytes: 4, chunkSize: "64KiB")
        let big = s.file("big.img")
        try Tool.sh("head -c 48M /dev/urandom > \(big); yes 'text' | head -c 48M >> \(big)")
        XCTAssertEqual(try Tool.dv("backup", big, "--vault", vault, "--disk", "big").status, 0)

        let target = s.file("restored.img")
        let restore = try Tool.start(["restore", "--vault", vault, "--disk", "big", "--target", target, "--threads", "1"])
        func partial() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: s.path)) ?? []).filter { $0.contains("diskvault-restore") }
        }
        for _ in 0..<500 where partial().isEmpty { Thread.sleep(forTimeInterval: 0.002) }
        XCTAssertFalse(partial().isEmpty, "the restore had begun")
        kill(restore.processIdentifier, SIGINT)
        restore.waitUntilExit()
        XCTAssertEqual(restore.terminationReason, .uncaughtSignal)
        XCTAssertFalse(FileManager.default.fileExists(atPath: target))
        XCTAssertEqual(partial(), [], "no half-written disk left")
        XCTAssertEqual(lockLeftovers(vault), [], "its lock went with it")

        let backup = try Tool.start(["backup", big, "--vault", vault, "--disk", "again"])
        waitForLockHolder(vault, "disk-again")
        kill(backup.processIdentifier, SIGTERM)
        backup.waitUntilExit()
        XCTAssertEqual(backup.terminationReason, .uncaughtSignal)
        XCTAssertEqual(lockLeftovers(vault), [], "no lock left behind")
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
    }

    func testFullDiskFailsClearlyAndLeavesNoPartialPoint() throws {
        let s = try Scratch(self)
        let mount = s.file("small")
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let mounted = try Tool.run("/bin/mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", mount])
        guard mounted.status == 0 else { throw XCTSkip("cannot mount a small tmpfs here (needs root): \(mounted.output)") }
        addTeardownBlock { _ = try? Tool.run("/bin/umount", ["-l", mount]) }
        let vault = "\(mount)/vault", image = s.file("disk.img")
        try Tool.sh("head -c 16M /dev/urandom > \(image)")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        let r = try Tool.dv("backup", image, "--vault", vault, "--disk", "d")
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.stderr.contains("no space left"), r.stderr)
        XCTAssertTrue(r.stderr.contains(vault), "names the vault path: \(r.stderr)")
        let points = try Tool.dv("points", "--vault", vault, "--json")
        XCTAssertEqual((try points.json()["points"] as? [Any])?.count, 0)
        XCTAssertEqual(treeListing("\(vault)/tmp"), [], "no temporary blobs left behind")
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
    }

    /// A vault whose disk filled up is not locked by its own fullness: restore, verify and gc still run (a job
    /// record that cannot be written is a warning), gc frees the space, and the job list says nothing false.
    func testAFullVaultDiskStillRestoresVerifiesAndCollects() throws {
        let s = try Scratch(self)
        let mount = s.file("small")
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let mounted = try Tool.run("/bin/mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mount])
        guard mounted.status == 0 else { throw XCTSkip("cannot mount a small tmpfs here (needs root): \(mounted.output)") }
        addTeardownBlock { _ = try? Tool.run("/bin/umount", ["-l", mount]) }
        let vault = "\(mount)/vault", small = s.file("small.img"), big = s.file("big.img")
        try Tool.sh("head -c 2M /dev/urandom > \(small); head -c 16M /dev/urandom > \(big)")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--kdf-work-factor", "10").status, 0)
        XCTAssertEqual(try Tool.dv("backup", small, "--vault", vault, "--disk", "small").status, 0)
        let full = try Tool.dv("backup", big, "--vault", vault, "--disk", "big")
        XCTAssertEqual(full.status, 1, full.output)
        XCTAssertTrue(full.stderr.contains("no space left") && full.stderr.contains("diskvault gc"), "suggests gc: \(full.stderr)")
        // Fill what the failed backup left: not even a job record fits now.
        let filler = try Tool.run("/bin/bash", ["-c", "head -c 64M /dev/zero > \(mount)/filler"])
        XCTAssertNotEqual(filler.status, 0, "the file system is full")
        let probe = try Tool.run("/bin/bash", ["-c", "echo x > \(mount)/probe"])
        XCTAssertNotEqual(probe.status, 0, "not even a small file fits")

        let restore = try Tool.dv("restore", "--vault", vault, "--disk", "small", "--target", s.file("r.img"))
        XCTAssertEqual(restore.status, 0, restore.output)
        XCTAssertTrue(try fileBytesEqual(small, s.file("r.img")))
        let verify = try Tool.dv("verify", "--vault", vault)
        XCTAssertEqual(verify.status, 0, verify.output)
        let gc = try Tool.dv("gc", "--vault", vault, "--json")
        XCTAssertEqual(gc.status, 0, gc.output)
        XCTAssertGreaterThan(try gc.json()["blobsRemoved"] as? Int ?? 0, 0, "gc freed the failed backup's blobs")
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
        // No job is listed as dead that ended well.
        let jobs = try XCTUnwrap(try Tool.dv("jobs", "list", "--vault", vault, "--json").json()["jobs"] as? [[String: Any]])
        for job in jobs where ["restore", "verify", "gc"].contains(job["kind"] as? String ?? "") {
            XCTAssertNotEqual(job["state"] as? String, "failed", "\(job)")
        }
    }
}

enum FileSystemName {
    static func last(_ path: String) -> String { String(path.split(separator: "/").last ?? "") }
}
