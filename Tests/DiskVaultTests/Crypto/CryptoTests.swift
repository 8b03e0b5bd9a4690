import DiskVault
import XCTest

final class CryptoTests: XCTestCase {
    // FIPS 180-2 examples.
    func testSHA256KnownAnswers() {
        XCTAssertEqual(SHA256.digest(Array("abc".utf8)).hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.digest([UInt8]()).hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(
            SHA256.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)).hex,
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testSHA256IncrementalMatchesOneShot() {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let hasher = SHA256()
        hasher.update(Array(data[..<777]))
        hasher.update(Array(data[777...]))
        XCTAssertEqual(hasher.finalize(), SHA256.digest(data))
        // A finalized hasher starts over.
        hasher.update(Array("abc".utf8))
        XCTAssertEqual(hasher.finalize().hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    // RFC 4231 test cases 1 and 2.
    func testHMACSHA256KnownAnswers() {
        let key1 = [UInt8](repeating: 0x0b, count: 20)
        XCTAssertEqual(
            HMACSHA256.authenticationCode(key: key1, message: Array("Hi There".utf8)).hex,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        XCTAssertEqual(
            HMACSHA256.authenticationCode(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)).hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    /// The two forms an encrypted vault's blobs use agree with the array forms: a box sealed from a buffer
    /// opens with `open`, a box from `seal` opens in place (plaintext at the buffer's start), and in place a
    /// flipped byte, another key or other associated data opens nothing.
    func testAESGCMBufferAndInPlaceFormsAgree() {
        let key = (0..<32).map { UInt8($0) }, other = (0..<32).map { UInt8(255 - $0) }
        for size in [0, 1, 15, 16, 17, 4096, 1 << 20] {
            let plain = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            let fromBuffer = plain.withUnsafeBytes { AESGCM.seal($0, key: key, associatedData: Array("chunks/x".utf8)) }
            XCTAssertEqual(fromBuffer.count, size + AESGCM.overhead)
            XCTAssertEqual(AESGCM.open(fromBuffer, key: key, associatedData: Array("chunks/x".utf8)), plain, "\(size)")
            func inPlace(_ box: [UInt8], key: [UInt8], ad: String) -> [UInt8]? {
                var buffer = box
                guard let n = buffer.withUnsafeMutableBytes({ AESGCM.openInPlace($0, key: key, associatedData: Array(ad.utf8)) }) else { return nil }
                return Array(buffer[..<n])
            }
            let box = AESGCM.seal(plain, key: key, associatedData: Array("chunks/x".utf8))
            XCTAssertEqual(inPlace(box, key: key, ad: "chunks/x"), plain, "\(size)")
            XCTAssertNil(inPlace(box, key: other, ad: "chunks/x"))
            XCTAssertNil(inPlace(box, key: key, ad: "chunks/y"))
            var flipped = box
            flipped[flipped.count - 1 - size / 2] ^= 1
            XCTAssertNil(inPlace(flipped, key: key, ad: "chunks/x"), "\(size)")
            XCTAssertNil(inPlace(Array(box.dropLast()), key: key, ad: "chunks/x"))
            // Sealed where it lies, in a buffer with room: a box the array form opens, under a fresh nonce.
            var room = plain + [UInt8](repeating: 0xee, count: AESGCM.overhead + 7)
            let n = room.withUnsafeMutableBytes { AESGCM.sealInPlace($0, length: size, key: key, associatedData: Array("chunks/x".utf8)) }
            XCTAssertEqual(n, size + AESGCM.overhead)
            XCTAssertEqual(AESGCM.open(Array(room[..<n]), key: key, associatedData: Array("chunks/x".utf8)), plain, "\(size)")
            XCTAssertNil(AESGCM.open(Array(room[..<n]), key: key, associatedData: Array("chunks/y".utf8)))
            XCTAssertNotEqual(Array(room[5..<17]), Array(box[5..<17]), "a fresh nonce")
            XCTAssertEqual(Array(room[n...]), [UInt8](repeating: 0xee, count: 7), "nothing written past the box")
        }
    }

    func testDigestHexRoundTripAndOrdering() {
        let d = SHA256.digest(Array("abc".utf8))
        XCTAssertEqual(Digest256(hex: d.hex), d)
        XCTAssertEqual(Digest256(hex: d.hex.uppercased()), d)
        XCTAssertNil(Digest256(hex: "xyz"))
        XCTAssertNil(Digest256(hex: String(repeating: "g", count: 64)))
        XCTAssertTrue(Digest256.zero < d)
        XCTAssertTrue(Digest256.zero.isZero)
        XCTAssertFalse(d.isZero)
    }
}
