/// Reads an index of either version front to back, a small buffer at a time, checking every field against
/// the others and the object's size before any arithmetic, and hashing the bytes as they pass: once the last
/// entry is read, the SHA-256 is compared with the digest the manifest recorded. Memory stays the buffer
/// whatever the image size; a consumer must read to the end (`next()` returning nil, or `finish()`) before it
/// trusts what it read.
public final class ChunkIndexReader {
    public enum Entry: Equatable {
        /// A data chunk's digest.
        case chunk(Digest256)
        /// `n` chunks of zeros, stored as nothing.
        case zeros(Int)
    }

    public let version: UInt32
    public let chunkSize: Int
    public let imageSize: UInt64
    public let count: Int
    /// Names the index in errors, e.g. its path.
    let source: String
    /// Says what the index is in errors ("index of point X").
    let what: String
    let object: any ObjectReader
    let expected: Digest256?

    private let hasher = SHA256()
    private let buffer = ByteBuffer(capacity: ChunkIndexReader.bufferSize)
    private var pos = 0, end = 0
    /// Bytes of the object loaded into the buffer (and hashed) so far.
    private var loaded: UInt64 = 0
    /// Where the entries end in the object: the trailer (v2) or the end (v1).
    private let entriesEnd: UInt64
    private let entriesStart: UInt64
    /// Chunks covered by the entries read so far.
    private var chunksRead = 0
    private var lastWasRun = false
    private var pending: Digest256? = nil
    private var done = false
    // The entry the chunk cursor stands on: its first chunk, how many chunks, and its digest.
    private var cursor: (first: Int, count: Int, digest: Digest256) = (0, 0, .zero)

    private static let bufferSize = 64 << 10

    public init(_ object: any ObjectReader, source: String, what: String = "index", expectedDigest: Digest256? = nil) throws(DiskVaultError) {
        self.object = object
        self.source = source
        self.what = what
        self.expected = expectedDigest
        func bad(_ why: String) -> DiskVaultError { DiskVaultError(.corrupt, "\(what) is damaged: \(why)", path: source) }
        let size = object.size
        guard size >= UInt64(ChunkIndex.headerSize) else { throw bad("\(size) bytes, shorter than its header") }
        var header = [UInt8](repeating: 0, count: ChunkIndex.headerSize)
        let got = try header.withMutableBytes { (b) throws(DiskVaultError) in try object.read(into: b, at: 0) }
        guard got == header.count else { throw bad("\(got) bytes, shorter than its header") }
        guard header.prefix(8).elementsEqual(ChunkIndex.magic) else { throw bad("bad magic") }
        func field<T: FixedWidthInteger>(_ bytes: [UInt8], _ at: Int, _: T.Type) -> T {
            bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
        }
        let version: UInt32 = field(header, 8, UInt32.self)
        guard ChunkIndex.readableVersions.contains(version) else { throw bad("version \(version) is not known") }
        let chunkSize = Int(field(header, 12, UInt32.self))
        guard Vault.isValidChunkSize(chunkSize) else { throw bad("chunk size \(chunkSize)") }
        let imageSize: UInt64, count: UInt64
        if version == 1 {
            imageSize = field(header, 16, UInt64.self)
            count = field(header, 24, UInt64.self)
            entriesStart = 32
            entriesEnd = size
        } else {
            var trailer = [UInt8](repeating: 0, count: 16)
            let n = try trailer.withMutableBytes { (b) throws(DiskVaultError) in try object.read(into: b, at: size - 16) }
            guard n == 16 else { throw bad("its trailer cannot be read") }
            imageSize = field(trailer, 0, UInt64.self)
            count = field(trailer, 8, UInt64.self)
            entriesStart = 16
            entriesEnd = size - 16
        }
        guard imageSize < ChunkIndex.maxImageSize, count == UInt64(ChunkIndex.chunkCount(imageSize: imageSize, chunkSize: chunkSize)) else {
            throw bad("\(count) chunks cannot make an image of \(imageSize) bytes")
        }
        let entryBytes = entriesEnd - entriesStart
        // Version 1 holds one entry per chunk; version 2 at most that many (runs of zeros are one entry).
        guard version == 1 ? entryBytes == count * 32 : entryBytes % 32 == 0 && entryBytes / 32 <= count else {
            throw bad("holds \(entryBytes) bytes of entries for \(count) chunks")
        }
        self.version = version
        self.chunkSize = chunkSize
        self.imageSize = imageSize
        self.count = Int(count)
    }

    private func bad(_ why: String) -> DiskVaultError { DiskVaultError(.corrupt, "\(what) is damaged: \(why)", path: source) }

    /// Length of chunk `i`: the chunk size, or less for the last.
    public func length(ofChunk i: Int) -> Int {
        ChunkIndex.length(ofChunk: i, chunkSize: chunkSize, imageSize: imageSize)
    }

    /// Where in the object the next unread byte of the buffer sits.
    private var offset: UInt64 { loaded - UInt64(end - pos) }

    /// The next `n` bytes (n ≤ 32) of the object, loading and hashing more as needed.
    private func take(_ n: Int) throws(DiskVaultError) -> UnsafeRawBufferPointer {
        if end - pos < n {
            if pos > 0 {
                let b = buffer.storage.baseAddress!
                b.copyMemory(from: b + pos, byteCount: end - pos)
                end -= pos
                pos = 0
            }
            while end < n {
                let free = UnsafeMutableRawBufferPointer(rebasing: buffer.storage[end...])
                let got = try object.read(into: free, at: loaded)
                hasher.update(UnsafeRawBufferPointer(rebasing: free[..<got]))
                guard got > 0 else { throw bad("ends early, at byte \(loaded) of \(object.size)") }
                loaded += UInt64(got)
                end += got
            }
        }
        let out = UnsafeRawBufferPointer(rebasing: buffer.storage[pos..<pos + n])
        pos += n
        return out
    }

    /// The next entry, or nil after the last once the index has checked whole: every chunk accounted for, and
    /// its SHA-256 equal to the expected digest.
    public func next() throws(DiskVaultError) -> Entry? {
        if let d = pending {
            pending = nil
            return .chunk(d)
        }
        if done { return nil }
        if offset == 0 { _ = try take(Int(entriesStart)) }
        guard offset < entriesEnd else {
            try finishChecks()
            return nil
        }
        let e = try take(32)
        let w0 = e.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        let w1 = e.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        let w2 = e.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        if version == 2 && w0 | w1 | w2 == 0 {
            let run = UInt64(littleEndian: e.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            guard run >= 1, run <= UInt64(count - chunksRead) else {
                throw bad("a run of \(run) zero chunks at chunk \(chunksRead) of \(count)")
            }
            guard !lastWasRun else { throw bad("two runs of zero chunks side by side at chunk \(chunksRead)") }
            lastWasRun = true
            chunksRead += Int(run)
            return .zeros(Int(run))
        }
        lastWasRun = false
        let digest = Digest256(bytes: e)
        guard chunksRead < count else { throw bad("more entries than its \(count) chunks") }
        chunksRead += 1
        guard digest.isZero else { return .chunk(digest) }
        // Version 1 stores each zero chunk: a run of them is handed on as one entry.
        var run = 1
        while offset < entriesEnd {
            let d = Digest256(bytes: try take(32))
            chunksRead += 1
            if !d.isZero {
                pending = d
                break
            }
            run += 1
        }
        return .zeros(run)
    }

    private func finishChecks() throws(DiskVaultError) {
        guard chunksRead == count else { throw bad("its entries cover \(chunksRead) of its \(count) chunks") }
        if version == 2 { _ = try take(16) }
        guard loaded == object.size else { throw bad("changed while it was read") }
        done = true
        let digest = hasher.finalize()
        if let expected, digest != expected {
            throw DiskVaultError(.corrupt, "\(what) does not match the digest in its manifest", path: source)
        }
    }

    /// Reads to the end, so that the whole index is checked.
    public func finish() throws(DiskVaultError) {
        while try next() != nil {}
    }

    /// The digest of chunk `i` (`.zero` for a chunk of zeros), for `i` never smaller than the last asked for;
    /// nil past the last chunk. Reading in step with a backup costs no lookup per chunk.
    public func digest(atChunk i: Int) throws(DiskVaultError) -> Digest256? {
        while i >= cursor.first + cursor.count {
            let first = cursor.first + cursor.count
            switch try next() {
            case nil: return nil
            case .chunk(let d): cursor = (first, 1, d)
            case .zeros(let n): cursor = (first, n, .zero)
            }
        }
        return i >= cursor.first ? cursor.digest : nil
    }

    /// Calls `body` with each data chunk's number and digest (zero chunks skipped), then checks the index whole.
    public func forEachDataChunk(_ body: (Int, Digest256) throws(DiskVaultError) -> Void) throws(DiskVaultError) {
        var i = 0
        while let entry = try next() {
            switch entry {
            case .chunk(let d):
                try body(i, d)
                i += 1
            case .zeros(let n):
                i += n
            }
        }
    }
}
