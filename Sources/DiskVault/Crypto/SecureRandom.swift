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
