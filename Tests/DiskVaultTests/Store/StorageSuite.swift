@testable import DiskVault
import Foundation
import XCTest

/// The checks every `VaultStorage` backend passes, written against the interface alone (after kopia's
/// blobtesting and restic's backend/test); each backend runs them through a small XCTestCase below.
enum StorageSuite {
    /// Bytes that tell writers and positions apart: `seed` in every byte's high bits.
    static func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) ^ seed }
    }

    static func code(_ body: () throws -> Void) -> DiskVaultError.Code? {
        do { try body() } catch let e as DiskVaultError { return e.code } catch { return nil }
        return nil
    }

    /// Byte arrays compared without printing them: their sizes and the first offset that differs.
    static func assertSame(_ got: [UInt8], _ expected: [UInt8], _ what: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
        guard got != expected else { return }
        let first = (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
        XCTFail("\(what()): \(got.count) bytes, expected \(expected.count); first difference at \(first)", file: file, line: line)
    }

    // MARK: objects

    /// Two writers race to put one key: exactly one wins, and the object is that writer's bytes, whole.
    static func putIfAbsentRace(_ storage: any VaultStorage) throws {
        for round in 0..<16 {
            let key = "chunks/race-\(round)"
            let candidates = [pattern(300_000, seed: 0x11), pattern(300_000 + round, seed: 0x22)]
            let wins = Guarded<[Int]>([])
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                if (try? storage.putIfAbsent(key, candidates[i], durable: false)) == true { wins.update { $0.append(i) } }
            }
            let winners = wins.value
            XCTAssertEqual(winners.count, 1, "round \(round): winners \(winners)")
            guard let winner = winners.first else { continue }
            assertSame(try storage.get(key, limit: 1 << 20), candidates[winner], "round \(round)")
        }
        XCTAssertEqual(try storage.list("tmp"), [], "a losing writer leaves nothing behind")
    }

    /// A reader racing a writer sees the object whole or not at all; an abandoned writer leaves nothing.
    static func wholeOrNothing(_ storage: any VaultStorage) throws {
        let object = pattern(2 << 20, seed: 0x5a)
        for round in 0..<8 {
            let key = "disks/d/points/p\(round)/index"
            let partial = Guarded<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                if i == 0 {
                    _ = try? storage.putIfAbsent(key, object, durable: false)
                    return
                }
                for _ in 0..<2_000 {
                    guard let got = try? storage.get(key, limit: 4 << 20) else { continue }
                    if got != object { partial.update { $0.append("get saw \(got.count) bytes") } }
                    return
                }
            }
            XCTAssertEqual(partial.value, [], "round \(round)")
            assertSame(try storage.get(key, limit: 4 << 20), object)
        }

        let abandoned = try storage.makeWriter("disks/d/points/gone/index")
        try pattern(100_000, seed: 1).withUnsafeBytes { try abandoned.append($0) }
        abandoned.abandon()
        do {
            // Dropped without commit or abandon: the same.
            let dropped = try storage.makeWriter("disks/d/points/gone/manifest.json")
            try pattern(10, seed: 2).withUnsafeBytes { try dropped.append($0) }
        }
        XCTAssertNil(try storage.head("disks/d/points/gone/index"))
        XCTAssertNil(try storage.head("disks/d/points/gone/manifest.json"))
        XCTAssertEqual(try storage.list("disks/d/points/gone"), [])
        XCTAssertEqual(try storage.list("tmp"), [])
    }

    /// `get` refuses an object larger than its limit (never allocating it); `read` one larger than its buffer.
    static func limits(_ storage: any VaultStorage) throws {
        let object = pattern(100_000, seed: 3)
        XCTAssertTrue(try storage.putIfAbsent("policies/big.json", object, durable: true))
        XCTAssertEqual(code { _ = try storage.get("policies/big.json", limit: 99_999) }, .corrupt)
        assertSame(try storage.get("policies/big.json", limit: 100_000), object)
        XCTAssertEqual(code { _ = try storage.get("policies/none.json", limit: 10) }, .notFound)

        var small = [UInt8](repeating: 0, count: 1_000)
        let tooSmall = small.withUnsafeMutableBytes { b in code { _ = try storage.read("policies/big.json", into: b) } }
        XCTAssertEqual(tooSmall, .corrupt)
        var whole = [UInt8](repeating: 0, count: 200_000)
        let n = try whole.withUnsafeMutableBytes { try storage.read("policies/big.json", into: $0) }
        XCTAssertEqual(n, object.count)
        assertSame(Array(whole[..<n]), object)
        XCTAssertEqual(small.withUnsafeMutableBytes { b in code { _ = try storage.read("policies/none.json", into: b) } }, .notFound)
    }

    /// head, list and delete: folder semantics (direct children only), a missing prefix lists empty.
    static func headListDelete(_ storage: any VaultStorage) throws {
        XCTAssertNil(try storage.head("disks/a/disk.json"))
        XCTAssertEqual(try storage.list("disks"), [])
        XCTAssertEqual(try storage.list("no/such/prefix"), [])
        for key in ["disks/a/disk.json", "disks/a/points/p1/manifest.json", "disks/a/points/p1/index", "disks/a/points/p2/index", "disks/b/disk.json"] {
            XCTAssertTrue(try storage.putIfAbsent(key, Array(key.utf8), durable: false), key)
        }
        XCTAssertEqual(try storage.head("disks/a/points/p1/index"), UInt64("disks/a/points/p1/index".utf8.count))
        XCTAssertEqual(try storage.list("disks").sorted(), ["a", "b"])
        XCTAssertEqual(try storage.list("disks/a").sorted(), ["disk.json", "points"])
        XCTAssertEqual(try storage.list("disks/a/points").sorted(), ["p1", "p2"])
        XCTAssertEqual(try storage.list("disks/a/points/p1").sorted(), ["index", "manifest.json"])
        XCTAssertEqual(try storage.list("disks/a/disk.json/x"), [], "under an object: nothing")

        try storage.delete("disks/a/points/p1/manifest.json")
        XCTAssertNil(try storage.head("disks/a/points/p1/manifest.json"))
        XCTAssertEqual(try storage.list("disks/a/points/p1"), ["index"])
        try storage.delete("disks/a/points/p1/manifest.json")  // a missing key: nothing to do
        // A point's folder goes once its objects have, as gc removes an unfinished one.
        try storage.delete("disks/a/points/p1/index")
        try storage.delete("disks/a/points/p1")
        XCTAssertEqual(try storage.list("disks/a/points"), ["p2"])
        XCTAssertEqual(try storage.get("disks/b/disk.json", limit: 100), Array("disks/b/disk.json".utf8))
    }

    /// `listSizes` gives what `list` and `head` give, in one listing; `delete(batch:)` deletes every key given
    /// (missing ones are no failure), more than an object store takes in one request, names with XML's special
    /// characters included, and nothing else.
    static func batchDeleteAndSizes(_ storage: any VaultStorage) throws {
        var keys: [String] = []
        for i in 0..<1003 {
            let key = String(format: "chunks/%064x", i)
            XCTAssertTrue(try storage.putIfAbsent(key, Array(repeating: UInt8(i & 0xff), count: i % 7 + 1), durable: false))
            keys.append(key)
        }
        XCTAssertTrue(try storage.putIfAbsent("jobs/a&b<c>.json", Array("odd".utf8), durable: false))
        let sized = try storage.listSizes("chunks")
        XCTAssertEqual(sized.count, 1003)
        for (name, size) in sized.prefix(20) { XCTAssertEqual(try storage.head("chunks/\(name)"), size, name) }
        XCTAssertEqual(try storage.listSizes("jobs").map(\.name), ["a&b<c>.json"])
        let failed = try storage.delete(batch: Array(keys.prefix(1002)) + ["chunks/" + String(repeating: "f", count: 64), "jobs/a&b<c>.json"])
        XCTAssertTrue(failed.isEmpty, "\(failed)")
        XCTAssertEqual(try storage.list("chunks"), [String(keys[1002].dropFirst("chunks/".count))])
        XCTAssertEqual(try storage.list("jobs"), [])
    }

    /// `replace` puts over what is there (or creates); `replaceBlob` puts a blob over a damaged one.
    static func replace(_ storage: any VaultStorage) throws {
        try storage.replace("jobs/j.json", Array("first".utf8))
        XCTAssertEqual(try storage.get("jobs/j.json", limit: 100), Array("first".utf8))
        try storage.replace("jobs/j.json", Array("second, longer".utf8))
        XCTAssertEqual(try storage.get("jobs/j.json", limit: 100), Array("second, longer".utf8))
        XCTAssertEqual(try storage.list("jobs"), ["j.json"])

        XCTAssertTrue(try storage.putIfAbsent("chunks/b1", pattern(5_000, seed: 7), durable: false))
        let good = pattern(4_000, seed: 8)
        try good.withUnsafeBytes { try storage.replaceBlob("chunks/b1", $0) }
        assertSame(try storage.get("chunks/b1", limit: 1 << 20), good)
        try good.withUnsafeBytes { try storage.replaceBlob("chunks/b2", $0) }
        assertSame(try storage.get("chunks/b2", limit: 1 << 20), good)
        try storage.barrier()
        XCTAssertEqual(try storage.list("tmp"), [])
    }

    /// `putBlobIfAbsent` of an aligned, padded buffer (direct I/O where the backend uses it) stores `length`
    /// bytes once; a second put of the key is refused and changes nothing.
    static func blobs(_ storage: any VaultStorage) throws {
        let length = 200_001
        let padded = UnsafeMutableRawBufferPointer.allocate(byteCount: 204_800, alignment: 4096)
        defer { padded.deallocate() }
        let bytes = pattern(204_800, seed: 9)
        bytes.withUnsafeBytes { padded.copyMemory(from: $0) }
        XCTAssertTrue(try storage.putBlobIfAbsent("chunks/aligned", padded: UnsafeRawBufferPointer(padded), length: length))
        padded.storeBytes(of: 0xff, toByteOffset: 0, as: UInt8.self)
        XCTAssertFalse(try storage.putBlobIfAbsent("chunks/aligned", padded: UnsafeRawBufferPointer(padded), length: length))
        XCTAssertEqual(try storage.head("chunks/aligned"), UInt64(length))
        assertSame(try storage.get("chunks/aligned", limit: 1 << 20), Array(bytes[..<length]))
        // A blob given up in its own buffer (which the storage may seal in place) reads back the same.
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 204_800 + 4096, alignment: 4096)
        defer { scratch.deallocate() }
        bytes.withUnsafeBytes { scratch.copyMemory(from: $0) }
        XCTAssertTrue(try storage.putBlobIfAbsent("chunks/scratch", scratch: scratch, length: length))
        XCTAssertEqual(try storage.head("chunks/scratch"), UInt64(length))
        assertSame(try storage.get("chunks/scratch", limit: 1 << 20), Array(bytes[..<length]))
        try storage.barrier()
        XCTAssertEqual(try storage.list("chunks").sorted(), ["aligned", "scratch"])
    }

    /// `makeReader` reads any range, short only at the end; `makeWriter` commits once per key.
    static func streams(_ storage: any VaultStorage) throws {
        XCTAssertEqual(code { _ = try storage.makeReader("disks/d/points/none/index") }, .notFound)
        let object = pattern(150_000, seed: 10)
        let writer = try storage.makeWriter("disks/d/points/p/index")
        for piece in stride(from: 0, to: object.count, by: 40_000) {
            try object[piece..<min(piece + 40_000, object.count)].withUnsafeBytes { try writer.append($0) }
        }
        XCTAssertEqual(writer.count, UInt64(object.count))
        XCTAssertNil(try storage.head("disks/d/points/p/index"), "not visible before commit")
        XCTAssertTrue(try writer.commitIfAbsent(durable: true))
        writer.abandon()  // after a commit: nothing

        let other = try storage.makeWriter("disks/d/points/p/index")
        try [1, 2, 3].withUnsafeBytes { try other.append($0) }
        XCTAssertFalse(try other.commitIfAbsent(durable: true))

        let reader = try storage.makeReader("disks/d/points/p/index")
        XCTAssertEqual(reader.size, UInt64(object.count))
        var buffer = [UInt8](repeating: 0, count: 10_000)
        for offset in [0, 1, 65_536, 139_999] {
            let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0, at: UInt64(offset)) }
            XCTAssertEqual(n, 10_000)
            assertSame(Array(buffer[..<n]), Array(object[offset..<offset + n]), "at \(offset)")
        }
        let tail = try buffer.withUnsafeMutableBytes { try reader.read(into: $0, at: 145_000) }
        XCTAssertEqual(tail, 5_000)
        assertSame(Array(buffer[..<tail]), Array(object[145_000...]))
        XCTAssertEqual(try buffer.withUnsafeMutableBytes { try reader.read(into: $0, at: 150_000) }, 0)
        XCTAssertEqual(try storage.list("tmp"), [])
    }

    // MARK: locks

    static func record(_ text: String) -> [UInt8] { Array("{\"purpose\":\"\(text)\"}".utf8) }

    /// Shared holders coexist; an exclusive holder excludes both ways; release frees; records are listed while
    /// held and gone after release; a lock held is refused to another holder at once, never waited for.
    static func locks(_ storage: any VaultStorage) throws {
        let first = try XCTUnwrap(try storage.tryLock("vault", .shared, record: record("one")))
        let second = try XCTUnwrap(try storage.tryLock("vault", .shared, record: record("two")))
        XCTAssertNil(try storage.tryLock("vault", .exclusive, record: record("gc")), "exclusive while shared")
        let records = try storage.lockRecords("vault")
        XCTAssertEqual(Set(records.map(\.key)), Set([first.recordKey, second.recordKey].compactMap { $0 }))
        XCTAssertEqual(Set(records.compactMap(\.bytes)), [record("one"), record("two")])
        for r in records { XCTAssertTrue(r.key.hasPrefix("locks/vault@") && r.key.hasSuffix(".json"), r.key) }
        XCTAssertTrue(try storage.list("locks").contains(String(try XCTUnwrap(first.recordKey).dropFirst("locks/".count))))

        first.release()
        first.release()  // twice: nothing
        XCTAssertNil(try storage.tryLock("vault", .exclusive, record: nil), "one shared holder left")
        XCTAssertEqual(try storage.lockRecords("vault").map(\.key), [second.recordKey].compactMap { $0 })
        second.release()
        XCTAssertEqual(try storage.lockRecords("vault").count, 0)

        let exclusive = try XCTUnwrap(try storage.tryLock("vault", .exclusive, record: record("gc")))
        XCTAssertNil(try storage.tryLock("vault", .shared, record: record("backup")), "shared while exclusive")
        XCTAssertNil(try storage.tryLock("vault", .exclusive, record: nil), "exclusive while exclusive")
        // Another lock name is another lock.
        let disk = try XCTUnwrap(try storage.tryLock("disk-web", .exclusive, record: nil))
        XCTAssertNil(disk.recordKey)
        XCTAssertEqual(try storage.lockRecords("vault").count, 1)
        XCTAssertEqual(try storage.lockRecords("disk-web").count, 0)

        // From another thread, as a second holder: refused at once.
        let refused = Guarded<[Bool]>([])
        let done = DispatchSemaphore(value: 0)
        Thread {
            func refusedAtOnce(_ name: String, _ mode: LockMode) -> Bool {
                do { return try storage.tryLock(name, mode, record: nil) == nil } catch { return false }
            }
            let answers = [refusedAtOnce("vault", .shared), refusedAtOnce("disk-web", .exclusive)]
            refused.update { $0 = answers }
            done.signal()
        }.start()
        done.wait()
        XCTAssertEqual(refused.value, [true, true])

        exclusive.release()
        disk.release()
        XCTAssertEqual(try storage.lockRecords("vault").count, 0)
        let again = try XCTUnwrap(try storage.tryLock("vault", .exclusive, record: nil), "released: free again")
        again.release()
        XCTAssertNotNil(try storage.tryLock("disk-web", .shared, record: nil))
    }

    /// Many threads taking and releasing one lock: an exclusive holder is never beside any other holder.
    static func lockContention(_ storage: any VaultStorage) throws {
        let inside = Guarded<(shared: Int, exclusive: Int)>((0, 0))
        let violations = Guarded<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let mode: LockMode = i == 0 ? .exclusive : .shared
            for _ in 0..<200 {
                guard let lock = try? storage.tryLock("vault", mode, record: nil) else { continue }
                inside.update { s in
                    if mode == .exclusive { s.exclusive += 1 } else { s.shared += 1 }
                    if s.exclusive > 1 || (s.exclusive == 1 && s.shared > 0) { violations.update { $0 += 1 } }
                }
                inside.update { s in if mode == .exclusive { s.exclusive -= 1 } else { s.shared -= 1 } }
                lock.release()
            }
        }
        XCTAssertEqual(violations.value, 0)
        XCTAssertNotNil(try storage.tryLock("vault", .exclusive, record: nil), "every holder released")
    }

    // MARK: vaults

    /// A vault made and opened through the interface alone; a second create is refused.
    static func vault(_ storage: any VaultStorage, reopen: () -> any VaultStorage) throws {
        XCTAssertEqual(code { _ = try Vault.open(storage: storage) }, .notFound)
        let made = try Vault.create(storage: storage, chunkSize: 64 << 10)
        let opened = try Vault.open(storage: reopen())
        XCTAssertEqual(opened.config, made.config)
        XCTAssertEqual(code { try Vault.create(storage: reopen(), chunkSize: 64 << 10) }, .alreadyExists)
        XCTAssertEqual(code { try Vault.create(storage: reopen(), chunkSize: 1000) }, .usage)
        XCTAssertEqual(try Vault.open(storage: reopen()).config, made.config, "a refused create changes nothing")
    }
}

/// A value shared by test threads.
final class Guarded<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.lock(); defer { lock.unlock() }; return stored }
    func update(_ body: (inout Value) -> Void) { lock.lock(); body(&stored); lock.unlock() }
}

final class LocalStorageSuiteTests: XCTestCase {
    func storage() throws -> LocalStorage {
        let root = try Scratch(self).file("vault")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        return LocalStorage(root: root)
    }

    func testPutIfAbsentRace() throws { try StorageSuite.putIfAbsentRace(try storage()) }
    func testWholeOrNothing() throws { try StorageSuite.wholeOrNothing(try storage()) }
    func testLimits() throws { try StorageSuite.limits(try storage()) }
    func testHeadListDelete() throws { try StorageSuite.headListDelete(try storage()) }
    func testBatchDeleteAndSizes() throws { try StorageSuite.batchDeleteAndSizes(try storage()) }
    func testReplace() throws { try StorageSuite.replace(try storage()) }
    func testBlobs() throws { try StorageSuite.blobs(try storage()) }
    func testStreams() throws { try StorageSuite.streams(try storage()) }
    func testLocks() throws { try StorageSuite.locks(try storage()) }
    func testLockContention() throws { try StorageSuite.lockContention(try storage()) }
    func testVault() throws {
        let root = try Scratch(self).file("new-vault")
        try StorageSuite.vault(LocalStorage(root: root), reopen: { LocalStorage(root: root) })
    }
}

final class MemoryStorageSuiteTests: XCTestCase {
    func storage() -> MemoryStorage { MemoryStorage() }

    func testPutIfAbsentRace() throws { try StorageSuite.putIfAbsentRace(storage()) }
    func testWholeOrNothing() throws { try StorageSuite.wholeOrNothing(storage()) }
    func testLimits() throws { try StorageSuite.limits(storage()) }
    func testHeadListDelete() throws { try StorageSuite.headListDelete(storage()) }
    func testBatchDeleteAndSizes() throws { try StorageSuite.batchDeleteAndSizes(storage()) }
    func testReplace() throws { try StorageSuite.replace(storage()) }
    func testBlobs() throws { try StorageSuite.blobs(storage()) }
    func testStreams() throws { try StorageSuite.streams(storage()) }
    func testLocks() throws { try StorageSuite.locks(storage()) }
    func testLockContention() throws { try StorageSuite.lockContention(storage()) }
    func testVault() throws {
        let memory = storage()
        try StorageSuite.vault(memory, reopen: { memory })
    }
}

/// An encrypted vault's storage over a local directory: the same verbs, every object sealed on the way.
final class EncryptedStorageSuiteTests: XCTestCase {
    func storage() throws -> EncryptedStorage {
        let root = try Scratch(self).file("vault")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let keys = VaultKeys(master: (0..<32).map { _ in UInt8.random(in: 0...255) }, vaultID: "suite")
        return EncryptedStorage(LocalStorage(root: root), keys: keys, vaultID: "suite")
    }

    func testPutIfAbsentRace() throws { try StorageSuite.putIfAbsentRace(try storage()) }
    func testWholeOrNothing() throws { try StorageSuite.wholeOrNothing(try storage()) }
    func testLimits() throws { try StorageSuite.limits(try storage()) }
    func testHeadListDelete() throws { try StorageSuite.headListDelete(try storage()) }
    func testBatchDeleteAndSizes() throws { try StorageSuite.batchDeleteAndSizes(try storage()) }
    func testReplace() throws { try StorageSuite.replace(try storage()) }
    func testBlobs() throws { try StorageSuite.blobs(try storage()) }
    func testStreams() throws { try StorageSuite.streams(try storage()) }
    func testLocks() throws { try StorageSuite.locks(try storage()) }
    func testLockContention() throws { try StorageSuite.lockContention(try storage()) }
}

/// An object-store vault's storage: a bucket of a real SeaweedFS on loopback, through its S3 gateway.
final class S3StorageSuiteTests: XCTestCase {
    func storage() throws -> S3Storage {
        let storage = try S3Storage(try S3Location.parse(try S3TestStore.newVault()))
        try storage.prepareNewVault()
        return storage
    }

    func testPutIfAbsentRace() throws { try StorageSuite.putIfAbsentRace(try storage()) }
    func testWholeOrNothing() throws { try StorageSuite.wholeOrNothing(try storage()) }
    func testLimits() throws { try StorageSuite.limits(try storage()) }
    func testHeadListDelete() throws { try StorageSuite.headListDelete(try storage()) }
    func testBatchDeleteAndSizes() throws { try StorageSuite.batchDeleteAndSizes(try storage()) }
    func testReplace() throws { try StorageSuite.replace(try storage()) }
    func testBlobs() throws { try StorageSuite.blobs(try storage()) }
    func testStreams() throws { try StorageSuite.streams(try storage()) }
    func testLocks() throws { try StorageSuite.locks(try storage()) }
    func testLockContention() throws { try StorageSuite.lockContention(try storage()) }
    func testVault() throws {
        let location = try S3Location.parse(try S3TestStore.newVault())
        try StorageSuite.vault(try S3Storage(location), reopen: { try! S3Storage(location) })
    }
}

/// The times an object store's answers carry, parsed by hand, agree with Foundation's parser.
final class S3TimeTests: XCTestCase {
    func testListingAndHeaderTimes() {
        let f = ISO8601DateFormatter()
        for s in ["1970-01-01T00:00:00Z", "2026-12-03T14:38:21Z", "2000-02-29T23:59:59Z", "2100-03-01T00:00:01Z"] {
            XCTAssertEqual(S3XML.parseTime(s), f.date(from: s)?.timeIntervalSince1970, s)
        }
        XCTAssertEqual(S3XML.parseTime("2026-12-03T14:38:21.123Z"), f.date(from: "2026-12-03T14:38:21Z")?.timeIntervalSince1970)
        XCTAssertEqual(S3XML.parseHTTPDate("Thu, 03 Dec 2026 14:20:05 GMT"), f.date(from: "2026-12-03T14:20:05Z")?.timeIntervalSince1970)
        for bad in ["", "2026-13-03T14:38:21Z", "2026-12-03 14:38:21Z", "2026-12-03T14:38:2xZ"] { XCTAssertNil(S3XML.parseTime(bad), bad) }
        for bad in ["Thu, 03 Dek 2026 14:20:05 GMT", "Thu, 03 Dec 2026 14:20:05 UTC", "yesterday"] { XCTAssertNil(S3XML.parseHTTPDate(bad), bad) }
    }
}
