internal import COpenSSL

/// AES-256-GCM sealed boxes: magic "dvse", version 1, 12-byte nonce, ciphertext, 16-byte tag. The associated
/// data binds a box to where it belongs (a key vault item's path), so boxes cannot be swapped unnoticed.
public enum AESGCM {
    static let magic: [UInt8] = Array("dvse".utf8) + [1]

    /// The corresponding C function is `EVP_EncryptUpdate`.
    public static func seal(_ plaintext: [UInt8], key: [UInt8], associatedData: [UInt8] = []) -> [UInt8] {
        precondition(key.count == 32, "AES-256-GCM needs a 32-byte key")
        let nonce = SecureRandom.bytes(12)
        return CipherContext().withPointer { (ctx) -> [UInt8] in
            var out = [UInt8](repeating: 0, count: plaintext.count + 16)
            var n: Int32 = 0, total = 0
            guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nil) == 1,
                EVP_EncryptInit_ex(ctx, nil, nil, key, nonce) == 1
            else { fatalError("AES-256-GCM init failed") }
            if !associatedData.isEmpty { EVP_EncryptUpdate(ctx, nil, &n, associatedData, Int32(associatedData.count)) }
            if !plaintext.isEmpty {
                out.withUnsafeMutableBufferPointer { o in
                    _ = EVP_EncryptUpdate(ctx, o.baseAddress, &n, plaintext, Int32(plaintext.count))
                }
                total = Int(n)
            }
            out.withUnsafeMutableBufferPointer { o in _ = EVP_EncryptFinal_ex(ctx, o.baseAddress! + total, &n) }
            total += Int(n)
            var tag = [UInt8](repeating: 0, count: 16)
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, &tag)
            return magic + nonce + out[..<total] + tag
        }
    }

    /// Whether `box` has the form `seal` makes (magic, nonce, at least a tag): what can be checked without the key.
    public static func isSealedForm(_ box: [UInt8]) -> Bool {
        box.count >= magic.count + 12 + 16 && box.starts(with: magic)
    }

    /// The plaintext, or nil when the box is damaged, was sealed under another key, or belongs elsewhere.
    /// The corresponding C function is `EVP_DecryptUpdate`.
    public static func open(_ box: [UInt8], key: [UInt8], associatedData: [UInt8] = []) -> [UInt8]? {
        guard key.count == 32, box.count >= magic.count + 12 + 16, box.starts(with: magic) else { return nil }
        let nonce = Array(box[magic.count..<magic.count + 12])
        let body = Array(box[(magic.count + 12)..<(box.count - 16)])
        var tag = Array(box[(box.count - 16)...])
        return CipherContext().withPointer { (ctx) -> [UInt8]? in
            var out = [UInt8](repeating: 0, count: body.count + 16)
            var n: Int32 = 0, total = 0
            guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nil) == 1,
                EVP_DecryptInit_ex(ctx, nil, nil, key, nonce) == 1
            else { return nil }
            if !associatedData.isEmpty { EVP_DecryptUpdate(ctx, nil, &n, associatedData, Int32(associatedData.count)) }
            if !body.isEmpty {
                out.withUnsafeMutableBufferPointer { o in
                    _ = EVP_DecryptUpdate(ctx, o.baseAddress, &n, body, Int32(body.count))
                }
                total = Int(n)
            }
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, &tag)
            let ok = out.withUnsafeMutableBufferPointer { o in EVP_DecryptFinal_ex(ctx, o.baseAddress! + total, &n) }
            guard ok == 1 else { return nil }
            return Array(out[..<(total + Int(n))])
        }
    }
}
