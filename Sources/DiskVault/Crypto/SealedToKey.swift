/// Anonymous public-key encryption (ECIES over X25519, HKDF-SHA256 and AES-256-GCM): anyone with a recipient's
/// X25519 public key seals; only the holder of its private key opens. The sender is not identified.
///
/// A box, byte by byte:
///
///     offset  length  content
///     0       4       magic "dvpk" (0x64 0x76 0x70 0x6b)
///     4       1       version 0x01
///     5       32      E, the sender's ephemeral X25519 public key (fresh for every box)
///     37      n - 37  an `AESGCM.seal` box: "dvse" 0x01, a 12-byte nonce, the ciphertext (as long as the
///                     plaintext), a 16-byte tag
///
/// The AES-256-GCM key is K = HKDF-SHA256(ikm: X25519(e, R), salt: E || R, info: "diskvault sealed-to-key v1"
/// (ASCII, 26 bytes), length: 32), where e is the ephemeral private key, R the recipient's 32-byte public key
/// and X25519 the RFC 7748 function (its 32-byte output as is). The GCM associated data is the caller's
/// `associatedData` exactly (no length prefix, not the header). A box is at least 5 + 32 + 5 + 12 + 16 = 70
/// bytes. Opening fails when X25519 gives all zeros (a small-order E).
public enum SealedToKey {
    static let magic: [UInt8] = Array("dvpk".utf8) + [1]
    static let info: [UInt8] = Array("diskvault sealed-to-key v1".utf8)

    /// `plaintext` sealed to the X25519 public key `recipientPublicKey`, bound to `associatedData`; nil when
    /// the recipient key is not 32 bytes or is a small-order point (the shared secret would be all zero).
    /// The corresponding C function is `EVP_PKEY_derive`.
    public static func seal(_ plaintext: [UInt8], to recipientPublicKey: [UInt8], associatedData: [UInt8]) -> [UInt8]? {
        let ephemeral = X25519Key.generate()
        guard let shared = ephemeral.sharedSecret(with: recipientPublicKey) else { return nil }
        let key = HKDF.sha256(key: shared, salt: ephemeral.publicKey + recipientPublicKey, info: info, count: 32)
        return magic + ephemeral.publicKey + AESGCM.seal(plaintext, key: key, associatedData: associatedData)
    }

    /// The plaintext, or nil when the box is damaged, was sealed to another key, or was sealed with other
    /// associated data. The corresponding C function is `EVP_PKEY_derive`.
    public static func open(_ box: [UInt8], with key: X25519Key, associatedData: [UInt8]) -> [UInt8]? {
        guard isSealedForm(box) else { return nil }
        let ephemeralPublicKey = Array(box[magic.count..<magic.count + 32])
        guard let shared = key.sharedSecret(with: ephemeralPublicKey) else { return nil }
        let boxKey = HKDF.sha256(key: shared, salt: ephemeralPublicKey + key.publicKey, info: info, count: 32)
        return AESGCM.open(Array(box[(magic.count + 32)...]), key: boxKey, associatedData: associatedData)
    }

    /// Whether `box` has the form `seal` makes (magic, version, ephemeral key, a sealed AES-GCM box): what can be
    /// checked without the private key.
    public static func isSealedForm(_ box: [UInt8]) -> Bool {
        box.count >= magic.count + 32 && box.starts(with: magic) && AESGCM.isSealedForm(Array(box[(magic.count + 32)...]))
    }
}
