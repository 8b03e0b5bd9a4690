import Foundation
import XCTest

/// A vault edited by hand, as an attacker with write access to it or a careless operator would: crafted and
/// damaged manifests, damaged indexes, a point from the future, stray entries. Nothing outside the vault is
/// touched, one bad point stops nothing else, and each oddity is named.
final class HostileVaultTests: XCTestCase {
    struct Vault {
        let s: Scratch
        let path: String
        let image: String

        init(_ test: XCTestCase) throws {
            s = try Scratch(test)
            path = s.file("vault")
            image = s.file("disk.img")
            XCTAssertEqual(try Tool.dv("vault", "init", path, "--chunk-size", "64KiB", "--encryption", "none").status, 0)
        }

        /// A backup of a fresh 1 MiB image (half random, half text); its point id.
        @discardableResult
        func backup(disk: String = "d", now: String? = nil) throws -> String {
            try Tool.sh("head -c 512K /dev/urandom > \(image); yes 'a line of text' | head -c 512K >> \(image)")
            let r = try Tool.run(Tool.diskvault, ["backup", image, "--vault", path, "--disk", disk, "--json"],
                                 environment: now.map { ["DISKVAULT_NOW": $0] } ?? [:])
            XCTAssertEqual(r.status, 0, r.output)
            return try XCTUnwrap(try r.json()["id"] as? String)
        }

        func pointDir(_ id: String, disk: String = "d") -> String { "\(path)/disks/\(disk)/points/\(id)" }

        /// Rewrites one field of a point's manifest, as a hand edit would.
        func editManifest(_ id: String, _ python: String, disk: String = "d") throws {
            let file = "\(pointDir(id, disk: disk))/manifest.json"
            let script = s.file("edit-\(UUID().uuidString.prefix(6)).py")
            try "import json, sys\nm = json.load(open(sys.argv[1]))\n\(python)\njson.dump(m, open(sys.argv[1], 'w'))\n"
                .write(toFile: script, atomically: true, encoding: .utf8)
            try Tool.sh("python3 \(script) \(file)")
        }

        func blobCount() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(path)/chunks")) ?? []).filter { $0.count == 64 }.count
        }
    }

    /// A manifest whose id climbs out of the vault: prune never follows it; the folder name says which point it
    /// is, so the manifest is damaged, reported, and left alone; forget refuses an id that is not a folder name.
    func testAManifestIdThatClimbsOutOfTheVaultIsNeverFollowed() throws {
        let v = try Vault(self)
        let first = try v.backup()
        try v.backup()
        try v.backup()
        let evil = v.s.file("evil")
        try FileManager.default.createDirectory(atPath: evil, withIntermediateDirectories: true)
        try Data("precious".utf8).write(to: URL(fileURLWithPath: "\(evil)/file"))
        try v.editManifest(first, "m['id']='../../../../evil'")
        XCTAssertEqual(try Tool.dv("policy", "create", "--vault", v.path, "--name", "one", "--schedule", "daily 03:00", "--keep-last", "1").status, 0)
        XCTAssertEqual(try Tool.dv("protect", "add", "--vault", v.path, "--disk", "d", "--source", v.image, "--policy", "one").status, 0)

        let prune = try Tool.dv("prune", "--vault", v.path, "--json")
        XCTAssertEqual(prune.status, 0, prune.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(evil)/file"), "nothing outside the vault removed")
        XCTAssertTrue(prune.stderr.contains(first) && prune.stderr.contains("damaged"), "the crafted point is named: \(prune.stderr)")
        let disks = try XCTUnwrap(try prune.json()["disks"] as? [[String: Any]])
        let decisions = try XCTUnwrap(disks.first?["decisions"] as? [[String: Any]])
        XCTAssertEqual(decisions.count, 2, "only the two sound points are decided on")
        XCTAssertTrue(FileManager.default.fileExists(atPath: v.pointDir(first)), "the damaged point is left for a person to judge")

        for bad in ["../../../../evil", "..", "../d/points/\(first)", ".hidden", "a/b"] {
            let forget = try Tool.dv("points", "forget", "--vault", v.path, "--disk", "d", "--point", bad)
            XCTAssertNotEqual(forget.status, 0, "forget \(bad): \(forget.output)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(evil)/file"))
        let forget = try Tool.dv("points", "forget", "--vault", v.path, "--disk", "d", "--point", first)
        XCTAssertEqual(forget.status, 0, forget.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: v.pointDir(first)))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(evil)/file"))
        XCTAssertEqual(try Tool.dv("verify", "--vault", v.path).status, 0)
    }

    /// One damaged old point: new backups go on, prune and gc go on (gc keeps every chunk the damaged point's
    /// index names), verify names it, and `points forget` removes it. When even its index is unreadable, gc
    /// frees nothing and says why.
    func testADamagedPointStopsNothingAndCanBeForgotten() throws {
        let v = try Vault(self)
        let old = try v.backup()
        let oldImage = v.s.file("old.img")
        try FileManager.default.copyItem(atPath: v.image, toPath: oldImage)
        try v.backup()
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: "\(v.pointDir(old))/manifest.json"))

        XCTAssertNotNil(try? v.backup(), "a new backup goes on")
        let list = try Tool.dv("points", "--vault", v.path, "--json")
        XCTAssertEqual(list.status, 0, list.output)
        XCTAssertTrue(list.stderr.contains(old) && list.stderr.contains("damaged"), list.stderr)
        XCTAssertEqual((try list.json()["points"] as? [Any])?.count, 2)
        let gc = try Tool.dv("gc", "--vault", v.path, "--json")
        XCTAssertEqual(gc.status, 0, gc.output)
        XCTAssertEqual(try gc.json()["blobsRemoved"] as? Int, 0, "the damaged point's chunks are kept")
        let prune = try Tool.dv("prune", "--vault", v.path, "--dry-run")
        XCTAssertEqual(prune.status, 0, prune.output)
        XCTAssertTrue(prune.stderr.contains(old), "prune names the damaged point: \(prune.stderr)")
        let verify = try Tool.dv("verify", "--vault", v.path, "--json")
        XCTAssertEqual(verify.status, 1, verify.output)
        let problems = try XCTUnwrap(try verify.json()["problems"] as? [[String: Any]])
        XCTAssertEqual(problems.count, 1, "\(problems)")
        XCTAssertEqual(problems.first?["points"] as? [String], ["d@\(old)"])

        // The latest point's index damaged too: the next backup still goes on.
        let latest = try XCTUnwrap((try Tool.dv("points", "--vault", v.path, "--json").json()["points"] as? [[String: Any]])?.last?["id"] as? String)
        try Tool.sh("printf 'X' | dd of=\(v.pointDir(latest))/index bs=1 seek=40 conv=notrunc status=none")
        let next = try Tool.dv("backup", v.image, "--vault", v.path, "--disk", "d")
        XCTAssertEqual(next.status, 0, next.output)

        // The damaged point's index cut short as well: its chunks cannot be known, so gc frees nothing.
        try Tool.sh("truncate -s 5 \(v.pointDir(old))/index")
        let blobs = v.blobCount()
        let refused = try Tool.dv("gc", "--vault", v.path)
        XCTAssertEqual(refused.status, 1, refused.output)
        XCTAssertTrue(refused.stderr.contains(old) && refused.stderr.contains("points forget"), refused.stderr)
        XCTAssertEqual(v.blobCount(), blobs, "gc freed nothing it could not prove unneeded")

        let forget = try Tool.dv("points", "forget", "--vault", v.path, "--disk", "d", "--point", old)
        XCTAssertEqual(forget.status, 0, forget.output)
        let forgetLatest = try Tool.dv("points", "forget", "--vault", v.path, "--disk", "d", "--point", latest)
        XCTAssertEqual(forgetLatest.status, 0, forgetLatest.output)
        XCTAssertEqual(try Tool.dv("gc", "--vault", v.path).status, 0)
        let clean = try Tool.dv("verify", "--vault", v.path)
        XCTAssertEqual(clean.status, 0, clean.output)
        XCTAssertEqual(try Tool.dv("restore", "--vault", v.path, "--disk", "d", "--target", v.s.file("r.img")).status, 0)
        XCTAssertTrue(try fileBytesEqual(v.image, v.s.file("r.img")))
    }

    /// A point dated in the future by a wrong clock: named, ordered by commit, never "latest" for good, and never
    /// the reason prune removes the newer real point.
    func testAPointFromTheFutureNeverOutranksNewerPoints() throws {
        let v = try Vault(self)
        try v.backup(now: "2026-11-01T10:00:00Z")
        let future = try v.backup(now: "2031-06-01T10:00:00Z")
        let futureImage = v.s.file("future.img")
        try FileManager.default.copyItem(atPath: v.image, toPath: futureImage)
        let real = try v.backup(now: "2026-11-02T10:00:00Z")
        let env = ["DISKVAULT_NOW": "2026-11-02T12:00:00Z"]

        let list = try Tool.run(Tool.diskvault, ["points", "--vault", v.path, "--json"], environment: env)
        let ids = try XCTUnwrap(try list.json()["points"] as? [[String: Any]]).compactMap { $0["id"] as? String }
        XCTAssertEqual(ids.last, real, "the last committed point is the newest")
        XCTAssertTrue(list.stderr.contains(future) && list.stderr.contains("future"), list.stderr)
        let restore = try Tool.dv("restore", "--vault", v.path, "--disk", "d", "--target", v.s.file("latest.img"))
        XCTAssertEqual(restore.status, 0, restore.output)
        XCTAssertTrue(try fileBytesEqual(v.image, v.s.file("latest.img")), "latest is the real newest point")

        XCTAssertEqual(try Tool.dv("policy", "create", "--vault", v.path, "--name", "one", "--schedule", "daily 03:00", "--keep-last", "1").status, 0)
        XCTAssertEqual(try Tool.dv("protect", "add", "--vault", v.path, "--disk", "d", "--source", v.image, "--policy", "one").status, 0)
        // On-demand points are kept 30 days: a month on, the rules would remove all three, so the newest stays, and
        // the newest is the real one, not the one dated in 2031.
        let prune = try Tool.run(Tool.diskvault, ["prune", "--vault", v.path], environment: ["DISKVAULT_NOW": "2026-12-05T12:00:00Z"])
        XCTAssertEqual(prune.status, 0, prune.output)
        let kept = try XCTUnwrap(try Tool.dv("points", "--vault", v.path, "--json").json()["points"] as? [[String: Any]]).compactMap { $0["id"] as? String }
        XCTAssertEqual(kept, [real], "prune kept the real newest point")
    }

    /// Stray things: a file and an oddly named folder under disks/, a directory where a blob should be. Verify
    /// names them and goes on (exit 1 for the damaged chunk, never 2); gc goes on.
    func testStrayEntriesAreReportedAndNeverStopVerifyOrGC() throws {
        let v = try Vault(self)
        try v.backup()
        try Data("notes".utf8).write(to: URL(fileURLWithPath: "\(v.path)/disks/notes.txt"))
        try FileManager.default.createDirectory(atPath: "\(v.path)/disks/bad name", withIntermediateDirectories: true)
        let blob = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: "\(v.path)/chunks").first { $0.count == 64 })
        try FileManager.default.removeItem(atPath: "\(v.path)/chunks/\(blob)")
        try FileManager.default.createDirectory(atPath: "\(v.path)/chunks/\(blob)/inside", withIntermediateDirectories: true)
        // An unreferenced directory named like a blob, that gc cannot remove.
        let stray = String(repeating: "ab", count: 32)
        try FileManager.default.createDirectory(atPath: "\(v.path)/chunks/\(stray)/inside", withIntermediateDirectories: true)

        let verify = try Tool.dv("verify", "--vault", v.path)
        XCTAssertEqual(verify.status, 1, verify.output)
        XCTAssertTrue(verify.stdout.contains(blob) && verify.stdout.contains("DAMAGED"), verify.output)
        XCTAssertTrue(verify.stderr.contains("bad name"), "the stray folder is named: \(verify.stderr)")
        let gc = try Tool.dv("gc", "--vault", v.path)
        XCTAssertEqual(gc.status, 0, gc.output)
        XCTAssertTrue(gc.stderr.contains(stray), "what gc could not remove is named: \(gc.stderr)")
        let points = try Tool.dv("points", "--vault", v.path)
        XCTAssertEqual(points.status, 0, points.output)
    }
}
