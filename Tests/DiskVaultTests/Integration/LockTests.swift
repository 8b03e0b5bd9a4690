import Foundation
import XCTest

/// Locks as an adversary meets them: a stale lock taken over by two runs at once, lock files that are not what
/// they should be, and runs interrupted while they hold locks.
final class LockTests: XCTestCase {

    /// A gc killed while it holds the vault exclusively leaves its lock behind. A backup and a second gc then
    /// both find it stale; with the race window widened (the backup's removal of the stale lock delayed, the
    /// gc's file opens slowed), the gc must still wait for the backup, and the backup's new point keeps every
    /// chunk it needs.
    func testTwoRunsTakingOverOneStaleLockLoseNoChunk() throws {
        try Tool.require("strace")
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--kdf-work-factor", "10").status, 0)
        let old = try s.mixedImage("old.img", megabytes: 4)
        XCTAssertEqual(try Tool.dv("backup", old, "--vault", vault, "--disk", "old").status, 0)
        // Kill a gc when it opens chunks/ to sweep: it holds the exclusive lock then.
        let killed = try Tool.run("strace", ["-f", "-o", "/dev/null", "-P", "\(vault)/chunks", "-e", "trace=openat",
                                             "-e", "inject=openat:signal=SIGKILL:when=1", Tool.diskvault, "gc", "--vault", vault])
        XCTAssertNotEqual(killed.status, 0, "the gc was killed: \(killed.output)")
        XCTAssertFalse(lockRecords(vault).isEmpty, "the killed gc left its lock's record")

        let big = try s.mixedImage("big.img", megabytes: 48)
        // Widen the window as an adversary would: the backup's second unlink (in older builds, its removal of the
        // stale lock) waits 1.5 s and each blob it places 3 ms; the gc, started meanwhile, reaches its sweep
        // (opening chunks/) 2.5 s late, while the backup is writing blobs.
        let backup = try Tool.run("/bin/bash", ["-c", """
            strace -f -o /dev/null -e trace=unlink,renameat2 -e inject=unlink:delay_enter=1500000:when=2 \\
              -e inject=renameat2:delay_enter=3000 \\
              \(Tool.diskvault) backup \(big) --vault \(vault) --disk new --threads 2 > \(s.file("backup.out")) 2>&1 &
            b=$!
            sleep 0.2
            strace -f -o /dev/null -P \(vault)/chunks -e trace=openat -e inject=openat:delay_enter=2500000 \\
              \(Tool.diskvault) gc --vault \(vault) --lock-wait 120 > \(s.file("gc.out")) 2>&1
            g=$?
            wait $b
            echo "backup=$? gc=$g"
            """])
        let outputs = (try? String(contentsOfFile: s.file("backup.out"), encoding: .utf8)) ?? ""
        let gcOut = (try? String(contentsOfFile: s.file("gc.out"), encoding: .utf8)) ?? ""
        XCTAssertTrue(backup.stdout.contains("backup=0 gc=0"), "\(backup.output)\n\(outputs)\n\(gcOut)")
        let verify = try Tool.dv("verify", "--vault", vault)
        XCTAssertEqual(verify.status, 0, "the new point lost chunks to gc: \(verify.output)\n\(gcOut)")
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "new", "--target", s.file("r.img")).status, 0)
        XCTAssertTrue(try fileBytesEqual(big, s.file("r.img")))
    }

    /// Odd files where a lock's files go: garbage, a directory, a dangling symbolic link. Nothing waits on them
    /// forever; a lock file that is not a regular file is refused at once, naming it; nothing outside the vault
    /// is touched through a link.
    func testOddLockFilesAreReportedAndNeverWaitedOnForever() throws {
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--kdf-work-factor", "10").status, 0)
        let image = try s.mixedImage("disk.img", megabytes: 2)
        XCTAssertEqual(try Tool.dv("backup", image, "--vault", vault, "--disk", "d").status, 0)
        let locks = "\(vault)/locks"
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: true)
        let outside = s.file("outside.txt")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: outside))

        func runBounded(_ args: [String]) throws -> RunResult {
            // `timeout` only catches a hang (exit 124); no run is judged by how long it took.
            try Tool.run("/usr/bin/timeout", ["60", Tool.diskvault] + args)
        }
        func reset() {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: locks)) ?? [] {
                try? FileManager.default.removeItem(atPath: "\(locks)/\(name)")
            }
        }
        // Leftovers of an older build's lock files: information only; gc removes them and says so.
        let legacy: [(String, () throws -> Void)] = [
            ("70 KB of garbage", { try Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: URL(fileURLWithPath: "\(locks)/exclusive.json")) }),
            ("a directory", { try FileManager.default.createDirectory(atPath: "\(locks)/exclusive.json", withIntermediateDirectories: false) }),
            ("a dangling link", { try FileManager.default.createSymbolicLink(atPath: "\(locks)/exclusive.json", withDestinationPath: "\(s.path)/nowhere") }),
        ]
        for (what, make) in legacy {
            reset()
            try make()
            let backup = try runBounded(["backup", image, "--vault", vault, "--disk", "d", "--lock-wait", "1"])
            XCTAssertEqual(backup.status, 0, "\(what): \(backup.output)")
            for command in [["prune", "--vault", vault, "--lock-wait", "1"], ["gc", "--vault", vault, "--lock-wait", "1"]] {
                let r = try runBounded(command)
                XCTAssertEqual(r.status, 0, "\(what), \(command[0]): \(r.output)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(locks)/exclusive.json") || (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(locks)/exclusive.json")) != nil,
                           "\(what): gc removed the old lock file")
        }
        // The lock files themselves: a directory or a link in their place is an error, at once, never a wait.
        let odd: [(String, (String) throws -> Void)] = [
            ("a directory", { try FileManager.default.createDirectory(atPath: $0, withIntermediateDirectories: false) }),
            ("a dangling link", { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: "\(s.path)/nowhere") }),
            ("a link out of the vault", { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: outside) }),
        ]
        for name in ["vault.lock", "intent.lock", "disk-d.lock"] {
            for (what, make) in odd {
                reset()
                try make("\(locks)/\(name)")
                for command in [["backup", image, "--vault", vault, "--disk", "d", "--lock-wait", "30"], ["gc", "--vault", vault, "--lock-wait", "30"]] {
                    if name == "disk-d.lock" && command[0] == "gc" { continue }
                    let r = try runBounded(command)
                    XCTAssertEqual(r.status, 1, "\(name) as \(what), \(command[0]): \(r.output)")
                    XCTAssertTrue(r.stderr.contains("lock file is not a regular file") && r.stderr.contains("\(locks)/\(name)"),
                                  "\(name) as \(what), \(command[0]): names it: \(r.stderr)")
                }
            }
        }
        XCTAssertEqual(try String(contentsOfFile: outside, encoding: .utf8), "keep me", "nothing written through a link")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(s.path)/nowhere"), "nothing created through a dangling link")
        reset()
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
    }

    /// A backup killed at each of its first system calls that touch locks/ leaves no file there but the lock files
    /// and at most its own record, which the next exclusive holder removes and reports.
    func testKillsWhileTakingLocksLeaveNothingButReportedRecords() throws {
        try Tool.require("strace")
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--kdf-work-factor", "10").status, 0)
        let image = try s.mixedImage("disk.img", megabytes: 2)
        for n in 1...8 {
            _ = try Tool.run("strace", ["-f", "-o", "/dev/null", "-P", "\(vault)/locks", "-e", "inject=all:signal=SIGKILL:when=\(n)",
                                        Tool.diskvault, "backup", image, "--vault", vault, "--disk", "d"])
            let left = lockLeftovers(vault)
            XCTAssertTrue(left.allSatisfy { $0.hasSuffix(".json") && $0.contains("@") }, "kill at call \(n) left only records: \(left)")
            let gc = try Tool.dv("gc", "--vault", vault)
            XCTAssertEqual(gc.status, 0, gc.output)
            if left.contains(where: { $0.hasPrefix("vault@") }) {
                XCTAssertTrue(gc.stderr.contains("took over"), "kill at call \(n): the stale record is reported: \(gc.stderr)")
            }
            XCTAssertEqual(lockRecords(vault, "vault"), [], "gc removed every stale vault record")
            let next = try Tool.dv("backup", image, "--vault", vault, "--disk", "d")
            XCTAssertEqual(next.status, 0, next.output)
            XCTAssertEqual(lockLeftovers(vault), [], "a run that ends well leaves nothing")
        }
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
    }
}
