internal import COpenSSL

/// A dm-crypt sector cipher as cryptsetup names it ("aes-xts-plain64", "aes-cbc-essiv:sha256",
/// "aes-cbc-plain64", "aes-cbc-plain", "aes-ecb"), decrypting whole 512-byte sectors: each sector is one
/// unit with its own IV, derived from its number. This is what LUKS uses for key-slot material.
///
/// IVs: `plain64` is the sector number as 64 bits little-endian (for XTS, the tweak), `plain` its low 32
/// bits, `essiv:HASH` the sector number encrypted (ECB) with the same block cipher under HASH(key), `null`
/// all zeros. The OpenSSL contexts are owned by the instance and freed in `deinit`.
public final class SectorCipher {
    public static let sectorSize = 512

    /// The spec as given.
    public let spec: String
    private let cipher: OpaquePointer
    private let ctx: OpaquePointer
    private let ivLength: Int
    private let iv: IV
    /// ESSIV: the ECB cipher and the context keyed with HASH(key).
    private var essivCipher: OpaquePointer?
    private var essivContext: OpaquePointer?

    private enum IV { case none, plain, plain64, null, essiv }

    /// A cipher for `spec` keyed with `key` (both halves for XTS), or a `.unsupported` error when the spec
    /// is not one of the forms above or this build's OpenSSL lacks the cipher at that key size. The cipher is
    /// keyed with `EVP_DecryptInit_ex` (ESSIV's with `EVP_EncryptInit_ex`).
    /// The corresponding C function is `EVP_CIPHER_fetch`.
    public init(_ spec: String, key: [UInt8]) throws(DiskVaultError) {
        self.spec = spec
        func unsupported(_ why: String) -> DiskVaultError {
            DiskVaultError(.unsupported, "the cipher \(spec) with a \(key.count * 8)-bit key: \(why)")
        }
        let parts = spec.lowercased().split(separator: "-", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[0].isEmpty,
              parts[0].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw unsupported("not a cipher-mode-iv spec this build knows")
        }
        let name = parts[0], mode = parts[1], ivSpec = parts.count > 2 ? parts[2] : ""
        guard !key.isEmpty, key.count <= 512 else { throw unsupported("not a key size") }

        var ivKind: IV
        var essivHash: String? = nil
        switch (mode, ivSpec) {
        case ("ecb", ""), ("ecb", "null"): ivKind = .none
        case ("xts", "plain64"), ("cbc", "plain64"): ivKind = .plain64
        case ("xts", "plain"), ("cbc", "plain"): ivKind = .plain
        case ("cbc", "null"): ivKind = .null
        case ("cbc", _) where ivSpec.hasPrefix("essiv:"):
            ivKind = .essiv
            essivHash = String(ivSpec.dropFirst("essiv:".count))
        default:
            throw unsupported("the mode \(mode)\(ivSpec.isEmpty ? "" : "-" + ivSpec) is not one this build runs")
        }

        // OpenSSL names XTS by the size of one of its two keys.
        let bits = mode == "xts" ? key.count * 4 : key.count * 8
        guard let cipher = Self.fetch(["\(name)-\(bits)-\(mode)", "\(name)-\(mode)"], keyLength: key.count) else {
            throw unsupported("this build's OpenSSL has no such cipher")
        }
        let blockSize = Int(EVP_CIPHER_get_block_size(cipher))
        let ivLength = Int(EVP_CIPHER_get_iv_length(cipher))
        guard Self.sectorSize % max(blockSize, 1) == 0, ivKind == .none ? ivLength == 0 : ivLength >= 8 else {
            EVP_CIPHER_free(cipher)
            throw unsupported("its block size \(blockSize) or IV size \(ivLength) does not fit 512-byte sectors")
        }
        guard let ctx = EVP_CIPHER_CTX_new() else {
            EVP_CIPHER_free(cipher)
            fatalError("EVP_CIPHER_CTX_new: out of memory")
        }
        self.cipher = cipher
        self.ctx = ctx
        self.ivLength = ivLength
        self.iv = ivKind
        // From here deinit frees what is set.
        let keyed = key.withUnsafeBufferPointer { EVP_DecryptInit_ex(ctx, cipher, nil, $0.baseAddress, nil) }
        guard keyed == 1 else {
            ERR_clear_error()
            throw unsupported("OpenSSL refused the key")
        }
        EVP_CIPHER_CTX_set_padding(ctx, 0)

        if let essivHash {
            let salt = try MessageDigest(essivHash).hash(key[...])
            guard let ecb = Self.fetch(["\(name)-\(salt.count * 8)-ecb", "\(name)-ecb"], keyLength: salt.count),
                  Int(EVP_CIPHER_get_block_size(ecb)) == ivLength else {
                throw unsupported("this build's OpenSSL has no \(name) ECB cipher with a \(salt.count * 8)-bit key for ESSIV")
            }
            essivCipher = ecb
            guard let essivContext = EVP_CIPHER_CTX_new() else { fatalError("EVP_CIPHER_CTX_new: out of memory") }
            self.essivContext = essivContext
            let ok = salt.withUnsafeBufferPointer { EVP_EncryptInit_ex(essivContext, ecb, nil, $0.baseAddress, nil) }
            guard ok == 1 else {
                ERR_clear_error()
                throw unsupported("OpenSSL refused the ESSIV key")
            }
            EVP_CIPHER_CTX_set_padding(essivContext, 0)
        }
    }

    deinit {
        EVP_CIPHER_CTX_free(ctx)
        EVP_CIPHER_free(cipher)
        if let essivContext { EVP_CIPHER_CTX_free(essivContext) }
        if let essivCipher { EVP_CIPHER_free(essivCipher) }
    }

    /// The first of `names` OpenSSL has whose key is `keyLength` bytes; the caller frees it with `EVP_CIPHER_free`.
    /// The corresponding C function is `EVP_CIPHER_fetch`.
    private static func fetch(_ names: [String], keyLength: Int) -> OpaquePointer? {
        for name in names {
            guard let c = EVP_CIPHER_fetch(nil, name, nil) else { continue }
            if Int(EVP_CIPHER_get_key_length(c)) == keyLength { return c }
            EVP_CIPHER_free(c)
        }
        ERR_clear_error()
        return nil
    }

    /// The IV of sector `sector` (for ESSIV, the plain64 IV encrypted under the ESSIV key).
    /// The corresponding C function is `EVP_EncryptUpdate`.
    private func ivBytes(_ sector: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: ivLength)
        switch iv {
        case .none, .null: return bytes
        case .plain:
            for i in 0..<4 { bytes[i] = UInt8(truncatingIfNeeded: sector >> (8 * UInt64(i))) }
            return bytes
        case .plain64, .essiv:
            for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: sector >> (8 * UInt64(i))) }
            guard iv == .essiv, let essivContext else { return bytes }
            var out = [UInt8](repeating: 0, count: ivLength)
            var n: Int32 = 0
            let ok = out.withUnsafeMutableBufferPointer { o in
                bytes.withUnsafeBufferPointer { EVP_EncryptUpdate(essivContext, o.baseAddress, &n, $0.baseAddress, Int32(ivLength)) }
            }
            guard ok == 1, Int(n) == ivLength else { fatalError("ESSIV encryption failed") }
            return out
        }
    }

    /// `data` (a whole number of 512-byte sectors) decrypted, its first sector being number `firstSector`;
    /// each sector's IV is set with `EVP_DecryptInit_ex`.
    /// The corresponding C function is `EVP_DecryptUpdate`.
    public func decrypt(_ data: [UInt8], firstSector: UInt64 = 0) throws(DiskVaultError) -> [UInt8] {
        guard data.count % Self.sectorSize == 0, data.count <= Int(Int32.max) else {
            throw DiskVaultError(.usage, "\(data.count) bytes are not a whole number of 512-byte sectors")
        }
        var out = [UInt8](repeating: 0, count: data.count)
        let sectors = data.count / Self.sectorSize
        var failed = false
        out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { d in
                for s in 0..<sectors {
                    let at = s * Self.sectorSize
                    let ivs = ivBytes(firstSector &+ UInt64(s))
                    let reset = iv == .none ? 1 : ivs.withUnsafeBufferPointer { EVP_DecryptInit_ex(ctx, nil, nil, nil, $0.baseAddress) }
                    EVP_CIPHER_CTX_set_padding(ctx, 0)
                    var n: Int32 = 0
                    let ok = EVP_DecryptUpdate(ctx, o.baseAddress! + at, &n, d.baseAddress! + at, Int32(Self.sectorSize))
                    if reset != 1 || ok != 1 || Int(n) != Self.sectorSize {
                        failed = true
                        return
                    }
                }
            }
        }
        guard !failed else {
            ERR_clear_error()
            throw DiskVaultError(.unsupported, "OpenSSL could not decrypt with \(spec)")
        }
        return out
    }
}
