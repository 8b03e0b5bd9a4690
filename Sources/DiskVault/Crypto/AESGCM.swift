#if canImport(Glibc)
import Glibc
#endif
internal import COpenSSL

/// AES-256-GCM sealed boxes: magic "dvse", version 1, 12-byte nonce, ciphertext, 16-byte tag. The associated
/// data binds a box to where it belongs (a key vault item's path), so boxes cannot be swapped unnoticed.
public enum AESGCM {
    static let magic: [UInt8] = Array("dvse".utf8) + [1]
    /// What sealing adds to a plaintext: magic, nonce, tag.
    public static let overhead = 5 + 12 + 16

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

    /// `seal` of bytes in place elsewhere (a chunk's blob), without copying them into an array first.
    /// The corresponding C function is `EVP_EncryptUpdate`.
    public static func seal(_ plaintext: UnsafeRawBufferPointer, key: [UInt8], associatedData: [UInt8]) -> [UInt8] {
        precondition(key.count == 32, "AES-256-GCM needs a 32-byte key")
        let nonce = SecureRandom.bytes(12)
        var out = [UInt8](repeating: 0, count: magic.count + 12 + plaintext.count + 16)
        out.replaceSubrange(0..<magic.count + 12, with: magic + nonce)
        out.withUnsafeMutableBytes { o in
            guard let src = plaintext.baseAddress ?? UnsafeRawPointer(o.baseAddress) else { return }
            encrypt(from: src, to: o.baseAddress! + magic.count + 12, count: plaintext.count, key: key, nonce: nonce, associatedData: associatedData)
        }
        return out
    }

    /// AES-256-GCM of `count` bytes from `src` to `dst` (the same place, or apart), the tag written after them.
    private static func encrypt(
        from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, count: Int, key: [UInt8], nonce: [UInt8], associatedData: [UInt8]
    ) {
        let input = src.assumingMemoryBound(to: UInt8.self), output = dst.assumingMemoryBound(to: UInt8.self)
        CipherContext().withPointer { ctx in
            var n: Int32 = 0
            guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nil) == 1,
                EVP_EncryptInit_ex(ctx, nil, nil, key, nonce) == 1
            else { fatalError("AES-256-GCM init failed") }
            if !associatedData.isEmpty { EVP_EncryptUpdate(ctx, nil, &n, associatedData, Int32(associatedData.count)) }
            var done = 0
            // EVP lengths are Int32: a large input goes through in pieces.
            while done < count {
                let piece = min(count - done, 1 << 30)
                _ = EVP_EncryptUpdate(ctx, output + done, &n, input + done, Int32(piece))
                done += Int(n)
            }
            _ = EVP_EncryptFinal_ex(ctx, output + done, &n)
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, output + count)
        }
    }

    /// Seals the `length` bytes at the start of `buffer` in place: the box (`length + overhead` bytes, returned)
    /// is left at the start of `buffer`, which must hold it. No memory is allocated: a chunk's blob is sealed in
    /// its own aligned buffer and still written with direct I/O.
    /// The corresponding C function is `EVP_EncryptUpdate`.
    public static func sealInPlace(_ buffer: UnsafeMutableRawBufferPointer, length: Int, key: [UInt8], associatedData: [UInt8]) -> Int {
        precondition(key.count == 32, "AES-256-GCM needs a 32-byte key")
        let head = magic.count + 12
        precondition(length >= 0 && buffer.count >= length + overhead, "the buffer cannot hold the sealed box")
        guard let base = buffer.baseAddress else { preconditionFailure("an empty buffer") }
        memmove(base + head, base, length)
        let nonce = SecureRandom.bytes(12)
        for (i, b) in (magic + nonce).enumerated() { buffer[i] = b }
        encrypt(from: base + head, to: base + head, count: length, key: key, nonce: nonce, associatedData: associatedData)
        return length + overhead
    }

    /// Opens a box held in `buffer` in place: the plaintext is left at the start of `buffer`, and its length
    /// returned; nil (the buffer's contents then undefined) when the box does not open.
    /// The corresponding C function is `EVP_DecryptUpdate`.
    public static func openInPlace(_ buffer: UnsafeMutableRawBufferPointer, key: [UInt8], associatedData: [UInt8]) -> Int? {
        guard let range = openWhereItLies(buffer, key: key, associatedData: associatedData), let base = buffer.baseAddress else { return nil }
        memmove(base, base + range.lowerBound, range.count)
        return range.count
    }

    /// Opens a box held in `buffer` in place and leaves the plaintext where its ciphertext was: the range of
    /// `buffer` it fills (17 bytes in), nil when the box does not open.
    /// The corresponding C function is `EVP_DecryptUpdate`.
    public static func openWhereItLies(_ buffer: UnsafeMutableRawBufferPointer, key: [UInt8], associatedData: [UInt8]) -> Range<Int>? {
        let head = magic.count + 12
        guard key.count == 32, buffer.count >= head + 16, let base = buffer.baseAddress,
            UnsafeRawBufferPointer(rebasing: buffer[..<magic.count]).elementsEqual(magic)
        else { return nil }
        let nonce = Array(buffer[magic.count..<head])
        var tag = Array(buffer[(buffer.count - 16)...])
        let length = buffer.count - head - 16
        let body = (base + head).assumingMemoryBound(to: UInt8.self)
        let ok = CipherContext().withPointer { (ctx) -> Bool in
            var n: Int32 = 0
            guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nil) == 1,
                EVP_DecryptInit_ex(ctx, nil, nil, key, nonce) == 1
            else { return false }
            if !associatedData.isEmpty { EVP_DecryptUpdate(ctx, nil, &n, associatedData, Int32(associatedData.count)) }
            var done = 0
            while done < length {
                let piece = min(length - done, 1 << 30)
                guard EVP_DecryptUpdate(ctx, body + done, &n, body + done, Int32(piece)) == 1 else { return false }
                done += Int(n)
            }
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, &tag)
            return EVP_DecryptFinal_ex(ctx, body + done, &n) == 1
        }
        guard ok else { return nil }
        return head..<head + length
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
