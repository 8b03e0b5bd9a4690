import DiskVault
import Foundation
import XCTest

/// An object collected in an array, so that a test can damage it before reading it back.
private final class ArrayWriter: ObjectWriter {
    var bytes: [UInt8] = []
    var committed = false, abandoned = false
    var count: UInt64 { UInt64(bytes.count) }
    func append(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    func commitIfAbsent(durable: Bool) -> Bool {
        committed = true
        return true
    }
    func abandon() { abandoned = true }
}

/// An object that claims any size and answers reads with a fixed prefix then zeros, or nothing.
private final class HostileReader: ObjectReader {
    let size: UInt64
    let prefix: [UInt8]
    let answers: Bool
    init(size: UInt64, prefix: [UInt8], answers: Bool) {
        (self.size, self.prefix, self.answers) = (size, prefix, answers)
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> Int {
        guard offset < size, answers || offset < UInt64(prefix.count) else { return 0 }
        let n = Int(min(UInt64(buffer.count), size - offset, 1 << 20))
        for i in 0..<n {
            let at = offset + UInt64(i)
            buffer[i] = at < UInt64(prefix.count) ? prefix[Int(at)] : 0
            if !answers && at + 1 >= UInt64(prefix.count) { return i + 1 }
        }
        return n
    }
}

final class SealedObjectStreamTests: XCTestCase {
    let segment = SealedObjectStream.segmentSize
    let key = SecureRandom.bytes(32)
    let path = Array("disks/d/points/p1/index".utf8)
    /// "dvss", version 2, the object's 16-byte id.
    let headerSize = 21

    /// Seals `plaintext`, appended in pieces of varied sizes (empty ones too), and returns the inner object.
    private func seal(_ plaintext: [UInt8], key: [UInt8]? = nil, associatedData: [UInt8]? = nil, seed: UInt64 = 1) throws -> [UInt8] {
        let inner = ArrayWriter()
        let writer = SealedObjectWriter(inner, key: key ?? self.key, associatedData: associatedData ?? path)
        var rng = SeededRandom(seed: seed)
        var at = 0
        let pieces = [0, 1, 7, 4096, segment - 3, segment, segment + 5, 3 * segment]
        while at < plaintext.count {
            let n = min(pieces.randomElement(using: &rng)!, plaintext.count - at)
            try plaintext[at..<at + n].withUnsafeBytes { try writer.append($0) }
            at += n
            XCTAssertEqual(writer.count, UInt64(at))
        }
        XCTAssertTrue(try writer.commitIfAbsent(durable: false))
        XCTAssertTrue(inner.committed)
        return inner.bytes
    }

    private func open(_ sealed: [UInt8], key: [UInt8]? = nil, associatedData: [UInt8]? = nil) throws -> SealedObjectReader {
        try SealedObjectReader(MemoryObjectReader(sealed), key: key ?? self.key, associatedData: associatedData ?? path, source: "p1/index")
    }

    private func read(_ reader: SealedObjectReader, _ offset: Int, _ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try reader.read(into: $0, at: UInt64(offset)) }
        return Array(out[..<n])
    }

    /// Opens `sealed` and reads `range` of its plaintext: the error, or nil when it opened and read.
    private func failure(_ sealed: [UInt8], _ range: Range<Int>, key: [UInt8]? = nil, associatedData: [UInt8]? = nil) -> DiskVaultError? {
        do {
            let reader = try open(sealed, key: key, associatedData: associatedData)
            _ = try read(reader, range.lowerBound, range.count)
            return nil
        } catch let e as DiskVaultError {
            return e
        } catch {
            XCTFail("not a DiskVaultError: \(error)")
            return nil
        }
    }

    private func assertDamaged(_ error: DiskVaultError?, segment: Int? = nil, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let error else { return XCTFail("\(what): opened and read", file: file, line: line) }
        XCTAssertEqual(error.code, .corrupt, what, file: file, line: line)
        XCTAssertEqual(error.path, "p1/index", what, file: file, line: line)
        XCTAssertTrue(error.message.contains("is damaged or was not sealed for this place"), "\(what): \(error.message)", file: file, line: line)
        if let segment {
            XCTAssertTrue(error.message.contains("(segment \(segment) does not open)"), "\(what): \(error.message)", file: file, line: line)
        }
    }

    private func assertUnsupportedVersion(_ error: DiskVaultError?, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let error else { return XCTFail("\(what): opened and read", file: file, line: line) }
        XCTAssertEqual(error.code, .unsupported, what, file: file, line: line)
        XCTAssertEqual(error.path, "p1/index", what, file: file, line: line)
        XCTAssertTrue(error.message.contains("is not supported (this build reads version 2"), "\(what): \(error.message)", file: file, line: line)
    }

    private func segmentsOf(_ size: Int) -> Int { max(1, (size + segment - 1) / segment) }
    /// Where segment `i` starts in the sealed object.
    private func start(ofSegment i: Int) -> Int { headerSize + i * (segment + 28) }

    // MARK: round trips

    func testRoundTripsAtEverySizeThatMatters() throws {
        var rng = SeededRandom(seed: 42)
        for size in [0, 1, segment - 1, segment, segment + 1, 3 * segment + 17] {
            let plaintext = SecureRandom.bytes(size)
            let sealed = try seal(plaintext, seed: UInt64(size))
            XCTAssertEqual(sealed.count, headerSize + 28 * segmentsOf(size) + size, "size \(size)")
            XCTAssertEqual(Array(sealed.prefix(5)), Array("dvss".utf8) + [2])
            XCTAssertTrue(SealedObjectStream.isSealedForm(Array(sealed.prefix(5))))
            XCTAssertTrue(SealedObjectStream.isSealedForm(sealed))

            let reader = try open(sealed)
            XCTAssertEqual(reader.size, UInt64(size))
            StorageSuite.assertSame(try read(reader, 0, size + 100), plaintext, "size \(size) whole")
            XCTAssertEqual(try read(reader, size, 10), [], "size \(size) at its end")
            XCTAssertEqual(try read(reader, size + 1_000_000, 10), [], "size \(size) past its end")
            XCTAssertEqual(try read(reader, 0, 0), [])
            // Across each segment boundary, then anywhere.
            for b in stride(from: segment, to: size, by: segment) {
                StorageSuite.assertSame(try read(reader, b - 3, 6), Array(plaintext[(b - 3)..<min(size, b + 3)]), "size \(size) boundary \(b)")
            }
            guard size > 0 else { continue }
            for _ in 0..<300 {
                let offset = Int.random(in: 0..<size, using: &rng)
                let count = [1, 2, 31, 4096, segment, 2 * segment + 1].randomElement(using: &rng)!
                let expected = Array(plaintext[offset..<min(size, offset + count)])
                StorageSuite.assertSame(try read(reader, offset, count), expected, "size \(size) at \(offset) for \(count)")
            }
        }
    }

    func testThroughMemoryStorage() throws {
        let storage = MemoryStorage()
        let plaintext = SecureRandom.bytes(2 * segment + 999)
        let writer = SealedObjectWriter(try storage.makeWriter("points/p1/index"), key: key, associatedData: path)
        try plaintext.withUnsafeBytes { try writer.append($0) }
        XCTAssertTrue(try writer.commitIfAbsent(durable: true))
        XCTAssertThrowsError(try plaintext.withUnsafeBytes { try writer.append($0) }, "appending after the commit")

        let reader = try SealedObjectReader(try storage.makeReader("points/p1/index"), key: key, associatedData: path, source: "p1/index")
        StorageSuite.assertSame(try read(reader, 0, plaintext.count), plaintext, "through MemoryStorage")

        // Never over an existing object; an abandoned one leaves nothing.
        let again = SealedObjectWriter(try storage.makeWriter("points/p1/index"), key: key, associatedData: path)
        XCTAssertFalse(try again.commitIfAbsent(durable: false))
        let dropped = SealedObjectWriter(try storage.makeWriter("points/p2/index"), key: key, associatedData: path)
        try plaintext.withUnsafeBytes { try dropped.append($0) }
        dropped.abandon()
        XCTAssertThrowsError(try storage.makeReader("points/p2/index"))
    }

    func testAbandonAbandonsTheInnerObject() throws {
        let inner = ArrayWriter()
        let writer = SealedObjectWriter(inner, key: key, associatedData: path)
        try [1, 2, 3].withUnsafeBytes { try writer.append($0) }
        writer.abandon()
        XCTAssertTrue(inner.abandoned)
        XCTAssertFalse(inner.committed)
        XCTAssertThrowsError(try writer.commitIfAbsent(durable: false))
    }

    func testChunkIndexThroughTheSealedStream() throws {
        let chunkSize = 1 << 20
        var rng = SeededRandom(seed: 7)
        // About 160 KiB of entries: several segments, with runs of zero chunks among them.
        var digests: [Digest256] = []
        for i in 0..<6000 {
            digests.append(i % 97 < 5 ? .zero : SHA256.digest(withUnsafeBytes(of: rng.next()) { Array($0) }))
        }
        let imageSize = UInt64(digests.count - 1) * UInt64(chunkSize) + 12345
        let inner = ArrayWriter()
        let sealedWriter = SealedObjectWriter(inner, key: key, associatedData: path)
        let indexWriter = ChunkIndexWriter(chunkSize: chunkSize, output: sealedWriter)
        for d in digests { try indexWriter.append(d) }
        let digest = try indexWriter.finish(imageSize: imageSize)
        XCTAssertTrue(try sealedWriter.commitIfAbsent(durable: false))
        XCTAssertGreaterThan(inner.bytes.count, 2 * segment)

        let reader = try ChunkIndexReader(try open(inner.bytes), source: "p1/index", expectedDigest: digest)
        XCTAssertEqual(reader.count, digests.count)
        XCTAssertEqual(reader.imageSize, imageSize)
        var got: [Digest256] = []
        while let entry = try reader.next() {
            switch entry {
            case .chunk(let d): got.append(d)
            case .zeros(let n): got.append(contentsOf: repeatElement(.zero, count: n))
            }
        }
        XCTAssertEqual(got, digests)
        // The same index as written in the clear.
        XCTAssertEqual(try ChunkIndex.decode(try read(try open(inner.bytes), 0, inner.bytes.count), source: "p1/index"),
                       ChunkIndex(chunkSize: chunkSize, imageSize: imageSize, digests: digests))
    }

    // MARK: refusals

    func testWrongKeyIsRefused() throws {
        for size in [0, 100, 3 * segment + 17] {
            let sealed = try seal(SecureRandom.bytes(size))
            let last = segmentsOf(size) - 1
            assertDamaged(failure(sealed, 0..<size, key: SecureRandom.bytes(32)), segment: last, "size \(size), another key")
            assertDamaged(failure(sealed, 0..<size, key: [1, 2, 3]), segment: last, "size \(size), a short key")
        }
    }

    func testAnotherPathIsRefused() throws {
        let sealed = try seal(SecureRandom.bytes(2 * segment + 5))
        for other in ["disks/d/points/p2/index", "disks/d/points/p1/index\0", "", "disks/d/points/p1/inde"] {
            assertDamaged(failure(sealed, 0..<10, associatedData: Array(other.utf8)), segment: 2, "sealed for \(path), opened for \(other)")
        }
    }

    func testAFlippedBitIsRefusedWhereverItIs() throws {
        // Every bit of a small object.
        let small = try seal(SecureRandom.bytes(100))
        for bit in 0..<(small.count * 8) {
            var damaged = small
            damaged[bit / 8] ^= 1 << UInt8(bit % 8)
            // The version byte changed names the version; anything else is damage.
            if bit / 8 == 4 {
                assertUnsupportedVersion(failure(damaged, 0..<100), "small object, bit \(bit)")
            } else {
                assertDamaged(failure(damaged, 0..<100), segment: bit < 40 ? nil : 0, "small object, bit \(bit)")
            }
        }

        // In a larger one: the header, then each part of every segment, refused by the read that touches it
        // while the segments around it still read.
        let size = 3 * segment + 17
        let plaintext = SecureRandom.bytes(size)
        let sealed = try seal(plaintext)
        for at in 0..<headerSize {
            var damaged = sealed
            damaged[at] ^= 0x10
            if at == 4 {
                assertUnsupportedVersion(failure(damaged, 0..<1), "header byte \(at)")
            } else {
                assertDamaged(failure(damaged, 0..<1), segment: at < 5 ? nil : 3, "header byte \(at)")
            }
        }
        for i in 0..<4 {
            let begin = start(ofSegment: i)
            let end = i == 3 ? sealed.count : start(ofSegment: i + 1)
            let parts: [(String, Int)] = [
                ("first nonce byte", begin), ("last nonce byte", begin + 11),
                ("first ciphertext byte", begin + 12), ("middle ciphertext byte", (begin + 12 + end - 16) / 2),
                ("last ciphertext byte", end - 17), ("first tag byte", end - 16), ("last tag byte", end - 1),
            ]
            for (part, at) in parts {
                var damaged = sealed
                damaged[at] ^= 0x01
                let touched = (i * segment)..<min(size, i * segment + 10)
                assertDamaged(failure(damaged, touched), segment: i, "segment \(i), \(part)")
                guard i < 3 else { continue }  // The last segment is checked as the reader opens.
                let reader = try open(damaged)
                let other = i == 0 ? 1 : 0
                StorageSuite.assertSame(try read(reader, other * segment, segment), Array(plaintext[(other * segment)..<((other + 1) * segment)]),
                                        "segment \(other) with segment \(i) damaged")
                XCTAssertThrowsError(try read(reader, i * segment + segment - 1, 2), "segment \(i), \(part), read ending in it")
                XCTAssertThrowsError(try read(reader, 0, size), "segment \(i), \(part), read whole")
            }
        }
    }

    func testTruncationAndExtensionAreRefused() throws {
        let size = 3 * segment + 17
        let sealed = try seal(SecureRandom.bytes(size))
        // Cut at each segment boundary: what is left is well formed, but its new last segment was not
        // sealed as the last.
        for kept in 1...3 {
            let cut = Array(sealed.prefix(start(ofSegment: kept)))
            assertDamaged(failure(cut, 0..<1), segment: kept - 1, "cut after \(kept) segments")
        }
        // Cut or grown anywhere else.
        for length in [0, 4, 5, 6, 20, 21, 22, 48, 49, start(ofSegment: 1) - 1, start(ofSegment: 1) + 1, start(ofSegment: 1) + 28, sealed.count - 1] {
            assertDamaged(failure(Array(sealed.prefix(length)), 0..<1), "cut to \(length) bytes")
        }
        for extra in [[0], Array(repeating: 0, count: 28), Array(sealed[start(ofSegment: 3)...])] as [[UInt8]] {
            assertDamaged(failure(sealed + extra, 0..<1), "grown by \(extra.count) bytes")
        }
        // An object of whole segments followed by an empty last one is not a layout the writer makes.
        let whole = try seal(SecureRandom.bytes(segment))
        let empty = try seal([])
        assertDamaged(failure(whole + empty.dropFirst(headerSize), 0..<1), "a full segment then an empty one")
    }

    func testReorderedSegmentsAreRefused() throws {
        let size = 3 * segment + 17
        let sealed = try seal(SecureRandom.bytes(size))
        let s = segment + 28
        func swapped(_ a: Int, _ b: Int) -> [UInt8] {
            var out = sealed
            out.replaceSubrange(start(ofSegment: a)..<start(ofSegment: a) + s, with: sealed[start(ofSegment: b)..<start(ofSegment: b) + s])
            out.replaceSubrange(start(ofSegment: b)..<start(ofSegment: b) + s, with: sealed[start(ofSegment: a)..<start(ofSegment: a) + s])
            return out
        }
        assertDamaged(failure(swapped(0, 1), 0..<1), segment: 0, "segments 0 and 1 swapped, read of 0")
        assertDamaged(failure(swapped(0, 1), segment..<(segment + 1)), segment: 1, "segments 0 and 1 swapped, read of 1")
        assertDamaged(failure(swapped(1, 2), segment..<(segment + 1)), segment: 1, "segments 1 and 2 swapped")
        // A segment sealed for the same place in another object at another position.
        let other = try seal(SecureRandom.bytes(size))
        var spliced = sealed
        spliced.replaceSubrange(start(ofSegment: 0)..<start(ofSegment: 0) + s, with: other[start(ofSegment: 1)..<start(ofSegment: 1) + s])
        assertDamaged(failure(spliced, 0..<1), segment: 0, "segment 1 of another object put first")
        // The last segment moved up: a short object whose only segment is not segment 0.
        let short = Array(sealed.prefix(headerSize)) + sealed[start(ofSegment: 3)...]
        assertDamaged(failure(short, 0..<1), segment: 0, "the last segment alone")
    }

    /// Two objects sealed under the same key for the same place (an index written again at its path, by a
    /// backup retried): a segment of one never opens in the other.
    func testSegmentsOfAnotherObjectForTheSamePlaceAreRefused() throws {
        let size = 3 * segment + 17
        let plaintext = SecureRandom.bytes(size)
        let a = try seal(plaintext, seed: 1)
        let b = try seal(SecureRandom.bytes(size), seed: 2)
        XCTAssertEqual(a.count, b.count)
        // Found from the sizes, so that the splices do not depend on the header's layout.
        let header = a.count - 28 * segmentsOf(size) - size
        func end(ofSegment i: Int) -> Int { header + (i + 1) * (segment + 28) }
        // A's header and segment 0, then B's segments 1 to 3, each at its own position.
        let spliced = Array(a[..<end(ofSegment: 0)]) + b[end(ofSegment: 0)...]
        assertDamaged(failure(spliced, 0..<size), segment: 3, "A's header and segment 0, then B's segments")
        // B's header in front of A's segments.
        let headed = Array(b[..<header]) + a[header...]
        assertDamaged(failure(headed, 0..<size), segment: 3, "B's header in front of A's segments")
        // A with B's segments 1 and 2 in the middle: A's own segments still read, B's do not.
        let middle = Array(a[..<end(ofSegment: 0)]) + b[end(ofSegment: 0)..<end(ofSegment: 2)] + a[end(ofSegment: 2)...]
        assertDamaged(failure(middle, segment..<(segment + 1)), segment: 1, "B's segment 1 in A")
        assertDamaged(failure(middle, (2 * segment)..<(2 * segment + 1)), segment: 2, "B's segment 2 in A")
        let reader = try open(middle)
        StorageSuite.assertSame(try read(reader, 0, segment), Array(plaintext[..<segment]), "A's segment 0 with B's 1 and 2")
        StorageSuite.assertSame(try read(reader, 3 * segment, 17), Array(plaintext[(3 * segment)...]), "A's segment 3 with B's 1 and 2")
    }

    func testAChangedIdIsRefused() throws {
        let size = 3 * segment + 17
        let sealed = try seal(SecureRandom.bytes(size))
        let other = try seal(SecureRandom.bytes(size))
        XCTAssertNotEqual(sealed[5..<headerSize], other[5..<headerSize], "two objects with one id")
        var changed = sealed
        changed.replaceSubrange(5..<headerSize, with: SecureRandom.bytes(16))
        assertDamaged(failure(changed, 0..<1), segment: 3, "a random id")
        changed.replaceSubrange(5..<headerSize, with: other[5..<headerSize])
        assertDamaged(failure(changed, 0..<1), segment: 3, "the id of another object for the same place")
        // Every segment is bound to the id, not only the last.
        changed = sealed
        changed.replaceSubrange(5..<headerSize, with: other[5..<headerSize])
        changed.replaceSubrange(start(ofSegment: 3)..<changed.count, with: other[start(ofSegment: 3)...])
        assertDamaged(failure(changed, 0..<1), segment: 0, "another id and its last segment")
    }

    func testOtherVersionsAreRefusedByName() throws {
        let sealed = try seal(SecureRandom.bytes(segment + 5))
        for version: UInt8 in [1, 3, 0, 255] {
            var other = sealed
            other[4] = version
            XCTAssertThrowsError(try open(other), "version \(version)") { error in
                let e = error as? DiskVaultError
                XCTAssertEqual(e?.code, .unsupported, "version \(version)")
                XCTAssertEqual(e?.path, "p1/index")
                XCTAssertTrue(e?.message.contains("sealed object stream version \(version) is not supported (this build reads version 2") == true,
                              e?.message ?? "")
            }
        }
        // A version-1 object as that build wrote it: the header, then segments straight after it.
        let v1 = Array("dvss".utf8) + [1] + sealed[headerSize...]
        XCTAssertThrowsError(try open(v1)) { error in
            XCTAssertEqual((error as? DiskVaultError)?.code, .unsupported)
            XCTAssertTrue((error as? DiskVaultError)?.message.contains("version 1, without an object id, was never released") == true, "\(error)")
        }
    }

    /// An encrypted vault's head gives the plaintext size of an index written in segments and of one put whole.
    func testEncryptedStorageHeadGivesThePlaintextSize() throws {
        let keys = VaultKeys(master: SecureRandom.bytes(32), vaultID: "head")
        let storage = EncryptedStorage(MemoryStorage(), keys: keys, vaultID: "head")
        for (i, size) in [0, 1, segment - 1, segment, segment + 1, 3 * segment + 17].enumerated() {
            let plaintext = SecureRandom.bytes(size)
            let streamed = "disks/d/points/s\(i)/index", whole = "disks/d/points/w\(i)/index"
            let writer = try storage.makeWriter(streamed)
            try plaintext.withUnsafeBytes { try writer.append($0) }
            XCTAssertTrue(try writer.commitIfAbsent(durable: false))
            XCTAssertTrue(try storage.putIfAbsent(whole, plaintext, durable: false))
            XCTAssertEqual(try storage.head(streamed), UInt64(size), "streamed, size \(size)")
            XCTAssertEqual(try storage.head(whole), UInt64(size), "put whole, size \(size)")
            XCTAssertEqual(try storage.makeReader(streamed).size, UInt64(size), "streamed, size \(size), reader")
            XCTAssertEqual(try storage.inner.head(streamed), UInt64(headerSize + 28 * segmentsOf(size) + size), "size \(size) sealed")
        }
        XCTAssertNil(try storage.head("disks/d/points/none/index"))
    }

    func testHostileInnerObjectsNeitherCrashNorHang() {
        let header = Array("dvss".utf8) + [2] + SecureRandom.bytes(16)
        let sizes: [UInt64] = [0, 4, 5, 20, 21, 49, 50, UInt64(segment + 49), UInt64.max, UInt64.max - 1, UInt64.max / 2,
                               21 + UInt64(segment + 28) * (1 << 40), 21 + UInt64(segment + 28) * (1 << 40) + 28]
        for size in sizes {
            for answers in [true, false] {
                for prefix in [header, Array(header.prefix(5)), [], Array("dvsS".utf8) + [2], Array("dvse".utf8) + [1]] {
                    let inner = HostileReader(size: size, prefix: prefix, answers: answers)
                    XCTAssertThrowsError(try SealedObjectReader(inner, key: key, associatedData: path, source: "p1/index"),
                                         "size \(size), answers \(answers), prefix \(prefix)") { error in
                        XCTAssertEqual((error as? DiskVaultError)?.code, .corrupt)
                    }
                }
            }
        }
        XCTAssertFalse(SealedObjectStream.isSealedForm(Array("dvss".utf8)))
        XCTAssertFalse(SealedObjectStream.isSealedForm(Array("dvse".utf8) + [1]))
        XCTAssertFalse(SealedObjectStream.isSealedForm(Array("dvss".utf8) + [1]), "version 1")
        XCTAssertFalse(SealedObjectStream.isSealedForm(Array("dvindex".utf8)))
    }

    // MARK: secrecy

    func testTheSealedFormHoldsNoRunOfThePlaintext() throws {
        let size = 3 * segment + 17
        let text = Array(String(repeating: "the quick brown fox jumps over the lazy disk ", count: size / 45 + 1).utf8.prefix(size))
        for plaintext in [SecureRandom.bytes(size), [UInt8](repeating: 0, count: size), text] {
            let sealed = try seal(plaintext)
            func word(_ b: [UInt8], _ at: Int) -> UInt64 {
                b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self) }
            }
            var words = Set<UInt64>()
            for at in 0...(sealed.count - 8) { words.insert(word(sealed, at)) }
            var found: [Int] = []
            for at in 0...(plaintext.count - 64) where words.contains(word(plaintext, at)) {
                let run = plaintext[at..<at + 64]
                for s in 0...(sealed.count - 64) where sealed[s] == run.first! && sealed[s..<s + 64].elementsEqual(run) {
                    found.append(at)
                    break
                }
                if found.count > 3 { break }
            }
            XCTAssertEqual(found, [], "64-byte runs of the plaintext found in the sealed form")
            // Sealed twice, the same plaintext never looks the same.
            XCTAssertNotEqual(try seal(plaintext).suffix(64), sealed.suffix(64))
        }
    }
}
