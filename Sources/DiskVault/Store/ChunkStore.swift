/// Per-thread scratch for turning chunks into blobs and back: a deflater, an inflater and a blob-sized buffer.
/// One per worker; never shared between threads.
public final class BlobCodec {
    public let deflater = IsalDeflater()
    public let inflater = IsalInflater()
    public let blobBuffer: ByteBuffer

    /// Blobs are assembled whole in one aligned buffer, with room to round a write up to 4 KiB, so the vault
    /// can write them with direct I/O.
    public init(chunkSize: Int) {
        blobBuffer = ByteBuffer(capacity: Blob.directIOLength(Blob.headerSize + ZlibDeflater.bound(chunkSize) + AESGCM.overhead))
    }

    /// The size of a buffer that holds a chunk in the form `encode` takes without copying it: the chunk at
    /// byte `Blob.headerSize`, room for its header before it and, after it, for sealing it in place (an
    /// encrypted vault) and rounding the blob up to the direct-I/O alignment.
    public static func frameCapacity(chunkSize: Int) -> Int {
        Blob.directIOLength(Blob.headerSize + chunkSize + AESGCM.overhead)
    }

    /// Where a chunk of `length` bytes sits in `frame`.
    public static func chunkArea(of frame: ByteBuffer, length: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: frame.storage[Blob.headerSize..<Blob.headerSize + length])
    }

    /// The blob for `chunk`, deflated when it pays (at least 1/8 smaller): its bytes, and the same rounded up
    /// to the direct-I/O alignment. A compressed blob is assembled in `blobBuffer`. A raw one is assembled in
    /// `frame` when the chunk sits in it at byte `Blob.headerSize` (the header goes in front, nothing is
    /// copied); otherwise it is copied into `blobBuffer`.
    func encode(
        _ chunk: UnsafeRawBufferPointer, mayCompress: Bool, frame: UnsafeMutableRawBufferPointer? = nil
    ) -> (blob: UnsafeRawBufferPointer, buffer: UnsafeMutableRawBufferPointer, compressed: Bool) {
        let payloadArea = UnsafeMutableRawBufferPointer(rebasing: blobBuffer.storage[Blob.headerSize...])
        if mayCompress && CompressibilityProbe.worthTrying(chunk) {
            let limit = min(payloadArea.count, chunk.count - chunk.count / 8)
            if let n = deflater.compress(chunk, into: UnsafeMutableRawBufferPointer(rebasing: payloadArea[..<limit])) {
                return Self.assemble(in: blobBuffer.storage, payloadCount: n, flags: .zlib)
            }
        }
        if let frame, let base = frame.baseAddress, UnsafeRawPointer(base + Blob.headerSize) == chunk.baseAddress,
            frame.count >= Blob.headerSize + chunk.count
        {
            return Self.assemble(in: frame, payloadCount: chunk.count, flags: [])
        }
        UnsafeMutableRawBufferPointer(rebasing: payloadArea[..<chunk.count]).copyMemory(from: chunk)
        return Self.assemble(in: blobBuffer.storage, payloadCount: chunk.count, flags: [])
    }

    /// Writes the header in front of the payload already at `buffer[Blob.headerSize...]`.
    private static func assemble(
        in buffer: UnsafeMutableRawBufferPointer, payloadCount n: Int, flags: Blob.Flags
    ) -> (blob: UnsafeRawBufferPointer, buffer: UnsafeMutableRawBufferPointer, compressed: Bool) {
        let payload = UnsafeRawBufferPointer(rebasing: buffer[Blob.headerSize..<Blob.headerSize + n])
        Blob.makeHeader(flags: flags, payload: payload, into: buffer)
        return (UnsafeRawBufferPointer(rebasing: buffer[..<(Blob.headerSize + n)]), buffer, !flags.isEmpty)
    }
}

/// Chunks in the vault, each a blob named by the SHA-256 of its plaintext — in an encrypted vault by its
/// HMAC-SHA256 under the naming key, so that a name says nothing about the content.
public final class ChunkStore: Sendable {
    public let storage: any VaultStorage
    public let chunkSize: Int
    /// Hex digits of the folder under chunks/ a blob sits in (0: none), from the vault's configuration.
    public let prefixDigits: Int
    /// The naming key of an encrypted vault; nil: names are SHA-256.
    let namingKey: [UInt8]?

    public init(storage: any VaultStorage, chunkSize: Int, prefixDigits: Int = 0, namingKey: [UInt8]? = nil) {
        self.storage = storage
        self.chunkSize = chunkSize
        self.prefixDigits = prefixDigits
        self.namingKey = namingKey
    }

    /// The name of a chunk: what the index records and the blob is stored under.
    public func name(of chunk: UnsafeRawBufferPointer) -> Digest256 {
        guard let namingKey else { return SHA256.digest(chunk) }
        return HMACSHA256.authenticationCode(key: namingKey, message: chunk)
    }

    public static func key(_ digest: Digest256, prefixDigits: Int) -> String {
        let hex = digest.hex
        return prefixDigits == 0 ? "chunks/\(hex)" : "chunks/\(hex.prefix(prefixDigits))/\(hex)"
    }

    public func key(_ digest: Digest256) -> String { Self.key(digest, prefixDigits: prefixDigits) }

    /// Every blob under chunks/ named by a digest, with its key; anything else there is left alone.
    public func listBlobs() throws(DiskVaultError) -> [(Digest256, String)] {
        var found: [(Digest256, String)] = []
        if prefixDigits == 0 {
            for name in try storage.list("chunks") {
                if let digest = Digest256(hex: name) { found.append((digest, "chunks/\(name)")) }
            }
            return found
        }
        for prefix in try storage.list("chunks").sorted() where prefix.utf8.count == prefixDigits {
            for name in try storage.list("chunks/\(prefix)") {
                guard let digest = Digest256(hex: name), name.hasPrefix(prefix) else { continue }
                found.append((digest, "chunks/\(prefix)/\(name)"))
            }
        }
        return found
    }

    /// `listBlobs` with each blob's size as `head` gives it (0 for an entry that is no object, a folder say),
    /// from listings: an object store is not asked once a blob.
    public func listBlobsWithSizes() throws(DiskVaultError) -> [(digest: Digest256, key: String, size: UInt64)] {
        var sizes: [String: UInt64] = [:]
        let folders = prefixDigits == 0 ? ["chunks"] : try storage.list("chunks").filter { $0.utf8.count == prefixDigits }.map { "chunks/\($0)" }
        for folder in folders {
            for (name, size) in try storage.listSizes(folder) { sizes["\(folder)/\(name)"] = size }
        }
        return try listBlobs().map { ($0.0, $0.1, sizes[$0.1] ?? 0) }
    }

    public func contains(_ digest: Digest256) throws(DiskVaultError) -> Bool {
        try storage.head(key(digest)) != nil
    }

    public struct StoreOutcome: Sendable {
        /// False when another writer stored the same chunk first.
        public var written: Bool
        public var blobBytes: Int
        public var compressed: Bool
    }

    /// Stores `chunk` under `digest` unless it is there; never rewrites an existing blob — except with
    /// `replacing`, for a chunk known missing or damaged, whose blob is then put over the bad one.
    /// `frame`, when given, is the buffer the chunk sits in at byte `Blob.headerSize` (see `BlobCodec.frameCapacity`):
    /// a raw blob is then written from it without a copy.
    public func store(
        _ chunk: UnsafeRawBufferPointer, digest: Digest256, mayCompress: Bool, codec: BlobCodec,
        frame: UnsafeMutableRawBufferPointer? = nil, replacing: Bool = false
    ) throws(DiskVaultError) -> StoreOutcome {
        let (blob, buffer, compressed) = codec.encode(chunk, mayCompress: mayCompress, frame: frame)
        if replacing {
            try storage.replaceBlob(key(digest), blob)
            return StoreOutcome(written: true, blobBytes: blob.count, compressed: compressed)
        }
        // The buffer is given up: the chunk in it is not read again (an encrypted vault seals it there).
        let written = try storage.putBlobIfAbsent(key(digest), scratch: buffer, length: blob.count)
        return StoreOutcome(written: written, blobBytes: blob.count, compressed: compressed)
    }

    /// Reads the blob of `digest`, checks CRC, inflates into `output` and checks length and digest.
    /// Throws `notFound` for a missing blob, `corrupt` for a damaged one, naming the chunk.
    public func load(
        _ digest: Digest256, length: Int, into output: ByteBuffer, codec: BlobCodec
    ) throws(DiskVaultError) {
        _ = try load(digest, length: length, into: output, at: 0, codec: codec)
    }

    /// `load` into `buffer` at byte `offset`; returns the chunk's bytes there. With `offset` at least
    /// `Blob.headerSize`, a raw blob is read so that its payload lands at `offset` directly and is checked in
    /// place, with no copy; a compressed one is read into the codec's buffer and inflated to `offset`.
    public func load(
        _ digest: Digest256, length: Int, into buffer: ByteBuffer, at offset: Int, codec: BlobCodec
    ) throws(DiskVaultError) -> UnsafeRawBufferPointer {
        let key = key(digest)
        let output = UnsafeMutableRawBufferPointer(rebasing: buffer.storage[offset..<offset + length])
        // A raw blob is read so that its payload lands at `offset`: its header (and any framing the storage
        // adds, an encrypted vault's seal) in the room before it, the framing's tail after it.
        let (before, after) = storage.blobFraming
        let inPlace = offset >= Blob.headerSize + before && offset + length + after <= buffer.storage.count
        let blob: UnsafeRawBufferPointer
        do {
            blob = try storage.read(key) { size in
                inPlace && size == before + Blob.headerSize + length + after
                    ? UnsafeMutableRawBufferPointer(rebasing: buffer.storage[offset - Blob.headerSize - before..<offset + length + after])
                    : codec.blobBuffer.storage
            }
        } catch where error.code == .notFound {
            throw DiskVaultError(.notFound, "chunk \(digest.hex) is missing", path: "\(storage.location)/\(key)")
        } catch where error.code == .corrupt {
            throw DiskVaultError(.corrupt, "chunk \(digest.hex) is damaged: blob larger than any chunk", path: "\(storage.location)/\(key)")
        }
        let got: Int
        do {
            let scratch = UnsafeRawBufferPointer(codec.blobBuffer.storage)
            if let b = blob.baseAddress, let s = scratch.baseAddress, b >= s, b < s + scratch.count {
                got = try Blob.decode(blob, into: output, inflater: codec.inflater)
            } else {
                let (flags, payload) = try Blob.check(blob)
                if flags.isEmpty {
                    got = payload.count
                } else {
                    // The size of a raw blob but compressed: move it out of the way and inflate it.
                    let moved = UnsafeMutableRawBufferPointer(rebasing: codec.blobBuffer.storage[..<blob.count])
                    moved.copyMemory(from: blob)
                    got = try Blob.decode(UnsafeRawBufferPointer(moved), into: output, inflater: codec.inflater)
                }
            }
        } catch {
            throw DiskVaultError(.corrupt, "chunk \(digest.hex) is damaged: \(error)", path: "\(storage.location)/\(key)")
        }
        guard got == length else {
            throw DiskVaultError(.corrupt, "chunk \(digest.hex) is damaged: holds \(got) bytes, not \(length)", path: "\(storage.location)/\(key)")
        }
        guard name(of: UnsafeRawBufferPointer(output)) == digest else {
            throw DiskVaultError(.corrupt, "chunk \(digest.hex) is damaged: content does not match its digest", path: "\(storage.location)/\(key)")
        }
        return UnsafeRawBufferPointer(output)
    }
}
