/// An object of any size sealed with AES-256-GCM a segment at a time, so that it is written and read in
/// pieces (a recovery point's index in an encrypted vault) and never held whole.
///
/// Layout: "dvss" and version 2 (5 bytes), the object's id (16 random bytes, fresh for every object
/// sealed), then each segment as nonce (12) ‖ ciphertext ‖ tag (16). Every segment but the last holds
/// exactly `segmentSize` bytes of plaintext; the last holds 0 to `segmentSize` (an empty object is one empty
/// last segment, and an object of a whole number of segments ends with a full one). Each segment is sealed
/// under a fresh random nonce with associated data `associatedData ‖ 0x00 ‖ the object's id ‖ its number
/// (8 bytes, big-endian) ‖ 1 for the last segment, 0 otherwise`: a segment moved, dropped, duplicated,
/// taken from another path or from another object sealed for the same path (an index written again) does
/// not open, and neither does an object cut at a segment boundary, since its new last segment was not
/// sealed as the last.
///
/// Version 1 (no id) was never released and is refused by name.
public enum SealedObjectStream {
    /// Plaintext bytes in every segment but the last.
    public static let segmentSize = 64 << 10
    static let magic: [UInt8] = Array("dvss".utf8)
    static let version: UInt8 = 2
    /// Bytes of the random id that binds an object's segments together.
    static let idSize = 16
    /// Magic, version and id.
    static let headerSize = magic.count + 1 + idSize
    static let nonceSize = 12
    static let tagSize = 16
    /// What sealing adds to a segment: its nonce and tag.
    static let overhead = nonceSize + tagSize

    /// Whether `prefix`, the first bytes of an object (at least the 5 of its magic and version), begins as
    /// a sealed stream of this version does: what can be checked without the key.
    public static func isSealedForm(_ prefix: [UInt8]) -> Bool {
        prefix.count > magic.count && prefix.starts(with: magic) && prefix[magic.count] == version
    }

    /// The header of an object with id `id`.
    static func header(id: [UInt8]) -> [UInt8] { magic + [version] + id }

    /// The size of the sealed form of `plaintextSize` bytes.
    static func sealedSize(plaintextSize: UInt64) -> UInt64 {
        let segments = max(1, (plaintextSize + UInt64(segmentSize) - 1) / UInt64(segmentSize))
        return UInt64(headerSize) + segments * UInt64(overhead) + plaintextSize
    }

    /// The plaintext size of a sealed form of `sealedSize` bytes (0 when too short to hold a segment): the
    /// inverse of `sealedSize(plaintextSize:)`. Nothing is checked; the reader does that.
    static func plaintextSize(sealedSize: UInt64) -> UInt64 {
        let header = UInt64(headerSize), overhead = UInt64(overhead), unit = UInt64(segmentSize) + overhead
        guard sealedSize >= header + overhead else { return 0 }
        let segments = (sealedSize - header + unit - 1) / unit
        return sealedSize - header - segments * overhead
    }

    static func associatedData(_ base: [UInt8], id: [UInt8], segment: UInt64, last: Bool) -> [UInt8] {
        var ad = base
        ad.reserveCapacity(base.count + 1 + id.count + 9)
        ad.append(0)
        ad += id
        withUnsafeBytes(of: segment.bigEndian) { ad += $0 }
        ad.append(last ? 1 : 0)
        return ad
    }
}

/// Seals what is appended into `inner` a segment at a time; memory stays one segment's buffer.
public final class SealedObjectWriter: ObjectWriter {
    private let inner: any ObjectWriter
    private let key: [UInt8]
    private let associatedData: [UInt8]
    /// This object's id, in its header and in every segment's associated data.
    private let id = SecureRandom.bytes(SealedObjectStream.idSize)
    /// Plaintext of the segment being filled. A full one is sealed only once more bytes come, as the last
    /// segment may be full.
    private var buffer: [UInt8] = []
    private var segment: UInt64 = 0
    private var finished = false
    public private(set) var count: UInt64 = 0

    public init(_ inner: any ObjectWriter, key: [UInt8], associatedData: [UInt8]) {
        precondition(key.count == 32, "AES-256-GCM needs a 32-byte key")
        self.inner = inner
        self.key = key
        self.associatedData = associatedData
        buffer.reserveCapacity(SealedObjectStream.segmentSize)
    }

    private func ended() -> DiskVaultError {
        DiskVaultError(.io, "sealed object writer used after it ended")
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws(DiskVaultError) {
        guard !finished else { throw ended() }
        var rest = bytes
        while !rest.isEmpty {
            if buffer.count == SealedObjectStream.segmentSize { try seal(last: false) }
            let n = min(SealedObjectStream.segmentSize - buffer.count, rest.count)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[..<n]))
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            count += UInt64(n)
        }
    }

    private func seal(last: Bool) throws(DiskVaultError) {
        if segment == 0 {
            try SealedObjectStream.header(id: id).withBytes { (b) throws(DiskVaultError) in try inner.append(b) }
        }
        let ad = SealedObjectStream.associatedData(associatedData, id: id, segment: segment, last: last)
        let box = AESGCM.seal(buffer, key: key, associatedData: ad)
        // The box is AESGCM's magic, then nonce ‖ ciphertext ‖ tag: the segment as stored.
        try box.withBytes { (b) throws(DiskVaultError) in
            try inner.append(UnsafeRawBufferPointer(rebasing: b[AESGCM.magic.count...]))
        }
        buffer.removeAll(keepingCapacity: true)
        segment += 1
    }

    /// Seals the last segment and commits the inner object; on a failure the inner object is abandoned.
    public func commitIfAbsent(durable: Bool) throws(DiskVaultError) -> Bool {
        guard !finished else { throw ended() }
        finished = true
        do throws(DiskVaultError) {
            try seal(last: true)
        } catch {
            abandon()
            throw error
        }
        buffer = []
        return try inner.commitIfAbsent(durable: durable)
    }

    public func abandon() {
        finished = true
        buffer = []
        inner.abandon()
    }
}

/// Reads a sealed stream at any offset, opening only the segments a read touches (the last one opened is
/// kept). The last segment is opened when the reader is made, so that `size` is authenticated before anyone
/// relies on it: an object cut, extended or put together from other segments is refused at once or on the
/// read that touches the damage.
public final class SealedObjectReader: ObjectReader {
    private let inner: any ObjectReader
    private let key: [UInt8]
    private let associatedData: [UInt8]
    private let source: String
    /// The id read from the header; a segment sealed under another does not open.
    private let id: [UInt8]
    /// Segments in the object (at least 1) and the plaintext bytes of the last.
    private let segments: UInt64
    private let lastLength: Int
    public let size: UInt64
    private var cached: (segment: UInt64, plaintext: [UInt8])? = nil

    public init(_ inner: any ObjectReader, key: [UInt8], associatedData: [UInt8], source: String) throws(DiskVaultError) {
        self.inner = inner
        self.key = key
        self.associatedData = associatedData
        self.source = source
        func damaged(_ why: String) -> DiskVaultError {
            DiskVaultError(.corrupt, "sealed object is damaged or was not sealed for this place (\(why))", path: source)
        }
        let headerSize = UInt64(SealedObjectStream.headerSize)
        let overhead = UInt64(SealedObjectStream.overhead)
        let full = UInt64(SealedObjectStream.segmentSize) + overhead
        let innerSize = inner.size
        let versioned = SealedObjectStream.magic.count + 1
        guard innerSize >= UInt64(versioned) else { throw damaged("\(innerSize) bytes, shorter than its header") }
        var header = [UInt8](repeating: 0, count: Int(min(innerSize, headerSize)))
        let got = try header.withMutableBytes { (b) throws(DiskVaultError) in try Self.readFully(inner, into: b, at: 0) }
        guard got >= versioned, header.starts(with: SealedObjectStream.magic) else {
            throw damaged("its header is not a sealed stream's")
        }
        let version = header[versioned - 1]
        guard version == SealedObjectStream.version else {
            let why = version == 1 ? "; version 1, without an object id, was never released" : ""
            let reads = "this build reads version \(SealedObjectStream.version)\(why)"
            throw DiskVaultError(.unsupported, "sealed object stream version \(version) is not supported (\(reads))", path: source)
        }
        guard got == SealedObjectStream.headerSize else {
            throw damaged(innerSize < headerSize ? "\(innerSize) bytes, shorter than its header" : "its header does not read whole")
        }
        self.id = Array(header[versioned...])
        // Whole segments, then what is left for the last: nothing (the last is full) or a nonce, a tag and
        // less than a segment of ciphertext. An empty last segment follows no other.
        let body = innerSize - headerSize
        let whole = body / full, rest = body % full
        let segments: UInt64, lastLength: UInt64
        if rest == 0 && whole > 0 {
            (segments, lastLength) = (whole, UInt64(SealedObjectStream.segmentSize))
        } else if rest >= overhead && (rest > overhead || whole == 0) {
            (segments, lastLength) = (whole + 1, rest - overhead)
        } else {
            throw damaged("its \(innerSize) bytes are not a whole number of segments")
        }
        self.segments = segments
        self.lastLength = Int(lastLength)
        self.size = (segments - 1) * UInt64(SealedObjectStream.segmentSize) + lastLength
        _ = try plaintext(ofSegment: segments - 1)
    }

    /// Reads until `buffer` is full or the object ends.
    private static func readFully(_ object: any ObjectReader, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskVaultError) -> Int {
        var done = 0
        while done < buffer.count {
            let got = try object.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), at: offset + UInt64(done))
            guard got > 0 else { break }
            done += got
        }
        return done
    }

    private func doesNotOpen(_ segment: UInt64) -> DiskVaultError {
        DiskVaultError(.corrupt, "sealed object is damaged or was not sealed for this place (segment \(segment) does not open)", path: source)
    }

    /// The plaintext of segment `i` (`i < segments`), opened or from the cache.
    private func plaintext(ofSegment i: UInt64) throws(DiskVaultError) -> [UInt8] {
        if let cached, cached.segment == i { return cached.plaintext }
        let last = i == segments - 1
        let length = (last ? lastLength : SealedObjectStream.segmentSize)
        let sealedLength = length + SealedObjectStream.overhead
        let unit = UInt64(SealedObjectStream.segmentSize + SealedObjectStream.overhead)
        let offset = UInt64(SealedObjectStream.headerSize) + i * unit
        // AESGCM's box: its magic, then the segment as stored.
        let magic = AESGCM.magic.count
        var box = AESGCM.magic + [UInt8](repeating: 0, count: sealedLength)
        let got = try box.withMutableBytes { (b) throws(DiskVaultError) in
            try Self.readFully(inner, into: UnsafeMutableRawBufferPointer(rebasing: b[magic...]), at: offset)
        }
        guard got == sealedLength else { throw doesNotOpen(i) }
        let ad = SealedObjectStream.associatedData(associatedData, id: id, segment: i, last: last)
        guard let plaintext = AESGCM.open(box, key: key, associatedData: ad), plaintext.count == length else {
            throw doesNotOpen(i)
        }
        cached = (i, plaintext)
        return plaintext
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskVaultError) -> Int {
        guard offset < size, !buffer.isEmpty else { return 0 }
        let n = Int(min(UInt64(buffer.count), size - offset))
        let segmentSize = UInt64(SealedObjectStream.segmentSize)
        var done = 0
        while done < n {
            let at = offset + UInt64(done)
            let segment = at / segmentSize
            let within = Int(at % segmentSize)
            let plaintext = try plaintext(ofSegment: segment)
            let m = min(plaintext.count - within, n - done)
            guard m > 0 else { throw doesNotOpen(segment) }
            plaintext.withUnsafeBytes { p in
                UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + m])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: p[within..<within + m]))
            }
            done += m
        }
        return n
    }
}
