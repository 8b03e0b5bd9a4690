/// Per-thread scratch for turning chunks into blobs and back: a deflater, an inflater and a blob-sized buffer.
/// One per worker; never shared between threads.
public final class BlobCodec {
    public let deflater = IsalDeflater()
    public let inflater = IsalInflater()
    public let blobBuffer: ByteBuffer

    /// Blobs are assembled whole in one aligned buffer, with room to round a write up to 4 KiB, so the vault
    /// can write them with direct I/O.
    public init(chunkSize: Int) {
        blobBuffer = ByteBuffer(capacity: Blob.headerSize + ZlibDeflater.bound(chunkSize) + Blob.directIOAlignment)
    }

    /// The blob for `chunk`, deflated when it pays (at least 1/8 smaller), in `blobBuffer`: its bytes, and the same
    /// start rounded up to the direct-I/O alignment.
    func encode(_ chunk: UnsafeRawBufferPointer, mayCompress: Bool) -> (blob: UnsafeRawBufferPointer, padded: UnsafeRawBufferPointer, compressed: Bool) {
        let payloadArea = UnsafeMutableRawBufferPointer(rebasing: blobBuffer.storage[Blob.headerSize...])
        var flags: Blob.Flags = []
        var n = 0
        if mayCompress && CompressibilityProbe.worthTrying(chunk) {
            let limit = min(payloadArea.count, chunk.count - chunk.count / 8)
            if let c = deflater.compress(chunk, into: UnsafeMutableRawBufferPointer(rebasing: payloadArea[..<limit])) {
                n = c
                flags.insert(.zlib)
            }
        }
        if flags.isEmpty {
            UnsafeMutableRawBufferPointer(rebasing: payloadArea[..<chunk.count]).copyMemory(from: chunk)
            n = chunk.count
        }
        Blob.makeHeader(flags: flags, payload: UnsafeRawBufferPointer(rebasing: payloadArea[..<n]), into: blobBuffer.storage)
        let length = Blob.headerSize + n
        let padded = (length + Blob.directIOAlignment - 1) / Blob.directIOAlignment * Blob.directIOAlignment
        return (blobBuffer.prefix(length), blobBuffer.prefix(min(padded, blobBuffer.capacity)), !flags.isEmpty)
    }
}

/// Chunks in the vault, each a blob named by the SHA-256 of its plaintext.
public final class ChunkStore: Sendable {
    public let storage: any VaultStorage
    public let chunkSize: Int

    public init(storage: any VaultStorage, chunkSize: Int) {
        self.storage = storage
        self.chunkSize = chunkSize
    }

    public static func key(_ digest: Digest256) -> String {
        let hex = digest.hex
        return "chunks/\(hex.prefix(4))/\(hex)"
    }

    public func contains(_ digest: Digest256) throws(DiskVaultError) -> Bool {
        try storage.head(Self.key(digest)) != nil
    }

    public struct StoreOutcome: Sendable {
        /// False when another writer stored the same chunk first.
        public var written: Bool
        public var blobBytes: Int
        public var compressed: Bool
    }

    /// Stores `chunk` under `digest` unless it is there; never rewrites an existing blob.
    public func store(
        _ chunk: UnsafeRawBufferPointer, digest: Digest256, mayCompress: Bool, codec: BlobCodec
    ) throws(DiskVaultError) -> StoreOutcome {
        let (blob, padded, compressed) = codec.encode(chunk, mayCompress: mayCompress)
        let written = try storage.putBlobIfAbsent(Self.key(digest), padded: padded, length: blob.count)
        return StoreOutcome(written: written, blobBytes: blob.count, compressed: compressed)
    }

    /// Reads the blob of `digest`, checks CRC, inflates into `output` and checks length and digest.
    /// Throws `notFound` for a missing blob, `corrupt` for a damaged one, naming the chunk.
    public func load(
        _ digest: Digest256, length: Int, into output: ByteBuffer, codec: BlobCodec
    ) throws(DiskVaultError) {
        let key = Self.key(digest)
        let n: Int
        do {
            n = try storage.read(key, into: codec.blobBuffer.storage)
        } catch where error.code == .notFound {
            throw DiskVaultError(.notFound, "chunk \(digest.hex) is missing", path: "\(storage.location)/\(key)")
        } catch where error.code == .corrupt {
            throw DiskVaultError(.corrupt, "chunk \(digest.hex) is damaged: blob larger than any chunk", path: "\(storage.location)/\(key)")
        }
        let got: Int
        do {
            got = try Blob.decode(codec.blobBuffer.prefix(n), into: output.mutablePrefix(length), inflater: codec.inflater)
        } catch {
            throw DiskVaultError(.corrupt, "chunk \(digest.hex) is damaged: \(error)", path: "\(storage.location)/\(key)")
        }
        guard got == length else {
            throw DiskVaultError(.corrupt, "chunk \(digest.hex) is damaged: holds \(got) bytes, not \(length)", path: "\(storage.location)/\(key)")
        }
        guard SHA256.digest(output.prefix(length)) == digest else {
            throw DiskVaultError(.corrupt, "chunk \(digest.hex) is damaged: content does not match its digest", path: "\(storage.location)/\(key)")
        }
    }
}
