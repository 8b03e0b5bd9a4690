import DiskVault
import Foundation
import XCTest

/// HKDF, X25519, Ed25519, sealing to a public key and RSA public PEMs: the published vectors, refusals, and
/// agreement with independent implementations (Python's `cryptography`, OpenSSL's command line).
final class PublicKeyCryptoTests: XCTestCase {
    // MARK: HKDF

    /// RFC 5869 appendix A, test cases 1–3 (SHA-256): basic, long inputs, and empty salt and info.
    func testHKDFRFC5869TestCases1To3() {
        XCTAssertEqual(
            HKDF.sha256(
                key: [UInt8](repeating: 0x0b, count: 22), salt: Array(0x00...0x0c), info: Array(0xf0...0xf9), count: 42),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"))
        XCTAssertEqual(
            HKDF.sha256(key: Array(0x00...0x4f), salt: Array(0x60...0xaf), info: Array(0xb0...0xff), count: 82),
            hex(
                """
                b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09
                da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87
                """))
        XCTAssertEqual(
            HKDF.sha256(key: [UInt8](repeating: 0x0b, count: 22), salt: [], info: [], count: 42),
            hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"))
        // The bounds: one byte, and 255 blocks, whose start is the shorter output.
        let long = HKDF.sha256(key: [1, 2, 3], salt: [4], info: [5], count: 8160)
        XCTAssertEqual(long.count, 8160)
        XCTAssertEqual(HKDF.sha256(key: [1, 2, 3], salt: [4], info: [5], count: 1), Array(long.prefix(1)))
    }

    // MARK: X25519

    /// RFC 7748 section 6.1: Alice's and Bob's keys and their shared secret.
    func testX25519RFC7748Section6_1() throws {
        let alice = try XCTUnwrap(X25519Key(privateKey: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
        let bob = try XCTUnwrap(X25519Key(privateKey: hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")))
        XCTAssertEqual(alice.privateKey, hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        XCTAssertEqual(alice.publicKey, hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        XCTAssertEqual(bob.publicKey, hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        let shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        XCTAssertEqual(alice.sharedSecret(with: bob.publicKey), shared)
        XCTAssertEqual(bob.sharedSecret(with: alice.publicKey), shared)

        // Refusals: keys of the wrong size, and small-order points (u = 0, u = 1), whose secret is all zero.
        XCTAssertNil(X25519Key(privateKey: [UInt8](repeating: 1, count: 31)))
        XCTAssertNil(X25519Key(privateKey: [UInt8](repeating: 1, count: 33)))
        XCTAssertNil(X25519Key(privateKey: []))
        XCTAssertNil(alice.sharedSecret(with: Array(bob.publicKey.dropLast())))
        XCTAssertNil(alice.sharedSecret(with: bob.publicKey + [0]))
        XCTAssertNil(alice.sharedSecret(with: [UInt8](repeating: 0, count: 32)))
        XCTAssertNil(alice.sharedSecret(with: [1] + [UInt8](repeating: 0, count: 31)))

        // Generated keys agree, and are fresh.
        let a = X25519Key.generate(), b = X25519Key.generate()
        XCTAssertEqual(a.privateKey.count, 32)
        XCTAssertEqual(X25519Key(privateKey: a.privateKey)?.publicKey, a.publicKey)
        XCTAssertNotEqual(a.publicKey, b.publicKey)
        XCTAssertEqual(try XCTUnwrap(a.sharedSecret(with: b.publicKey)), b.sharedSecret(with: a.publicKey))
    }

    // MARK: Ed25519

    /// RFC 8032 section 7.1, TEST 1 (empty message), TEST 2 (one byte) and TEST 3 (two bytes).
    func testEd25519RFC8032Tests1To3() throws {
        let vectors: [(seed: String, publicKey: String, message: String, signature: String)] = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
                """
                e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b
                d25bf5f0595bbe24655141438e7a100b
                """
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
                """
                92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c
                387b2eaeb4302aeeb00d291612bb0c00
                """
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
                """
                6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc659
                4a7c15e9716ed28dc027beceea1ec40a
                """
            ),
        ]
        for (n, v) in vectors.enumerated() {
            let key = try XCTUnwrap(Ed25519Key(seed: hex(v.seed)), "TEST \(n + 1)")
            XCTAssertEqual(key.seed, hex(v.seed))
            XCTAssertEqual(key.publicKey, hex(v.publicKey), "TEST \(n + 1)")
            let signature = key.sign(hex(v.message))
            XCTAssertEqual(signature, hex(v.signature), "TEST \(n + 1)")
            XCTAssertTrue(Ed25519Key.verify(signature, message: hex(v.message), publicKey: key.publicKey), "TEST \(n + 1)")
        }
    }

    func testEd25519VerifyRefuses() throws {
        let key = Ed25519Key.generate()
        let message = Array("a manifest to sign".utf8)
        let signature = key.sign(message)
        XCTAssertEqual(signature.count, 64)
        XCTAssertEqual(key.sign(message), signature, "deterministic")
        XCTAssertEqual(Ed25519Key(seed: key.seed)?.publicKey, key.publicKey)
        XCTAssertTrue(Ed25519Key.verify(signature, message: message, publicKey: key.publicKey))
        // A flipped bit in the message, anywhere in the signature, or in the public key.
        for at in [0, message.count - 1] {
            var damaged = message
            damaged[at] ^= 0x01
            XCTAssertFalse(Ed25519Key.verify(signature, message: damaged, publicKey: key.publicKey), "message byte \(at)")
        }
        XCTAssertFalse(Ed25519Key.verify(signature, message: message + [0], publicKey: key.publicKey))
        for at in 0..<64 {
            var damaged = signature
            damaged[at] ^= 0x04
            XCTAssertFalse(Ed25519Key.verify(damaged, message: message, publicKey: key.publicKey), "signature byte \(at)")
        }
        var otherKey = key.publicKey
        otherKey[0] ^= 0x01
        XCTAssertFalse(Ed25519Key.verify(signature, message: message, publicKey: otherKey))
        XCTAssertFalse(Ed25519Key.verify(signature, message: message, publicKey: Ed25519Key.generate().publicKey))
        // Wrong sizes, and a public key that is no point: false, never a crash.
        XCTAssertFalse(Ed25519Key.verify(Array(signature.dropLast()), message: message, publicKey: key.publicKey))
        XCTAssertFalse(Ed25519Key.verify(signature + [0], message: message, publicKey: key.publicKey))
        XCTAssertFalse(Ed25519Key.verify([], message: message, publicKey: key.publicKey))
        XCTAssertFalse(Ed25519Key.verify(signature, message: message, publicKey: Array(key.publicKey.dropLast())))
        XCTAssertFalse(Ed25519Key.verify(signature, message: message, publicKey: key.publicKey + [0]))
        XCTAssertFalse(Ed25519Key.verify(signature, message: message, publicKey: []))
        XCTAssertFalse(Ed25519Key.verify(signature, message: message, publicKey: [UInt8](repeating: 0xff, count: 32)))
        XCTAssertNil(Ed25519Key(seed: [UInt8](repeating: 7, count: 31)))
        XCTAssertNil(Ed25519Key(seed: [UInt8](repeating: 7, count: 33)))
    }

    // MARK: Sealed to a key

    func testSealedToKeyRoundTripAndRefusals() throws {
        let recipient = X25519Key.generate()
        let plaintext = Array("a 32-byte BEK would go here....".utf8)
        let aad = Array("vault/keys/disk-1".utf8)
        let box = try XCTUnwrap(SealedToKey.seal(plaintext, to: recipient.publicKey, associatedData: aad))
        XCTAssertEqual(box.count, 5 + 32 + 5 + 12 + plaintext.count + 16)
        XCTAssertEqual(Array(box.prefix(5)), Array("dvpk".utf8) + [1])
        XCTAssertEqual(Array(box[37..<42]), Array("dvse".utf8) + [1])
        XCTAssertTrue(SealedToKey.isSealedForm(box))
        XCTAssertFalse(AESGCM.isSealedForm(box))
        XCTAssertEqual(SealedToKey.open(box, with: recipient, associatedData: aad), plaintext)
        let again = try XCTUnwrap(SealedToKey.seal(plaintext, to: recipient.publicKey, associatedData: aad))
        XCTAssertNotEqual(Array(again[5..<37]), Array(box[5..<37]), "a fresh ephemeral key per box")

        // Empty plaintext and empty associated data.
        let empty = try XCTUnwrap(SealedToKey.seal([], to: recipient.publicKey, associatedData: []))
        XCTAssertEqual(empty.count, 70)
        XCTAssertEqual(SealedToKey.open(empty, with: recipient, associatedData: []), [])
        XCTAssertNil(SealedToKey.open(empty, with: recipient, associatedData: [0]))

        // Another key, other associated data.
        XCTAssertNil(SealedToKey.open(box, with: X25519Key.generate(), associatedData: aad))
        XCTAssertNil(SealedToKey.open(box, with: recipient, associatedData: []))
        XCTAssertNil(SealedToKey.open(box, with: recipient, associatedData: aad + [0]))
        var otherAAD = aad
        otherAAD[0] ^= 0x01
        XCTAssertNil(SealedToKey.open(box, with: recipient, associatedData: otherAAD))

        // A flipped bit anywhere (low and high bit of every byte: the ephemeral key's top bit, which X25519
        // ignores, is still bound through the salt), any truncation, or a byte more.
        for at in box.indices {
            for bit: UInt8 in [0x01, 0x80] {
                var damaged = box
                damaged[at] ^= bit
                XCTAssertNil(SealedToKey.open(damaged, with: recipient, associatedData: aad), "byte \(at) ^ \(bit)")
            }
        }
        for length in 0..<box.count {
            XCTAssertNil(SealedToKey.open(Array(box.prefix(length)), with: recipient, associatedData: aad), "\(length) bytes")
        }
        XCTAssertFalse(SealedToKey.isSealedForm(Array(box.prefix(69))))
        XCTAssertNil(SealedToKey.open(box + [0], with: recipient, associatedData: aad))

        // Recipient keys that are no key: the wrong size, or small-order points (all zero, u = 1).
        XCTAssertNil(SealedToKey.seal(plaintext, to: [UInt8](repeating: 0, count: 32), associatedData: aad))
        XCTAssertNil(SealedToKey.seal(plaintext, to: [1] + [UInt8](repeating: 0, count: 31), associatedData: aad))
        XCTAssertNil(SealedToKey.seal(plaintext, to: Array(recipient.publicKey.dropLast()), associatedData: aad))
        XCTAssertNil(SealedToKey.seal(plaintext, to: [], associatedData: aad))
        // A box whose ephemeral key is a small-order point does not open (its secret would be all zero).
        var smallOrder = box
        smallOrder.replaceSubrange(5..<37, with: [UInt8](repeating: 0, count: 32))
        XCTAssertTrue(SealedToKey.isSealedForm(smallOrder))
        XCTAssertNil(SealedToKey.open(smallOrder, with: recipient, associatedData: aad))
    }

    /// The format as documented, re-implemented in Python's `cryptography`: it opens what Swift sealed, and
    /// Swift opens what it sealed.
    func testSealedToKeyFormatAgreesWithPython() throws {
        try Tool.require("python3")
        guard try Tool.run("python3", ["-c", "import cryptography.hazmat.primitives.ciphers.aead"]).status == 0 else {
            throw XCTSkip("Python's cryptography package is not installed")
        }
        let s = try Scratch(self)
        let recipient = X25519Key.generate()
        let plaintext = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let aad = Array("disk 7f3a".utf8)
        let box = try XCTUnwrap(SealedToKey.seal(plaintext, to: recipient.publicKey, associatedData: aad))
        try Data(box).write(to: URL(fileURLWithPath: s.file("box")))

        let common = """
            import sys
            from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            def kdf(shared, E, R):
                return HKDF(hashes.SHA256(), 32, E + R, b"diskvault sealed-to-key v1").derive(shared)
            def raw(public):
                return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            """
        let opener = common + "\n" + """
            box = open(sys.argv[1], "rb").read()
            r = X25519PrivateKey.from_private_bytes(bytes.fromhex(sys.argv[2]))
            assert box[:5] == b"dvpk" + bytes([1]) and box[37:42] == b"dvse" + bytes([1])
            E, inner = box[5:37], box[37:]
            k = kdf(r.exchange(X25519PublicKey.from_public_bytes(E)), E, raw(r.public_key()))
            print(AESGCM(k).decrypt(inner[5:17], inner[17:], bytes.fromhex(sys.argv[3])).hex())
            """
        let opened = try Tool.sh("python3 -c '\(opener)' \(s.file("box")) \(hexString(recipient.privateKey)) \(hexString(aad))")
        XCTAssertEqual(opened.trimmingCharacters(in: .whitespacesAndNewlines), hexString(plaintext))

        let sealer = common + "\n" + """
            import os
            R = bytes.fromhex(sys.argv[1])
            e = X25519PrivateKey.generate()
            E = raw(e.public_key())
            nonce = os.urandom(12)
            k = kdf(e.exchange(X25519PublicKey.from_public_bytes(R)), E, R)
            sealed = AESGCM(k).encrypt(nonce, bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]))
            print((b"dvpk" + bytes([1]) + E + b"dvse" + bytes([1]) + nonce + sealed).hex())
            """
        let byPython = try Tool.sh("python3 -c '\(sealer)' \(hexString(recipient.publicKey)) \(hexString(plaintext)) \(hexString(aad))")
        let pythonBox = hex(byPython)
        XCTAssertTrue(SealedToKey.isSealedForm(pythonBox))
        XCTAssertEqual(SealedToKey.open(pythonBox, with: recipient, associatedData: aad), plaintext)
        XCTAssertNil(SealedToKey.open(pythonBox, with: recipient, associatedData: []))
    }

    // MARK: RSA public PEM

    func testRSAPublicPEMWrapsForThePrivateKey() throws {
        let key = RSAKey.generate(bits: 2048)
        let pem = key.publicPEM()
        XCTAssertTrue(String(decoding: pem, as: UTF8.self).hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
        let publicOnly = try RSAKey.importPublicPEM(pem, source: "pub.pem")
        XCTAssertEqual(publicOnly.bits, 2048)
        XCTAssertEqual(publicOnly.publicPEM(), pem)
        let bek = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ 3) }
        let wrapped = try XCTUnwrap(publicOnly.wrap(bek))
        XCTAssertEqual(wrapped.count, 256)
        XCTAssertEqual(key.unwrap(wrapped), bek)
        XCTAssertNil(publicOnly.unwrap(wrapped), "no private part to unwrap with")

        // OpenSSL reads the PEM, and derives the same one from the private key.
        try Tool.require("openssl")
        let s = try Scratch(self)
        try Data(pem).write(to: URL(fileURLWithPath: s.file("pub.pem")))
        try Data(key.privatePEM()).write(to: URL(fileURLWithPath: s.file("key.pem")))
        try Tool.sh("cd \(s.path) && openssl pkey -pubin -in pub.pem -noout && openssl pkey -in key.pem -pubout -out by-openssl.pem")
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: s.file("by-openssl.pem")))), pem)

        // Refused: a private key, a certificate, garbage, a key of another kind or size.
        func refusal(_ pem: [UInt8]) -> DiskVaultError.Code? {
            do {
                _ = try RSAKey.importPublicPEM(pem, source: "test")
                return nil
            } catch {
                return error.code
            }
        }
        XCTAssertEqual(refusal(key.privatePEM()), .corrupt)
        XCTAssertEqual(refusal(Array("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".utf8)), .corrupt)
        XCTAssertEqual(refusal([]), .corrupt)
        try Tool.sh(
            """
            cd \(s.path)
            openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkey -pubout -out ed.pem
            openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:1024 2>/dev/null | openssl pkey -pubout -out small.pem
            openssl req -x509 -key key.pem -out cert.pem -subj /CN=kek -days 1 2>/dev/null
            """)
        for (file, code) in [("ed.pem", DiskVaultError.Code.unsupported), ("small.pem", .unsupported), ("cert.pem", .unsupported)] {
            XCTAssertEqual(refusal([UInt8](try Data(contentsOf: URL(fileURLWithPath: s.file(file))))), code, file)
        }
    }
}

/// Bytes from hex digits; spaces and line breaks are ignored so vectors can be typed as the documents print them.
private func hex(_ text: String) -> [UInt8] {
    let digits = text.unicodeScalars.filter { !CharacterSet.whitespacesAndNewlines.contains($0) }.map { Character($0) }
    precondition(digits.count % 2 == 0, "odd number of hex digits in \(text)")
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

private func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
