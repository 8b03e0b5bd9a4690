internal import COpenSSL

/// AES-CCM (NIST SP 800-38C) through OpenSSL's EVP interface, as BitLocker uses it to wrap its keys: a 16- or
/// 32-byte AES key, a 12-byte nonce, a 16-byte tag and no associated data. Each call makes its own
/// `CipherContext`, freed when the call is done with it.
///
/// The sizes are the caller's contract (checked with preconditions): a parser of untrusted bytes checks them
/// first. With a 12-byte nonce CCM's length field has 3 bytes, so a message is under 16 MiB.
public enum AESCCM {
    public static let nonceSize = 12
    public static let tagSize = 16
    /// 2^24 − 1: the longest message a 3-byte CCM length field can count.
    public static let maximumMessageSize = (1 << 24) - 1

    /// The plaintext of `ciphertext`, or nil when `tag` does not verify (wrong key, nonce, tag or ciphertext).
    /// Nothing of the plaintext is returned unless the whole message authenticates. CCM checks the tag within
    /// the one update call, so that call's result is the verdict. The corresponding C function is
    /// `EVP_DecryptUpdate`.
    public static func decrypt(key: [UInt8], nonce: [UInt8], ciphertext: [UInt8], tag: [UInt8]) -> [UInt8]? {
        check(key: key, nonce: nonce, messageSize: ciphertext.count)
        precondition(tag.count == tagSize, "AES-CCM tag of \(tag.count) bytes, \(tagSize) expected")
        return CipherContext().withPointer { (ctx) -> [UInt8]? in
            var expectedTag = tag
            guard EVP_DecryptInit_ex(ctx, cipher(key), nil, nil, nil) == 1,
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, Int32(nonce.count), nil) == 1,
                  expectedTag.withUnsafeMutableBytes({
                      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, Int32($0.count), $0.baseAddress)
                  }) == 1,
                  EVP_DecryptInit_ex(ctx, nil, nil, key, nonce) == 1
            else { fatalError("AES-CCM: OpenSSL refused to set up decryption") }

            // CCM needs the message length before the message.
            var length: Int32 = 0
            guard EVP_DecryptUpdate(ctx, nil, &length, nil, Int32(ciphertext.count)) == 1 else {
                fatalError("AES-CCM: OpenSSL refused a message length of \(ciphertext.count)")
            }
            // An empty message still goes through with real (non-null) pointers: OpenSSL takes a null input with an
            // output as "finish" and would skip the tag check.
            let input = ciphertext.isEmpty ? [0] : ciphertext
            var output = [UInt8](repeating: 0, count: input.count)
            let verified = output.withUnsafeMutableBufferPointer { out in
                input.withUnsafeBufferPointer { inp in
                    EVP_DecryptUpdate(ctx, out.baseAddress, &length, inp.baseAddress, Int32(ciphertext.count))
                }
            }
            guard verified == 1 else { return nil }
            output.removeSubrange(ciphertext.count...)
            return output
        }
    }

    /// `plaintext` encrypted, and its tag; for tests and for making wrapped keys. The corresponding C function
    /// is `EVP_EncryptUpdate`.
    public static func encrypt(key: [UInt8], nonce: [UInt8], plaintext: [UInt8]) -> (ciphertext: [UInt8], tag: [UInt8]) {
        check(key: key, nonce: nonce, messageSize: plaintext.count)
        return CipherContext().withPointer { (ctx) -> (ciphertext: [UInt8], tag: [UInt8]) in
            guard EVP_EncryptInit_ex(ctx, cipher(key), nil, nil, nil) == 1,
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, Int32(nonce.count), nil) == 1,
                  // With no tag given this sets the tag length.
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, Int32(tagSize), nil) == 1,
                  EVP_EncryptInit_ex(ctx, nil, nil, key, nonce) == 1
            else { fatalError("AES-CCM: OpenSSL refused to set up encryption") }

            var length: Int32 = 0
            let input = plaintext.isEmpty ? [0] : plaintext
            var output = [UInt8](repeating: 0, count: input.count)
            var finalBlock = [UInt8](repeating: 0, count: 16)
            var tag = [UInt8](repeating: 0, count: tagSize)
            guard EVP_EncryptUpdate(ctx, nil, &length, nil, Int32(plaintext.count)) == 1,
                  output.withUnsafeMutableBufferPointer({ out in
                      input.withUnsafeBufferPointer { inp in
                          EVP_EncryptUpdate(ctx, out.baseAddress, &length, inp.baseAddress, Int32(plaintext.count))
                      }
                  }) == 1,
                  EVP_EncryptFinal_ex(ctx, &finalBlock, &length) == 1,
                  tag.withUnsafeMutableBytes({
                      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, Int32($0.count), $0.baseAddress)
                  }) == 1
            else { fatalError("AES-CCM: OpenSSL failed to encrypt \(plaintext.count) bytes") }
            output.removeSubrange(plaintext.count...)
            return (output, tag)
        }
    }

    private static func check(key: [UInt8], nonce: [UInt8], messageSize: Int) {
        precondition(key.count == 16 || key.count == 32, "AES-CCM key of \(key.count) bytes, 16 or 32 expected")
        precondition(nonce.count == nonceSize, "AES-CCM nonce of \(nonce.count) bytes, \(nonceSize) expected")
        precondition(messageSize <= maximumMessageSize, "AES-CCM message of \(messageSize) bytes is too long")
    }

    private static func cipher(_ key: [UInt8]) -> OpaquePointer? {
        key.count == 32 ? EVP_aes_256_ccm() : EVP_aes_128_ccm()
    }
}
