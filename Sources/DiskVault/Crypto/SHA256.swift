internal import COpenSSL

/// A 32-byte SHA-256 (or HMAC-SHA256) digest, held as four words so that sets and comparisons are cheap.
public struct Digest256: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// The all-zero value marks a zero chunk in an index; no real digest is ever all zero.
    public static let zero = Digest256(w0: 0, w1: 0, w2: 0, w3: 0)

    public init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    /// From 32 bytes in the order they are stored and printed.
    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= 32)
        w0 = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        w1 = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        w2 = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        w3 = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 {
            guard let hi = hexValue(utf8[2 * i]), let lo = hexValue(utf8[2 * i + 1]) else { return nil }
            bytes[i] = hi << 4 | lo
        }
        self = bytes.withUnsafeBytes { Digest256(bytes: $0) }
    }

    public var isZero: Bool { self == .zero }

    /// Appends the 32 bytes to `out`.
    public func write(to out: inout [UInt8]) {
        for w in [w0, w1, w2, w3] {
            withUnsafeBytes(of: w.bigEndian) { out.append(contentsOf: $0) }
        }
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        write(to: &out)
        return out
    }

    public var hex: String {
        var s = ""
        s.reserveCapacity(64)
        for b in bytes { s += hexByte(b) }
        return s
    }

    public var description: String { hex }

    public static func < (a: Digest256, b: Digest256) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }
}

@inline(__always)
private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// Incremental SHA-256 through OpenSSL's EVP interface; the context is freed in `deinit`.
public final class SHA256 {
    private let ctx: OpaquePointer

    public init() {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        self.ctx = ctx
        reset()
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public func reset() {
        guard EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1 else { fatalError("EVP_DigestInit_ex(sha256) failed") }
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything updated since the last reset; the hasher is reset for reuse.
    public func finalize() -> Digest256 {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(ctx, $0.baseAddress, &length) }
        reset()
        return out.withUnsafeBytes { Digest256(bytes: $0) }
    }

    /// One-shot SHA-256 of `bytes`.
    public static func digest(_ bytes: UnsafeRawBufferPointer) -> Digest256 {
        var out = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &out) { o in
            var length: UInt32 = 0
            _ = EVP_Digest(bytes.baseAddress, bytes.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self), &length, EVP_sha256(), nil)
        }
        return withUnsafeBytes(of: &out) { Digest256(bytes: $0) }
    }

    public static func digest(_ bytes: [UInt8]) -> Digest256 {
        bytes.withUnsafeBytes { digest($0) }
    }
}

/// HMAC-SHA256 through OpenSSL.
public enum HMACSHA256 {
    public static func authenticationCode(key: [UInt8], message: UnsafeRawBufferPointer) -> Digest256 {
        var out = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &out) { o in
            var length: UInt32 = 0
            key.withUnsafeBytes { k in
                _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                         message.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
            }
        }
        return withUnsafeBytes(of: &out) { Digest256(bytes: $0) }
    }

    public static func authenticationCode(key: [UInt8], message: [UInt8]) -> Digest256 {
        message.withUnsafeBytes { authenticationCode(key: key, message: $0) }
    }
}
