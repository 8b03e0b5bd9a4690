internal import COpenSSL

/// AES key wrap with padding (RFC 5649), for BEKs wrapped by an AES KEK.
public enum AESKeyWrap {
    /// The corresponding C function is `EVP_EncryptUpdate` with `EVP_aes_256_wrap_pad`.
    public static func wrap(_ key: [UInt8], with kek: [UInt8]) -> [UInt8]? { run(encrypt: true, key, kek) }

    /// nil when the integrity check fails (wrong KEK or damaged).
    public static func unwrap(_ wrapped: [UInt8], with kek: [UInt8]) -> [UInt8]? { run(encrypt: false, wrapped, kek) }

    static func run(encrypt: Bool, _ input: [UInt8], _ kek: [UInt8]) -> [UInt8]? {
        guard kek.count == 32, !input.isEmpty else { return nil }
        return CipherContext().withPointer { (ctx) -> [UInt8]? in
            EVP_CIPHER_CTX_set_flags(ctx, Int32(EVP_CIPHER_CTX_FLAG_WRAP_ALLOW))
            var out = [UInt8](repeating: 0, count: input.count + 16)
            var n: Int32 = 0
            let ok = out.withUnsafeMutableBufferPointer { o -> Bool in
                if encrypt {
                    guard EVP_EncryptInit_ex(ctx, EVP_aes_256_wrap_pad(), nil, kek, nil) == 1,
                        EVP_EncryptUpdate(ctx, o.baseAddress, &n, input, Int32(input.count)) == 1 else { return false }
                } else {
                    guard EVP_DecryptInit_ex(ctx, EVP_aes_256_wrap_pad(), nil, kek, nil) == 1,
                        EVP_DecryptUpdate(ctx, o.baseAddress, &n, input, Int32(input.count)) == 1 else { return false }
                }
                return n > 0
            }
            return ok ? Array(out[..<Int(n)]) : nil
        }
    }
}
