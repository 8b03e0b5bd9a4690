internal import COpenSSL

/// A message digest fetched from OpenSSL by the name LUKS headers use ("sha1", "sha256", "sha512",
/// "ripemd160", "whirlpool"), for PBKDF2 and the anti-forensic diffuser. The fetched digest and a context are
/// owned by the instance and freed in `deinit`; an instance is not for sharing between threads.
public final class MessageDigest {
    /// The name as LUKS gives it, lower-cased.
    public let name: String
    /// Bytes of output.
    public let size: Int
    /// The fetched digest; `pbkdf2` runs with it.
    let md: OpaquePointer
    private let ctx: OpaquePointer

    /// LUKS hash names and the names OpenSSL fetches them by. Extendable-output and other odd digests are
    /// left out on purpose: a header naming one is unsupported, not run.
    static let openSSLNames: [String: String] = [
        "sha1": "SHA1", "sha224": "SHA2-224", "sha256": "SHA2-256", "sha384": "SHA2-384", "sha512": "SHA2-512",
        "ripemd160": "RIPEMD-160", "whirlpool": "WHIRLPOOL",
        "sha3-224": "SHA3-224", "sha3-256": "SHA3-256", "sha3-384": "SHA3-384", "sha3-512": "SHA3-512",
    ]

    /// The digest named `name`, or a `.unsupported` error when LUKS does not use that name or this build's
    /// OpenSSL does not have it (whirlpool lives in OpenSSL 3's legacy provider, which is seldom loaded).
    /// The corresponding C function is `EVP_MD_fetch`.
    public init(_ name: String) throws(DiskVaultError) {
        let lower = name.lowercased()
        guard let openSSLName = Self.openSSLNames[lower] else {
            throw DiskVaultError(.unsupported, "the hash \"\(name)\" is not one this build knows")
        }
        guard let md = EVP_MD_fetch(nil, openSSLName, nil) else {
            ERR_clear_error()
            throw DiskVaultError(.unsupported, "this build's OpenSSL has no \(lower) hash")
        }
        let size = Int(EVP_MD_get_size(md))
        guard size > 0, let ctx = EVP_MD_CTX_new() else {
            EVP_MD_free(md)
            throw DiskVaultError(.unsupported, "this build's OpenSSL cannot run the \(lower) hash")
        }
        self.name = lower
        self.md = md
        self.ctx = ctx
        self.size = size
    }

    deinit {
        EVP_MD_CTX_free(ctx)
        EVP_MD_free(md)
    }

    /// The digest of the concatenation of `parts` (each fed with `EVP_DigestUpdate` after `EVP_DigestInit_ex`).
    /// The corresponding C function is `EVP_DigestFinal_ex`.
    public func hash(_ parts: ArraySlice<UInt8>...) -> [UInt8] {
        guard EVP_DigestInit_ex(ctx, md, nil) == 1 else { fatalError("EVP_DigestInit_ex(\(name)) failed") }
        for part in parts where !part.isEmpty {
            part.withUnsafeBytes { _ = EVP_DigestUpdate(ctx, $0.baseAddress, $0.count) }
        }
        var out = [UInt8](repeating: 0, count: size)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(ctx, $0.baseAddress, &length) }
        guard ok == 1, Int(length) == size else { fatalError("EVP_DigestFinal_ex(\(name)) failed") }
        return out
    }
}

extension MessageDigest {
    /// MD5 of `bytes`: only for what a protocol asks for by name (S3's Content-MD5), never for integrity here.
    /// The corresponding C function is `EVP_Digest`.
    static func md5(_ bytes: [UInt8]) -> [UInt8] {
        guard let md = EVP_MD_fetch(nil, "MD5", nil) else { fatalError("this build's OpenSSL has no MD5") }
        defer { EVP_MD_free(md) }
        var out = [UInt8](repeating: 0, count: 16)
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { b in out.withUnsafeMutableBufferPointer { EVP_Digest(b.baseAddress, b.count, $0.baseAddress, &length, md, nil) } }
        guard ok == 1, length == 16 else { fatalError("EVP_Digest(MD5) failed") }
        return out
    }
}
