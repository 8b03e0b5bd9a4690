internal import COpenSSL

/// An Ed25519 signing key (RFC 8032, pure Ed25519, no context) as raw bytes. No OpenSSL object outlives a call,
/// so the value is freely shared.
public struct Ed25519Key: Sendable {
    /// The 32-byte private key (RFC 8032's seed, from which the scalar and prefix are hashed).
    public let seed: [UInt8]
    /// The 32-byte encoded public point.
    public let publicKey: [UInt8]

    /// The key with the 32-byte `seed`; nil for any other length.
    /// The corresponding C function is `EVP_PKEY_new_raw_private_key`.
    public init?(seed: [UInt8]) {
        guard seed.count == 32, let pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, seed, 32) else {
            return nil
        }
        defer { EVP_PKEY_free(pkey) }
        var publicKey = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_get_raw_public_key(pkey, &publicKey, &length) == 1, length == 32 else { return nil }
        self.seed = seed
        self.publicKey = publicKey
    }

    /// A new key from a random seed. The corresponding C function is `RAND_bytes`.
    public static func generate() -> Ed25519Key {
        guard let key = Ed25519Key(seed: SecureRandom.bytes(32)) else { fatalError("EVP_PKEY_new_raw_private_key(Ed25519) failed") }
        return key
    }

    /// The 64-byte signature of `message` (deterministic: the same key and message give the same bytes).
    /// The corresponding C function is `EVP_DigestSign`.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        guard let pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, seed, 32) else {
            fatalError("EVP_PKEY_new_raw_private_key(Ed25519) failed")
        }
        defer { EVP_PKEY_free(pkey) }
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        defer { EVP_MD_CTX_free(ctx) }
        var signature = [UInt8](repeating: 0, count: 64)
        var length = 64
        // Ed25519 hashes the message itself: no digest is named.
        guard EVP_DigestSignInit(ctx, nil, nil, nil, pkey) == 1,
            EVP_DigestSign(ctx, &signature, &length, message, message.count) == 1, length == 64
        else { fatalError("Ed25519 signing failed") }
        return signature
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` under the 32-byte `publicKey`. Inputs of
    /// the wrong size, or a public key that is not a point, give false. The corresponding C function is
    /// `EVP_DigestVerify`.
    public static func verify(_ signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == 64, publicKey.count == 32,
            let pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, publicKey, 32)
        else { ERR_clear_error(); return false }
        defer { EVP_PKEY_free(pkey) }
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        defer { EVP_MD_CTX_free(ctx) }
        let valid = EVP_DigestVerifyInit(ctx, nil, nil, nil, pkey) == 1
            && EVP_DigestVerify(ctx, signature, 64, message, message.count) == 1
        if !valid { ERR_clear_error() }
        return valid
    }
}
