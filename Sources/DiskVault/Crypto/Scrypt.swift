internal import COpenSSL

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
