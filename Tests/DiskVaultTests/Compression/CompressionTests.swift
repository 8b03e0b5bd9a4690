import DiskVault
import XCTest

final class CompressionTests: XCTestCase {
    func testCRC32KnownAnswer() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([UInt8]()), 0)
    }

    /// ISA-L's CRC-32 equals zlib's on every length and alignment.
    func testIsalCRC32MatchesZlib() {
        var g = SystemRandomNumberGenerator()
        let data = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &g) }
        data.withUnsafeBytes { all in
            for (start, length) in [(0, 0), (0, 1), (3, 17), (1, 4095), (7, 65536), (0, 70_000)] {
                let slice = UnsafeRawBufferPointer(rebasing: all[start..<start + length])
                XCTAssertEqual(CRC32.checksum(slice), CRC32.zlibChecksum(slice), "\(start)+\(length)")
            }
        }
    }

    /// Blobs stay one format: ISA-L's deflate inflates with zlib, zlib's deflate inflates with ISA-L.
    func testIsalAndZlibReadEachOthersStreams() throws {
        let text = Array(try String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8).utf8)
            + Array(String(repeating: "disk block 0123456789 ", count: 20000).utf8)
        let bound = ZlibDeflater.bound(text.count) + 1024
        let a = ByteBuffer(capacity: bound), b = ByteBuffer(capacity: bound), back = ByteBuffer(capacity: text.count)
        try withExtendedLifetime((a, b, back)) {
            let isalN = try XCTUnwrap(text.withUnsafeBytes { IsalDeflater().compress($0, into: a.storage) })
            XCTAssertEqual(a.storage[0], 0x78, "a zlib header")
            XCTAssertLessThan(isalN, text.count / 2)
            XCTAssertEqual(ZlibInflater().decompress(a.prefix(isalN), into: back.storage), text.count)
            XCTAssertEqual(Array(back.prefix(text.count)), text)

            let zlibN = try XCTUnwrap(text.withUnsafeBytes { ZlibDeflater().compress($0, into: b.storage) })
            back.storage.initializeMemory(as: UInt8.self, repeating: 0)
            XCTAssertEqual(IsalInflater().decompress(b.prefix(zlibN), into: back.storage), text.count)
            XCTAssertEqual(Array(back.prefix(text.count)), text)
            // Damage and overflow are refused by ISA-L too.
            XCTAssertNil(IsalInflater().decompress(a.prefix(isalN / 2), into: back.storage))
            XCTAssertNil(IsalInflater().decompress(a.prefix(isalN), into: UnsafeMutableRawBufferPointer(rebasing: back.storage[0..<100])))
        }
    }

    func testDeflateInflateRoundTrip() {
        let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog\n", count: 5000).utf8)
        let out = ByteBuffer(capacity: ZlibDeflater.bound(text.count))
        let n = text.withUnsafeBytes { ZlibDeflater().compress($0, into: out.storage) }
        XCTAssertNotNil(n)
        XCTAssertLessThan(n!, text.count / 10)
        // The zlib format: CMF 0x78.
        XCTAssertEqual(out.storage[0], 0x78)
        let back = ByteBuffer(capacity: text.count)
        withExtendedLifetime((out, back)) {
            let m = ZlibInflater().decompress(out.prefix(n!), into: back.storage)
            XCTAssertEqual(m, text.count)
            XCTAssertEqual(Array(back.prefix(text.count)), text)
        }
    }

    func testDeflateIntoTooSmallBufferSaysItDidNotPay() {
        var g = SystemRandomNumberGenerator()
        let random = (0..<65536).map { _ in UInt8.random(in: 0...255, using: &g) }
        let out = ByteBuffer(capacity: 60000)
        withExtendedLifetime(out) {
            XCTAssertNil(random.withUnsafeBytes { ZlibDeflater().compress($0, into: out.storage) })
        }
    }

    func testInflateRejectsDamageAndOverflow() {
        let text = Array(String(repeating: "abcdefgh", count: 4096).utf8)
        let out = ByteBuffer(capacity: ZlibDeflater.bound(text.count))
        let n = text.withUnsafeBytes { ZlibDeflater().compress($0, into: out.storage) }!
        let inflater = ZlibInflater()
        let small = ByteBuffer(capacity: 100), large = ByteBuffer(capacity: text.count)
        withExtendedLifetime((out, small, large)) {
            // Output smaller than the data: refused, not overrun.
            XCTAssertNil(inflater.decompress(out.prefix(n), into: small.storage))
            // Truncated stream.
            XCTAssertNil(inflater.decompress(out.prefix(n / 2), into: large.storage))
            // Garbage.
            let junk: [UInt8] = [0x78, 0x01, 0xff, 0xff, 0xff, 0xff]
            XCTAssertNil(junk.withUnsafeBytes { inflater.decompress($0, into: small.storage) })
        }
    }

    func testProbeTellsCiphertextFromText() {
        var g = SystemRandomNumberGenerator()
        let random = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &g) }
        let text = Array(String(repeating: "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n", count: 20000).utf8)
        random.withUnsafeBytes { XCTAssertFalse(CompressibilityProbe.worthTrying($0)) }
        text.withUnsafeBytes { XCTAssertTrue(CompressibilityProbe.worthTrying($0)) }
        random.withUnsafeBytes { XCTAssertGreaterThan(CompressibilityProbe.entropy($0), 7.9) }
    }

    func testAllZeroDetection() {
        let zeros = ByteBuffer(capacity: 4099)
        zeros.storage.initializeMemory(as: UInt8.self, repeating: 0)
        XCTAssertTrue(isAllZero(zeros.prefix(4099)))
        for position in [0, 7, 8, 31, 32, 4095, 4098] {
            zeros.storage[position] = 1
            XCTAssertFalse(isAllZero(zeros.prefix(4099)), "byte \(position)")
            zeros.storage[position] = 0
        }
        XCTAssertTrue(isAllZero(zeros.prefix(0)))
    }
}
