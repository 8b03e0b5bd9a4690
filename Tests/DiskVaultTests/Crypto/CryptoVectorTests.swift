@testable import DiskVault
import Foundation
import XCTest

/// Known answers from the published vectors, one test per primitive, each vector named by its document and number.
/// A wrapper that round-trips against itself but differs from the standard fails here, not against a recipient.
final class CryptoVectorTests: XCTestCase {
    // MARK: AES-256-GCM

    /// A box as `AESGCM.seal` lays it out ("dvse", version 1, nonce, ciphertext, tag), so that a vector's nonce
    /// can be given to `AESGCM.open`.
    func gcmBox(nonce: [UInt8], ciphertext: [UInt8], tag: [UInt8]) -> [UInt8] {
        Array("dvse".utf8) + [1] + nonce + ciphertext + tag
    }

    /// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)" (the NIST GCM submission, whose vectors
    /// SP 800-38D's validation uses), test cases 13–16: the 256-bit-key ones.
    func testAESGCMTestCases13To16() {
        let zeroKey = [UInt8](repeating: 0, count: 32)
        let zeroNonce = [UInt8](repeating: 0, count: 12)
        // Test case 13: empty plaintext, no AAD: the box is the tag alone.
        XCTAssertEqual(
            AESGCM.open(
                gcmBox(nonce: zeroNonce, ciphertext: [], tag: hex("530f8afbc74536b9a963b4f1c4cb738b")), key: zeroKey),
            [])
        // Test case 14: one zero block.
        XCTAssertEqual(
            AESGCM.open(
                gcmBox(
                    nonce: zeroNonce, ciphertext: hex("cea7403d4d606b6e074ec5d3baf39d18"),
                    tag: hex("d0d1c8a799996bf0265b98b5d48ab919")), key: zeroKey),
            [UInt8](repeating: 0, count: 16))

        let key = hex("feffe9928665731c6d6a8f9467308308 feffe9928665731c6d6a8f9467308308")
        let nonce = hex("cafebabefacedbaddecaf888")
        let plaintext = hex(
            """
            d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72
            1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b391aafd255
            """)
        let ciphertext = hex(
            """
            522dc1f099567d07f47f37a32a84427d 643a8cdcbfe5c0c97598a2bd2555d1aa
            8cb08e48590dbb3da7b08b1056828838 c5f61e6393ba7a0abcc9f662898015ad
            """)
        // Test case 15: four blocks, no AAD.
        XCTAssertEqual(
            AESGCM.open(
                gcmBox(nonce: nonce, ciphertext: ciphertext, tag: hex("b094dac5d93471bdec1a502270e3cc6c")), key: key),
            plaintext)

        // Test case 16: 60 bytes (a partial last block) with 20 bytes of AAD.
        let aad = hex("feedfacedeadbeeffeedfacedeadbeef abaddad2")
        let box16 = gcmBox(
            nonce: nonce, ciphertext: Array(ciphertext.prefix(60)), tag: hex("76fc6ece0f4e1768cddf8853bb2d551b"))
        XCTAssertEqual(AESGCM.open(box16, key: key, associatedData: aad), Array(plaintext.prefix(60)))
        // The same box with a flipped bit anywhere — ciphertext, tag, AAD, nonce — or without its AAD fails.
        for at in [5 + 12, 5 + 12 + 59, box16.count - 16, box16.count - 1, 5] {
            var damaged = box16
            damaged[at] ^= 0x01
            XCTAssertNil(AESGCM.open(damaged, key: key, associatedData: aad), "bit flipped at byte \(at)")
        }
        var otherAAD = aad
        otherAAD[19] ^= 0x80
        XCTAssertNil(AESGCM.open(box16, key: key, associatedData: otherAAD))
        XCTAssertNil(AESGCM.open(box16, key: key))
        var otherKey = key
        otherKey[31] ^= 0x01
        XCTAssertNil(AESGCM.open(box16, key: otherKey, associatedData: aad))

        // seal picks its own nonce; what it makes opens under the same key and AAD (and open is checked above).
        let sealed = AESGCM.seal(plaintext, key: key, associatedData: aad)
        XCTAssertEqual(sealed.count, 5 + 12 + plaintext.count + 16)
        XCTAssertTrue(AESGCM.isSealedForm(sealed))
        XCTAssertEqual(AESGCM.open(sealed, key: key, associatedData: aad), plaintext)
        XCTAssertNotEqual(
            Array(AESGCM.seal(plaintext, key: key)[5..<17]), Array(sealed[5..<17]), "a fresh nonce per box")
    }

    // MARK: AES key wrap with padding

    /// RFC 5649 (AES key wrap with padding) through `AESKeyWrap`, which takes AES-256 KEKs only.
    func testAESKeyWrapWithPadding() {
        // RFC 5649 §6, both examples: a 192-bit KEK, 20 and 7 octets of key data. The wrapper's contract is a
        // 256-bit KEK (EVP_aes_256_wrap_pad), so it refuses this KEK rather than wrapping under another size.
        let rfcKEK = hex("5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8")
        XCTAssertNil(AESKeyWrap.wrap(hex("c37b7e6492584340 bed1220780894115 5068f738"), with: rfcKEK))
        XCTAssertNil(
            AESKeyWrap.unwrap(hex("138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"), with: rfcKEK))
        XCTAssertNil(AESKeyWrap.unwrap(hex("afbeb0f07dfbf541 9200f2ccb50bb24f"), with: rfcKEK))

        // The same algorithm (NIST SP 800-38F KWP) with 256-bit KEKs: NIST ACVP KWP-AE vectors (3, 8, 16 and
        // 18 octets: a single padded block, an exact semiblock, two semiblocks, and a padded multi-block wrap)
        // and Wycheproof aes_kwp_test.json tcId 164 (24 octets).
        let vectors: [(kek: String, key: String, wrapped: String)] = [
            (
                "6D60C0D0941CF3750B864C6F1FA580AE074C00EDEB386F9FC299178A70FCCCD1", "6B54A0",
                "24255140B4A9F8A9E35B9DA2BFA0E0C3"
            ),
            (
                "EB950B844B97145A594B7F91AA81844045874AAA46DB522CF91144F63A6FED37", "A4CE3F7D7C49B11A",
                "F5939D472407E28EE6D7269FA75DAC88"
            ),
            (
                "314A549913256A71C6348EAAB9B85EFC755FE736568F0DBC9F6F8BC3CA3D12EE", "3B700E9682275D8DBE61CA7C1EC900E8",
                "70C684C49112AD8B8C3E13B99992127B58DCB9B59CE5C3FD"
            ),
            (
                "F2882A99E67FD1F0E024D2E973EE55BF2AE94D6798BC3B3A7EF94BFC9197A7F6",
                "13CDD6837C4C40FDE0B9EC150093713771AC",
                "D096D3702EA4252DA0D36666D01F1F450BCD26C87814A8041F8EEFD229EC4828"
            ),
            (
                "07518a82cbc8da1dcec55f3763a206d277487abd03cedd0b8bef9ee2fb157121",
                "faa4664d79fce3c7d2fdd462f6c1c423c2f8e6b69be2e071",
                "4b1220525c537aec30ebcd562b694b4e9e2ccd819de22ef608b5d8090779d9de"
            ),
        ]
        for v in vectors {
            let kek = hex(v.kek)
            let key = hex(v.key)
            let wrapped = hex(v.wrapped)
            XCTAssertEqual(AESKeyWrap.wrap(key, with: kek), wrapped, v.key)
            XCTAssertEqual(AESKeyWrap.unwrap(wrapped, with: kek), key, v.key)
            // The integrity check (RFC 5649's alternative IV and its length) catches any flipped bit or a wrong KEK.
            for at in [0, wrapped.count / 2, wrapped.count - 1] {
                var damaged = wrapped
                damaged[at] ^= 0x01
                XCTAssertNil(AESKeyWrap.unwrap(damaged, with: kek), "\(v.key): bit flipped at byte \(at)")
            }
            var otherKEK = kek
            otherKEK[0] ^= 0x80
            XCTAssertNil(AESKeyWrap.unwrap(wrapped, with: otherKEK), v.key)
            XCTAssertNil(AESKeyWrap.unwrap(Array(wrapped.dropLast(8)), with: kek), "\(v.key) cut short")
        }
    }

    // MARK: PBKDF2-HMAC-SHA256

    /// RFC 7914 §11, both PBKDF2-HMAC-SHA256 vectors (64-byte output).
    func testPBKDF2HMACSHA256() throws {
        let sha256 = try MessageDigest("sha256")
        XCTAssertEqual(
            try sha256.pbkdf2(password: Array("passwd".utf8), salt: Array("salt".utf8), iterations: 1, length: 64),
            hex(
                """
                55 ac 04 6e 56 e3 08 9f ec 16 91 c2 25 44 b6 05 f9 41 85 21 6d de 04 65 e6 8b 9d 57 c2 0d ac bc
                49 ca 9c cc f1 79 b6 45 99 16 64 b3 9d 77 ef 31 7c 71 b8 45 b1 e3 0b d5 09 11 20 41 d3 a1 97 83
                """))
        XCTAssertEqual(
            try sha256.pbkdf2(
                password: Array("Password".utf8), salt: Array("NaCl".utf8), iterations: 80000, length: 64),
            hex(
                """
                4d dc d8 f6 0b 98 be 21 83 0c ee 5e f2 27 01 f9 64 1a 44 18 d0 4c 04 14 ae ff 08 87 6b 34 ab 56
                a1 d4 25 a1 22 58 33 54 9a db 84 1b 51 c9 b3 17 6a 27 2b de bb a1 d0 78 47 8f 62 b3 97 f3 3c 8d
                """))
        // PBKDF2's blocks are independent, so a shorter output is the prefix (LUKS asks for the key size).
        XCTAssertEqual(
            try sha256.pbkdf2(password: Array("passwd".utf8), salt: Array("salt".utf8), iterations: 1, length: 20),
            hex("55 ac 04 6e 56 e3 08 9f ec 16 91 c2 25 44 b6 05 f9 41 85 21"))
    }

    // MARK: scrypt

    /// RFC 7914 §12. `Scrypt.derive` gives 32 bytes; scrypt's last step is PBKDF2-HMAC-SHA256 with one iteration,
    /// so its 32 bytes are the first 32 of the vectors' 64.
    func testScrypt() {
        // Vector 1 (P "", S "", N = 16, r = 1, p = 1) = 77 d6 57 62 38 65 7b 20 …: below the wrapper's floor of
        // N = 2^10, which it refuses on purpose (the key vault never derives with less).
        XCTAssertNil(Scrypt.derive([], salt: [], logN: 4, r: 1, p: 1))
        // Vector 2: P "password", S "NaCl", N = 1024, r = 8, p = 16.
        XCTAssertEqual(
            Scrypt.derive(Array("password".utf8), salt: Array("NaCl".utf8), logN: 10, r: 8, p: 16),
            hex("fd ba be 1c 9d 34 72 00 78 56 e7 19 0d 01 e9 fe 7c 6a d7 cb c8 23 78 30 e7 73 76 63 4b 37 31 62"))
        // Vector 3: P "pleaseletmein", S "SodiumChloride", N = 16384, r = 8, p = 1.
        XCTAssertEqual(
            Scrypt.derive(Array("pleaseletmein".utf8), salt: Array("SodiumChloride".utf8), logN: 14, r: 8, p: 1),
            hex("70 23 bd cb 3a fd 73 48 46 1c 06 cd 81 fd 38 eb fd a8 fb ba 90 4f 8e 3e a9 b5 43 f6 54 5d a1 f2"))
        // Vector 4: N = 1048576 (2^20, 1 GiB, a few seconds): the largest work factor `keyvault init` offers.
        XCTAssertEqual(
            Scrypt.derive(Array("pleaseletmein".utf8), salt: Array("SodiumChloride".utf8), logN: 20, r: 8, p: 1),
            hex("21 01 cb 9b 6a 51 1a ae ad db be 09 cf 70 f8 81 ec 56 8d 57 4a 2f fd 4d ab e5 ee 98 20 ad aa 47"))
    }

    /// The project's ROMix against OpenSSL's on every shape of parameters the wrapper takes: r odd and even
    /// (BlockMix's halves), p > 1 (each block its own ROMix), passphrases and salts of any length and byte.
    func testScryptMatchesOpenSSL() {
        var rng = SystemRandomNumberGenerator()
        let shapes: [(logN: Int, r: Int, p: Int)] = [(10, 1, 1), (10, 2, 1), (10, 3, 2), (11, 8, 1), (10, 5, 3), (12, 8, 2), (10, 32, 1), (10, 1, 16)]
        for (k, shape) in shapes.enumerated() {
            let passphrase = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let salt = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let ours = Scrypt.derive(passphrase, salt: salt, logN: shape.logN, r: shape.r, p: shape.p)
            XCTAssertNotNil(ours, "shape \(k)")
            XCTAssertEqual(ours, Scrypt.openSSLDerive(passphrase, salt: salt, logN: shape.logN, r: shape.r, p: shape.p),
                           "logN \(shape.logN) r \(shape.r) p \(shape.p), passphrase \(passphrase), salt \(salt)")
        }
    }

    /// Parameters a damaged vault.json or keyvault.json could carry: refused, never allocated.
    func testScryptRefusesWhatIsOutOfBounds() {
        // 128 · 32 · 2^22 = 16 GiB: past the memory limit.
        XCTAssertNil(Scrypt.derive(Array("x".utf8), salt: [], logN: 22, r: 32, p: 1))
        // 2^21 · 128 · 8 = 2 GiB.
        XCTAssertNil(Scrypt.derive(Array("x".utf8), salt: [], logN: 21, r: 8, p: 1))
        XCTAssertNil(Scrypt.derive(Array("x".utf8), salt: [], logN: 10, r: 0, p: 1))
        XCTAssertNil(Scrypt.derive(Array("x".utf8), salt: [], logN: 10, r: 33, p: 1))
        XCTAssertNil(Scrypt.derive(Array("x".utf8), salt: [], logN: 10, r: 8, p: 17))
        XCTAssertNil(Scrypt.derive(Array("x".utf8), salt: [], logN: 23, r: 1, p: 1))
    }

    // MARK: AES-XTS

    /// IEEE 1619-2007 Annex B, through `SectorCipher` as LUKS runs it: "aes-xts-plain64" takes both keys
    /// concatenated and a 512-byte sector's number, little-endian, as the tweak (the standard's data unit number).
    func testAESXTSIEEE1619() throws {
        let plaintext = (0..<512).map { UInt8(truncatingIfNeeded: $0) }
        // Vector 4: XTS-AES-128, data unit 0.
        let key4 = hex("27182818284590452353602874713526 31415926535897932384626433832795")
        let cipher4 = hex(
            """
            27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89cc78cf7f5e543445f8333d8fa7f560000
            05279fa5d8b5e4ad40e736ddb4d35412328063fd2aab53e5ea1e0a9f332500a5df9487d07a5c92cc512c8866c7e860ce
            93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad02655ea92dc4c4e41a8952c651d33174be51
            a10c421110e6d81588ede82103a252d8a750e8768defffed9122810aaeb99f9172af82b604dc4b8e51bcb08235a6f434
            1332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c5ccf2a55d705ddcd86d449511ceb7ec3
            0bf12b1fa35b913f9f747a8afd1b130e94bff94effd01a91735ca1726acd0b197c4e5b03393697e126826fb6bbde8ecc
            1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3e7ff72b1e99785ca0a7e7720c5b36dc6
            d72cac9574c8cbbc2f801e23e56fd344b07f22154beba0f08ce8891e643ed995c94d9a69c9f1b5f499027a78572aeebd
            74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752afe656bb3c17256a9f6e9bf19fdd5a38
            fc82bbe872c5539edb609ef4f79c203ebb140f2e583cb2ad15b4aa5b655016a8449277dbd477ef2c8d6c017db738b18d
            eb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568
            """)
        XCTAssertEqual(try SectorCipher("aes-xts-plain64", key: key4).decrypt(cipher4, firstSector: 0), plaintext)

        // Vector 10: XTS-AES-256 (the 512-bit key of LUKS's default aes-xts-plain64 -s 512), data unit 0xff.
        let key10 = hex(
            """
            2718281828459045235360287471352662497757247093699959574966967627
            3141592653589793238462643383279502884197169399375105820974944592
            """)
        let cipher10 = hex(
            """
            1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b5d31e276f8fe4a8d66b317f9ac683f44
            680a86ac35adfc3345befecb4bb188fd5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0
            c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca2a3e7a7d7df7b10355165c8b9a6d0a7d
            e8b062c4500dc4cd120c0f7418dae3d0b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f
            93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec583e9645e07b8d9670655ba5bbcfecc6
            dc3966380ad8fecb17b6ba02469a020a84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1
            505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae9be69a2ffeceb1bec9de244fbe15992b
            11b77c040f12bd8f6a975a44a0f90c29a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac
            6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f645e8b7e9bfdef33943054ff84011493
            c27b3429eaedb4ed5376441a77ed43851ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa
            773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151
            """)
        let xts256 = try SectorCipher("aes-xts-plain64", key: key10)
        XCTAssertEqual(try xts256.decrypt(cipher10, firstSector: 0xff), plaintext)
        XCTAssertNotEqual(try xts256.decrypt(cipher10, firstSector: 0xfe), plaintext, "the sector number is the tweak")
        // The second of two sectors is sector firstSector + 1.
        XCTAssertEqual(Array(try xts256.decrypt(cipher4 + cipher10, firstSector: 0xfe)[512...]), plaintext)
        // "plain" keeps the low 32 bits of the sector number, "plain64" all 64 (cryptsetup's IV generators).
        XCTAssertEqual(
            try SectorCipher("aes-xts-plain", key: key10).decrypt(cipher10, firstSector: (1 << 32) + 0xff), plaintext)
        XCTAssertNotEqual(try xts256.decrypt(cipher10, firstSector: (1 << 32) + 0xff), plaintext)
        // The two keys in the other order are another cipher.
        let swapped = Array(key10[32...] + key10[..<32])
        XCTAssertNotEqual(
            try SectorCipher("aes-xts-plain64", key: swapped).decrypt(cipher10, firstSector: 0xff), plaintext)
    }

    // MARK: AES-CCM

    /// AES-CCM as BitLocker uses it (12-byte nonce, 16-byte tag, no AAD). RFC 3610's packet vectors and the
    /// SP 800-38C examples all carry AAD and other nonce or tag sizes, which `AESCCM` does not take; Wycheproof's
    /// aes_ccm_test.json (testvectors_v1) has groups of exactly this shape.
    func testAESCCM() {
        let vectors: [(id: Int, key: String, nonce: String, plaintext: String, ciphertext: String, tag: String)] = [
            // keySize 256, ivSize 96, tagSize 128.
            (
                157, "80ba3192c803ce965ea371d5ff073cf0f43b6a2ab576b208426e11409c09b9b0", "4da5bf8dfd5852c1ea12379d", "",
                "",
                "6dc4ef59a73ebcabb5e34c0d34d9f2d7"
            ),
            (
                159, "51e4bf2bad92b7aff1a4bc05550ba81df4b96fabf41c12c7b00e60e48db7e152", "4f07afedfdc3b6c2361823d3",
                "be3308f72a2c6aed", "7fd4b5d3095235a3", "f64d10b41e3d6928741947c50ca0391f"
            ),
            (
                160, "59d4eafb4de0cfc7d3db99a8f54b15d7b39f0acc8da69763b019c1699f87674a", "2fcb1b38a99e71b84740ad9b",
                "549b365af913f3b081131ccb6b825588", "48dd9589a47e638bbbc2aa3e232fa529",
                "df69fbe1f099f0134fe2869156ab07db"
            ),
            (
                161, "3b2458d8176e1621c0cc24c0c0e24c1e80d72f7ee9149a4b166176629616d011", "45aaa3e5d16d2d42dc03445d",
                "3ff1514b1c503915918f0c0c31094a6e1f", "202297d36ca62c5a1d4437fafc7b50e764",
                "665f05a96bf8de45361dbf33c98b0905"
            ),
            // keySize 128, ivSize 96, tagSize 128.
            (
                4, "ffdf4228361ea1f8165852136b3480f7", "0e1666f2dc652f7708fb8f0d", "25b12e28ac0ef6ead0226a3b2288c800",
                "aaf596fa5b00aaac27700146aec932a9", "848b6735d32c96e4a0532bcdfaf33582"
            ),
            (
                5, "c15ed227dd2e237ecd087eaaaad19ea4", "965ff6643116ac1443a2dec7", "fee62fde973fe025ad6b322dcdf3c63fc7",
                "0333df2a86d7f094dd8bce75da6c38c5c1", "417da29df85a1d134feee8aa35569081"
            ),
        ]
        for v in vectors {
            let key = hex(v.key)
            let nonce = hex(v.nonce)
            let plaintext = hex(v.plaintext)
            let ciphertext = hex(v.ciphertext)
            let tag = hex(v.tag)
            let sealed = AESCCM.encrypt(key: key, nonce: nonce, plaintext: plaintext)
            XCTAssertEqual(sealed.ciphertext, ciphertext, "tcId \(v.id)")
            XCTAssertEqual(sealed.tag, tag, "tcId \(v.id)")
            XCTAssertEqual(
                AESCCM.decrypt(key: key, nonce: nonce, ciphertext: ciphertext, tag: tag), plaintext, "tcId \(v.id)")
            var otherNonce = nonce
            otherNonce[11] ^= 0x01
            XCTAssertNil(AESCCM.decrypt(key: key, nonce: otherNonce, ciphertext: ciphertext, tag: tag), "tcId \(v.id)")
            if !ciphertext.isEmpty {
                var damaged = ciphertext
                damaged[0] ^= 0x01
                XCTAssertNil(AESCCM.decrypt(key: key, nonce: nonce, ciphertext: damaged, tag: tag), "tcId \(v.id)")
            }
        }
        // tcId 208–234: the tag of one message with bits flipped, each of which must fail.
        let key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
        let nonce = hex("505152535455565758595a5b")
        let ciphertext = hex("9d2a30abc5e178f7c6317ec9498dac39")
        for badTag in [
            "8ac2dd770de58f0b92802fdcb9d7d410", "8bc2dd770de58f0b92802fdcb9d7d490", "00000000000000000000000000000000",
        ] {
            XCTAssertNil(AESCCM.decrypt(key: key, nonce: nonce, ciphertext: ciphertext, tag: hex(badTag)), badTag)
        }
        // The tag those were made from (bit 0 of tcId 208's flipped back) opens.
        XCTAssertEqual(
            AESCCM.decrypt(
                key: key, nonce: nonce, ciphertext: ciphertext, tag: hex("8bc2dd770de58f0b92802fdcb9d7d410")),
            hex("202122232425262728292a2b2c2d2e2f"))
    }

    // HKDF-SHA256's RFC 5869 vectors (A.1–A.3) are in PublicKeyCryptoTests, beside the sealing that uses it.

    // MARK: RSA-OAEP (SHA-256, MGF1-SHA-256)

    /// Wycheproof rsa_oaep_2048_sha256_mgf1sha256_test.json (testvectors_v1): its key and tcIds 3 and 12.
    static let wycheproofKey = """
        -----BEGIN PRIVATE KEY-----
        MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCitFGgfQql+W5F
        VnFRNVBRSopbRi6+9xcJT6H+6CIk5jf5dG0/fK/TGHjYAyW271oXAPZZA7RpQp6J
        1urIhFCXtas5MYnbklEu2KdxGhJT+s0g95wV6CR/PT5C5G5IyY4lSi/pdlMToD7/
        jxfhoCk5eh+iao3OJvSQ7YEplhXZgUwi2mEEKOCcfZZYWUJm9cAh0PzsoI2UWhK+
        gt5NHs5rTAMUW100ldTtVBHrh42vBf16/D4JraDxEmQi9ZCXWhlpgW9IaYvLuhtN
        nK551GDY+fheeXUAXZvCLE5awPfBpF0SVppigH07mgLlpTDncwZvRT0fW0wunPeC
        AoP3QrnVAgMBAAECggEAJM3GIxf11ypva6bMljKJmwHR/yiGfXL2FoiZW8hVpOQg
        qEBSUAib2xPPjglUOCe3SLnSf7srTZ4gr4xaaoYnltGkzBitFupni8G9SoO7vpxe
        V0U7XOc4jkGjukzit3tEOKIp6VT3INrgNT3AiKyKdrJtwnb44beFHd1jmK0W/y54
        GVEjubA26UXDjJ0SQ09t92/iI1nrPhrJwBFnj8km+tOuR1pP//9V/rLRR+nIlPTA
        4ppZnnYkYkgtlov0J4CUX8DSwxxXPEQxuPT+i4xnvsgVq9RPeobtyhwjCHNzWNLC
        rl4uDi2t9zCYAmI3flixO32ZkgYKC8hwzP20qTGe4QKBgQDcQxBQ94LolPtSSCR9
        mMt9WLjR4k87VdBBxW5N4Iaw1bsCi9pC7rXSNNVoHlgJ1BXmoomtTPv3j5ePbDWB
        T1Duv/HFuApp94joHmurXdqng2nWWdFD7G8X55gTpXXPrZxWkVa5ARPi6REK2ee0
        ihyTSKbmUzIRkSkOo2z7OlsY8QKBgQC9GoHnl3+YmBIic64yIrWY6l+xnrTqvDgw
        il4yGWYDsuUA/7efW4hoFmEd68Ry+sRVRAcL6wV8lBN4poaK87egPT+YgOxH1eCJ
        uU+95UKrqa6NcsVwiNer9bEx85CY97wWD5BTaryUkv1OBvPtcpnUuXuwNncgfZVm
        nxQM+8IPJQKBgQCpS1KLKPKRWZEh2RlS/9HH8h18FHnZnUeIhfsWGHDuEhi/CEcm
        EtvlSX6NnGUGiOCceGlhrj4sNU3EiuNFFHWcTCPEWISIlh3Aa0FOYcDh5/u9KSPT
        FTL+KJ+W2iIHEeWMFAGYCOAEFCdpM7sH5O+5tKmzdlaRcgUgnzPwlRXXwQKBgDrw
        5yqTOu8J/yUD33i6/tUxwC/xorxDfFQM3L1K01Q1z1EXY1llQ0gGKbEUyn94D/fv
        oy6gy24ADW2eofLvcf2c+ZSEIqFlVX4351Xt/nDZC5IFAutHi8mKY/eIzjoPhW1u
        3nJRo4O/qPpICoGpJa97PMU4xLq4yfdZf/toAR2NAoGAJkD7+8/vsWPueoe2SDpm
        7kH5VtkPqKeTm/wELuCSSxt5k9BEX3WNUZM+hRecAyCwyWi0ipHDi1vpI+EJfAxW
        L4jUIpS2onWbr6VCinTxJwh05F9vzGDyFgLeXszRQ88xJB9ZIbWtOYP7VO8Xvjso
        U2flDJmcZyR7VS/kv86UX3s=
        -----END PRIVATE KEY-----
        """

    /// RSA-OAEP as the key vault wraps BEKs: a published known answer, round trips, refusals, and agreement
    /// with `openssl pkeyutl` in both directions on a key the project made and exported.
    func testRSAOAEP() throws {
        // Wycheproof tcId 3 ("Test") decrypts; tcId 12 (first byte of the label hash modified) does not.
        let wycheproof = try RSAKey.importPEM(Array(Self.wycheproofKey.utf8), source: "wycheproof")
        XCTAssertEqual(wycheproof.bits, 2048)
        XCTAssertEqual(
            wycheproof.unwrap(
                hex(
                    """
                    5eab3f0741e63986ed647d53e1cd71df041986900803d0f99c68355d249a15a47dc5b4f70a191477654299e5a2731f3b
                    4eec76dea18262fc696ac794e5f66cbfcddac4472c578e246c26707598055584540b839836b1404c5611ae558a984cee
                    8fd036cea924e0be2474a940f61e0acc14fcae95ebdc59942a9ce9af9a9c81999f7f6815f057ffdc2533cb15d6391d1e
                    2d95f16f9c04209c889a4c359c7d2926d28a66e2b030a416b928d2825627998e5191fb4983a6e65024262d94fc09187a
                    2d78162122433251d1bfcc8e507d06eba2d229c10031261da32ab8ccd15f1c5f9fbf07ed158483d736a110af4b44d6a4
                    da60d6cb519b4454213cf9f0dc560f2b
                    """)), Array("Test".utf8))
        XCTAssertNil(
            wycheproof.unwrap(
                hex(
                    """
                    287d7108a1c6e7a18acb0045b20c57cdf2ac03456b44942764a7a9e9fdf3db481d7e202e4c8d733b56b9c1e93d71e791
                    af8325c9363df789b252a5ed0eddc79e76fa41c2cb0a35618398217a390a5e6d99eed905d5554d19c1cf4e30bdf1c2fc
                    c5148b641d71b3f1977b63d232648ddd935ec9499a53ac2fbcac55f462e91065adaa018a39c453ba759bd68b45407415
                    3421e2ce75cf149f748b5b84758df8a423d1c50c880af863f2a6df3cd465ca36aa2152b5771f3d507f4a4dd9f8006d80
                    eca23537092287976f218a90df1e16d889fe31e79f7309f3224f613e9b52479fe73b7aad915319a3b62a5936649f7d01
                    5d7b09f7fa9f454f78a7c3dd4bf791e0
                    """)))

        // Round trips on a key the project made, and what must fail.
        let key = RSAKey.generate(bits: 2048)
        XCTAssertEqual(key.bits, 2048)
        let bek = (0..<32).map { UInt8($0 &* 7 &+ 1) }
        let wrapped = try XCTUnwrap(key.wrap(bek))
        XCTAssertEqual(wrapped.count, 256)
        XCTAssertEqual(key.unwrap(wrapped), bek)
        XCTAssertNotEqual(key.wrap(bek), wrapped, "OAEP is randomised")
        XCTAssertNil(wycheproof.unwrap(wrapped), "another key")
        for at in [0, 100, 255] {
            var damaged = wrapped
            damaged[at] ^= 0x01
            XCTAssertNil(key.unwrap(damaged), "byte \(at) flipped")
        }
        XCTAssertNil(key.unwrap(Array(wrapped.dropLast())), "one byte short")
        // The exported PEM reads back as the same key.
        let reread = try RSAKey.importPEM(key.privatePEM(), source: "exported")
        XCTAssertEqual(reread.unwrap(wrapped), bek)

        // OpenSSL's command line on the exported key: it encrypts, we decrypt; we encrypt, it decrypts.
        try Tool.require("openssl")
        let s = try Scratch(self)
        try Data(key.privatePEM()).write(to: URL(fileURLWithPath: s.file("key.pem")))
        try Data(bek).write(to: URL(fileURLWithPath: s.file("bek")))
        let oaep = "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256"
        try Tool.sh(
            """
            cd \(s.path)
            openssl pkey -in key.pem -pubout -out pub.pem
            openssl pkeyutl -encrypt -pubin -inkey pub.pem \(oaep) -in bek -out by-openssl
            """)
        XCTAssertEqual(key.unwrap([UInt8](try Data(contentsOf: URL(fileURLWithPath: s.file("by-openssl"))))), bek)
        try Data(wrapped).write(to: URL(fileURLWithPath: s.file("by-diskvault")))
        try Tool.sh("cd \(s.path) && openssl pkeyutl -decrypt -inkey key.pem \(oaep) -in by-diskvault -out opened")
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: s.file("opened")))), bek)
        // Other padding is refused on both sides: OAEP-SHA-1 from OpenSSL does not open here.
        try Tool.sh(
            "cd \(s.path) && openssl pkeyutl -encrypt -pubin -inkey pub.pem -pkeyopt rsa_padding_mode:oaep -in bek -out sha1"
        )
        XCTAssertNil(key.unwrap([UInt8](try Data(contentsOf: URL(fileURLWithPath: s.file("sha1"))))))
    }
}

/// Bytes from hex digits; spaces and line breaks are ignored so vectors can be typed as the documents print them.
private func hex(_ text: String) -> [UInt8] {
    let digits = text.unicodeScalars.filter { !CharacterSet.whitespacesAndNewlines.contains($0) }.map { Character($0) }
    precondition(digits.count % 2 == 0, "odd number of hex digits in \(text)")
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}
