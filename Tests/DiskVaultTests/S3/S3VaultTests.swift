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
