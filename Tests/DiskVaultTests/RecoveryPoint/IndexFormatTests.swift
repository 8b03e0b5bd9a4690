import DiskVault
import Foundation
import XCTest

/// The version-2 index: runs of zero chunks compact, image size and count last, read streaming; version 1 read.
final class IndexFormatTests: XCTestCase {
    let a = SHA256.digest(Array("a".utf8)), b = SHA256.digest(Array("b".utf8))

    func testVersion2RoundTripAndZeroRunsAreOneEntry() throws {
        let digests = [a] + Array(repeating: .zero, count: 1000) + [b, .zero]
        let index = ChunkIndex(chunkSize: 1 << 20, imageSize: UInt64(digests.count - 1) << 20 | 5, digests: digests)
        let bytes = index.encoded(version: 2)
        XCTAssertEqual(bytes.count, 16 + 4 * 32 + 16, "a, one run, b, one run, and the trailer")
        XCTAssertEqual(Array(bytes.prefix(8)), ChunkIndex.magic)
        XCTAssertEqual(try ChunkIndex.decode(bytes, source: "t"), index)
        XCTAssertEqual(try ChunkIndex.decode(index.encoded(version: 1), source: "t"), index, "version 1 still read")

        let reader = try ChunkIndexReader(MemoryObjectReader(bytes), source: "t", expectedDigest: SHA256.digest(bytes))
        XCTAssertEqual(reader.version, 2)
        XCTAssertEqual(try reader.digest(atChunk: 0), a)
        XCTAssertEqual(try reader.digest(atChunk: 500), .zero)
        XCTAssertEqual(try reader.digest(atChunk: 1001), b)
        XCTAssertEqual(try reader.digest(atChunk: 1002), .zero)
        XCTAssertNil(try reader.digest(atChunk: 1003))
    }

    func testAnEmptyFifteenTebibyteDiskHasATinyIndex() throws {
        let out = MemoryIndexSink()
        let writer = ChunkIndexWriter(chunkSize: 4 << 20, output: out)
        let chunks = ChunkIndex.chunkCount(imageSize: 15 << 40, chunkSize: 4 << 20)
        var left = chunks
        while left > 0 { let n = min(left, 1 << 14); try writer.appendZeros(n); left -= n }
        let digest = try writer.finish(imageSize: 15 << 40)
        XCTAssertEqual(out.bytes.count, 64)
        XCTAssertEqual(SHA256.digest(out.bytes), digest, "the digest is the SHA-256 of the whole index")
        let reader = try ChunkIndexReader(MemoryObjectReader(out.bytes), source: "t", expectedDigest: digest)
        XCTAssertEqual(reader.count, chunks)
        XCTAssertEqual(try reader.next(), .zeros(chunks))
        XCTAssertNil(try reader.next())
    }

    /// Found by the fuzzer (a timeout): an index whose one zero run stands for 2^40 chunks. Nothing expands it:
    /// the in-memory decoder refuses it, the streamed reader passes the run as one entry.
    func testAHugeZeroRunIsNeverExpanded() throws {
        let out = MemoryIndexSink()
        let writer = ChunkIndexWriter(chunkSize: 64 << 10, output: out)
        let size: UInt64 = 1 << 56
        let chunks = ChunkIndex.chunkCount(imageSize: size, chunkSize: 64 << 10)
        try writer.appendZeros(chunks)
        _ = try writer.finish(imageSize: size)
        XCTAssertThrowsError(try ChunkIndex.decode(out.bytes, source: "huge")) { error in
            XCTAssertEqual((error as? DiskVaultError)?.code, .unsupported)
        }
        let reader = try ChunkIndexReader(MemoryObjectReader(out.bytes), source: "huge")
        var data = 0
        try reader.forEachDataChunk { (_, _) in data += 1 }
        XCTAssertEqual(data, 0)
        XCTAssertEqual(reader.count, chunks)
    }

    func testHostileVersion2IndexesAreRefused() {
        let good = ChunkIndex(chunkSize: 1 << 20, imageSize: 3 << 20, digests: [a, .zero, b]).encoded(version: 2)
        func mutated(_ at: Int, _ value: UInt64, width: Int) -> [UInt8] {
            var bytes = good
            let at = at < 0 ? bytes.count + at : at
            for i in 0..<width { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            return bytes
        }
        let cases: [(String, [UInt8])] = [
            ("truncated trailer", Array(good.dropLast(1))),
            ("image size of 2^63", mutated(-16, 1 << 63, width: 8)),
            ("count of 2^60", mutated(-8, 1 << 60, width: 8)),
            ("count that does not fit the size", mutated(-8, 4, width: 8)),
            ("a run of 0", mutated(16 + 32 + 24, 0, width: 8)),
            ("a run past the end", mutated(16 + 32 + 24, 1 << 40, width: 8)),
            ("entries that leave a chunk uncovered", Array(good.prefix(16 + 64)) + Array(good.suffix(16))),
            ("a run longer than the chunks left", mutated(16 + 32 + 24, 2, width: 8)),
            ("two runs side by side", Array(good.prefix(16 + 32)) + Array(good[(16 + 32)..<(16 + 64)]) + Array(good[(16 + 32)..<(16 + 64)]) + Array(good.suffix(16))),
            ("a digest too many", Array(good.prefix(16 + 96)) + a.bytes + Array(good.suffix(16))),
        ]
        for (name, bytes) in cases {
            XCTAssertThrowsError(try ChunkIndex.decode(bytes, source: "idx"), name) { error in
                XCTAssertEqual((error as? DiskVaultError)?.code, .corrupt, name)
                XCTAssertEqual((error as? DiskVaultError)?.path, "idx", name)
            }
        }
        // The digest the manifest recorded is checked once the last entry is read.
        var flipped = good
        flipped[20] ^= 1
        XCTAssertThrowsError(try ChunkIndexReader(MemoryObjectReader(flipped), source: "idx", expectedDigest: SHA256.digest(good)).finish()) { error in
            XCTAssertTrue((error as? DiskVaultError)?.message.contains("does not match the digest") == true, "\(error)")
        }
    }
}

/// An index collected in memory.
final class MemoryIndexSink: ObjectWriter {
    var bytes: [UInt8] = []
    var count: UInt64 { UInt64(bytes.count) }
    func append(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    func commitIfAbsent(durable: Bool) -> Bool { true }
    func abandon() {}
}
