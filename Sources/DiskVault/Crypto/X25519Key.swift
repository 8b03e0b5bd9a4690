internal import COpenSSL

/// An X25519 key pair (RFC 7748) as raw bytes: key agreement, for sealing to a public key. No OpenSSL object
/// outlives a call, so the value is freely shared.
public struct X25519Key: Sendable {
    /// The 32-byte private scalar as given (OpenSSL clamps it when it uses it).
    public let privateKey: [UInt8]
    /// The 32-byte public u-coordinate.
    public let publicKey: [UInt8]

    /// The key pair with the 32-byte raw private key `privateKey`; nil for any other length.
    /// The corresponding C function is `EVP_PKEY_new_raw_private_key`.
    public init?(privateKey: [UInt8]) {
        guard privateKey.count == 32, let pkey = Self.privatePKey(privateKey) else { return nil }
        defer { EVP_PKEY_free(pkey) }
        guard let publicKey = Self.raw(pkey, private: false) else { return nil }
        self.privateKey = privateKey
        self.publicKey = publicKey
    }

    private init(privateKey: [UInt8], publicKey: [UInt8]) {
        self.privateKey = privateKey
        self.publicKey = publicKey
    }

    /// A new random key pair. The corresponding C function is `EVP_PKEY_keygen`.
    public static func generate() -> X25519Key {
        guard let context = PKeyContext(algorithm: EVP_PKEY_X25519) else { fatalError("EVP_PKEY_CTX_new_id(X25519) failed") }
        let pkey = context.withPointer { (ctx) -> OpaquePointer? in
            var pkey: OpaquePointer? = nil
            guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_keygen(ctx, &pkey) == 1 else { return nil }
            return pkey
        }
        guard let pkey else { fatalError("X25519 key generation failed") }
        defer { EVP_PKEY_free(pkey) }
        guard let privateKey = raw(pkey, private: true), let publicKey = raw(pkey, private: false) else {
            fatalError("EVP_PKEY_get_raw_private_key(X25519) failed")
        }
        return X25519Key(privateKey: privateKey, publicKey: publicKey)
    }

    /// X25519(privateKey, peerPublicKey): the 32-byte shared secret, or nil when the peer key is not 32 bytes or
    /// the result is all zero (a small-order point, which would make the secret known to anyone).
    /// The corresponding C function is `EVP_PKEY_derive`.
    public func sharedSecret(with peerPublicKey: [UInt8]) -> [UInt8]? {
        guard peerPublicKey.count == 32,
            let own = Self.privatePKey(privateKey),
            let peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nil, peerPublicKey, 32)
        else { return nil }
        defer { EVP_PKEY_free(peer); EVP_PKEY_free(own) }
        guard let context = PKeyContext(key: own) else { return nil }
        let secret = context.withPointer { (ctx) -> [UInt8]? in
            var length = 0
            guard EVP_PKEY_derive_init(ctx) == 1, EVP_PKEY_derive_set_peer(ctx, peer) == 1,
                EVP_PKEY_derive(ctx, nil, &length) == 1, length == 32
            else { return nil }
            var out = [UInt8](repeating: 0, count: 32)
            guard EVP_PKEY_derive(ctx, &out, &length) == 1, length == 32 else { return nil }
            return out
        }
        // OpenSSL refuses an all-zero result itself; a failure leaves its reason on the error queue.
        guard let secret else { ERR_clear_error(); return nil }
        return secret.reduce(0, |) == 0 ? nil : secret
    }

    /// An EVP_PKEY of the 32-byte private key, for the caller to free.
    private static func privatePKey(_ bytes: [UInt8]) -> OpaquePointer? {
        EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nil, bytes, bytes.count)
    }

    /// The raw 32-byte private or public key of `pkey`.
    private static func raw(_ pkey: OpaquePointer, private: Bool) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 32)
        var length = 32
        let ok = `private` ? EVP_PKEY_get_raw_private_key(pkey, &out, &length) : EVP_PKEY_get_raw_public_key(pkey, &out, &length)
        return ok == 1 && length == 32 ? out : nil
    }
}
