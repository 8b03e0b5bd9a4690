@testable import DiskVault
import Foundation
import XCTest

/// BitLockerKeyCheck against the real Windows-made fixtures: the .BEK made with the startup-key image opens it
/// (the VMK unwraps with a verifying AES-CCM tag) and nothing else does, with `cryptsetup open --type bitlk
/// --test-passphrase --key-file` as the independent judge; then damaged, truncated and random .BEK files.
final class BitLockerKeyCheckTests: XCTestCase {
    static let startupImage = "bitlk-aes-xts-128-startup-key.img"
    static let bekName = "4381F759-C4F8-4DE0-BB61-FC33A831BDA5.BEK"
    static let bekGUID = "4381f759-c4f8-4de0-bb61-fc33a831bda5"
    /// Where the key identifier sits in the fixture .BEK: the header, and the external key entry's data.
    static let headerGUIDOffset = 16
    static let entryGUIDOffset = 56
    /// The 32 key bytes: after the key property's 8-byte header and 4-byte encryption method.
    static let keyRange = 124..<156

    // MARK: The real .BEK

    func testBEKParsesToItsKeyIdentifierAndKey() throws {
        let (dir, bek) = try fixtureBEK()
        let key = try BitLockerStartupKey.parse(bek, source: "\(dir)/\(Self.bekName)")
        XCTAssertEqual(key.keyGUID, Self.bekGUID)
        XCTAssertEqual(key.keyGUID, String(Self.bekName.dropLast(4)).lowercased(), "the file is named after its key")
        XCTAssertEqual(key.keyGUID, try Fixtures.bitlockerConfig()["bitlk-aes-xts-128-startup-key"]?["SK_VMK_GUID"])
        XCTAssertEqual(key.key, Array(bek[Self.keyRange]))
        XCTAssertEqual(key.key.count, 32)
        // The offsets the damage tests below rely on.
        XCTAssertEqual(bek.count, 156)
        XCTAssertEqual(Array(bek[Self.headerGUIDOffset..<Self.headerGUIDOffset + 16]),
                       Array(bek[Self.entryGUIDOffset..<Self.entryGUIDOffset + 16]))
    }

    func testBEKFitsTheStartupKeyImageAndCryptsetupAgrees() throws {
        let (dir, bek) = try fixtureBEK()
        let image = "\(dir)/\(Self.startupImage)"
        let result = try BitLockerKeyCheck.check(bek: bek, bekSource: "\(dir)/\(Self.bekName)", volume: volume(image))
        XCTAssertEqual(result, .fits("startup-key protector \(Self.bekGUID)"))
        XCTAssertEqual(result.status, .fits)

        try Tool.require("cryptsetup")
        XCTAssertEqual(try cryptsetupTest(keyFile: "\(dir)/\(Self.bekName)", image: image).status, 0,
                       "cryptsetup does not open \(Self.startupImage) with the .BEK")
    }

    func testBEKDoesNotFitTheOtherImages() throws {
        let (dir, bek) = try fixtureBEK()
        let others = try FileManager.default.contentsOfDirectory(atPath: dir)
            .filter { $0.hasSuffix(".img") && $0 != Self.startupImage }.sorted()
        XCTAssertGreaterThanOrEqual(others.count, 4, "too few other BitLocker fixtures: \(others)")
        let haveCryptsetup = (try? Tool.which("cryptsetup")) != nil
        for name in others {
            let image = "\(dir)/\(name)"
            let result = try BitLockerKeyCheck.check(bek: bek, bekSource: Self.bekName, volume: volume(image))
            guard case .doesNotFit(let why) = result else {
                XCTFail("\(name): \(result)")
                continue
            }
            XCTAssertTrue(why.contains("no protector") && why.contains(Self.bekGUID), "\(name): \(why)")
            if haveCryptsetup {
                XCTAssertNotEqual(try cryptsetupTest(keyFile: "\(dir)/\(Self.bekName)", image: image).status, 0,
                                  "cryptsetup opens \(name) with the .BEK")
            }
        }
    }

    func testBEKWithAFlippedKeyByteDoesNotFitAndCryptsetupAgrees() throws {
        let (dir, bek) = try fixtureBEK()
        let image = "\(dir)/\(Self.startupImage)"
        let v = try volume(image)
        for position in [Self.keyRange.lowerBound, Self.keyRange.lowerBound + 6, Self.keyRange.upperBound - 1] {
            var bad = bek
            bad[position] ^= 0x01
            // Still a well-formed .BEK for the same protector; only the key is wrong.
            XCTAssertEqual(try BitLockerStartupKey.parse(bad, source: "bad").keyGUID, Self.bekGUID)
            let result = try BitLockerKeyCheck.check(bek: bad, bekSource: "bad", volume: v)
            guard case .doesNotFit(let why) = result else {
                XCTFail("key byte \(position) flipped: \(result)")
                continue
            }
            XCTAssertTrue(why.contains("startup-key protector \(Self.bekGUID)") && why.contains("tag"), why)
        }

        try Tool.require("cryptsetup")
        let scratch = try Scratch(self)
        var bad = bek
        bad[Self.keyRange.lowerBound + 6] ^= 0x01
        let badPath = scratch.file(Self.bekName)
        try Data(bad).write(to: URL(fileURLWithPath: badPath))
        XCTAssertNotEqual(try cryptsetupTest(keyFile: badPath, image: image).status, 0,
                          "cryptsetup opens \(Self.startupImage) with a .BEK whose key has a byte flipped")
        // And the judge does open it with the file as it was.
        XCTAssertEqual(try cryptsetupTest(keyFile: "\(dir)/\(Self.bekName)", image: image).status, 0)
    }

    func testBEKWithAnotherGUIDDoesNotFit() throws {
        let (dir, bek) = try fixtureBEK()
        let v = try volume("\(dir)/\(Self.startupImage)")

        // A key identifier no protector has.
        let stranger = "0badc0de-1234-4abc-8def-0123456789ab"
        let renamed = withGUID(bek, stranger)
        XCTAssertEqual(try BitLockerStartupKey.parse(renamed, source: "renamed").keyGUID, stranger)
        let result = try BitLockerKeyCheck.check(bek: renamed, bekSource: "renamed", volume: v)
        guard case .doesNotFit(let why) = result else { return XCTFail("\(result)") }
        XCTAssertTrue(why.contains("no protector") && why.contains(stranger), why)
        XCTAssertTrue(why.contains("startup-key \(Self.bekGUID)"), "the volume's protectors are listed: \(why)")

        // The identifier of another protector of the same volume: the recovery password's VMK does not unwrap.
        let recovery = try XCTUnwrap(try Fixtures.bitlockerConfig()["bitlk-aes-xts-128-startup-key"]?["RP_VMK_GUID"])
        let borrowed = try BitLockerKeyCheck.check(bek: withGUID(bek, recovery), bekSource: "borrowed", volume: v)
        guard case .doesNotFit(let reason) = borrowed else { return XCTFail("\(borrowed)") }
        XCTAssertTrue(reason.contains("recovery-password") && reason.contains("not a startup key"), reason)

        // Only one of the two copies of the identifier changed: the file contradicts itself.
        var half = bek
        half[Self.headerGUIDOffset] ^= 0xFF
        assertCorrupt(try BitLockerStartupKey.parse(half, source: "half.BEK"), path: "half.BEK",
                      mentions: ["header names key", "external key entry"])
        assertCorrupt(try BitLockerKeyCheck.check(bek: half, bekSource: "half.BEK", volume: v), path: "half.BEK",
                      mentions: ["header names key"])
    }

    // MARK: Not a .BEK

    func testNotABEKIsAClearError() throws {
        let (dir, bek) = try fixtureBEK()
        let v = try volume("\(dir)/\(Self.startupImage)")
        assertCorrupt(try BitLockerKeyCheck.check(bek: [], bekSource: "empty.BEK", volume: v), path: "empty.BEK",
                      mentions: ["not a BitLocker startup key", "0 bytes"])
        assertCorrupt(try BitLockerKeyCheck.check(bek: Array("correct horse battery staple, a passphrase\n".utf8),
                                                  bekSource: "passphrase.txt", volume: v),
                      path: "passphrase.txt", mentions: ["not a BitLocker startup key"])
        // The volume's own first sector is no .BEK either.
        let boot = try volume("\(dir)/\(Self.startupImage)").read(0, 512, what: "boot").bytes
        assertCorrupt(try BitLockerStartupKey.parse(boot, source: "boot"), path: "boot",
                      mentions: ["not a BitLocker startup key"])

        var longer = bek + [0, 0, 0, 0]
        assertCorrupt(try BitLockerStartupKey.parse(longer, source: "long"), path: "long",
                      mentions: ["metadata size is 156 bytes, the file has 160"])
        longer.replaceSubrange(0..<4, with: le32(160))
        XCTAssertEqual(try BitLockerStartupKey.parse(longer, source: "long").keyGUID, Self.bekGUID,
                       "zero padding after the entries ends them")

        var noKey = bek
        noKey[0x74] = 0x03  // the key property's value type: a stretch key instead
        assertCorrupt(try BitLockerStartupKey.parse(noKey, source: "nokey"), path: "nokey", mentions: ["holds no key"])
        var noEntry = bek
        noEntry[0x32] = 0x07  // the entry type: a description instead of a startup key
        assertCorrupt(try BitLockerStartupKey.parse(noEntry, source: "noentry"), path: "noentry",
                      mentions: ["no external key entry"])
        var shortKey = bek
        shortKey[0x70] = 0x2B  // the key property one byte shorter, the rest of the entry unaccounted for
        assertCorrupt(try BitLockerStartupKey.parse(shortKey, source: "short"), path: "short",
                      mentions: ["31 bytes of key"])
        var overrun = bek
        overrun[0x30] = 0xFF  // the startup key entry runs past the file
        assertCorrupt(try BitLockerStartupKey.parse(overrun, source: "overrun"), path: "overrun",
                      mentions: ["entry at byte 48 has size 255"])
    }

    func testVolumeThatIsNotBitLockerDoesNotFit() throws {
        let (_, bek) = try fixtureBEK()
        let scratch = try Scratch(self)
        let zeros = scratch.file("zeros.img")
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: zeros))
        let result = try BitLockerKeyCheck.check(bek: bek, bekSource: "k.BEK", volume: volume(zeros))
        XCTAssertEqual(result.status, .doesNotFit, "\(result)")
        XCTAssertTrue(result.detail.contains("not a BitLocker volume"), result.detail)
    }

    func testTruncatedDamagedAndRandomBEKsNeverCrash() throws {
        let (dir, bek) = try fixtureBEK()
        let v = try volume("\(dir)/\(Self.startupImage)")

        // Every truncation: the size field no longer matches, or the header is gone.
        for length in 0..<bek.count {
            assertCorrupt(try BitLockerKeyCheck.check(bek: Array(bek.prefix(length)), bekSource: "cut.BEK", volume: v),
                          path: "cut.BEK", mentions: [], "cut to \(length) bytes")
        }

        // Every byte changed three ways: a clear error, or a verdict; it fits only when neither the key nor the
        // key identifier was touched.
        var verdicts = 0
        for position in 0..<bek.count {
            for change: (UInt8) -> UInt8 in [{ $0 ^ 0x01 }, { $0 ^ 0x80 }, { _ in 0xFF }, { _ in 0 }] {
                var bad = bek
                bad[position] = change(bad[position])
                guard bad != bek else { continue }
                do throws(DiskVaultError) {
                    let result = try BitLockerKeyCheck.check(bek: bad, bekSource: "bad.BEK", volume: v)
                    verdicts += 1
                    let touchesKey = Self.keyRange.contains(position)
                        || (Self.headerGUIDOffset..<Self.headerGUIDOffset + 16).contains(position)
                        || (Self.entryGUIDOffset..<Self.entryGUIDOffset + 16).contains(position)
                    if touchesKey {
                        XCTAssertEqual(result.status, .doesNotFit, "byte \(position): \(result)")
                    } else {
                        XCTAssertEqual(result, .fits("startup-key protector \(Self.bekGUID)"), "byte \(position)")
                    }
                } catch {
                    XCTAssertEqual(error.code, .corrupt, "byte \(position): \(error)")
                    XCTAssertEqual(error.path, "bad.BEK", "byte \(position)")
                    XCTAssertFalse(error.message.isEmpty)
                }
            }
        }
        XCTAssertGreaterThan(verdicts, 0)

        // Random bytes, and random entries behind a well-formed header (so the entry walk sees them).
        var random = SeededRandom(seed: 0xBE4_F11E)
        for round in 0..<3000 {
            let length = Int(random.next() % 320)
            var bytes = (0..<length).map { _ in random.byte() }
            if round % 2 == 1 && length >= 48 {
                bytes.replaceSubrange(0..<12, with: le32(UInt32(length)) + le32(1) + le32(48))
                if round % 4 == 3 && length >= 80 {
                    // A startup key entry of random (often plausible) size holding random properties.
                    let size = UInt16(random.next() % UInt64(length - 47))
                    bytes.replaceSubrange(48..<54, with: le16(size) + le16(6) + le16(9))
                    let guid = Array(bytes[16..<32])
                    bytes.replaceSubrange(56..<72, with: guid)
                }
            }
            do throws(DiskVaultError) {
                let result = try BitLockerKeyCheck.check(bek: bytes, bekSource: "random.BEK", volume: v)
                XCTAssertNotEqual(result.status, .fits, "round \(round): \(result)")
            } catch {
                XCTAssertEqual(error.code, .corrupt, "round \(round): \(error)")
                XCTAssertEqual(error.path, "random.BEK", "round \(round)")
            }
        }
    }

    // MARK: AES-CCM

    func testAESCCMRoundTripsAndRefusesAnyChange() {
        var random = SeededRandom(seed: 0xCC_A7)
        for keySize in [16, 32] {
            for length in [0, 1, 15, 16, 17, 44, 100, 4096] {
                let key = (0..<keySize).map { _ in random.byte() }
                let nonce = (0..<12).map { _ in random.byte() }
                let plain = (0..<length).map { _ in random.byte() }
                let (ciphertext, tag) = AESCCM.encrypt(key: key, nonce: nonce, plaintext: plain)
                XCTAssertEqual(ciphertext.count, length)
                XCTAssertEqual(tag.count, 16)
                if length >= 16 { XCTAssertNotEqual(ciphertext, plain) }
                XCTAssertEqual(AESCCM.decrypt(key: key, nonce: nonce, ciphertext: ciphertext, tag: tag), plain,
                               "key \(keySize), \(length) bytes")

                var k = key; k[0] ^= 1
                var n = nonce; n[11] ^= 1
                var t = tag; t[15] ^= 1
                XCTAssertNil(AESCCM.decrypt(key: k, nonce: nonce, ciphertext: ciphertext, tag: tag))
                XCTAssertNil(AESCCM.decrypt(key: key, nonce: n, ciphertext: ciphertext, tag: tag))
                XCTAssertNil(AESCCM.decrypt(key: key, nonce: nonce, ciphertext: ciphertext, tag: t),
                             "an altered tag must fail, even for \(length) bytes")
                if length > 0 {
                    var c = ciphertext; c[length / 2] ^= 0x40
                    XCTAssertNil(AESCCM.decrypt(key: key, nonce: nonce, ciphertext: c, tag: tag))
                    XCTAssertNil(AESCCM.decrypt(key: key, nonce: nonce, ciphertext: Array(ciphertext.dropLast()),
                                                tag: tag))
                }
            }
        }
    }

    /// Windows' own wrapping as the known answer: the VMK unwrapped from the fixture, wrapped again with the same
    /// key and nonce, gives back the ciphertext and tag Windows wrote.
    func testAESCCMReproducesWindowsWrappedVMK() throws {
        let (dir, bek) = try fixtureBEK()
        let v = try volume("\(dir)/\(Self.startupImage)")
        let startup = try BitLockerStartupKey.parse(bek, source: Self.bekName)
        let vmks = try XCTUnwrap(try BitLockerWrappedVMK.read(v))
        XCTAssertEqual(vmks.map(\.kind), ["password", "recovery-password", "startup-key"])
        let entry = try XCTUnwrap(vmks.first { $0.guid == Self.bekGUID })
        let wrapped = try entry.wrappedKey(v)
        XCTAssertEqual(wrapped.ciphertext.count, 44, "bitlkDump: key data size 44 bytes")
        let vmk = try XCTUnwrap(AESCCM.decrypt(key: startup.key, nonce: wrapped.nonce,
                                               ciphertext: wrapped.ciphertext, tag: wrapped.tag))
        XCTAssertTrue(BitLockerKeyCheck.isKeyDatum(vmk))
        let again = AESCCM.encrypt(key: startup.key, nonce: wrapped.nonce, plaintext: vmk)
        XCTAssertEqual(again.ciphertext, wrapped.ciphertext)
        XCTAssertEqual(again.tag, wrapped.tag)

        // The other protectors' VMKs are not wrapped with the startup key.
        for other in vmks where other.guid != Self.bekGUID {
            let w = try other.wrappedKey(v)
            XCTAssertNil(AESCCM.decrypt(key: startup.key, nonce: w.nonce, ciphertext: w.ciphertext, tag: w.tag),
                         other.kind)
        }
    }

    // MARK: Helpers

    func fixtureBEK() throws -> (String, [UInt8]) {
        let dir = try Fixtures.directory("bitlocker")
        let bek = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(Self.bekName)")))
        return (dir, bek)
    }

    func volume(_ path: String) throws -> VolumeBytes {
        let file = try FileDescriptor(path: path, flags: O_RDONLY)
        return VolumeBytes(file: file, image: path, offset: 0, size: try file.status().size)
    }

    func cryptsetupTest(keyFile: String, image: String) throws -> RunResult {
        try Tool.run("cryptsetup", ["open", "--type", "bitlk", "--test-passphrase", "--key-file", keyFile, image])
    }

    /// `bek` with both copies of its key identifier set to `guid`.
    func withGUID(_ bek: [UInt8], _ guid: String) -> [UInt8] {
        let hex = Array(guid.replacingOccurrences(of: "-", with: ""))
        var raw = stride(from: 0, to: 32, by: 2).map { UInt8(String(hex[$0...$0 + 1]), radix: 16)! }
        // Microsoft order: the first three groups little-endian.
        raw.replaceSubrange(0..<4, with: raw[0..<4].reversed())
        raw.replaceSubrange(4..<6, with: raw[4..<6].reversed())
        raw.replaceSubrange(6..<8, with: raw[6..<8].reversed())
        var out = bek
        out.replaceSubrange(Self.headerGUIDOffset..<Self.headerGUIDOffset + 16, with: raw)
        out.replaceSubrange(Self.entryGUIDOffset..<Self.entryGUIDOffset + 16, with: raw)
        return out
    }

    func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }

}

