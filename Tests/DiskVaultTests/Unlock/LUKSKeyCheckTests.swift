import DiskVault
import Foundation
import XCTest

/// LUKS key checks on real images made by qemu-img and cryptsetup; every "fits" is confirmed by
/// `cryptsetup open --test-passphrase`, and every "does not fit" is refused by it too.
final class LUKSKeyCheckTests: XCTestCase {
    func volume(_ path: String) throws -> VolumeBytes {
        let file = try FileDescriptor(path: path, flags: O_RDONLY)
        return VolumeBytes(file: file, image: path, offset: 0, size: try file.status().size)
    }

    func header(_ path: String) throws -> VolumeEncryption {
        let v = try volume(path)
        return try XCTUnwrap(try LUKS1Header.read(v) ?? LUKS2Header.read(v), "\(path) has no LUKS header")
    }

    func check(_ path: String, key: [UInt8], encryption: VolumeEncryption? = nil) throws -> KeyCheckResult {
        try LUKSKeyCheck.check(key: key, volume: try volume(path), encryption: try encryption ?? header(path))
    }

    func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// A key file of `count` random bytes (newlines and NULs included, as real key files have).
    func keyFile(_ scratch: Scratch, _ name: String, count: Int = 64) throws -> String {
        let path = scratch.file(name)
        try Tool.sh("head -c \(count) /dev/urandom > \(path)")
        return path
    }

    /// A passphrase in a file without a newline, for feeding cryptsetup's standard input.
    func passphraseFile(_ scratch: Scratch, _ passphrase: String) throws -> String {
        let path = scratch.file("pass-\(UUID().uuidString.prefix(6))")
        try Data(passphrase.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// cryptsetup's own verdict on a key: status 0 opens, 2 is a wrong key; anything else fails the test.
    func cryptsetupOpens(_ path: String, keyFile: String? = nil, passphraseFile: String? = nil,
                         file: StaticString = #filePath, line: UInt = #line) throws -> Bool {
        let r = keyFile != nil
            ? try Tool.run("cryptsetup", ["open", "--test-passphrase", path, "--key-file", keyFile!])
            : try Tool.run("cryptsetup", ["open", "--test-passphrase", path], stdinPath: passphraseFile)
        XCTAssertTrue(r.status == 0 || r.status == 2, "cryptsetup open --test-passphrase \(path): \(r.status) \(r.output)", file: file, line: line)
        return r.status == 0
    }

    /// Our check says the key fits `slot`, and cryptsetup opens the volume with it.
    func assertFits(_ path: String, keyFile: String? = nil, passphrase: String? = nil, slot: Int, scratch: Scratch,
                    file: StaticString = #filePath, line: UInt = #line) throws {
        let key = try keyFile.map(bytes) ?? Array(passphrase!.utf8)
        let result = try check(path, key: key)
        XCTAssertEqual(result, .fits("key slot \(slot)"), path, file: file, line: line)
        let opens = try cryptsetupOpens(path, keyFile: keyFile, passphraseFile: try passphrase.map { try passphraseFile(scratch, $0) },
                                        file: file, line: line)
        XCTAssertTrue(opens, "cryptsetup refuses the key our check says fits: \(path)", file: file, line: line)
    }

    /// Our check says the key does not fit, and cryptsetup refuses it too.
    func assertDoesNotFit(_ path: String, keyFile: String? = nil, passphrase: String? = nil, scratch: Scratch,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let key = try keyFile.map(bytes) ?? Array(passphrase!.utf8)
        let result = try check(path, key: key)
        guard case .doesNotFit = result else {
            return XCTFail("expected does-not-fit for \(path), got \(result)", file: file, line: line)
        }
        let opens = try cryptsetupOpens(path, keyFile: keyFile, passphraseFile: try passphrase.map { try passphraseFile(scratch, $0) },
                                        file: file, line: line)
        XCTAssertFalse(opens, "cryptsetup opens with a key our check says does not fit: \(path)", file: file, line: line)
    }

    /// A sparse file luksFormat-ed by cryptsetup with `options`, keyed by `keyFile` or (on stdin) `passphrase`.
    func luksFormat(_ path: String, _ options: String, keyFile: String? = nil, passphrase: String? = nil, scratch: Scratch,
                    megabytes: Int = 32) throws {
        try Tool.require("cryptsetup")
        try Tool.sh("truncate -s \(megabytes)M \(path)")
        if let keyFile {
            try Tool.sh("cryptsetup luksFormat -q \(options) \(path) \(keyFile)")
        } else {
            try Tool.sh("cryptsetup luksFormat -q \(options) \(path) < \(try passphraseFile(scratch, passphrase!))")
        }
    }

    // MARK: - testdata (in every clone)

    /// testdata's LUKS1 and LUKS2 images open with their known passphrase in key slot 0, and a wrong one does
    /// not; cryptsetup, when here, agrees.
    func testTestDataPassphraseFitsAndAWrongOneDoesNot() throws {
        let scratch = try Scratch(self)
        for image in ["luks1.img", "luks2.img"] {
            let path = try TestData.image(image)
            XCTAssertEqual(try check(path, key: Array(TestData.passphrase.utf8)), .fits("key slot 0"), image)
            guard case .doesNotFit = try check(path, key: Array((TestData.passphrase + "!").utf8)) else {
                return XCTFail("\(image): a wrong passphrase fits")
            }
            guard (try? Tool.which("cryptsetup")) != nil else { continue }
            try assertFits(path, passphrase: TestData.passphrase, slot: 0, scratch: scratch)
            try assertDoesNotFit(path, passphrase: TestData.passphrase + "!", scratch: scratch)
        }
    }

    // MARK: - LUKS1

    func testQemuLUKS1PassphraseFitsAndAWrongOneDoesNot() throws {
        try Tool.require("qemu-img", "cryptsetup")
        let scratch = try Scratch(self)
        let plain = scratch.file("plain.img"), luks = scratch.file("luks.img")
        try Tool.sh("head -c 4194304 /dev/urandom > \(plain)")
        try Images.luks1(from: plain, to: luks)
        XCTAssertEqual(try header(luks).format, .luks1)
        try assertFits(luks, passphrase: Images.passphrase, slot: 0, scratch: scratch)
        try assertDoesNotFit(luks, passphrase: Images.passphrase + "!", scratch: scratch)
        // cryptsetup will not even read an empty passphrase ("Nothing to read on input").
        guard case .doesNotFit = try check(luks, key: []) else { return XCTFail("an empty passphrase fits") }
    }

    func testCryptsetupLUKS1KeyFilesWithSeveralHashesCiphersAndKeySizes() throws {
        let scratch = try Scratch(self)
        let key = try keyFile(scratch, "key"), wrong = try keyFile(scratch, "wrong")
        let configurations = [
            "--hash sha1 -c aes-cbc-essiv:sha256 -s 256",
            "--hash sha256 -c aes-cbc-essiv:sha256 -s 128",
            "--hash sha1 -c aes-xts-plain64 -s 256",
            "--hash sha256 -c aes-xts-plain64 -s 512",
            "--hash sha512 -c aes-cbc-plain64 -s 256",
            "--hash ripemd160 -c aes-xts-plain64 -s 512",
            "--hash sha256 -c aes-cbc-plain -s 192",
            "--hash sha256 -c aes-xts-plain -s 256",
        ]
        for (i, options) in configurations.enumerated() {
            let image = scratch.file("luks1-\(i).img")
            try luksFormat(image, "--type luks1 --pbkdf-force-iterations 1000 \(options)", keyFile: key, scratch: scratch, megabytes: 8)
            let e = try header(image)
            XCTAssertEqual(e.format, .luks1, options)
            try assertFits(image, keyFile: key, slot: 0, scratch: scratch)
            try assertDoesNotFit(image, keyFile: wrong, scratch: scratch)
        }
    }

    func testLUKS1SecondKeySlotFitsAndNoLongerFitsOnceKilled() throws {
        let scratch = try Scratch(self)
        let first = try keyFile(scratch, "first"), second = try keyFile(scratch, "second", count: 100)
        let image = scratch.file("luks1.img")
        try luksFormat(image, "--type luks1 --pbkdf-force-iterations 1000", keyFile: first, scratch: scratch, megabytes: 8)
        try Tool.sh("cryptsetup luksAddKey -q --pbkdf-force-iterations 1000 --key-file \(first) \(image) \(second)")
        try assertFits(image, keyFile: first, slot: 0, scratch: scratch)
        try assertFits(image, keyFile: second, slot: 1, scratch: scratch)
        try Tool.sh("cryptsetup luksKillSlot -q --key-file \(first) \(image) 1")
        try assertDoesNotFit(image, keyFile: second, scratch: scratch)
        try assertFits(image, keyFile: first, slot: 0, scratch: scratch)
        // Killing slot 0 leaves the first key nothing to open.
        try Tool.sh("cryptsetup luksAddKey -q --pbkdf-force-iterations 1000 --key-file \(first) \(image) \(second)")
        try Tool.sh("cryptsetup luksKillSlot -q --key-file \(second) \(image) 0")
        try assertDoesNotFit(image, keyFile: first, scratch: scratch)
        try assertFits(image, keyFile: second, slot: 1, scratch: scratch)
    }

    /// cryptsetup loads OpenSSL's legacy provider for whirlpool; this build does not, so unless the system's
    /// OpenSSL configuration loads it, such a volume cannot be checked.
    func testLUKS1WithAHashThisBuildMayLackIsUncheckedOrFits() throws {
        let scratch = try Scratch(self)
        let key = try keyFile(scratch, "key")
        let image = scratch.file("whirlpool.img")
        try luksFormat(image, "--type luks1 --pbkdf-force-iterations 1000 --hash whirlpool", keyFile: key, scratch: scratch, megabytes: 8)
        switch try check(image, key: try bytes(key)) {
        case .fits(let how):
            XCTAssertEqual(how, "key slot 0")
            XCTAssertTrue(try cryptsetupOpens(image, keyFile: key))
        case .unchecked(let why):
            XCTAssertTrue(why.contains("key slot 0") && why.contains("whirlpool"), why)
        case .doesNotFit(let why):
            XCTFail("a whirlpool volume's right key said not to fit: \(why)")
        }
    }

    // MARK: - LUKS2

    func testLUKS2PassphraseAndKeyFilesWithSeveralKeySizesAndASecondSlot() throws {
        let scratch = try Scratch(self)
        let passphrase = "Grüße aus dem Schlüsselbund"
        let key = try keyFile(scratch, "key"), second = try keyFile(scratch, "second", count: 33), wrong = try keyFile(scratch, "wrong")
        let pbkdf2 = "--type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000"

        let a = scratch.file("luks2-256.img")
        try luksFormat(a, "\(pbkdf2) -s 256", passphrase: passphrase, scratch: scratch)
        XCTAssertEqual(try header(a).keyBytes, 32)
        try assertFits(a, passphrase: passphrase, slot: 0, scratch: scratch)
        try assertDoesNotFit(a, passphrase: String(passphrase.dropLast()), scratch: scratch)

        let b = scratch.file("luks2-512.img")
        try luksFormat(b, "\(pbkdf2) -s 512 --hash sha512", keyFile: key, scratch: scratch)
        XCTAssertEqual(try header(b).keyBytes, 64)
        try assertFits(b, keyFile: key, slot: 0, scratch: scratch)
        try assertDoesNotFit(b, keyFile: wrong, scratch: scratch)

        let c = scratch.file("luks2-cbc.img")
        try luksFormat(c, "\(pbkdf2) -c aes-cbc-essiv:sha256 -s 256 --hash sha1", keyFile: key, scratch: scratch)
        try assertFits(c, keyFile: key, slot: 0, scratch: scratch)
        try assertDoesNotFit(c, keyFile: wrong, scratch: scratch)

        // A second key in slot 1 fits too, naming its slot; once slot 1 is killed it no longer does.
        try Tool.sh("cryptsetup luksAddKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(key) \(b) \(second)")
        try assertFits(b, keyFile: second, slot: 1, scratch: scratch)
        try assertFits(b, keyFile: key, slot: 0, scratch: scratch)
        try Tool.sh("cryptsetup luksKillSlot -q --key-file \(key) \(b) 1")
        try assertDoesNotFit(b, keyFile: second, scratch: scratch)
        try assertFits(b, keyFile: key, slot: 0, scratch: scratch)
    }

    func testLUKS2Argon2SlotIsUncheckedAndAPBKDF2SlotBesideItFits() throws {
        let scratch = try Scratch(self)
        let key = try keyFile(scratch, "key"), second = try keyFile(scratch, "second")
        let image = scratch.file("argon2.img")
        try luksFormat(image, "--type luks2 --pbkdf argon2i --pbkdf-memory 32 --pbkdf-force-iterations 4", keyFile: key, scratch: scratch)
        XCTAssertEqual(try header(image).keyslots?.first?.kdf, "argon2i")
        XCTAssertEqual(try check(image, key: try bytes(key)), .unchecked("key slot 0 uses argon2i, which this build cannot compute"))
        XCTAssertTrue(try cryptsetupOpens(image, keyFile: key))

        try Tool.sh("cryptsetup luksAddKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(key) \(image) \(second)")
        try assertFits(image, keyFile: second, slot: 1, scratch: scratch)
        // The argon2 key opens no pbkdf2 slot, and its own slot cannot be computed.
        let result = try check(image, key: try bytes(key))
        guard case .unchecked(let why) = result else { return XCTFail("expected unchecked, got \(result)") }
        XCTAssertTrue(why.hasPrefix("key slot 0 uses argon2i, which this build cannot compute"), why)
        XCTAssertTrue(why.contains("key slot 1"), why)
    }

    // MARK: - Damaged and hostile headers

    /// Writes `bytes` over a real image's header at `offset`.
    func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: offset)
        handle.write(Data(bytes))
        try handle.close()
    }

    func assertCorrupt(_ path: String, key: [UInt8], encryption: VolumeEncryption, mentioning text: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        do {
            let result = try check(path, key: key, encryption: encryption)
            XCTFail("a damaged header gave \(result)", file: file, line: line)
        } catch let error as DiskVaultError {
            XCTAssertEqual(error.code, .corrupt, "\(error)", file: file, line: line)
            XCTAssertEqual(error.path, path, file: file, line: line)
            XCTAssertTrue(error.message.contains(text), error.message, file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    func testHostileLUKS1SlotFieldsAreCorruptNotCrashesOrHugeAllocations() throws {
        let scratch = try Scratch(self)
        let key = try keyFile(scratch, "key")
        let image = scratch.file("luks1.img")
        try luksFormat(image, "--type luks1 --pbkdf-force-iterations 1000", keyFile: key, scratch: scratch, megabytes: 8)
        let original = try header(image)
        let pristine = try bytes(image)
        let slot0 = UInt64(208)
        func restore() throws { try Data(pristine).write(to: URL(fileURLWithPath: image)) }

        try patch(image, at: slot0 + 44, [0xFF, 0xFF, 0xFF, 0xFF])  // stripes
        assertCorrupt(image, key: try bytes(key), encryption: original, mentioning: "stripes")
        try restore()
        try patch(image, at: slot0 + 44, [0, 0, 0, 0])
        assertCorrupt(image, key: try bytes(key), encryption: original, mentioning: "stripes")
        try restore()
        try patch(image, at: slot0 + 40, [0x7F, 0xFF, 0xFF, 0xFF])  // key material offset
        assertCorrupt(image, key: try bytes(key), encryption: original, mentioning: "past the end")
        try restore()
        try patch(image, at: slot0 + 40, [0, 0, 0, 0])
        assertCorrupt(image, key: try bytes(key), encryption: original, mentioning: "overlaps the header")
        try restore()
        try patch(image, at: slot0, [0x12, 0x34, 0x56, 0x78])  // state
        assertCorrupt(image, key: try bytes(key), encryption: original, mentioning: "neither active nor disabled")
        try restore()
        try patch(image, at: 108, [0, 0, 0x10, 0])  // key bytes
        assertCorrupt(image, key: try bytes(key), encryption: original, mentioning: "key size")
        try restore()
        // A truncated image: the key material is gone.
        try Tool.sh("truncate -s 8192 \(image)")
        assertCorrupt(image, key: try bytes(key), encryption: original, mentioning: "past the end")
        try restore()
        XCTAssertEqual(try check(image, key: try bytes(key)), .fits("key slot 0"))
    }

    /// `value` put at `path` inside nested JSON objects (nil removes it).
    func setting(_ object: [String: Any], _ path: ArraySlice<String>, _ value: Any?) -> [String: Any] {
        var object = object
        guard let first = path.first else { return object }
        if path.count == 1 {
            object[first] = value
        } else {
            object[first] = setting(object[first] as? [String: Any] ?? [:], path.dropFirst(), value)
        }
        return object
    }

    /// Rewrites the primary LUKS2 header's JSON with `changes` (dotted path → value) and a valid checksum, as
    /// a hostile header would be: the checksum does not protect against a crafted image.
    func rewriteLUKS2JSON(_ path: String, _ changes: [(String, Any?)]) throws {
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        defer { try? handle.close() }
        let start = [UInt8](try XCTUnwrap(try handle.read(upToCount: 16)))
        let size = Int(start[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        try handle.seek(toOffset: 0)
        var header = [UInt8](try XCTUnwrap(try handle.read(upToCount: size)))
        let jsonBytes = header[4096...].prefix(while: { $0 != 0 })
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(jsonBytes)) as? [String: Any])
        for (dotted, value) in changes {
            json = setting(json, dotted.split(separator: ".").map(String.init)[...], value)
        }
        let encoded = [UInt8](try JSONSerialization.data(withJSONObject: json))
        XCTAssertLessThan(encoded.count, size - 4096)
        header.replaceSubrange(4096..<size, with: encoded + [UInt8](repeating: 0, count: size - 4096 - encoded.count))
        for i in 448..<512 { header[i] = 0 }
        header.replaceSubrange(448..<480, with: SHA256.digest(header).bytes)
        try handle.seek(toOffset: 0)
        handle.write(Data(header))
    }

    func testHostileLUKS2JSONIsCorruptAndADamagedPrimaryFallsBackToTheSecondary() throws {
        let scratch = try Scratch(self)
        let key = try keyFile(scratch, "key")
        let image = scratch.file("luks2.img")
        try luksFormat(image, "--type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000", keyFile: key, scratch: scratch)
        let original = try header(image)
        let pristine = try bytes(image)
        func restore() throws { try Data(pristine).write(to: URL(fileURLWithPath: image)) }

        // The rewrite itself keeps the header valid.
        try rewriteLUKS2JSON(image, [])
        XCTAssertEqual(try check(image, key: try bytes(key)), .fits("key slot 0"))

        let hostile: [(change: (String, Any?), mentioning: String)] = [
            (("keyslots.0.af.stripes", 4_000_000_000), "stripes"),
            (("keyslots.0.af.stripes", 1_000_000), "more key material"),
            (("keyslots.0.af.stripes", 0), "stripes"),
            (("keyslots.0.af.stripes", "4000"), "stripes"),
            (("keyslots.0.area.offset", "99999999999999"), "past the end"),
            (("keyslots.0.area.offset", "-1"), "offset"),
            (("keyslots.0.area.size", "4096"), "smaller"),
            (("keyslots.0.area.key_size", 100_000), "key_size"),
            (("keyslots.0.key_size", 0), "key size"),
            (("keyslots.0.kdf.salt", "not base64!"), "salt"),
            (("keyslots.0.kdf.iterations", -5), "iterations"),
            (("keyslots.0.kdf.iterations", 0), "iterations"),
            (("keyslots.0.kdf", nil), "kdf"),
            (("keyslots.0", "a string"), "keyslot 0"),
            (("digests.0.digest", ""), "digest"),
            (("digests.0.keyslots", 7), "keyslots"),
            (("digests", nil), "digests"),
        ]
        for (change, text) in hostile {
            try restore()
            try rewriteLUKS2JSON(image, [change])
            assertCorrupt(image, key: try bytes(key), encryption: original, mentioning: text)
        }

        // Things the check cannot vouch for, rather than damage.
        try restore()
        try rewriteLUKS2JSON(image, [("keyslots.0.area.encryption", "serpent-xts-plain64")])
        guard case .unchecked(let cipher) = try check(image, key: try bytes(key), encryption: original) else { return XCTFail("serpent") }
        XCTAssertTrue(cipher.contains("serpent-xts-plain64"), cipher)
        try restore()
        try rewriteLUKS2JSON(image, [("keyslots.0.kdf.iterations", 3_000_000_000)])
        guard case .unchecked(let iterations) = try check(image, key: try bytes(key), encryption: original) else { return XCTFail("iterations") }
        XCTAssertTrue(iterations.contains("3000000000 iterations"), iterations)
        try restore()
        try rewriteLUKS2JSON(image, [("digests.0.keyslots", [String]())])
        XCTAssertEqual(try check(image, key: try bytes(key), encryption: original), .unchecked("key slot 0 has no digest to compare its key with"))
        // A key slot whose digest names no segment holds an unbound key, not the volume's.
        try restore()
        try rewriteLUKS2JSON(image, [("digests.0.segments", [String]())])
        guard case .doesNotFit(let unbound) = try check(image, key: try bytes(key), encryption: original) else { return XCTFail("unbound") }
        XCTAssertTrue(unbound.contains("unbound key slot 0"), unbound)

        // A damaged primary copy: the secondary still opens with the key; both damaged is corrupt.
        try restore()
        try patch(image, at: 448, [pristine[448] ^ 0xFF])
        XCTAssertEqual(try check(image, key: try bytes(key), encryption: original), .fits("key slot 0"))
        let secondary = UInt64(try XCTUnwrap(original.metadataSize))
        try patch(image, at: secondary + 448, [pristine[Int(secondary) + 448] ^ 0xFF])
        assertCorrupt(image, key: try bytes(key), encryption: original, mentioning: "checksum mismatch")
        try restore()
        XCTAssertEqual(try check(image, key: try bytes(key)), .fits("key slot 0"))
    }

    func testLUKS1CipherOrHashThisBuildCannotRunIsUnchecked() throws {
        let scratch = try Scratch(self)
        let key = try keyFile(scratch, "key")
        let image = scratch.file("luks1.img")
        try luksFormat(image, "--type luks1 --pbkdf-force-iterations 1000", keyFile: key, scratch: scratch, megabytes: 8)
        let original = try header(image)
        try patch(image, at: 8, Array("twofish".utf8) + [0])  // cipher name
        var result = try check(image, key: try bytes(key), encryption: original)
        guard case .unchecked(let why) = result else { return XCTFail("expected unchecked, got \(result)") }
        XCTAssertTrue(why.contains("key slot 0") && why.contains("twofish"), why)

        try patch(image, at: 8, Array("aes".utf8) + [0, 0, 0, 0, 0])
        try patch(image, at: 72, Array("md4".utf8) + [0, 0, 0, 0])  // hash spec
        result = try check(image, key: try bytes(key), encryption: original)
        guard case .unchecked(let why2) = result else { return XCTFail("expected unchecked, got \(result)") }
        XCTAssertTrue(why2.contains("md4"), why2)
    }

    func testAVolumeThatIsNotLUKSIsUnchecked() throws {
        let scratch = try Scratch(self)
        let image = scratch.file("plain.img")
        try Tool.sh("truncate -s 1M \(image)")
        XCTAssertEqual(try LUKSKeyCheck.check(key: [1, 2, 3], volume: try volume(image), encryption: .none),
                       .unchecked("the volume is not LUKS (its encryption is \"none\")"))
        // Claimed LUKS, but no header there.
        var claimed = VolumeEncryption(format: .luks1)
        claimed.cipher = "aes-xts-plain64"
        assertCorrupt(image, key: [1], encryption: claimed, mentioning: "no LUKS1 header")
        claimed.format = .luks2
        assertCorrupt(image, key: [1], encryption: claimed, mentioning: "no valid copy")
    }
}
