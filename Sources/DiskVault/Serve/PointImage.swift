import Foundation

/// A recovery point's disk, read at any offset, for a server that answers random reads (`serve`).
///
/// The point's index is read once, front to back, and checked whole (every field, and its SHA-256 against
/// the manifest) before any byte is served; its entries are kept meanwhile in a private file that has no name
/// (32 bytes a chunk, runs of zero chunks left as holes in it), so that memory does not grow with the disk.
/// Chunks are read through the one checked path restore and verify use (`ChunkStore.load`: the blob's CRC,
/// inflation, length and digest) into a small cache of whole chunks; a chunk that is missing or damaged is an
/// error for the reads that touch it, never other bytes.
public final class PointImage: @unchecked Sendable {
    public let point: RecoveryPoint
    public let size: UInt64
    public let chunkSize: Int
    public let chunkCount: Int
    let chunks: ChunkStore
    private let entries: FileDescriptor
    private let cache: ChunkCache

    /// The cache for chunks of `chunkSize`: 16 MiB of whole chunks (at least two), and loaders (one per core,
    /// each with a codec whose buffer may hold a compressed chunk) within 8 MiB (at least one). 4 MiB chunks:
    /// 4 slots and 2 loaders, 24 MiB at most; 16 MiB chunks: 2 and 1, the 48 MiB of a restore's pipeline.
    public static func cacheSizing(chunkSize: Int) -> (slots: Int, loaders: Int) {
        (max(2, (16 << 20) / chunkSize), max(1, min(ProcessInfo.processInfo.activeProcessorCount, (8 << 20) / chunkSize)))
    }

    public init(vault: Vault, point: RecoveryPoint) throws(DiskVaultError) {
        self.point = point
        let index = try vault.index(of: point)
        size = index.imageSize
        chunkSize = index.chunkSize
        chunkCount = index.count
        chunks = vault.chunks
        let file = try FileDescriptor.anonymousTemporary(doing: "cannot keep the index of point \(point.id)")
        entries = file
        let sizing = Self.cacheSizing(chunkSize: index.chunkSize)
        cache = ChunkCache(slots: sizing.slots, chunkSize: index.chunkSize, framing: vault.storage.blobFraming.before, loaders: sizing.loaders)
        // Entries go out 2048 at a time; a run of zero chunks is skipped, a hole in the file that reads as zeros.
        var batch = [Digest256]()
        batch.reserveCapacity(2048)
        var batchStart = 0, next = 0
        func flush() throws(DiskVaultError) {
            guard !batch.isEmpty else { return }
            let at = UInt64(batchStart) * 32
            var failure: DiskVaultError?
            batch.withUnsafeBytes { b in
                do throws(DiskVaultError) { try file.write(b, at: at) } catch { failure = error }
            }
            if let failure { throw failure }
            batch.removeAll(keepingCapacity: true)
        }
        while let entry = try index.next() {
            switch entry {
            case .chunk(let d):
                if batch.isEmpty { batchStart = next }
                batch.append(d)
                next += 1
                if batch.count == 2048 { try flush() }
            case .zeros(let n):
                try flush()
                next += n
            }
        }
        try flush()
        try file.truncate(to: UInt64(chunkCount) * 32)
    }

    /// Chunks loaded so far, and reads the cache answered.
    public var cacheCounts: (loads: Int, hits: Int) { cache.counts }

    /// The digest of chunk `i`; `.zero` for a chunk of zeros.
    public func digest(ofChunk i: Int) throws(DiskVaultError) -> Digest256 {
        precondition(i >= 0 && i < chunkCount)
        var d = Digest256.zero
        let got = try withUnsafeMutableBytes(of: &d) { (b) throws(DiskVaultError) in try entries.read(into: b, at: UInt64(i) * 32) }
        guard got == 32 else { throw DiskVaultError(.io, "the kept index of point \(point.id) is short at chunk \(i)") }
        return d
    }

    /// Bytes in chunk `i`: the chunk size, less for the last one.
    public func length(ofChunk i: Int) -> Int {
        let start = UInt64(i) * UInt64(chunkSize)
        return Int(min(UInt64(chunkSize), size - start))
    }

    /// A piece of a read, in order: bytes of a chunk (in the caller's buffer, valid only during the call) or a
    /// run of zeros.
    public enum Piece {
        case data(offset: UInt64, UnsafeRawBufferPointer)
        case zeros(offset: UInt64, length: Int)
    }

    /// Calls `body` with the pieces of `[offset, offset + length)` in order, data copied out of the cache into
    /// `buffer` (at most its size at a time): a chunk is held in the cache only while a piece is copied, never
    /// while `body` runs, so a client slow to take its reply holds no slot. A chunk that cannot be read throws
    /// before any of its bytes are given.
    public func read(offset: UInt64, length: Int, into buffer: ByteBuffer, _ body: (Piece) throws(DiskVaultError) -> Void) throws(DiskVaultError) {
        precondition(offset + UInt64(length) <= size)
        var at = offset
        let end = offset + UInt64(length)
        while at < end {
            let i = Int(at / UInt64(chunkSize))
            let chunkStart = UInt64(i) * UInt64(chunkSize)
            let n = self.length(ofChunk: i)
            let upto = min(end, chunkStart + UInt64(n))
            let digest = try digest(ofChunk: i)
            if digest.isZero {
                try body(.zeros(offset: at, length: Int(upto - at)))
                at = upto
                continue
            }
            while at < upto {
                let piece = Int(min(upto - at, UInt64(buffer.storage.count)))
                try cache.with(digest, length: n, chunks: chunks) { bytes in
                    let from = Int(at - chunkStart)
                    buffer.storage.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[from..<from + piece]))
                }
                try body(.data(offset: at, buffer.prefix(piece)))
                at += UInt64(piece)
            }
        }
    }

    /// Starts loading chunk `i` into the cache in the background, unless it is there (or on its way) already
    /// or as many such loads as there are loaders run: a sequential reader then finds the next chunk checked
    /// and inflated while it takes this one. A chunk that cannot be read is left for the read that needs it to
    /// report.
    public func prefetch(chunk i: Int) {
        guard i >= 0, i < chunkCount, let digest = try? digest(ofChunk: i), !digest.isZero, cache.beginPrefetch(of: digest) else { return }
        let n = length(ofChunk: i)
        DispatchQueue.global(qos: .utility).async { [self] in
            try? cache.with(digest, length: n, chunks: chunks) { _ in }
            cache.endPrefetch()
        }
    }

    /// Loads (and so checks) every data chunk `[offset, offset + length)` touches: for a reply that cannot be
    /// taken back once it starts (NBD's simple replies), a bad chunk is found before the first byte goes out.
    public func check(offset: UInt64, length: Int) throws(DiskVaultError) {
        guard length > 0 else { return }
        let first = Int(offset / UInt64(chunkSize)), last = Int((offset + UInt64(length) - 1) / UInt64(chunkSize))
        for i in first...last {
            let digest = try digest(ofChunk: i)
            if !digest.isZero { try cache.with(digest, length: self.length(ofChunk: i), chunks: chunks) { _ in } }
        }
    }

    /// The allocation of `[offset, offset + length)` as runs in order: (bytes, zero). Zero chunks are holes;
    /// runs of the same kind are merged; at most `limit` runs (the last may end short of the range).
    public func allocation(offset: UInt64, length: UInt64, limit: Int) throws(DiskVaultError) -> [(length: UInt64, zero: Bool)] {
        var runs: [(length: UInt64, zero: Bool)] = []
        var at = offset
        let end = offset + length
        while at < end {
            let i = Int(at / UInt64(chunkSize))
            let upto = min(end, UInt64(i) * UInt64(chunkSize) + UInt64(self.length(ofChunk: i)))
            let zero = try digest(ofChunk: i).isZero
            if let last = runs.last, last.zero == zero {
                runs[runs.count - 1].length += upto - at
            } else {
                if runs.count == limit { break }
                runs.append((upto - at, zero))
            }
            at = upto
        }
        return runs
    }
}

/// Whole chunks, checked, shared by every connection: a fixed set of slots, each a chunk's frame; a slot in
/// use is never reused, and one chunk is loaded once however many ask for it at the same time. Loads run at
/// most one per core at once, each with a codec of a fixed set (a codec's buffer is a chunk's size).
final class ChunkCache: @unchecked Sendable {
    private struct Slot {
        var digest: Digest256?
        var loading = false
        var users = 0
        var lastUse = 0
        var bytes: UnsafeRawBufferPointer?
    }
    private let condition = NSCondition()
    private var slots: [Slot]
    private let buffers: [ByteBuffer]
    private var clock = 0
    private let offset: Int
    private var codecs: [BlobCodec]
    private var prefetching = 0
    private var loads = 0, hits = 0
    var counts: (loads: Int, hits: Int) { condition.lock(); defer { condition.unlock() }; return (loads, hits) }
    private let prefetchLimit: Int

    init(slots count: Int, chunkSize: Int, framing: Int, loaders: Int) {
        codecs = (0..<loaders).map { _ in BlobCodec(chunkSize: chunkSize) }
        prefetchLimit = loaders
        slots = Array(repeating: Slot(), count: count)
        buffers = (0..<count).map { _ in ByteBuffer(capacity: BlobCodec.frameCapacity(chunkSize: chunkSize) + framing) }
        offset = Blob.headerSize + framing
    }

    /// True when a background load of `digest` may start: no slot has it and fewer than one per loader run.
    func beginPrefetch(of digest: Digest256) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard prefetching < prefetchLimit, !slots.contains(where: { $0.digest == digest }) else { return false }
        prefetching += 1
        return true
    }

    func endPrefetch() {
        condition.lock()
        prefetching -= 1
        condition.unlock()
    }

    /// Runs `body` with the checked bytes of chunk `digest` (`length` bytes), loading it when no slot has it.
    func with(_ digest: Digest256, length: Int, chunks: ChunkStore, _ body: (UnsafeRawBufferPointer) throws(DiskVaultError) -> Void) throws(DiskVaultError) {
        condition.lock()
        var slot: Int
        while true {
            if let s = slots.firstIndex(where: { $0.digest == digest }) {
                if slots[s].loading {
                    condition.wait()
                    continue
                }
                slot = s
                hits += 1
                break
            }
            // The least recently used slot nobody holds; wait when every slot is held.
            guard let free = slots.indices.filter({ slots[$0].users == 0 && !slots[$0].loading }).min(by: { slots[$0].lastUse < slots[$1].lastUse }) else {
                condition.wait()
                continue
            }
            guard let codec = codecs.popLast() else {
                condition.wait()
                continue
            }
            slots[free] = Slot(digest: digest, loading: true, users: 1, lastUse: clock)
            loads += 1
            condition.unlock()
            let loaded: Result<UnsafeRawBufferPointer, DiskVaultError>
            do {
                loaded = .success(try chunks.load(digest, length: length, into: buffers[free], at: offset, codec: codec))
            } catch {
                loaded = .failure(error)
            }
            condition.lock()
            codecs.append(codec)
            switch loaded {
            case .success(let bytes):
                slots[free].bytes = bytes
                slots[free].loading = false
                slots[free].users -= 1
                condition.broadcast()
                slot = free
            case .failure(let error):
                // Not kept: the next read of the chunk tries again (and fails again if it is damaged).
                slots[free] = Slot()
                condition.broadcast()
                condition.unlock()
                throw error
            }
            break
        }
        clock += 1
        slots[slot].users += 1
        slots[slot].lastUse = clock
        let bytes = slots[slot].bytes!
        condition.unlock()
        defer {
            condition.lock()
            slots[slot].users -= 1
            condition.broadcast()
            condition.unlock()
        }
        try body(bytes)
    }
}
