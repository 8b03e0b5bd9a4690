@testable import DiskVault
import Foundation
import XCTest

/// Vaults in a real object store (SeaweedFS over S3 on loopback), driven through the command line as a user
/// drives them, and judged against a local vault given the same work.
final class S3VaultTests: XCTestCase {
    /// A disk of random, compressible and zero regions, 24 MiB (six 4 MiB chunks).
    static func makeDisk(_ path: String, seed: Int) throws {
        try Tool.sh("""
            head -c 8M /dev/urandom > \(path)
            yes "diskvault \(seed) compressible line" | head -c 8M >> \(path)
            truncate -s 24M \(path)
            """)
    }

    /// The names of every blob under chunks/ of the vault at `location`.
    static func blobs(_ location: String) throws -> [String] {
        let storage: any VaultStorage = S3Location.isS3(location) ? try S3Storage(try S3Location.parse(location)) : LocalStorage(root: location)
        return try storage.list("chunks").sorted()
    }

    static func pointIDs(_ vault: String, _ env: [String: String] = [:]) throws -> [String] {
        let points = try Tool.dv(["points", "--vault", vault, "--json"], environment: env).json()["points"] as? [[String: Any]] ?? []
        return points.compactMap { $0["id"] as? String }
    }

    /// Backup, a second backup, restore, verify, forget and gc give the same answers on S3 as on a local vault:
    /// the same blobs, the same bytes restored, the same counts freed.
    func testAnS3VaultDoesWhatALocalVaultDoes() throws {
        let s = try Scratch(self)
        let local = s.file("local"), remote = try S3TestStore.newVault()
        let disk = s.file("disk.img")
        try Self.makeDisk(disk, seed: 1)
        for vault in [local, remote] {
            let made = try Tool.dv("vault", "init", vault, "--encryption", "none")
            XCTAssertEqual(made.status, 0, made.output)
        }
        // The first backup, then one after 1 MiB of its random data changed (a chunk the first point alone holds).
        var firstStats: [[String: Any]] = []
        for vault in [local, remote] {
            let b = try Tool.dv("backup", disk, "--vault", vault, "--disk", "web", "--json")
            XCTAssertEqual(b.status, 0, b.output)
            firstStats.append(try b.json()["stats"] as? [String: Any] ?? [:])
        }
        XCTAssertEqual(firstStats[0]["newChunks"] as? Int, firstStats[1]["newChunks"] as? Int, "\(firstStats)")
        try Tool.sh("head -c 1M /dev/urandom | dd of=\(disk) bs=1M seek=4 conv=notrunc status=none")
        for vault in [local, remote] {
            let b = try Tool.dv("backup", disk, "--vault", vault, "--disk", "web", "--json")
            XCTAssertEqual(b.status, 0, b.output)
            XCTAssertEqual((try b.json()["stats"] as? [String: Any])?["newChunks"] as? Int, 1, b.stdout)
        }
        XCTAssertEqual(try Self.blobs(local), try Self.blobs(remote), "the same chunks, named the same")
        XCTAssertEqual(try Self.pointIDs(local).count, 2)
        XCTAssertEqual(try Self.pointIDs(remote).count, 2)

        // Restore of the latest is the disk, byte for byte; verify finds nothing wrong.
        for (i, vault) in [local, remote].enumerated() {
            let target = s.file("restored-\(i).img")
            let r = try Tool.dv("restore", "--vault", vault, "--disk", "web", "--target", target)
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(try fileBytesEqual(target, disk), "restore from \(vault)")
            let v = try Tool.dv("verify", "--vault", vault, "--json")
            XCTAssertEqual(v.status, 0, v.output)
            XCTAssertEqual(try v.json()["ok"] as? Bool, true)
        }

        // Forget the first point, collect: the same blob is freed on both.
        var freed: [Int] = []
        for vault in [local, remote] {
            let first = try XCTUnwrap(try Self.pointIDs(vault).first)
            XCTAssertEqual(try Tool.dv("points", "forget", "--vault", vault, "--disk", "web", "--point", first).status, 0)
            let gc = try Tool.dv("gc", "--vault", vault, "--json")
            XCTAssertEqual(gc.status, 0, gc.output)
            freed.append(try gc.json()["blobsRemoved"] as? Int ?? -1)
        }
        XCTAssertEqual(freed, [1, 1])
        XCTAssertEqual(try Self.blobs(local), try Self.blobs(remote))
        let jobs = try Tool.dv("jobs", "--vault", remote, "--json")
        XCTAssertEqual(jobs.status, 0, jobs.output)
        XCTAssertTrue(jobs.stdout.contains("\"gc\""), jobs.stdout)
    }

    /// An encrypted vault in the store: nothing of the disk in clear in any object, and restore is exact.
    func testAnEncryptedS3VaultHoldsNothingInClear() throws {
        let s = try Scratch(self)
        let remote = try S3TestStore.newVault(), disk = s.file("disk.img")
        try Self.makeDisk(disk, seed: 2)
        XCTAssertEqual(try Tool.dv("vault", "init", remote, "--kdf-work-factor", "10").status, 0)
        let b = try Tool.dv("backup", disk, "--vault", remote, "--disk", "db")
        XCTAssertEqual(b.status, 0, b.output)
        // Every object, read raw from the store, holds no run of the disk's compressible text nor its name.
        let raw = try S3Storage(try S3Location.parse(remote))
        // Every object of the vault, from one flat listing (no folders).
        let loc = try S3Location.parse(remote)
        let page = try raw.listPage(prefix: loc.prefix + "/", delimiter: nil, token: nil, maxKeys: 1000)
        XCTAssertFalse(page.isTruncated)
        let keys = page.objects.map { String($0.key.dropFirst(loc.prefix.count + 1)) }.filter { !$0.hasSuffix("/") }
        XCTAssertGreaterThan(keys.count, 6, "\(keys)")
        for key in keys where key != "vault.json" {
            let bytes = try raw.get(key, limit: 16 << 20)
            let text = String(decoding: bytes, as: UTF8.self)
            XCTAssertFalse(text.contains("compressible line"), key)
            XCTAssertFalse(text.contains("\"db\""), key)
        }
        let target = s.file("r.img")
        XCTAssertEqual(try Tool.dv("restore", "--vault", remote, "--disk", "db", "--target", target).status, 0)
        XCTAssertTrue(try fileBytesEqual(target, disk))
    }

    /// `copy` from an encrypted local vault to a clear S3 vault and on to a local vault of another passphrase:
    /// every copied point restores exactly, and a second copy transfers nothing.
    func testCopyToS3AndBackRestoresExactlyAndASecondCopySendsNothing() throws {
        let s = try Scratch(self)
        let first = s.file("first"), remote = try S3TestStore.newVault(), back = s.file("back")
        let other = s.file("other-pass")
        try "another passphrase".write(toFile: other, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Tool.dv("vault", "init", first, "--kdf-work-factor", "10").status, 0)
        XCTAssertEqual(try Tool.dv("vault", "init", remote, "--encryption", "none").status, 0)
        XCTAssertEqual(try Tool.dv("vault", "init", back, "--kdf-work-factor", "10", "--passphrase-file", other).status, 0)
        let disks = [s.file("a.img"), s.file("b.img")]
        try Self.makeDisk(disks[0], seed: 9)
        XCTAssertEqual(try Tool.dv("backup", disks[0], "--vault", first, "--disk", "a").status, 0)
        try Tool.sh("cp \(disks[0]) \(disks[1]) && head -c 1M /dev/urandom | dd of=\(disks[1]) bs=1M seek=2 conv=notrunc status=none")
        XCTAssertEqual(try Tool.dv("backup", disks[1], "--vault", first, "--disk", "b").status, 0)

        func copy(_ args: [String]) throws -> [String: Any] {
            let r = try Tool.dv(["copy", "--json"] + args)
            XCTAssertEqual(r.status, 0, r.output)
            return try r.json()
        }
        let out = try copy(["--from", first, "--to", remote])
        XCTAssertEqual((out["copied"] as? [String])?.count, 2, "\(out)")
        // b shares all but one chunk with a: sent once.
        XCTAssertEqual(out["chunksCopied"] as? Int, 5, "\(out)")
        let again = try copy(["--from", first, "--to", remote])
        XCTAssertEqual((again["copied"] as? [String])?.count, 0)
        XCTAssertEqual(again["chunksCopied"] as? Int, 0)
        XCTAssertEqual(again["alreadyThere"] as? Int, 2)

        let home = try copy(["--from", remote, "--to", back, "--passphrase-file", other, "--disk", "b"])
        XCTAssertEqual((home["copied"] as? [String])?.count, 1)
        for (vault, disk, image, env) in [(remote, "a", disks[0], [String: String]()), (remote, "b", disks[1], [:]), (back, "b", disks[1], ["DISKVAULT_PASSPHRASE": "another passphrase"])] {
            let target = s.file("r-\(disk)-\(UUID().uuidString.prefix(4)).img")
            let r = try Tool.dv(["restore", "--vault", vault, "--disk", disk, "--target", target], environment: env)
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(try fileBytesEqual(target, image), "\(vault) \(disk)")
            let v = try Tool.dv(["verify", "--vault", vault], environment: env)
            XCTAssertEqual(v.status, 0, v.output)
        }
        // Vaults of different chunk sizes, and a vault copied onto itself, are refused.
        let small = s.file("small")
        XCTAssertEqual(try Tool.dv("vault", "init", small, "--encryption", "none", "--chunk-size", "1MiB").status, 0)
        let refused = try Tool.dv("copy", "--from", remote, "--to", small)
        XCTAssertEqual(refused.status, 2, refused.output)
        XCTAssertTrue(refused.stderr.contains("chunk size"), refused.stderr)
        XCTAssertEqual(try Tool.dv("copy", "--from", remote, "--to", remote).status, 2)
    }

    /// A copy killed (SIGKILL at its third rename, mid-chunks) leaves no point in the target; the next copy
    /// takes up where it stopped, sending only what is missing, and its point restores exactly.
    func testAKilledCopyIsTakenUpWhereItStopped() throws {
        try Tool.require("strace")
        let s = try Scratch(self)
        let from = s.file("from"), to = s.file("to"), disk = s.file("d.img")
        for v in [from, to] { XCTAssertEqual(try Tool.dv("vault", "init", v, "--encryption", "none").status, 0) }
        try Self.makeDisk(disk, seed: 10)
        XCTAssertEqual(try Tool.dv("backup", disk, "--vault", from, "--disk", "d").status, 0)
        let killed = try Tool.run("strace", ["-f", "-o", "/dev/null", "-e", "trace=renameat2,rename,renameat", "-e", "inject=renameat2,rename,renameat:signal=SIGKILL:when=3",
                                             Tool.diskvault, "copy", "--from", from, "--to", to])
        XCTAssertNotEqual(killed.status, 0, killed.output)
        XCTAssertEqual(try Self.pointIDs(to).count, 0, "no point from a killed copy")
        let stored = try Self.blobs(to).count
        XCTAssertGreaterThan(stored, 0, "the killed copy had stored chunks")
        let r = try Tool.dv("copy", "--from", from, "--to", to, "--json")
        XCTAssertEqual(r.status, 0, r.output)
        let report = try r.json()
        XCTAssertEqual((report["copied"] as? [String])?.count, 1)
        XCTAssertEqual(report["chunksAlreadyThere"] as? Int, stored, "\(report)")
        XCTAssertEqual((report["chunksCopied"] as? Int ?? 0) + stored, 4, "\(report)")
        let target = s.file("r.img")
        XCTAssertEqual(try Tool.dv("restore", "--vault", to, "--disk", "d", "--target", target).status, 0)
        XCTAssertTrue(try fileBytesEqual(target, disk))
        XCTAssertEqual(try Tool.dv("verify", "--vault", to).status, 0)
    }

    /// The scheduling and key commands on an encrypted S3 vault, as on a local one: a policy, a protected LUKS2
    /// disk with its key vault, run-due at two moments, prune by the policy, gc, the disk's key deleted and
    /// put back by `keys restore`, and the latest point restored exactly.
    func testPoliciesRunDuePruneAndKeysRestoreOnAnS3Vault() throws {
        try Tool.require("cryptsetup")
        let t = try EncryptedBackupTests.Setup(self, vault: try S3TestStore.newVault())
        func at(_ now: String, _ args: [String]) throws -> RunResult {
            try Tool.run(Tool.diskvault, args, environment: ["DISKVAULT_NOW": now])
        }
        let image = t.s.file("luks2.img"), key = t.s.file("key")
        let uuid = try Images.luks2(image, key: key)
        try t.run("keyvault", "secret", "set", t.kv, "--name", "k", "--file", key, "--volume", uuid)
        try t.run("policy", "create", "--vault", t.vault, "--name", "nightly", "--schedule", "daily 03:00", "--keep-daily", "1")
        let add = try Tool.run(Tool.diskvault, ["protect", "add", "--vault", t.vault, "--disk", "enc", "--source", image, "--policy", "nightly"] + t.asBackup)
        XCTAssertEqual(add.status, 0, add.output)

        let first = try at("2026-11-20T03:30:00Z", ["run-due", "--vault", t.vault])
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertTrue(first.stdout.contains("enc: completed"), first.stdout)
        XCTAssertEqual(try at("2026-11-20T03:40:00Z", ["run-due", "--vault", t.vault]).stdout, "nothing is due\n")
        // New ciphertext (1 MiB) before the next night's run.
        try Tool.sh("head -c 1M /dev/urandom | dd of=\(image) bs=1M seek=9 conv=notrunc status=none")
        let second = try at("2026-11-21T03:30:00Z", ["run-due", "--vault", t.vault])
        XCTAssertEqual(second.status, 0, second.output)
        let points = try XCTUnwrap(try Tool.dv("points", "--vault", t.vault, "--disk", "enc", "--json").json()["points"] as? [[String: Any]])
        XCTAssertEqual(points.count, 2)
        XCTAssertEqual(Set(points.compactMap { $0["trigger"] as? String }), ["scheduled"])
        let volume = ((points.last?["keyBackup"] as? [String: Any])?["volumes"] as? [[String: Any]])?.first
        XCTAssertEqual(volume?["check"] as? String, "fits")
        // The day's view on an object store: the changed MiB, the vault's figures, the disk's status.
        let ids = points.compactMap { $0["id"] as? String }
        let diff = try Tool.dv("points", "diff", "--vault", t.vault, "--disk", "enc", ids[0], ids[1], "--json")
        XCTAssertEqual(try diff.json()["changedBytes"] as? Int, 1 << 20, diff.output)
        let stats = try Tool.dv("stats", "--vault", t.vault, "--json")
        XCTAssertEqual(try stats.json()["points"] as? Int, 2, stats.output)
        XCTAssertGreaterThan(try stats.json()["uniqueChunks"] as? Int ?? 0, 0, stats.output)
        let status = try at("2026-11-21T04:00:00Z", ["status", "--vault", t.vault, "--json"])
        XCTAssertEqual(status.status, 0, status.output)
        XCTAssertEqual((try status.json()["disks"] as? [[String: Any]])?.first?["lastPoint"] as? String, ids[1])

        // keep-daily 1: the newer point stays; gc frees the one MiB only the older point held.
        let prune = try at("2026-11-22T00:00:00Z", ["prune", "--vault", t.vault])
        XCTAssertEqual(prune.status, 0, prune.output)
        let left = try XCTUnwrap(try Tool.dv("points", "--vault", t.vault, "--disk", "enc", "--json").json()["points"] as? [[String: Any]])
        XCTAssertEqual(left.compactMap { $0["id"] as? String }, [points[1]["id"] as? String].compactMap { $0 })
        let blobsBefore = try XCTUnwrap(try Tool.dv("stats", "--vault", t.vault, "--json").json()["uniqueChunks"] as? Int)
        let gc = try Tool.dv("gc", "--vault", t.vault, "--json")
        XCTAssertEqual(gc.status, 0, gc.output)
        XCTAssertEqual(try gc.json()["blobsRemoved"] as? Int, 1, gc.stdout)
        let freed = try gc.json()["bytesFreed"] as? Int ?? 0
        XCTAssertTrue(freed > 1 << 20 && freed < (1 << 20) + 64, "the MiB of ciphertext, stored raw, and its blob header: \(gc.stdout)")
        // Gone from the store itself (deleted by one DeleteObjects request), not only counted.
        XCTAssertEqual(try Tool.dv("stats", "--vault", t.vault, "--json").json()["uniqueChunks"] as? Int, blobsBefore - 1)

        // The key gone from the key vault: restore refuses and names `keys restore`, which puts it back.
        try t.run("keyvault", "secret", "delete", t.kv, "--name", "k")
        let refused = try t.restore(disk: "enc", target: t.s.file("r.img"), expect: 1)
        XCTAssertTrue(refused.stderr.contains("keys restore"), refused.stderr)
        let id = try XCTUnwrap(left.first?["id"] as? String)
        let put = try Tool.run(Tool.diskvault, ["keys", "restore", "--vault", t.vault, "--disk", "enc", "--point", id] + t.asRestorer)
        XCTAssertEqual(put.status, 0, put.output)
        XCTAssertTrue(put.stdout.contains("restored secret k version 1"), put.stdout)
        _ = try t.restore(disk: "enc", target: t.s.file("r.img"))
        XCTAssertTrue(try fileBytesEqual(image, t.s.file("r.img")))
        let verify = try Tool.run(Tool.diskvault, ["verify", "--vault", t.vault] + t.asRestorer)
        XCTAssertEqual(verify.status, 0, verify.output)
        let jobs = try Tool.dv("jobs", "--vault", t.vault, "--json")
        for kind in ["\"backup\"", "\"prune\"", "\"gc\"", "\"restore\"", "\"keys-restore\""] { XCTAssertTrue(jobs.stdout.contains(kind), "\(kind): \(jobs.stdout)") }
    }

    /// Addresses that are not an S3 vault are refused by name, before any request.
    func testMalformedAddressesAreRefused() throws {
        for (address, why) in [
            ("s3:ftp://127.0.0.1/b", "http:// or https://"), ("s3:http://127.0.0.1:9/", "no bucket"),
            ("s3:http://127.0.0.1:9/UPPER", "not a bucket name"), ("s3:http://key:secret@127.0.0.1/bkt", "credentials"),
            ("s3:http://127.0.0.1:9/bkt/../x", "may not hold"),
        ] {
            let r = try Tool.dv("points", "--vault", address)
            XCTAssertEqual(r.status, 2, "\(address): \(r.output)")
            XCTAssertTrue(r.stderr.contains(why), "\(address): \(r.stderr)")
        }
    }
}
