import DiskVault
import XCTest

final class FormatTests: XCTestCase {
    func testChunkIndexRoundTrip() throws {
        let digests = [SHA256.digest(Array("a".utf8)), .zero, SHA256.digest(Array("b".utf8))]
        let index = ChunkIndex(chunkSize: 1 << 20, imageSize: 2 * (1 << 20) + 5, digests: digests)
        let bytes = index.encoded()
        XCTAssertEqual(bytes.count, ChunkIndex.headerSize + 3 * 32)
        XCTAssertEqual(Array(bytes.prefix(7)), Array("dvindex".utf8))
        XCTAssertEqual(try ChunkIndex.decode(bytes, source: "t"), index)
        XCTAssertEqual(index.length(ofChunk: 0), 1 << 20)
        XCTAssertEqual(index.length(ofChunk: 2), 5)
    }

    func testChunkIndexRejectsHostileHeaders() {
        let good = ChunkIndex(chunkSize: 1 << 20, imageSize: 3 << 20, digests: Array(repeating: SHA256.digest([1]), count: 3)).encoded()
        func mutated(_ at: Int, _ value: UInt64, width: Int) -> [UInt8] {
            var b = good
            for i in 0..<width { b[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            return b
        }
        let cases: [(String, [UInt8])] = [
            ("truncated header", Array(good.prefix(20))),
            ("truncated digests", Array(good.dropLast(1))),
            ("bad magic", mutated(0, 0x41, width: 1)),
            ("unknown version", mutated(8, 9, width: 4)),
            ("chunk size not a power of two", mutated(12, 3 << 19, width: 4)),
            ("count of 2^32", mutated(24, 1 << 32, width: 8)),
            ("image size of 2^63", mutated(16, 1 << 63, width: 8)),
        ]
        for (name, bytes) in cases {
            XCTAssertThrowsError(try ChunkIndex.decode(bytes, source: "idx"), name) { error in
                let e = error as? DiskVaultError
                XCTAssertEqual(e?.code, .corrupt, name)
                XCTAssertEqual(e?.path, "idx", name)
            }
        }
    }

    func testBlobRoundTripAndDamage() throws {
        let chunk = Array(String(repeating: "disk block ", count: 10000).utf8)
        let dir = try Scratch(self)
        let store = ChunkStore(storage: LocalStorage(root: dir.path), chunkSize: 1 << 20)
        let codec = BlobCodec(chunkSize: 1 << 20)
        let digest = SHA256.digest(chunk)
        let outcome = try chunk.withUnsafeBytes { try store.store($0, digest: digest, mayCompress: true, codec: codec) }
        XCTAssertTrue(outcome.written)
        XCTAssertTrue(outcome.compressed)
        // Never rewritten.
        let again = try chunk.withUnsafeBytes { try store.store($0, digest: digest, mayCompress: true, codec: codec) }
        XCTAssertFalse(again.written)

        let path = "\(dir.path)/\(store.key(digest))"
        var blob = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(blob.prefix(6)), Array("dvblob".utf8))
        XCTAssertEqual(blob[6], 1)
        XCTAssertEqual(blob[7], Blob.Flags.zlib.rawValue)

        let out = ByteBuffer(capacity: 1 << 20)
        try store.load(digest, length: chunk.count, into: out, codec: codec)
        XCTAssertEqual(Array(out.prefix(chunk.count)), chunk)

        blob[blob.count / 2] ^= 0x01
        try Data(blob).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try store.load(digest, length: chunk.count, into: out, codec: codec)) { error in
            XCTAssertEqual((error as? DiskVaultError)?.code, .corrupt)
            XCTAssertTrue("\(error)".contains("CRC-32"), "\(error)")
            XCTAssertTrue("\(error)".contains(digest.hex), "\(error)")
        }
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try store.load(digest, length: chunk.count, into: out, codec: codec)) { error in
            XCTAssertEqual((error as? DiskVaultError)?.code, .notFound)
        }
    }

    func testIncompressibleChunkIsStoredRaw() throws {
        var g = SystemRandomNumberGenerator()
        let chunk = (0..<(256 << 10)).map { _ in UInt8.random(in: 0...255, using: &g) }
        let dir = try Scratch(self)
        let store = ChunkStore(storage: LocalStorage(root: dir.path), chunkSize: 1 << 20)
        let outcome = try chunk.withUnsafeBytes { try store.store($0, digest: SHA256.digest(chunk), mayCompress: true, codec: BlobCodec(chunkSize: 1 << 20)) }
        XCTAssertFalse(outcome.compressed)
        XCTAssertEqual(outcome.blobBytes, chunk.count + Blob.headerSize)
    }

    /// A raw chunk in a frame is written from where it was read, header in front, and read back in place;
    /// a blob of a raw blob's size that claims to be compressed is inflated elsewhere and refused when it
    /// does not hold the chunk, never written over itself.
    func testFramedRawChunkAndAMisleadingBlobSize() throws {
        var g = SystemRandomNumberGenerator()
        let chunkSize = 256 << 10
        let chunk = (0..<chunkSize).map { _ in UInt8.random(in: 0...255, using: &g) }
        let dir = try Scratch(self)
        let store = ChunkStore(storage: LocalStorage(root: dir.path), chunkSize: chunkSize)
        let codec = BlobCodec(chunkSize: chunkSize)
        let frame = ByteBuffer(capacity: BlobCodec.frameCapacity(chunkSize: chunkSize))
        let area = UnsafeMutableRawBufferPointer(rebasing: frame.storage[Blob.headerSize..<Blob.headerSize + chunkSize])
        chunk.withUnsafeBytes { area.copyMemory(from: $0) }
        let digest = SHA256.digest(chunk)
        let outcome = try store.store(UnsafeRawBufferPointer(area), digest: digest, mayCompress: false, codec: codec, frame: frame.storage)
        XCTAssertTrue(outcome.written)
        let written = try Array(Data(contentsOf: URL(fileURLWithPath: "\(dir.path)/\(store.key(digest))")))
        XCTAssertEqual(written.count, chunkSize + Blob.headerSize)
        // The header went into the frame, in front of the chunk: the blob was written from there.
        XCTAssertEqual(Array(UnsafeRawBufferPointer(rebasing: frame.storage[0..<Blob.headerSize])), Array(written.prefix(Blob.headerSize)))
        XCTAssertEqual(Array(UnsafeRawBufferPointer(rebasing: frame.storage[0..<6])), Array("dvblob".utf8))
        XCTAssertEqual(Array(written.dropFirst(Blob.headerSize)), chunk)

        let out = ByteBuffer(capacity: 4096 + chunkSize)
        let bytes = try store.load(digest, length: chunkSize, into: out, at: 4096, codec: codec)
        XCTAssertEqual(bytes.baseAddress, UnsafeRawPointer(out.storage.baseAddress! + 4096))
        XCTAssertEqual(Array(bytes), chunk)

        // A text chunk, compressed; then asked for with the compressed size as its length.
        let text = Array(String(repeating: "a line of a text file ", count: 10000).utf8)
        let textDigest = SHA256.digest(text)
        let stored = try text.withUnsafeBytes { try store.store($0, digest: textDigest, mayCompress: true, codec: codec) }
        XCTAssertTrue(stored.compressed)
        let misleading = stored.blobBytes - Blob.headerSize
        XCTAssertThrowsError(try store.load(textDigest, length: misleading, into: out, at: 4096, codec: codec)) { error in
            XCTAssertEqual((error as? DiskVaultError)?.code, .corrupt)
            XCTAssertTrue("\(error)".contains(textDigest.hex), "\(error)")
        }
        // Asked for rightly, it still reads.
        let textOut = ByteBuffer(capacity: 4096 + text.count)
        let back = try store.load(textDigest, length: text.count, into: textOut, at: 4096, codec: codec)
        XCTAssertEqual(Array(back), text)
        withExtendedLifetime(textOut) {}
    }

    func testByteCountParsing() {
        XCTAssertEqual(ByteCount.parse("4MiB"), 4 << 20)
        XCTAssertEqual(ByteCount.parse("64K"), 64 << 10)
        XCTAssertEqual(ByteCount.parse("65536"), 65536)
        XCTAssertEqual(ByteCount.parse("1g"), 1 << 30)
        XCTAssertNil(ByteCount.parse("four"))
        XCTAssertNil(ByteCount.parse("4XB"))
        XCTAssertNil(ByteCount.parse("99999999999999999999G"))
        XCTAssertEqual(ByteCount.format(4 << 20), "4.0 MiB")
    }

    func testDiskNames() {
        for good in ["web", "db-01", "vm_1.disk0"] { XCTAssertNoThrow(try DiskName.validate(good)) }
        for bad in ["", "a/b", "..", ".hidden", "../x", "a b", String(repeating: "x", count: 200)] {
            XCTAssertThrowsError(try DiskName.validate(bad), bad) { XCTAssertEqual(($0 as? DiskVaultError)?.code, .usage) }
        }
    }

    func testTimestamps() {
        let d = Timestamp.parse("2030-01-02")
        XCTAssertNotNil(d)
        XCTAssertEqual(Timestamp.format(d!), "2030-01-02T23:59:59.000Z")
        XCTAssertNotNil(Timestamp.parse("2030-01-02T03:04:05Z"))
        XCTAssertNil(Timestamp.parse("next tuesday"))
    }
}
