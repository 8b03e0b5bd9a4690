internal import CZlib

/// CRC-32 (the zlib/gzip polynomial), computed by ISA-L; zlib's is kept as the reference.
public enum CRC32 {
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        IsalKernels.crc32(bytes)
    }

    /// zlib's `crc32`, the reference the fast one is tested against.
    public static func zlibChecksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        var crc = UInt(seed)
        var p = base.assumingMemoryBound(to: UInt8.self)
        var left = bytes.count
        while left > 0 {
            let n = min(left, Int(UInt32.max >> 1))
            crc = crc32(crc, p, UInt32(n))
            p += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}

/// zlib-format deflate through zlib; one stream, reset per chunk, freed in `deinit`.
public final class ZlibDeflater {
    private let stream: UnsafeMutablePointer<z_stream>
    public let level: Int32

    public init(level: Int32 = 1) {
        self.level = level
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard dv_deflate_init(stream, level) == Z_OK else { fatalError("deflateInit failed: out of memory") }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// Worst-case compressed size of `count` bytes.
    public static func bound(_ count: Int) -> Int { Int(compressBound(UInt(count))) }

    /// Compresses `input` into `output`; nil when the result does not fit (it did not pay).
    public func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        deflateReset(stream)
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.pointee.avail_in = UInt32(input.count)
        stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_out = UInt32(output.count)
        let rc = deflate(stream, Z_FINISH)
        guard rc == Z_STREAM_END else { return nil }
        return output.count - Int(stream.pointee.avail_out)
    }
}

/// zlib-format inflate through zlib; freed in `deinit`.
public final class ZlibInflater {
    private let stream: UnsafeMutablePointer<z_stream>

    public init() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard dv_inflate_init(stream) == Z_OK else { fatalError("inflateInit failed: out of memory") }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Inflates a whole zlib stream into `output`; returns the length, or nil when the data is damaged,
    /// longer than `output`, or followed by garbage.
    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        inflateReset(stream)
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.pointee.avail_in = UInt32(input.count)
        stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_out = UInt32(output.count)
        let rc = inflate(stream, Z_FINISH)
        guard rc == Z_STREAM_END, stream.pointee.avail_in == 0 else { return nil }
        return output.count - Int(stream.pointee.avail_out)
    }
}
