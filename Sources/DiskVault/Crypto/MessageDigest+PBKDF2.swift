internal import COpenSSL

extension MessageDigest {
    /// PBKDF2-HMAC with this digest: `length` bytes derived from `password` and `salt` in `iterations`
    /// rounds. Iterations beyond what OpenSSL's `int` takes are `.unsupported`; zero iterations or a length
    /// outside 1…65536 bytes are `.usage` errors.
    /// The corresponding C function is `PKCS5_PBKDF2_HMAC`.
    public func pbkdf2(password: [UInt8], salt: [UInt8], iterations: UInt64, length: Int) throws(DiskVaultError) -> [UInt8] {
        guard iterations > 0 else { throw DiskVaultError(.usage, "PBKDF2 needs at least one iteration") }
        guard iterations <= UInt64(Int32.max) else {
            throw DiskVaultError(.unsupported, "PBKDF2 with \(iterations) iterations is more than OpenSSL can run in one call")
        }
        guard length > 0, length <= 65536 else { throw DiskVaultError(.usage, "PBKDF2 output of \(length) bytes is not a key length") }
        guard password.count <= Int(Int32.max), salt.count <= Int(Int32.max) else {
            throw DiskVaultError(.usage, "PBKDF2 password or salt is too long")
        }
        var out = [UInt8](repeating: 0, count: length)
        // OpenSSL takes NULL for an empty password, but a valid pointer is simplest for both inputs.
        let pass = password.isEmpty ? [0] : password, saltBytes = salt.isEmpty ? [0] : salt
        let ok = pass.withUnsafeBufferPointer { p in
            saltBytes.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { pc in
                        PKCS5_PBKDF2_HMAC(pc, Int32(password.count), s.baseAddress, Int32(salt.count), Int32(iterations), md,
                                          Int32(length), o.baseAddress)
                    }
                }
            }
        }
        guard ok == 1 else {
            ERR_clear_error()
            throw DiskVaultError(.unsupported, "this build's OpenSSL cannot run PBKDF2 with the \(name) hash")
        }
        return out
    }
}
