/// Writes a version-2 index as a backup goes, chunk by chunk, hashing it on the way: memory stays a small
/// buffer whatever the image size, and a run of zero chunks costs one entry.
public final class ChunkIndexWriter {
    let chunkSize: Int
    let output: any ObjectWriter
    private let hasher = SHA256()
    private var buffer: [UInt8] = []
    private var zeroRun: UInt64 = 0
    public private(set) var count = 0
    private static let flushAt = 64 << 10

    public init(chunkSize: Int, output: any ObjectWriter) {
        self.chunkSize = chunkSize
        self.output = output
        buffer.reserveCapacity(Self.flushAt + 64)
        buffer += ChunkIndex.magic
        withUnsafeBytes(of: ChunkIndex.currentVersion.littleEndian) { buffer += $0 }
        withUnsafeBytes(of: UInt32(chunkSize).littleEndian) { buffer += $0 }
    }

    /// The next chunk: its digest, or `.zero` for a chunk of zeros.
    public func append(_ digest: Digest256) throws(DiskVaultError) {
        if digest.isZero { return try appendZeros(1) }
        try endZeroRun()
        digest.write(to: &buffer)
        count += 1
        if buffer.count >= Self.flushAt { try flush() }
    }

    /// The next `n` chunks, all zeros.
    public func appendZeros(_ n: Int) throws(DiskVaultError) {
        zeroRun += UInt64(n)
        count += n
    }

    private func endZeroRun() throws(DiskVaultError) {
        guard zeroRun > 0 else { return }
        buffer += repeatElement(0, count: 24)
        withUnsafeBytes(of: zeroRun.littleEndian) { buffer += $0 }
        zeroRun = 0
    }

    private func flush() throws(DiskVaultError) {
        try buffer.withBytes { (b) throws(DiskVaultError) in
            hasher.update(b)
            try output.append(b)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Ends the index with the image's size and chunk count; returns its SHA-256 (the image's content digest).
    /// The object is left to its owner to commit.
    public func finish(imageSize: UInt64) throws(DiskVaultError) -> Digest256 {
        guard imageSize < ChunkIndex.maxImageSize, ChunkIndex.chunkCount(imageSize: imageSize, chunkSize: chunkSize) == count else {
            throw DiskVaultError(.io, "an index of \(count) chunks cannot describe an image of \(imageSize) bytes")
        }
        try endZeroRun()
        withUnsafeBytes(of: imageSize.littleEndian) { buffer += $0 }
        withUnsafeBytes(of: UInt64(count).littleEndian) { buffer += $0 }
        try flush()
        return hasher.finalize()
    }
}
