internal import COpenSSL

/// An RSA private key held by OpenSSL, freed in `deinit`: made here, or read from a standalone PEM key; or an
/// RSA public key alone (`importPublicPEM`), which can wrap but not unwrap nor give a private PEM.
/// BEKs are wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256).
public final class RSAKey {
    let pkey: OpaquePointer

    init(pkey: OpaquePointer) { self.pkey = pkey }
    deinit { EVP_PKEY_free(pkey) }

    /// A new key of `bits` (2048 or 3072). The corresponding C function is `EVP_PKEY_keygen`.
    public static func generate(bits: Int) -> RSAKey {
        guard let context = PKeyContext(algorithm: EVP_PKEY_RSA) else { fatalError("EVP_PKEY_CTX_new_id failed") }
        let pkey = context.withPointer { (ctx) -> OpaquePointer? in
            var pkey: OpaquePointer? = nil
            guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, Int32(bits)) == 1,
                EVP_PKEY_keygen(ctx, &pkey) == 1
            else { return nil }
            return pkey
        }
        guard let pkey else { fatalError("RSA key generation failed") }
        return RSAKey(pkey: pkey)
    }

    /// Reads a standalone RSA private key from PEM. A certificate, or a key that comes inside one, is refused.
    /// The corresponding C function is `PEM_read_bio_PrivateKey`.
    public static func importPEM(_ pem: [UInt8], source: String) throws(DiskVaultError) -> RSAKey {
        let text = String(decoding: pem, as: UTF8.self)
        if text.contains("-----BEGIN CERTIFICATE-----") || text.contains("-----BEGIN TRUSTED CERTIFICATE-----")
            || text.contains("-----BEGIN PKCS7-----")
        {
            throw DiskVaultError(.unsupported, "certificate-based keys are not supported; import a standalone key", path: source)
        }
        guard text.contains("PRIVATE KEY-----") else {
            throw DiskVaultError(.corrupt, "not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)", path: source)
        }
        let key = MemoryBIO(copying: pem).withPointer { PEM_read_bio_PrivateKey($0, nil, nil, nil) }
        guard let key else { throw DiskVaultError(.corrupt, "cannot read the PEM private key (damaged, or protected by a passphrase)", path: source) }
        let rsa = RSAKey(pkey: key)
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA else {
            throw DiskVaultError(.unsupported, "only RSA keys can wrap disk keys; this PEM holds another kind of key", path: source)
        }
        guard [2048, 3072, 4096].contains(rsa.bits) else {
            throw DiskVaultError(.unsupported, "RSA keys of 2048, 3072 or 4096 bits are supported, not \(rsa.bits)", path: source)
        }
        return rsa
    }

    /// Reads a standalone RSA public key (SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----") of 2048, 3072 or
    /// 4096 bits from PEM, for wrapping only. A certificate, or another kind of key, is refused.
    /// The corresponding C function is `PEM_read_bio_PUBKEY`.
    public static func importPublicPEM(_ pem: [UInt8], source: String) throws(DiskVaultError) -> RSAKey {
        let text = String(decoding: pem, as: UTF8.self)
        if text.contains("-----BEGIN CERTIFICATE-----") || text.contains("-----BEGIN TRUSTED CERTIFICATE-----")
            || text.contains("-----BEGIN PKCS7-----")
        {
            throw DiskVaultError(.unsupported, "certificate-based keys are not supported; import a standalone public key", path: source)
        }
        guard text.contains("-----BEGIN PUBLIC KEY-----") else {
            throw DiskVaultError(.corrupt, "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)", path: source)
        }
        let key = MemoryBIO(copying: pem).withPointer { PEM_read_bio_PUBKEY($0, nil, nil, nil) }
        guard let key else {
            ERR_clear_error()
            throw DiskVaultError(.corrupt, "cannot read the PEM public key (damaged)", path: source)
        }
        let rsa = RSAKey(pkey: key)
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA else {
            throw DiskVaultError(.unsupported, "only RSA keys can wrap disk keys; this PEM holds another kind of key", path: source)
        }
        guard [2048, 3072, 4096].contains(rsa.bits) else {
            throw DiskVaultError(.unsupported, "RSA keys of 2048, 3072 or 4096 bits are supported, not \(rsa.bits)", path: source)
        }
        return rsa
    }

    public var bits: Int { Int(EVP_PKEY_get_bits(pkey)) }

    /// SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----") of the public key, which `importPublicPEM` and
    /// `openssl pkey -pubin` read. The corresponding C function is `PEM_write_bio_PUBKEY`.
    public func publicPEM() -> [UInt8] {
        let bio = MemoryBIO()
        let written = bio.withPointer { PEM_write_bio_PUBKEY($0, pkey) }
        guard written == 1 else { fatalError("PEM_write_bio_PUBKEY failed") }
        return bio.contents
    }

    /// PKCS#8 PEM of the private key (a key read by `importPublicPEM` has none). The corresponding C function is `PEM_write_bio_PrivateKey`.
    public func privatePEM() -> [UInt8] {
        let bio = MemoryBIO()
        let written = bio.withPointer { PEM_write_bio_PrivateKey($0, pkey, nil, nil, 0, nil, nil) }
        guard written == 1 else { fatalError("PEM_write_bio_PrivateKey failed") }
        return bio.contents
    }

    /// RSA-OAEP with SHA-256. The corresponding C function is `EVP_PKEY_encrypt`.
    public func wrap(_ plaintext: [UInt8]) -> [UInt8]? { oaep(encrypt: true, plaintext) }

    /// nil when the key does not match or the data is damaged. The corresponding C function is `EVP_PKEY_decrypt`.
    public func unwrap(_ ciphertext: [UInt8]) -> [UInt8]? { oaep(encrypt: false, ciphertext) }

    private func oaep(encrypt: Bool, _ input: [UInt8]) -> [UInt8]? {
        guard let context = PKeyContext(key: pkey) else { return nil }
        return context.withPointer { (ctx) -> [UInt8]? in
            guard (encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1,
                EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1,
                EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1,
                EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1
            else { return nil }
            var length = 0
            let sized = encrypt
                ? EVP_PKEY_encrypt(ctx, nil, &length, input, input.count)
                : EVP_PKEY_decrypt(ctx, nil, &length, input, input.count)
            guard sized == 1 else { return nil }
            var out = [UInt8](repeating: 0, count: length)
            let done = encrypt
                ? EVP_PKEY_encrypt(ctx, &out, &length, input, input.count)
                : EVP_PKEY_decrypt(ctx, &out, &length, input, input.count)
            guard done == 1 else { return nil }
            return Array(out[..<length])
        }
    }
}
