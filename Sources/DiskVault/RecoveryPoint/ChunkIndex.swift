/// The binary index of a recovery point, in one of two versions.
///
/// Version 2 (written now): a run of zero chunks is one entry, so an empty 15 TiB disk's index is a few dozen
/// bytes; image size and chunk count come last, so that a backup of a stream (whose size is known only at its
/// end) writes and hashes its index in one pass.
///
///     0   8  magic "dvindex\0"
///     8   4  version (2), little-endian
///     12  4  chunk size
///     16  …  entries of 32 bytes: a chunk's SHA-256, or a run of zero chunks (stored as nothing): 24 zero
///            bytes, then the run's length (UInt64, ≥ 1); adjacent runs are always one entry
///     end-16 8 image size in bytes
///     end-8  8 chunk count (= image size / chunk size, rounded up)
///
/// Version 1 (older vaults, still read):
///
///     0   8  magic "dvindex\0"
///     8   4  version (1), little-endian
///     12  4  chunk size
///     16  8  image size in bytes
///     24  8  chunk count
///     32  …  one 32-byte SHA-256 per chunk; all zero for a chunk of zeros
///
/// The SHA-256 of the whole index is the image's content digest. Indexes are read and written streaming
/// (`ChunkIndexReader`, `ChunkIndexWriter`); this whole-index form is for small indexes (tests, the fuzzer).
public struct ChunkIndex: Sendable, Equatable {
    public static let magic: [UInt8] = Array("dvindex".utf8) + [0]
    public static let version: UInt32 = 1
    public static let currentVersion: UInt32 = 2
    public static let readableVersions: ClosedRange<UInt32> = 1...2
    /// Bytes besides the entries, in either version (v1: the header; v2: header and trailer).
    public static let headerSize = 32
    /// The largest image an index may describe: keeps every offset and count far from overflow.
    public static let maxImageSize: UInt64 = 1 << 60

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
        Self.length(ofChunk: i, chunkSize: chunkSize, imageSize: imageSize)
    }

    static func length(ofChunk i: Int, chunkSize: Int, imageSize: UInt64) -> Int {
        let start = UInt64(i) * UInt64(chunkSize)
        return Int(min(UInt64(chunkSize), imageSize - start))
    }

    /// Chunks of an image of `imageSize` bytes; the caller keeps `imageSize` below `maxImageSize`.
    public static func chunkCount(imageSize: UInt64, chunkSize: Int) -> Int {
        Int((imageSize + UInt64(chunkSize) - 1) / UInt64(chunkSize))
    }

    /// The index in `version`'s form: 1 as older vaults hold it, 2 as backups write it now.
    public func encoded(version: UInt32 = ChunkIndex.version) -> [UInt8] {
        if version == Self.currentVersion {
            let out = MemoryObjectWriter()
            let writer = ChunkIndexWriter(chunkSize: chunkSize, output: out)
            for d in digests { try? writer.append(d) }
            _ = try? writer.finish(imageSize: imageSize)
            return out.bytes
        }
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

    /// Most chunks `decode` expands into memory: 32 bytes each, so 64 MiB at most. Readers of the vault stream
    /// indexes with `ChunkIndexReader` instead; this is for tests and small indexes.
    public static let maxDecodedChunks = 1 << 21

    /// Parses a whole index of either version, checking every field against the bytes present; `source`
    /// names it in errors. An index of more than `maxDecodedChunks` chunks is refused, never expanded.
    public static func decode(_ bytes: [UInt8], source: String) throws(DiskVaultError) -> ChunkIndex {
        let reader = try ChunkIndexReader(MemoryObjectReader(bytes), source: source)
        guard reader.count <= maxDecodedChunks else {
            throw DiskVaultError(.unsupported, "index of \(reader.count) chunks is too large to hold in memory; stream it", path: source)
        }
        var digests: [Digest256] = []
        while let entry = try reader.next() {
            switch entry {
            case .chunk(let d): digests.append(d)
            case .zeros(let n): digests.append(contentsOf: repeatElement(.zero, count: n))
            }
        }
        return ChunkIndex(chunkSize: reader.chunkSize, imageSize: reader.imageSize, digests: digests)
    }
}

/// Collects an object in memory (whole indexes for tests and the fuzzer).
final class MemoryObjectWriter: ObjectWriter {
    var bytes: [UInt8] = []
    var count: UInt64 { UInt64(bytes.count) }
    func append(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    func commitIfAbsent(durable: Bool) -> Bool { true }
    func abandon() {}
}
