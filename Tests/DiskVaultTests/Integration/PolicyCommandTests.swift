import Foundation
import XCTest

/// Policies, protected disks, run-due, prune and gc through the command line, at chosen moments
/// (DISKVAULT_NOW stands in for the clock).
final class PolicyCommandTests: XCTestCase {
    func at(_ now: String, _ args: String...) throws -> RunResult {
        try Tool.run(Tool.diskvault, args, environment: ["DISKVAULT_NOW": now])
    }

    func testRunDueRunsEachSlotOnceAndNeverTwice() throws {
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        try Tool.sh("yes 'scheduled disk' | head -c 3M > \(image)")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        let policies = try Tool.dv("policy", "list", "--vault", vault)
        XCTAssertTrue(policies.stdout.contains("Default") && policies.stdout.contains("daily 02:00"), policies.stdout)
        XCTAssertEqual(try Tool.dv("policy", "create", "--vault", vault, "--name", "twice", "--schedule", "daily 02:00,14:00",
                                   "--time-zone", "Europe/Berlin", "--keep-daily", "7").status, 0)
        let bad = try Tool.dv("policy", "create", "--vault", vault, "--name", "bad", "--schedule", "daily 25:00")
        XCTAssertEqual(bad.status, 2, bad.output)
        XCTAssertEqual(try Tool.dv("protect", "add", "--vault", vault, "--disk", "web", "--source", image, "--policy", "twice").status, 0)

        // 02:00 Berlin is 01:00 UTC in November.
        let first = try at("2026-11-20T01:05:00Z", "run-due", "--vault", vault, "--json")
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertTrue(first.stdout.contains("\"completed\""), first.stdout)
        XCTAssertEqual(try at("2026-11-20T01:10:00Z", "run-due", "--vault", vault).stdout, "nothing is due\n")
        XCTAssertEqual(try at("2026-11-20T12:59:00Z", "run-due", "--vault", vault).stdout, "nothing is due\n")
        XCTAssertTrue(try at("2026-11-20T13:00:00Z", "run-due", "--vault", vault).stdout.contains("web: completed"))
        // The machine was off for two days: the missed slots run once, not four times.
        XCTAssertTrue(try at("2026-11-22T20:00:00Z", "run-due", "--vault", vault).stdout.contains("web: completed"))
        XCTAssertEqual(try at("2026-11-22T20:05:00Z", "run-due", "--vault", vault).stdout, "nothing is due\n")

        let points = try XCTUnwrap(try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [[String: Any]])
        XCTAssertEqual(points.count, 3)
        XCTAssertEqual(Set(points.compactMap { $0["trigger"] as? String }), ["scheduled"])
        XCTAssertEqual(Set(points.compactMap { $0["policy"] as? String }), ["twice"])

        // Two run-due at the same moment: one backs up, the other finds it running or done — never two points.
        let a = try Tool.start(["run-due", "--vault", vault])
        _ = a  // environment: the real clock, so the next slot after 2026-11-22 is due now
        let b = try Tool.dv("run-due", "--vault", vault)
        a.waitUntilExit()
        XCTAssertTrue(b.status == 0, b.output)
        let after = try XCTUnwrap(try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [[String: Any]])
        XCTAssertEqual(after.count, 4, "one more point, not two")

        let units = try Tool.dv("schedule", "systemd", "--vault", vault)
        XCTAssertEqual(units.status, 0)
        XCTAssertTrue(units.stdout.contains("OnCalendar=*:0/5") && units.stdout.contains("run-due --vault %I"), units.stdout)
        XCTAssertTrue(units.stdout.contains("OnFailure=diskvault-run-due-failed@%i.service"), units.stdout)
        // The instance is the vault's location as systemd-escape writes it (and %I gives back).
        let listed = try Tool.dv("schedule", "systemd", "--vault", vault, "--json")
        let instance = try XCTUnwrap(try listed.json()["instance"] as? String, listed.output)
        if (try? Tool.which("systemd-escape")) != nil {
            XCTAssertEqual(instance, try Tool.sh("systemd-escape -- '\(vault)'").trimmingCharacters(in: .whitespacesAndNewlines))
            XCTAssertEqual(try Tool.sh("systemd-escape --unescape -- '\(instance)'").trimmingCharacters(in: .whitespacesAndNewlines), vault)
        }
        XCTAssertTrue(units.stdout.contains("enable --now 'diskvault-run-due@\(instance).timer'"), units.stdout)
        let other = try Tool.dv("schedule", "systemd", "--vault", s.file("other"), "--json")
        _ = other  // (no vault there: an error object)
        XCTAssertEqual(other.status, 1)
        let jobs = try XCTUnwrap(try Tool.dv("jobs", "list", "--vault", vault, "--json").json()["jobs"] as? [[String: Any]])
        XCTAssertEqual(jobs.filter { $0["kind"] as? String == "backup" && $0["state"] as? String == "completed" }.count, 4)
    }

    /// Points at chosen days; prune keeps what keep-daily and retain-until say; gc frees exactly the blobs
    /// only removed points needed; every remaining point verifies and restores.
    func testPruneThenGCFreesExactlyWhatNoRemainingPointNeeds() throws {
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10").status, 0)
        // Scheduled points (the rules thin those; on-demand points keep to their own retain-until).
        XCTAssertEqual(try Tool.dv("policy", "create", "--vault", vault, "--name", "p", "--schedule", "daily 09:00,18:00", "--keep-daily", "2").status, 0)
        // A shared 2 MiB stays the same; 1 MiB is new at each point.
        try Tool.sh("head -c 2M /dev/urandom > \(s.file("shared")); cp \(s.file("shared")) \(image)")
        XCTAssertEqual(try at("2026-11-01T08:00:00Z", "protect", "add", "--vault", vault, "--disk", "d", "--source", image, "--policy", "p").status, 0)
        var ids: [String] = []
        var images: [String] = []
        for (n, when) in ["2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z", "2026-11-03T09:00:00Z", "2026-11-03T18:00:00Z", "2026-11-04T10:00:00Z"].enumerated() {
            try Tool.sh("cp \(s.file("shared")) \(image); head -c 1M /dev/urandom >> \(image); cp \(image) \(s.file("image-\(n)"))")
            let r = try at(when, "run-due", "--vault", vault, "--json")
            XCTAssertEqual(r.status, 0, r.output)
            ids.append(try XCTUnwrap((try r.json()["runs"] as? [[String: Any]])?.first?["point"] as? String, r.output))
            images.append(s.file("image-\(n)"))
        }
        XCTAssertEqual(try at("2026-11-04T11:00:00Z", "points", "retain", "--vault", vault, "--disk", "d", "--point", ids[0], "--until", "2027-01-01").status, 0)
        let blobsBefore = treeListing("\(vault)/chunks").filter { $0.count > 60 }.count
        XCTAssertEqual(blobsBefore, 2 + 5)

        let dry = try at("2026-11-05T00:00:00Z", "prune", "--vault", vault, "--dry-run", "--json")
        XCTAssertEqual(dry.status, 0, dry.output)
        let decisions = try XCTUnwrap(((try dry.json()["disks"] as? [[String: Any]])?.first?["decisions"]) as? [[String: Any]])
        let kept = Set(decisions.filter { $0["keep"] as? Bool == true }.compactMap { $0["id"] as? String })
        // keep-daily 2: the newest of Nov 4 and the newest of Nov 3 (18:00); retain-until keeps Nov 1.
        XCTAssertEqual(kept, [ids[4], ids[3], ids[0]])
        let reasons = decisions.first { $0["id"] as? String == ids[0] }?["reasons"] as? [String] ?? []
        XCTAssertTrue(reasons.contains { $0.contains("retain-until") }, "\(reasons)")
        XCTAssertEqual(treeListing("\(vault)/chunks").filter { $0.count > 60 }.count, blobsBefore, "a dry run changes nothing")

        let prune = try at("2026-11-05T00:00:00Z", "prune", "--vault", vault)
        XCTAssertEqual(prune.status, 0, prune.output)
        XCTAssertTrue(prune.stdout.contains("remove \(ids[1])") && prune.stdout.contains("remove \(ids[2])"), prune.stdout)
        let remaining = try XCTUnwrap(try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [[String: Any]]).compactMap { $0["id"] as? String }
        XCTAssertEqual(remaining, [ids[0], ids[3], ids[4]])

        let gc = try Tool.dv("gc", "--vault", vault, "--json")
        XCTAssertEqual(gc.status, 0, gc.output)
        XCTAssertEqual(try gc.json()["blobsRemoved"] as? Int, 2, "the two new MiBs of the removed points")
        XCTAssertEqual(treeListing("\(vault)/chunks").filter { $0.count > 60 }.count, blobsBefore - 2)
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
        for n in [0, 3, 4] {
            let out = s.file("restored-\(n).img")
            XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--point", ids[n], "--target", out).status, 0)
            XCTAssertTrue(try fileBytesEqual(images[n], out))
        }
        // A second gc has nothing left to free.
        XCTAssertEqual(try Tool.dv("gc", "--vault", vault, "--json").json()["blobsRemoved"] as? Int, 0)
    }
}
