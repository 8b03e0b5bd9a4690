import DiskVault
import Foundation
import XCTest

/// Backup, restore, verify, prune and gc called as a library, on a vault in memory: the engine needs nothing of
/// a vault but its `VaultStorage`. The image and the restored disk are real files.
final class LibraryJobTests: XCTestCase {
    /// Nothing on a sound vault is worth a warning: any notice fails the test.
    let quiet = JobControl(lockWait: 0, notice: { XCTFail("notice: \($0)") })

    static let chunkSize = 64 << 10

    /// 1 MiB of random bytes, 512 KiB of text, 512 KiB of zeros: stored raw, stored deflated, not stored.
    func makeImage(_ scratch: Scratch) throws -> String {
        var g = SystemRandomNumberGenerator()
        var bytes = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &g) }
        var text = ""
        var line = 0
        while text.utf8.count < 512 << 10 {
            text += "line \(line): a disk image holds file systems, and file systems hold text like this\n"
            line += 1
        }
        bytes += Array(text.utf8.prefix(512 << 10))
        bytes += [UInt8](repeating: 0, count: 512 << 10)
        let path = scratch.file("disk.img")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Overwrites chunks `first..<first+count` of the image with new random bytes.
    func change(_ image: String, chunks: Range<Int>) throws {
        var g = SystemRandomNumberGenerator()
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: image))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(chunks.lowerBound * Self.chunkSize))
        try handle.write(contentsOf: Data((0..<(chunks.count * Self.chunkSize)).map { _ in UInt8.random(in: 0...255, using: &g) }))
    }

    func backup(_ vault: Vault, _ image: String, now: Date) throws -> Manifest {
        var options = BackupOptions(disk: "web")
        options.now = now
        options.threads = 2
        // As run-due makes them: a policy's keep rules thin scheduled points (on-demand ones keep to their retain-until).
        options.trigger = .scheduled
        // The library's entry point takes the disk's lock and the vault's shared one and records the job.
        return try Backup(vault: vault, source: try ImageSource.open(image), options: options).run(quiet)
    }

    func restore(_ vault: Vault, point: String?, to target: String) throws -> RestoreResult {
        try Restore(vault: vault, options: RestoreOptions(disk: "web", point: point, target: target)).run(quiet)
    }

    func verify(_ vault: Vault) throws -> VerifyReport {
        try Verify(vault: vault, options: VerifyOptions()).run(quiet)
    }

    func dataChunks(_ vault: Vault, _ id: String) throws -> Set<Digest256> {
        var found = Set<Digest256>()
        try vault.index(of: try vault.point(disk: "web", id: id)).forEachDataChunk { (_, digest) in found.insert(digest) }
        return found
    }

    func testBackupRestoreVerifyPruneGCInMemory() throws {
        let scratch = try Scratch(self)
        let image = try makeImage(scratch)
        let storage = MemoryStorage(location: "memory:library-test")
        let vault = try Vault.create(storage: storage, chunkSize: Self.chunkSize)
        XCTAssertEqual(try Vault.open(storage: storage).config, vault.config)

        // Backup, then restore equals the source.
        let start = Date()
        let first = try backup(vault, image, now: start)
        XCTAssertEqual(first.stats.chunks, 32)
        XCTAssertEqual(first.stats.zeroChunks, 8)
        XCTAssertEqual(first.stats.newChunks, 24)
        XCTAssertGreaterThan(first.stats.compressedChunks, 0, "the text is stored deflated")
        let restored = scratch.file("restored.img")
        let result = try restore(vault, point: nil, to: restored)
        XCTAssertEqual(result.point, first.id)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: restored)), try Data(contentsOf: URL(fileURLWithPath: image)))

        // A second backup of the image with two chunks changed stores those two and reuses the rest.
        try change(image, chunks: 3..<5)
        let second = try backup(vault, image, now: start.addingTimeInterval(60))
        XCTAssertEqual(second.stats.newChunks, 2)
        XCTAssertEqual(second.stats.reusedChunks, 22)
        XCTAssertEqual(try vault.points(disk: "web").map(\.id), [first.id, second.id])
        let restoredSecond = scratch.file("restored-2.img")
        _ = try restore(vault, point: second.id, to: restoredSecond)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: restoredSecond)), try Data(contentsOf: URL(fileURLWithPath: image)))

        let report = try verify(vault)
        XCTAssertTrue(report.ok, "\(report.problems)")
        XCTAssertEqual(report.points.count, 2)

        // Prune keeping the last point, then gc frees exactly the first point's own blobs.
        let onlyFirst = try dataChunks(vault, first.id).subtracting(try dataChunks(vault, second.id))
        XCTAssertEqual(onlyFirst.count, 2)
        let freed = try onlyFirst.reduce(UInt64(0)) { $0 + (try XCTUnwrap(try storage.head(vault.chunks.key($1)))) }
        try vault.savePolicy(try BackupPolicy(name: "KeepOne", schedule: .daily(times: ["02:00"]), retention: .init(keepLast: 1)), replacing: false)
        try vault.protect(ProtectedDisk(
            disk: "web", source: image, policy: "KeepOne", keyVault: nil, declareEncrypted: nil, withoutKeys: nil,
            created: Timestamp.format(start)))
        let pruned = try Prune.run(vault, disk: nil, now: start.addingTimeInterval(120), dryRun: false, control: quiet)
        XCTAssertEqual(pruned.first?.decisions.filter { !$0.keep }.map(\.id), [first.id])
        XCTAssertEqual(try vault.points(disk: "web").map(\.id), [second.id])
        let gc = try GarbageCollector.run(vault, control: quiet)
        XCTAssertEqual(gc.blobsRemoved, 2)
        XCTAssertEqual(gc.bytesFreed, freed)
        XCTAssertEqual(gc.blobsKept, 24)
        XCTAssertEqual(gc.warnings, [])
        for digest in onlyFirst { XCTAssertNil(try storage.head(vault.chunks.key(digest))) }
        XCTAssertEqual(Set(try vault.chunks.listBlobs().map(\.0)), try dataChunks(vault, second.id))
        XCTAssertTrue(try verify(vault).ok)

        // A blob lost from the store is named missing, with the point that needs it.
        let lost = try XCTUnwrap(try dataChunks(vault, second.id).first)
        try storage.delete(vault.chunks.key(lost))
        let damaged = try verify(vault)
        XCTAssertFalse(damaged.ok)
        XCTAssertEqual(damaged.problems.map(\.kind), [.missing])
        XCTAssertEqual(damaged.problems.first?.chunk, lost.hex)
        XCTAssertEqual(damaged.problems.first?.points, ["web@\(second.id)"])

        // Every job released its locks and left a record.
        XCTAssertEqual(try storage.lockRecords("vault").count, 0)
        XCTAssertEqual(try storage.lockRecords("disk-web").count, 0)
        XCTAssertEqual(try storage.list("jobs").count, 9)
        XCTAssertEqual(try storage.list("tmp"), [])
    }

    /// What a disk that never had a vault looks like, and a vault made twice, on the memory backend.
    func testOpenAndCreateRefusalsInMemory() throws {
        let storage = MemoryStorage()
        XCTAssertThrowsError(try Vault.open(storage: storage)) { XCTAssertEqual(($0 as? DiskVaultError)?.code, .notFound) }
        try storage.replace("stray", [1])
        XCTAssertThrowsError(try Vault.open(storage: storage)) { XCTAssertEqual(($0 as? DiskVaultError)?.code, .notAVault) }
        try Vault.create(storage: storage)
        XCTAssertThrowsError(try Vault.create(storage: storage)) { XCTAssertEqual(($0 as? DiskVaultError)?.code, .alreadyExists) }
    }
}
