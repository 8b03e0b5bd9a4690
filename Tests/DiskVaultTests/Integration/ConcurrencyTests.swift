import Foundation
import XCTest

/// Locks, gc and jobs with real processes: a backup running while gc runs loses no blob, two backups of one
/// disk never run at once, a killed holder does not block the next run, and jobs say what happened.
final class ConcurrencyTests: XCTestCase {

    func testSecondBackupOfTheSameDiskIsRefusedOrWaits() throws {
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--kdf-work-factor", "10").status, 0)
        let big = try s.mixedImage("big.img", megabytes: 96)
        let first = try Tool.start(["backup", big, "--vault", vault, "--disk", "d"])
        // Wait until the first holds its disk lock.
        waitForLockHolder(vault, "disk-d")
        let second = try Tool.dv("backup", big, "--vault", vault, "--disk", "d")
        first.waitUntilExit()
        XCTAssertEqual(first.terminationStatus, 0)
        if second.status != 0 {
            XCTAssertEqual(second.status, 1)
            XCTAssertTrue(second.stderr.contains("disk d is locked by backup") && second.stderr.contains("pid \(first.processIdentifier)"), second.stderr)
        }
        // With --lock-wait the second waits its turn and succeeds.
        let third = try Tool.start(["backup", big, "--vault", vault, "--disk", "d"])
        waitForLockHolder(vault, "disk-d")
        let fourth = try Tool.dv("backup", big, "--vault", vault, "--disk", "d", "--lock-wait", "120")
        third.waitUntilExit()
        XCTAssertEqual(fourth.status, 0, fourth.output)
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
    }

    func testGCWhileABackupRunsLosesNoBlob() throws {
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--kdf-work-factor", "10").status, 0)
        let old = try s.mixedImage("old.img", megabytes: 8)
        XCTAssertEqual(try Tool.dv("backup", old, "--vault", vault, "--disk", "old").status, 0)
        let big = try s.mixedImage("big.img", megabytes: 96)
        let backup = try Tool.start(["backup", big, "--vault", vault, "--disk", "new"])
        waitForLockHolder(vault, "disk-new")
        Thread.sleep(forTimeInterval: 0.1)
        // gc waits for the running backup (which has written blobs no manifest references yet).
        let gc = try Tool.dv("gc", "--vault", vault, "--lock-wait", "120", "--json")
        backup.waitUntilExit()
        XCTAssertEqual(backup.terminationStatus, 0)
        XCTAssertEqual(gc.status, 0, gc.output)
        XCTAssertEqual(try gc.json()["blobsRemoved"] as? Int, 0)
        let verify = try Tool.dv("verify", "--vault", vault)
        XCTAssertEqual(verify.status, 0, verify.output)
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "new", "--target", s.file("r.img")).status, 0)
        XCTAssertTrue(try fileBytesEqual(big, s.file("r.img")))
        // Without --lock-wait, gc refuses while a backup runs, naming it.
        let again = try Tool.start(["backup", big, "--vault", vault, "--disk", "other"])
        waitForLockHolder(vault, "disk-other")
        Thread.sleep(forTimeInterval: 0.05)
        let refused = try Tool.dv("gc", "--vault", vault)
        again.waitUntilExit()
        if refused.status != 0 {
            XCTAssertTrue(refused.stderr.contains("in use by backup"), refused.stderr)
        }
    }

    func testKilledHolderDoesNotBlockAndItsJobShowsFailed() throws {
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--kdf-work-factor", "10").status, 0)
        let big = try s.mixedImage("big.img", megabytes: 96)
        let victim = try Tool.start(["backup", big, "--vault", vault, "--disk", "d"])
        waitForLockHolder(vault, "disk-d")
        Thread.sleep(forTimeInterval: 0.1)
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        XCTAssertEqual(victim.terminationReason, .uncaughtSignal)
        XCTAssertEqual(lockRecords(vault, "disk-d").count, 1, "the dead process left its lock's record")

        let next = try Tool.dv("backup", big, "--vault", vault, "--disk", "d")
        XCTAssertEqual(next.status, 0, next.output)
        XCTAssertTrue(next.stderr.contains("took over a stale lock") && next.stderr.contains("pid \(victim.processIdentifier)"), next.stderr)
        let gc = try Tool.dv("gc", "--vault", vault, "--json")
        XCTAssertEqual(gc.status, 0, gc.output)

        let jobs = try XCTUnwrap(try Tool.dv("jobs", "list", "--vault", vault, "--json").json()["jobs"] as? [[String: Any]])
        let states = jobs.map { "\($0["kind"] ?? "")/\($0["state"] ?? "")" }
        XCTAssertEqual(states, ["backup/failed", "backup/completed", "gc/completed"], "\(jobs)")
        XCTAssertTrue((jobs[0]["error"] as? String ?? "").contains("died"), "\(jobs[0])")
        // A failed job keeps its error.
        let bad = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--point", "nope", "--target", s.file("x.img"))
        XCTAssertEqual(bad.status, 1)
        let last = try XCTUnwrap((try Tool.dv("jobs", "list", "--vault", vault, "--json").json()["jobs"] as? [[String: Any]])?.last)
        XCTAssertEqual(last["kind"] as? String, "restore")
        XCTAssertEqual(last["state"] as? String, "failed")
        XCTAssertTrue((last["error"] as? String ?? "").contains("no recovery point nope"), "\(last)")
        let show = try Tool.dv("jobs", "show", "--vault", vault, last["id"] as! String)
        XCTAssertEqual(show.status, 0)
        XCTAssertTrue(show.stdout.contains("no recovery point nope"))
    }
}
