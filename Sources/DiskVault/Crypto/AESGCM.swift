internal import COpenSSL

/// Cryptographic randomness from OpenSSL.
public enum SecureRandom {
    /// The corresponding C function is `RAND_bytes`.
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard count == 0 || RAND_bytes(&out, Int32(count)) == 1 else { fatalError("RAND_bytes failed") }
        return out
    }
}

/// One EVP cipher context, freed in `deinit`.
final class CipherContext {
    let ctx: OpaquePointer
    init() {
        guard let c = EVP_CIPHER_CTX_new() else { fatalError("EVP_CIPHER_CTX_new: out of memory") }
        ctx = c
    }
    deinit { EVP_CIPHER_CTX_free(ctx) }
}

/// AES-256-GCM sealed boxes: magic "dvse", version 1, 12-byte nonce, ciphertext, 16-byte tag. The associated
/// data binds a box to where it belongs (a key vault item's path), so boxes cannot be swapped unnoticed.
public enum AESGCM {
    static let magic: [UInt8] = Array("dvse".utf8) + [1]

    /// The corresponding C function is `EVP_EncryptUpdate`.
    public static func seal(_ plaintext: [UInt8], key: [UInt8], associatedData: [UInt8] = []) -> [UInt8] {
        precondition(key.count == 32, "AES-256-GCM needs a 32-byte key")
        let nonce = SecureRandom.bytes(12)
        let c = CipherContext()
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        var n: Int32 = 0, total = 0
        guard EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
            EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nil) == 1,
            EVP_EncryptInit_ex(c.ctx, nil, nil, key, nonce) == 1
        else { fatalError("AES-256-GCM init failed") }
        if !associatedData.isEmpty { EVP_EncryptUpdate(c.ctx, nil, &n, associatedData, Int32(associatedData.count)) }
        if !plaintext.isEmpty {
            out.withUnsafeMutableBufferPointer { o in _ = EVP_EncryptUpdate(c.ctx, o.baseAddress, &n, plaintext, Int32(plaintext.count)) }
            total = Int(n)
        }
        out.withUnsafeMutableBufferPointer { o in _ = EVP_EncryptFinal_ex(c.ctx, o.baseAddress! + total, &n) }
        total += Int(n)
        var tag = [UInt8](repeating: 0, count: 16)
        EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, 16, &tag)
        return magic + nonce + out[..<total] + tag
    }

    /// The plaintext, or nil when the box is damaged, was sealed under another key, or belongs elsewhere.
    /// The corresponding C function is `EVP_DecryptUpdate`.
    /// Whether `box` has the form `seal` makes (magic, nonce, at least a tag): what can be checked without the key.
    public static func isSealedForm(_ box: [UInt8]) -> Bool {
        box.count >= magic.count + 12 + 16 && box.starts(with: magic)
    }

    public static func open(_ box: [UInt8], key: [UInt8], associatedData: [UInt8] = []) -> [UInt8]? {
        guard key.count == 32, box.count >= magic.count + 12 + 16, box.starts(with: magic) else { return nil }
        let nonce = Array(box[magic.count..<magic.count + 12])
        let body = Array(box[(magic.count + 12)..<(box.count - 16)])
        var tag = Array(box[(box.count - 16)...])
        let c = CipherContext()
        var out = [UInt8](repeating: 0, count: body.count + 16)
        var n: Int32 = 0, total = 0
        guard EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
            EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nil) == 1,
            EVP_DecryptInit_ex(c.ctx, nil, nil, key, nonce) == 1
        else { return nil }
        if !associatedData.isEmpty { EVP_DecryptUpdate(c.ctx, nil, &n, associatedData, Int32(associatedData.count)) }
        if !body.isEmpty {
            out.withUnsafeMutableBufferPointer { o in _ = EVP_DecryptUpdate(c.ctx, o.baseAddress, &n, body, Int32(body.count)) }
            total = Int(n)
        }
        EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, 16, &tag)
        let ok = out.withUnsafeMutableBufferPointer { o in EVP_DecryptFinal_ex(c.ctx, o.baseAddress! + total, &n) }
        guard ok == 1 else { return nil }
        return Array(out[..<(total + Int(n))])
    }
}

/// scrypt, the slow, memory-hard KDF that turns a passphrase into a key.
public enum Scrypt {
    /// The most memory one derivation may take (OpenSSL's `maxmem`, which counts V = 128·r·(N + 2) bytes and
    /// B = 128·r·p): room for the largest work factor `keyvault init` offers, N = 2^20 with r = 8 (1 GiB and
    /// 2 KiB), and a bound on what a damaged key vault's parameters can ask for. Exactly 1 GiB refused that.
    static let memoryLimit: UInt64 = (1 << 30) + (1 << 20)

    /// The corresponding C function is `EVP_PBE_scrypt`.
    public static func derive(_ passphrase: [UInt8], salt: [UInt8], logN: Int, r: Int = 8, p: Int = 1) -> [UInt8]? {
        guard (10...22).contains(logN), (1...32).contains(r), (1...16).contains(p) else { return nil }
        var key = [UInt8](repeating: 0, count: 32)
        // OpenSSL refuses to use more memory than `maxmem`: give it what these parameters need (128·r·(N+2)
        // bytes for V, 128·r·p for B) and a MiB more, so N = 2^20 (1 GiB) works instead of failing.
        let n = UInt64(1) << UInt64(logN)
        // Never past `memoryLimit`, whatever a damaged key vault's parameters ask for: OpenSSL then refuses.
        let maxmem = min(128 * UInt64(r) * (n + 2) + 128 * UInt64(r) * UInt64(p) + (1 << 20), memoryLimit)
        let ok = passphrase.withUnsafeBufferPointer { pw in
            EVP_PBE_scrypt(pw.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, pw.count,
                           salt, salt.count, n, UInt64(r), UInt64(p), maxmem, &key, 32)
        }
        return ok == 1 ? key : nil
    }
}

/// AES key wrap with padding (RFC 5649), for BEKs wrapped by an AES KEK.
public enum AESKeyWrap {
    /// The corresponding C function is `EVP_EncryptUpdate` with `EVP_aes_256_wrap_pad`.
    public static func wrap(_ key: [UInt8], with kek: [UInt8]) -> [UInt8]? { run(encrypt: true, key, kek) }

    /// nil when the integrity check fails (wrong KEK or damaged).
    public static func unwrap(_ wrapped: [UInt8], with kek: [UInt8]) -> [UInt8]? { run(encrypt: false, wrapped, kek) }

    static func run(encrypt: Bool, _ input: [UInt8], _ kek: [UInt8]) -> [UInt8]? {
        guard kek.count == 32, !input.isEmpty else { return nil }
        let c = CipherContext()
        EVP_CIPHER_CTX_set_flags(c.ctx, Int32(EVP_CIPHER_CTX_FLAG_WRAP_ALLOW))
        var out = [UInt8](repeating: 0, count: input.count + 16)
        var n: Int32 = 0
        let ok = out.withUnsafeMutableBufferPointer { o -> Bool in
            if encrypt {
                guard EVP_EncryptInit_ex(c.ctx, EVP_aes_256_wrap_pad(), nil, kek, nil) == 1,
                    EVP_EncryptUpdate(c.ctx, o.baseAddress, &n, input, Int32(input.count)) == 1 else { return false }
            } else {
                guard EVP_DecryptInit_ex(c.ctx, EVP_aes_256_wrap_pad(), nil, kek, nil) == 1,
                    EVP_DecryptUpdate(c.ctx, o.baseAddress, &n, input, Int32(input.count)) == 1 else { return false }
            }
            return n > 0
        }
        return ok ? Array(out[..<Int(n)]) : nil
    }
}
