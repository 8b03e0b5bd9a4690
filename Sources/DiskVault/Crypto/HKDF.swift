internal import COpenSSL

/// HKDF (RFC 5869): a key derived from key material that is already strong (a shared secret), not a passphrase.
public enum HKDF {
    /// HKDF-SHA256, extract then expand: `count` bytes (1 to 8160, 255 blocks) from the input key material `key`,
    /// the `salt` (empty means the RFC's string of 32 zero bytes) and the context `info`.
    /// The corresponding C function is `EVP_KDF_derive`.
    public static func sha256(key: [UInt8], salt: [UInt8], info: [UInt8], count: Int) -> [UInt8] {
        precondition((1...8160).contains(count), "HKDF-SHA256 gives 1 to 8160 bytes, not \(count)")
        guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else { fatalError("EVP_KDF_fetch(HKDF) failed") }
        defer { EVP_KDF_free(kdf) }
        guard let ctx = EVP_KDF_CTX_new(kdf) else { fatalError("EVP_KDF_CTX_new: out of memory") }
        defer { EVP_KDF_CTX_free(ctx) }

        // An OSSL_PARAM points at its name and its value without copying either, so both live in buffers that
        // outlive EVP_KDF_derive: the names (NUL-terminated, one after another) and the key material.
        let names = [OSSL_KDF_PARAM_DIGEST, "SHA256", OSSL_KDF_PARAM_KEY, OSSL_KDF_PARAM_SALT, OSSL_KDF_PARAM_INFO]
        var nameBytes: [CChar] = []
        var nameOffsets: [Int] = []
        for name in names {
            nameOffsets.append(nameBytes.count)
            nameBytes += name.utf8CString
        }
        // One byte more, so that even empty material has an address.
        let material = key + salt + info + [0]
        var out = [UInt8](repeating: 0, count: count)
        let ok = nameBytes.withUnsafeMutableBufferPointer { n -> Int32 in
            material.withUnsafeBytes { m -> Int32 in
                guard let nameBase = n.baseAddress, let base = m.baseAddress else { return 0 }
                func name(_ i: Int) -> UnsafeMutablePointer<CChar> { nameBase + nameOffsets[i] }
                var params = [OSSL_PARAM_construct_utf8_string(name(0), name(1), 0)]
                params.append(OSSL_PARAM_construct_octet_string(name(2), UnsafeMutableRawPointer(mutating: base), key.count))
                // No salt at all, rather than an empty one, is what gives the RFC's zeros; no info is empty info.
                if !salt.isEmpty {
                    params.append(OSSL_PARAM_construct_octet_string(
                        name(3), UnsafeMutableRawPointer(mutating: base + key.count), salt.count))
                }
                if !info.isEmpty {
                    params.append(OSSL_PARAM_construct_octet_string(
                        name(4), UnsafeMutableRawPointer(mutating: base + key.count + salt.count), info.count))
                }
                params.append(OSSL_PARAM_construct_end())
                return params.withUnsafeBufferPointer { p in EVP_KDF_derive(ctx, &out, count, p.baseAddress) }
            }
        }
        guard ok == 1 else { fatalError("EVP_KDF_derive(HKDF-SHA256) failed") }
        return out
    }
}
