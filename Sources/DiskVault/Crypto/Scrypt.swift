internal import COpenSSL
internal import CScrypt

/// scrypt (RFC 7914), the slow, memory-hard KDF that turns a passphrase into a key: PBKDF2-HMAC-SHA256 around
/// ROMix. ROMix is this project's own vector code (`CScrypt`), about twice as fast as OpenSSL's scalar one
/// with the same result, so that a passphrase costs what its parameters say and not more: every command on an
/// encrypted vault derives its key once.
public enum Scrypt {
    /// The most memory one derivation may take (counted as OpenSSL's `maxmem` does: V = 128·r·(N + 2) bytes
    /// and B = 128·r·p): room for the largest work factor `keyvault init` offers, N = 2^20 with r = 8 (1 GiB
    /// and 2 KiB), and a bound on what a damaged key vault's parameters can ask for.
    static let memoryLimit: UInt64 = (1 << 30) + (1 << 20)

    /// 32 bytes of scrypt(passphrase, salt, N = 2^logN, r, p); nil for parameters outside the bounds or
    /// past `memoryLimit`, or when the memory cannot be had.
    public static func derive(_ passphrase: [UInt8], salt: [UInt8], logN: Int, r: Int = 8, p: Int = 1) -> [UInt8]? {
        guard let n = bounded(logN: logN, r: r, p: p) else { return nil }
        guard let sha256 = try? MessageDigest("sha256"), var b = try? sha256.pbkdf2(password: passphrase, salt: salt, iterations: 1, length: 128 * r * p) else { return nil }
        defer { wipe(&b) }
        let mixed = b.withUnsafeMutableBufferPointer { dv_scrypt_romix_blocks($0.baseAddress, r, p, n) }
        guard mixed == 0 else { return nil }
        return try? sha256.pbkdf2(password: passphrase, salt: b, iterations: 1, length: 32)
    }

    /// N for these parameters, or nil when they are out of bounds or need more than `memoryLimit`.
    static func bounded(logN: Int, r: Int, p: Int) -> UInt64? {
        guard (10...22).contains(logN), (1...32).contains(r), (1...16).contains(p) else { return nil }
        let n = UInt64(1) << UInt64(logN)
        guard 128 * UInt64(r) * (n + 2) + 128 * UInt64(r) * UInt64(p) <= memoryLimit else { return nil }
        return n
    }

    /// The same derivation by OpenSSL (`EVP_PBE_scrypt`): the reference the tests hold `derive` to.
    static func openSSLDerive(_ passphrase: [UInt8], salt: [UInt8], logN: Int, r: Int = 8, p: Int = 1) -> [UInt8]? {
        guard let n = bounded(logN: logN, r: r, p: p) else { return nil }
        var key = [UInt8](repeating: 0, count: 32)
        let ok = passphrase.withUnsafeBufferPointer { pw in
            EVP_PBE_scrypt(pw.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, pw.count,
                           salt, salt.count, n, UInt64(r), UInt64(p), memoryLimit, &key, 32)
        }
        return ok == 1 ? key : nil
    }

    private static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
    }
}
