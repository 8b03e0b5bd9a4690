/// The binary index of a recovery point:
///
///     0   8  magic "dvindex\0"
///     8   4  version (1), little-endian
///     12  4  chunk size
///     16  8  image size in bytes
///     24  8  chunk count (= image size / chunk size, rounded up)
///     32  …  one 32-byte SHA-256 per chunk; all zero for a chunk of zeros (stored as nothing)
///
/// The SHA-256 of the whole index is the image's content digest.
public struct ChunkIndex: Sendable, Equatable {
    public static let magic: [UInt8] = Array("dvindex".utf8) + [0]
    public static let version: UInt32 = 1
    public static let headerSize = 32

    public var chunkSize: Int
    public var imageSize: UInt64
    public var digests: [Digest256]

    public init(chunkSize: Int, imageSize: UInt64, digests: [Digest256]) {
        self.chunkSize = chunkSize
        self.imageSize = imageSize
        self.digests = digests
    }

    public var count: Int { digests.count }

    /// Length of chunk `i`: the chunk size, or less for the last.
    public func length(ofChunk i: Int) -> Int {
        let start = UInt64(i) * UInt64(chunkSize)
        return Int(min(UInt64(chunkSize), imageSize - start))
    }

    public static func chunkCount(imageSize: UInt64, chunkSize: Int) -> Int {
        Int((imageSize + UInt64(chunkSize) - 1) / UInt64(chunkSize))
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerSize + 32 * digests.count)
        out += Self.magic
        withUnsafeBytes(of: Self.version.littleEndian) { out += $0 }
        withUnsafeBytes(of: UInt32(chunkSize).littleEndian) { out += $0 }
        withUnsafeBytes(of: imageSize.littleEndian) { out += $0 }
        withUnsafeBytes(of: UInt64(digests.count).littleEndian) { out += $0 }
        for d in digests { d.write(to: &out) }
        return out
    }

    /// Parses an index, checking every header field against the bytes present; `source` names it in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws(DiskVaultError) -> ChunkIndex {
        func bad(_ why: String) -> DiskVaultError { DiskVaultError(.corrupt, "index is damaged: \(why)", path: source) }
        guard bytes.count >= headerSize else { throw bad("\(bytes.count) bytes, shorter than its header") }
        guard bytes.prefix(8).elementsEqual(magic) else { throw bad("bad magic") }
        return try bytes.withBytes { (b) throws(DiskVaultError) in
            let version = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            let chunkSize = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
            let imageSize = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            let count = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            guard version == Self.version else { throw bad("version \(version) is not known") }
            guard Vault.isValidChunkSize(chunkSize) else { throw bad("chunk size \(chunkSize)") }
            guard imageSize < 1 << 60, count == UInt64(chunkCount(imageSize: imageSize, chunkSize: chunkSize)) else {
                throw bad("\(count) chunks cannot make an image of \(imageSize) bytes")
            }
            guard UInt64(b.count - headerSize) == count * 32 else {
                throw bad("holds \(b.count - headerSize) bytes of digests for \(count) chunks")
            }
            var digests: [Digest256] = []
            digests.reserveCapacity(Int(count))
            for i in 0..<Int(count) {
                digests.append(Digest256(bytes: UnsafeRawBufferPointer(rebasing: b[(headerSize + 32 * i)...])))
            }
            return ChunkIndex(chunkSize: chunkSize, imageSize: imageSize, digests: digests)
        }
    }
}
