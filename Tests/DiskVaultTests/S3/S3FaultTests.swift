@testable import DiskVault
import Foundation
import XCTest

/// An object-store vault attacked: a backup killed, the store stopped or a volume server killed under it,
/// credentials that are wrong, rival hosts and a gc at once. Each store here is the test's own.
final class S3FaultTests: XCTestCase {
    /// The vault's points, listed through the CLI.
    func points(_ vault: String, _ env: [String: String] = [:]) throws -> [[String: Any]] {
        let r = try Tool.dv(["points", "--vault", vault, "--json"], environment: env)
        XCTAssertEqual(r.status, 0, r.output)
        return try r.json()["points"] as? [[String: Any]] ?? []
    }

    func verifyClean(_ vault: String, _ env: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws {
        let v = try Tool.dv(["verify", "--vault", vault, "--json"], environment: env)
        XCTAssertEqual(v.status, 0, v.output, file: file, line: line)
        XCTAssertEqual(try v.json()["ok"] as? Bool, true, v.stdout, file: file, line: line)
    }

    /// A store that checks signatures refuses wrong credentials: "access denied" naming the vault, exit 1, and a
    /// backup so refused leaves no point.
    func testWrongCredentialsAreAccessDenied() throws {
        let s = try Scratch(self)
        let config = s.file("identities.json")
        try #"{"identities":[{"name":"dv","credentials":[{"accessKey":"dvkey","secretKey":"dvsecret"}],"actions":["Admin","Read","List","Tagging","Write"]}]}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let store = try S3TestStore.start(s.file("store"), config: config)
        defer { S3TestStore.stop(store) }
        let vault = "s3:\(store.endpoint)/locked/v"
        let right = ["AWS_ACCESS_KEY_ID": "dvkey", "AWS_SECRET_ACCESS_KEY": "dvsecret"]
        let made = try Tool.dv(["vault", "init", vault, "--encryption", "none"], environment: right)
        XCTAssertEqual(made.status, 0, made.output)
        let disk = s.file("d.img")
        try S3VaultTests.makeDisk(disk, seed: 3)

        for wrong in [
            ["AWS_ACCESS_KEY_ID": "dvkey", "AWS_SECRET_ACCESS_KEY": "not-the-secret"],
            ["AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "dvsecret"],
            ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""],
        ] {
            for args in [["points", "--vault", vault], ["backup", disk, "--vault", vault, "--disk", "d"]] {
                let r = try Tool.dv(args, environment: wrong)
                XCTAssertEqual(r.status, 1, "\(wrong) \(args): \(r.output)")
                XCTAssertTrue(r.stderr.contains("access denied") && r.stderr.contains(vault), "\(wrong): \(r.stderr)")
            }
        }
        XCTAssertEqual(try points(vault, right).count, 0)
        let b = try Tool.dv(["backup", disk, "--vault", vault, "--disk", "d"], environment: right)
        XCTAssertEqual(b.status, 0, b.output)
        XCTAssertEqual(try points(vault, right).count, 1)
    }

    /// A backup killed with SIGKILL while it uploads leaves no point; the next backup of the disk waits for the
    /// dead holder's lease to run out, takes its lock over, and succeeds; verify and gc are clean afterwards.
    func testAKilledBackupLeavesNoPointAndItsLeaseRunsOut() throws {
        let s = try Scratch(self)
        let vault = try S3TestStore.newVault(), fifo = s.file("fifo"), disk = s.file("d.img")
        let lease = ["DISKVAULT_LOCK_LEASE": "6"]
        XCTAssertEqual(try Tool.dv(["vault", "init", vault, "--encryption", "none"]).status, 0)
        try S3VaultTests.makeDisk(disk, seed: 4)
        let out = try Tool.sh("""
            mkfifo \(fifo)
            exec 3<>\(fifo)
            DISKVAULT_LOCK_LEASE=6 \(Tool.diskvault) backup - --vault \(vault) --disk d < \(fifo) >/dev/null 2>&1 & b=$!
            head -c 12M \(disk) >&3
            sleep 1.5
            kill -9 $b
            wait $b || echo "killed: $?"
            exec 3>&-
            """)
        XCTAssertTrue(out.contains("killed: 137"), out)
        XCTAssertEqual(try points(vault).count, 0, "no point from a killed backup")
        // The dead run's leases are still in the store: the next run waits them out.
        let again = try Tool.dv(["backup", disk, "--vault", vault, "--disk", "d", "--lock-wait", "60"], environment: lease)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(again.stderr.contains("stale lock"), again.stderr)
        XCTAssertEqual(try points(vault).count, 1)
        try verifyClean(vault)
        let gc = try Tool.dv(["gc", "--vault", vault, "--json", "--lock-wait", "60"], environment: lease)
        XCTAssertEqual(gc.status, 0, gc.output)
        let target = s.file("r.img")
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target).status, 0)
        XCTAssertTrue(try fileBytesEqual(target, disk))
    }

    /// A backup frozen (SIGSTOP) past its lease while it uploads: a gc meanwhile takes the vault over the lapsed
    /// lease and frees the chunks the frozen run uploaded. Woken again, the run must not commit a point that
    /// names them: exit 1, "lock lapsed", no point, and the vault verifies clean; the next backup succeeds.
    func testABackupWhoseLeaseLapsedCommitsNothing() throws {
        let s = try Scratch(self)
        let vault = try S3TestStore.newVault(), fifo = s.file("fifo"), disk = s.file("d.img"), log = s.file("log")
        let loc = try S3Location.parse(vault)
        XCTAssertEqual(try Tool.dv(["vault", "init", vault, "--encryption", "none"]).status, 0)
        try S3VaultTests.makeDisk(disk, seed: 9)
        let out = try Tool.sh("""
            mkfifo \(fifo)
            exec 3<>\(fifo)
            DISKVAULT_LOCK_LEASE=4 DISKVAULT_HOST=frozen \(Tool.diskvault) backup - --vault \(vault) --disk d < \(fifo) 3>&- >/dev/null 2>\(log) & b=$!
            head -c 8M \(disk) >&3
            # Until its first chunk is in the store (an unsigned listing: this store takes any request).
            for i in $(seq 300); do
                curl -s '\(loc.endpoint)/\(loc.bucket)?list-type=2&prefix=\(loc.prefix)/chunks/' | grep -q '<Key>' && break
                sleep 0.1
            done
            kill -STOP $b
            DISKVAULT_LOCK_LEASE=4 DISKVAULT_HOST=gc \(Tool.diskvault) gc --vault \(vault) --json --lock-wait 60 3>&- >\(s.file("gc.json")) 2>\(s.file("gc.log")) || echo "gc failed"
            kill -CONT $b
            # From a subshell: a run that stops at once reads no more, and a write into the full pipe would block.
            (exec tail -c +8388609 \(disk) >&3) & w=$!
            exec 3>&-
            wait $b && echo "status 0" || echo "status $?"
            kill $w 2>/dev/null || true
            wait $w 2>/dev/null || true
            """)
        let message = try String(contentsOfFile: log, encoding: .utf8)
        let gcLog = try String(contentsOfFile: s.file("gc.log"), encoding: .utf8)
        XCTAssertTrue(out.contains("status 1") && !out.contains("gc failed"), out + message + gcLog)
        let gcReport = try Data(contentsOf: URL(fileURLWithPath: s.file("gc.json")))
        let freed = try XCTUnwrap(try JSONSerialization.jsonObject(with: gcReport) as? [String: Any])["blobsRemoved"] as? Int
        XCTAssertGreaterThan(freed ?? 0, 0, "gc freed the frozen run's chunks: \(String(decoding: gcReport, as: UTF8.self))")
        XCTAssertTrue(gcLog.contains("stale lock") && gcLog.contains("frozen") && gcLog.contains("lease ran out"), gcLog)
        XCTAssertTrue(message.contains("lock lapsed") && message.contains(vault), message)
        XCTAssertEqual(try points(vault).count, 0, "no point from a run that lost its lock")
        try verifyClean(vault)
        let again = try Tool.dv(["backup", disk, "--vault", vault, "--disk", "d", "--lock-wait", "60"], environment: ["DISKVAULT_LOCK_LEASE": "4"])
        XCTAssertEqual(again.status, 0, again.output)
        let target = s.file("r.img")
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target).status, 0)
        XCTAssertTrue(try fileBytesEqual(target, disk))
    }

    /// The whole store stopped while a backup uploads: exit 1, a message naming the store, no point; once the
    /// store is back, verify is clean and a backup succeeds.
    func testTheStoreStoppedMidBackup() throws {
        let s = try Scratch(self)
        let store = try S3TestStore.start(s.file("store"))
        defer { S3TestStore.stop(store) }
        let vault = "s3:\(store.endpoint)/gone/v", fifo = s.file("fifo"), disk = s.file("d.img"), log = s.file("log")
        XCTAssertEqual(try Tool.dv(["vault", "init", vault, "--encryption", "none"]).status, 0)
        try S3VaultTests.makeDisk(disk, seed: 5)
        let out = try Tool.sh("""
            mkfifo \(fifo)
            exec 3<>\(fifo)
            DISKVAULT_S3_ATTEMPTS=3 DISKVAULT_LOCK_LEASE=6 \(Tool.diskvault) backup - --vault \(vault) --disk d < \(fifo) 3>&- >/dev/null 2>\(log) & b=$!
            head -c 8M \(disk) >&3
            sleep 1
            \(S3TestStore.script) stop \(store.dir)
            tail -c +8388609 \(disk) >&3
            exec 3>&-
            wait $b && echo "status 0" || echo "status $?"
            """)
        let message = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(out.contains("status 1"), out + message)
        XCTAssertTrue(message.contains(store.endpoint) && (message.contains("cannot be reached") || message.contains("did not answer")), message)
        _ = try S3TestStore.run(["restart", store.dir, "server"])
        XCTAssertEqual(try points(vault).count, 0)
        try verifyClean(vault)
        // The failed run could not remove its leases from a store that was gone: they run out.
        let b = try Tool.dv(["backup", disk, "--vault", vault, "--disk", "d", "--lock-wait", "60"], environment: ["DISKVAULT_LOCK_LEASE": "6"])
        XCTAssertEqual(b.status, 0, b.output)
        try verifyClean(vault)
    }

    /// One of two volume servers (replication 001) killed mid-backup and brought back: the backup completes or
    /// fails with a clear message; either way the vault verifies clean, and a completed point restores exactly.
    func testAVolumeServerKilledMidBackup() throws {
        let s = try Scratch(self)
        let store = try S3TestStore.start(s.file("store"), cluster: true)
        defer { S3TestStore.stop(store) }
        let vault = "s3:\(store.endpoint)/cluster/v", fifo = s.file("fifo"), disk = s.file("d.img"), log = s.file("log")
        XCTAssertEqual(try Tool.dv(["vault", "init", vault, "--encryption", "none"]).status, 0)
        try S3VaultTests.makeDisk(disk, seed: 6)
        let out = try Tool.sh(S3TestStore.closeDescriptors + """
            mkfifo \(fifo)
            exec 3<>\(fifo)
            \(Tool.diskvault) backup - --vault \(vault) --disk d < \(fifo) 3>&- >/dev/null 2>\(log) & b=$!
            head -c 8M \(disk) >&3
            sleep 0.5
            kill -9 $(\(S3TestStore.script) pid \(store.dir) volume2)
            # Not holding the pipe: the restarted daemon would keep it open, and the backup would never see its end.
            (exec 3>&-; sleep 3; \(S3TestStore.script) restart \(store.dir) volume2 >/dev/null 2>&1) & r=$!
            tail -c +8388609 \(disk) >&3
            exec 3>&-
            wait $b && echo "status 0" || echo "status $?"
            wait $r
            """)
        let message = try String(contentsOfFile: log, encoding: .utf8)
        if out.contains("status 0") {
            let target = s.file("r.img")
            XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target).status, 0)
            XCTAssertTrue(try fileBytesEqual(target, disk))
        } else {
            XCTAssertTrue(out.contains("status 1"), out + message)
            XCTAssertTrue(message.contains(store.endpoint), message)
            XCTAssertEqual(try points(vault).count, 0)
        }
        try verifyClean(vault)
    }

    /// Two hosts back up different disks into one vault at the same time, three times each, while gc runs in a
    /// loop: every point verifies, each disk's latest restores exactly, and the jobs name both hosts.
    func testTwoHostsAndAGcAtOnce() throws {
        let s = try Scratch(self)
        let vault = try S3TestStore.newVault()
        XCTAssertEqual(try Tool.dv(["vault", "init", vault, "--encryption", "none"]).status, 0)
        for name in ["a", "b"] { try S3VaultTests.makeDisk(s.file("\(name).img"), seed: name == "a" ? 7 : 8) }
        let out = try Tool.sh("""
            host() {
                for i in 1 2 3; do
                    head -c 1M /dev/urandom | dd of=\(s.path)/$1.img bs=1M seek=$((i * 3)) conv=notrunc status=none
                    cp \(s.path)/$1.img \(s.path)/$1-$i.img
                    DISKVAULT_HOST=host-$1 \(Tool.diskvault) backup \(s.path)/$1-$i.img --vault \(vault) --disk $1 --lock-wait 120 >/dev/null 2>>\(s.path)/$1.log || { echo "backup $1 $i failed"; return 1; }
                done
            }
            host a & pa=$!
            host b & pb=$!
            ( while kill -0 $pa 2>/dev/null || kill -0 $pb 2>/dev/null; do
                DISKVAULT_HOST=host-gc \(Tool.diskvault) gc --vault \(vault) --lock-wait 120 >/dev/null 2>>\(s.path)/gc.log || echo "gc failed"
              done ) & pg=$!
            wait $pa && echo "a done"; wait $pb && echo "b done"; wait $pg
            """)
        XCTAssertTrue(out.contains("a done") && out.contains("b done") && !out.contains("failed"), out)
        let all = try points(vault)
        XCTAssertEqual(all.count, 6)
        try verifyClean(vault)
        for name in ["a", "b"] {
            let target = s.file("\(name)-restored.img")
            XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", name, "--target", target).status, 0)
            XCTAssertTrue(try fileBytesEqual(target, s.file("\(name)-3.img")), name)
        }
        let jobs = try Tool.dv("jobs", "--vault", vault, "--json")
        XCTAssertTrue(jobs.stdout.contains("host-a") && jobs.stdout.contains("host-b") && jobs.stdout.contains("host-gc"), jobs.stdout)
    }
}
