import DiskVault
import Foundation
import XCTest

/// Hostile or changing inputs from the "Trust" issue: a vault whose numbers lie, a source that shrinks while it
/// is read, a chunk lost from the vault, and memory on a disk of many tebibytes.
final class TrustTests: XCTestCase {
    func makeVaultWithPoint(_ s: Scratch, chunkSize: String = "1MiB") throws -> (vault: String, image: String, point: String) {
        let vault = s.file("vault"), image = s.file("disk.img")
        try Tool.sh("""
            head -c 6M /dev/urandom > \(image)
            yes 'a line of a text file on a disk' | head -c 6M >> \(image)
            """)
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", chunkSize, "--encryption", "none").status, 0)
        let r = try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual(r.status, 0, r.output)
        return (vault, image, try XCTUnwrap(try r.json()["id"] as? String))
    }

    func manifestPath(_ vault: String, _ point: String) -> String { "\(vault)/disks/d/points/\(point)/manifest.json" }

    /// Sets a number at `keyPath` of a JSON file, as a hostile or careless edit would.
    func setNumber(_ path: String, _ keyPath: [String], to value: NSNumber) throws {
        func set(_ object: Any, _ keys: ArraySlice<String>) -> Any {
            guard let key = keys.first, var dict = object as? [String: Any] else { return value }
            dict[key] = set(dict[key] ?? [:], keys.dropFirst())
            return dict
        }
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        try JSONSerialization.data(withJSONObject: set(object, keyPath[...])).write(to: URL(fileURLWithPath: path))
    }

    /// Exit 1 (never a signal), the message naming `path` and saying each of `mentions`, no lock left.
    func assertFailsClearly(_ r: RunResult, vault: String, path: String, mentions: [String], _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, "\(what): \(r.output)", file: file, line: line)
        XCTAssertTrue(r.output.contains(path), "\(what) names \(path): \(r.output)", file: file, line: line)
        for m in mentions { XCTAssertTrue(r.output.contains(m), "\(what) says \(m): \(r.output)", file: file, line: line) }
        XCTAssertEqual(lockLeftovers(vault), [], "\(what) leaves no lock", file: file, line: line)
    }

    /// A damaged old point never stops a backup: exit 0, the damaged point named with its problem, no lock left.
    func assertBacksUpNamingTheDamage(_ r: RunResult, vault: String, path: String, mentions: [String], _ what: String,
                                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 0, "\(what): \(r.output)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(path), "\(what) names \(path): \(r.stderr)", file: file, line: line)
        for m in mentions { XCTAssertTrue(r.stderr.contains(m), "\(what) says \(m): \(r.stderr)", file: file, line: line) }
        XCTAssertEqual(lockLeftovers(vault), [], "\(what) leaves no lock", file: file, line: line)
    }

    /// Removes every point but `keep` (what a test's own backups added), by hand.
    func forgetAllBut(_ keep: String, vault: String) throws {
        for id in try FileManager.default.contentsOfDirectory(atPath: "\(vault)/disks/d/points") where id != keep {
            try FileManager.default.removeItem(atPath: "\(vault)/disks/d/points/\(id)")
        }
    }

    // Item 3: vault.json's chunk size not the point's made verify crash (SIGSEGV) and restore carry on.
    func testPointWhoseChunkSizeIsNotTheVaultsIsADamagedPoint() throws {
        let s = try Scratch(self)
        let (vault, image, point) = try makeVaultWithPoint(s)
        let manifest = manifestPath(vault, point)
        for (file, value) in [("\(vault)/vault.json", 2 << 20), (manifest, 64 << 10)] {
            let saved = try Data(contentsOf: URL(fileURLWithPath: file))
            try setNumber(file, ["chunkSize"], to: NSNumber(value: value))
            let verify = try Tool.dv("verify", "--vault", vault, "--json")
            assertFailsClearly(verify, vault: vault, path: manifest, mentions: ["chunkSize"], "verify (\(file))")
            let problems = try XCTUnwrap(try verify.json()["problems"] as? [[String: Any]])
            XCTAssertEqual(problems.first?["kind"] as? String, "point", verify.output)
            XCTAssertEqual(problems.first?["points"] as? [String], ["d@\(point)"])
            let target = s.file("restored.img")
            assertFailsClearly(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target),
                               vault: vault, path: manifest, mentions: ["chunkSize"], "restore (\(file))")
            XCTAssertFalse(FileManager.default.fileExists(atPath: target))
            assertBacksUpNamingTheDamage(try Tool.dv("backup", image, "--vault", vault, "--disk", "d"),
                                         vault: vault, path: manifest, mentions: ["chunkSize"], "backup (\(file))")
            try saved.write(to: URL(fileURLWithPath: file))
            try forgetAllBut(point, vault: vault)
        }
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0, "the vault as it was verifies clean")
    }

    // Item 4: a crafted chunkCount trapped (SIGILL) verify, restore, backup and gc, leaving their locks.
    func testHostileNumbersInAManifestAreCorruptNotACrash() throws {
        let s = try Scratch(self)
        let (vault, image, point) = try makeVaultWithPoint(s)
        let manifest = manifestPath(vault, point)
        let saved = try Data(contentsOf: URL(fileURLWithPath: manifest))
        let cases: [([String], NSNumber)] = [
            (["chunkCount"], NSNumber(value: 500_000_000_000_000_000 as Int64)), (["chunkCount"], -5),
            (["chunkCount"], NSNumber(value: Int64.max)), (["source", "size"], NSNumber(value: UInt64(1) << 62)),
            (["stats", "chunks"], -1), (["stats", "readBytes"], NSNumber(value: UInt64.max)),
        ]
        for (keyPath, value) in cases {
            try saved.write(to: URL(fileURLWithPath: manifest))
            try setNumber(manifest, keyPath, to: value)
            let field = keyPath.joined(separator: "."), what = "\(field) = \(value)"
            assertFailsClearly(try Tool.dv("verify", "--vault", vault), vault: vault, path: manifest, mentions: [field], "verify, \(what)")
            assertFailsClearly(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", s.file("r.img")),
                               vault: vault, path: manifest, mentions: [field], "restore, \(what)")
            // gc keeps every chunk the damaged point's index names, and says which point it is.
            let gc = try Tool.dv("gc", "--vault", vault, "--json")
            XCTAssertEqual(gc.status, 0, "gc, \(what): \(gc.output)")
            XCTAssertEqual(try gc.json()["blobsRemoved"] as? Int, 0, "gc, \(what)")
            XCTAssertTrue(gc.stderr.contains(point), "gc, \(what) names the point: \(gc.stderr)")
            assertBacksUpNamingTheDamage(try Tool.dv("backup", image, "--vault", vault, "--disk", "d"), vault: vault, path: manifest, mentions: [field], "backup, \(what)")
            try forgetAllBut(point, vault: vault)
        }
        try saved.write(to: URL(fileURLWithPath: manifest))
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
    }

    // Item 5: an image truncated from 200 to 100 MiB while read was stored as 200 MiB with zeros, exit 0.
    func testSourceThatShrinksWhileItIsReadFailsTheBackup() throws {
        try Tool.require("strace")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("shrinking.img"), log = s.file("strace.log")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10").status, 0)
        for attempt in 1...3 {
            // 4 KiB of data every 9 MiB: each extent is one read, delayed 100 ms by strace from the third read on
            // (the layout's reads come first), so the front half alone takes over a second to read.
            try Tool.sh("rm -f \(image) \(log); truncate -s 200M \(image); for i in $(seq 0 9 199); do head -c 4096 /dev/urandom | dd of=\(image) bs=1M seek=$i conv=notrunc status=none; done")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try Tool.which("strace"))
            process.arguments = ["-f", "-o", log, "-P", image, "-e", "trace=pread64", "-e", "inject=pread64:delay_enter=100000:when=3+",
                                 Tool.diskvault, "backup", image, "--vault", vault, "--disk", "d", "--threads", "1"]
            process.environment = Tool.childEnvironment()
            let err = Pipe()
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            process.standardError = err
            try process.run()
            // The read of the extent at 9 MiB is done: the reader is in the front half, ten delayed reads from its middle.
            func preads() -> [String] {
                ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init).filter { $0.contains("pread64(") }
            }
            let deadline = Date().addingTimeInterval(60)
            while !preads().contains(where: { $0.contains(", 9437184) = ") }) && process.isRunning && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
            try Tool.sh("truncate -s 100M \(image)")
            let shrunkWhileRunning = process.isRunning
            let readsAtShrink = preads().count
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            // The shrink landed before the read ended only if the backup read on after it.
            guard shrunkWhileRunning && preads().count > readsAtShrink else {
                XCTAssertLessThan(attempt, 3, "the image was never truncated while the backup read it")
                continue
            }
            XCTAssertEqual(process.terminationReason, .exit)
            XCTAssertEqual(process.terminationStatus, 1, stderr)
            XCTAssertTrue(stderr.contains("changed while it was read"), stderr)
            XCTAssertTrue(stderr.contains(image), "names the image: \(stderr)")
            let points = try Tool.dv("points", "--vault", vault, "--disk", "d", "--json")
            XCTAssertEqual((try points.json()["points"] as? [Any])?.count, 0, "no point committed: \(points.output)")
            XCTAssertEqual(treeListing("\(vault)/tmp"), [], "no temporary index left")
            XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
            return
        }
    }

    // Item 10: a missing chunk was never healed: the next backup trusted the previous index.
    func testMissingOrDamagedChunkIsStoredAgainByTheNextBackup() throws {
        let s = try Scratch(self)
        let (vault, image, _) = try makeVaultWithPoint(s)
        let blobs = treeListing("\(vault)/chunks").filter { $0.count == 64 }.sorted()
        XCTAssertGreaterThan(blobs.count, 2)
        // One deleted, one with a byte flipped.
        let missing = blobs[0], damaged = blobs[1]
        try FileManager.default.removeItem(atPath: "\(vault)/chunks/\(missing)")
        try Tool.sh("printf '\\x00\\x00\\x00\\x00' | dd of=\(vault)/chunks/\(damaged) bs=1 seek=40 conv=notrunc status=none")
        let verify = try Tool.dv("verify", "--vault", vault)
        XCTAssertEqual(verify.status, 1, verify.output)
        XCTAssertTrue(verify.stdout.contains(missing) && verify.stdout.contains(damaged), verify.output)

        let again = try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual(again.status, 0, again.output)
        let stats = try XCTUnwrap(try again.json()["stats"] as? [String: Any])
        XCTAssertEqual(stats["newChunks"] as? Int, 2, "both chunks stored again: \(again.output)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(vault)/chunks/\(missing)"))
        let clean = try Tool.dv("verify", "--vault", vault)
        XCTAssertEqual(clean.status, 0, "the damaged blob was replaced, the missing one stored: \(clean.output)")
        let target = s.file("restored.img")
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target).status, 0)
        XCTAssertTrue(try fileBytesEqual(image, target))
        // Healed: a further backup stores nothing.
        let third = try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual((try third.json()["stats"] as? [String: Any])?["newChunks"] as? Int, 0, third.output)
    }

    // Item 10: `repair` heals from the point's source, and names the points that stay damaged when it cannot.
    func testRepairHealsFromTheSourceAndNamesWhatStaysDamaged() throws {
        let s = try Scratch(self)
        let (vault, image, point) = try makeVaultWithPoint(s)
        let victim = try XCTUnwrap(treeListing("\(vault)/chunks").filter { $0.count == 64 }.sorted().last)
        try Tool.sh("head -c 100 /dev/urandom > \(vault)/chunks/\(victim)")
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 1)
        let repair = try Tool.dv("repair", "--vault", vault, "--json")
        XCTAssertEqual(repair.status, 0, repair.output)
        XCTAssertEqual(try repair.json()["healed"] as? [String], [victim])
        XCTAssertEqual(try repair.json()["damagedPoints"] as? [String], [])
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)

        try FileManager.default.removeItem(atPath: "\(vault)/chunks/\(victim)")
        try FileManager.default.moveItem(atPath: image, toPath: s.file("moved.img"))
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 1)
        let stuck = try Tool.dv("repair", "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual(stuck.status, 1, stuck.output)
        XCTAssertEqual(try stuck.json()["stillDamaged"] as? [String], [victim])
        XCTAssertEqual(try stuck.json()["damagedPoints"] as? [String], ["d@\(point)"])
        XCTAssertEqual(lockLeftovers(vault), [])
    }

    // Item 12: version-1 indexes (older vaults) are still read by restore, verify, backup and gc.
    func testPointWithAVersion1IndexIsStillRead() throws {
        let s = try Scratch(self)
        let (vault, image, point) = try makeVaultWithPoint(s)
        let indexPath = "\(vault)/disks/d/points/\(point)/index"
        let v2 = try Array(Data(contentsOf: URL(fileURLWithPath: indexPath)))
        XCTAssertEqual(v2[8], 2, "backups write version 2")
        let v1 = try ChunkIndex.decode(v2, source: indexPath).encoded(version: 1)
        try Data(v1).write(to: URL(fileURLWithPath: indexPath))
        let manifest = manifestPath(vault, point)
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifest))) as? [String: Any])
        object["indexDigest"] = SHA256.digest(v1).hex
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: manifest))

        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
        let target = s.file("restored.img")
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target).status, 0)
        XCTAssertTrue(try fileBytesEqual(image, target))
        let again = try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual((try again.json()["stats"] as? [String: Any])?["newChunks"] as? Int, 0, again.output)
        let gc = try Tool.dv("gc", "--vault", vault, "--json")
        XCTAssertEqual(try gc.json()["blobsRemoved"] as? Int, 0, gc.output)
    }

    /// Peak RSS in KiB of a command run under GNU time, and its result.
    func measured(_ arguments: [String]) throws -> (RunResult, Int) {
        let r = try Tool.run("/usr/bin/time", ["-v", Tool.diskvault] + arguments)
        let line = try XCTUnwrap(r.stderr.split(separator: "\n").first { $0.contains("Maximum resident set size") }, r.output)
        return (r, try XCTUnwrap(Int(line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces))))
    }

    // Item 12: a 15 TiB empty disk took 286 MiB to back up and 268 MiB to restore; its index was 120 MiB.
    func testManyTebibyteSparseDiskInBoundedMemory() throws {
        try Tool.require("time")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("huge.img"), target = s.file("restored.img")
        var size: UInt64 = 15 << 40
        if try Tool.run("/usr/bin/truncate", ["-s", "\(size)", image]).status != 0 {
            size = 4 << 40
            try Tool.sh("truncate -s \(size) \(image)")
        }
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        let (backup, backupKiB) = try measured(["backup", image, "--vault", vault, "--disk", "huge", "--threads", "2", "--json"])
        XCTAssertEqual(backup.status, 0, backup.output)
        let point = try XCTUnwrap(try backup.json()["id"] as? String)
        XCTAssertLessThanOrEqual(backupKiB, 64 << 10, "backup of \(size >> 40) TiB: peak RSS \(backupKiB) KiB")
        let index = try XCTUnwrap(FileSystem.size("\(vault)/disks/huge/points/\(point)/index"))
        XCTAssertLessThan(index, 64 << 10, "index of an empty disk is small: \(index) bytes")
        let (restore, restoreKiB) = try measured(["restore", "--vault", vault, "--disk", "huge", "--target", target, "--threads", "2"])
        XCTAssertEqual(restore.status, 0, restore.output)
        XCTAssertLessThanOrEqual(restoreKiB, 64 << 10, "restore of \(size >> 40) TiB: peak RSS \(restoreKiB) KiB")
        XCTAssertEqual(FileSystem.size(target), size)
        XCTAssertLessThan(try allocatedBytes(target), 1 << 20, "the restored disk is sparse")
        // A second backup reads the previous index in step, in the same bound.
        let (second, secondKiB) = try measured(["backup", image, "--vault", vault, "--disk", "huge", "--threads", "2"])
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertLessThanOrEqual(secondKiB, 64 << 10, "second backup: peak RSS \(secondKiB) KiB")
    }
}
