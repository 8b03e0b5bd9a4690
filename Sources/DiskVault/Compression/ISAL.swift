internal import CISAL

/// zlib-format deflate through ISA-L's igzip: the same format zlib writes and reads, several times faster.
/// One stream and its level buffer per worker, freed in `deinit`.
public final class IsalDeflater {
    private let stream: UnsafeMutablePointer<isal_zstream>
    private let levelBuffer: UnsafeMutableRawBufferPointer

    public init() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: isal_zstream())
        levelBuffer = .allocate(byteCount: Int(dv_isal_level1_buffer_size()), alignment: 64)
    }

    deinit {
        stream.deallocate()
        levelBuffer.deallocate()
    }

    /// Compresses `input` into `output` at level 1; nil when the result does not fit (it did not pay).
    /// The corresponding C function is `isal_deflate_stateless`.
    public func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard input.count <= Int(UInt32.max), output.count > 0 else { return nil }
        isal_deflate_stateless_init(stream)
        stream.pointee.level = 1
        stream.pointee.level_buf = levelBuffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.pointee.level_buf_size = UInt32(levelBuffer.count)
        stream.pointee.gzip_flag = dv_isal_zlib_flag()
        stream.pointee.end_of_stream = 1
        stream.pointee.flush = UInt16(NO_FLUSH)
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.pointee.avail_in = UInt32(input.count)
        stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_out = UInt32(min(output.count, Int(UInt32.max)))
        guard isal_deflate_stateless(stream) == COMP_OK, stream.pointee.avail_in == 0 else { return nil }
        return Int(stream.pointee.total_out)
    }
}

/// zlib-format inflate through ISA-L.
public final class IsalInflater {
    private let state: UnsafeMutablePointer<inflate_state>

    public init() {
        state = .allocate(capacity: 1)
        state.initialize(to: inflate_state())
    }

    deinit { state.deallocate() }

    /// Inflates a whole zlib stream into `output`; its length, or nil when the data is damaged or longer than
    /// `output`. The corresponding C function is `isal_inflate_stateless`.
    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard input.count <= Int(UInt32.max) else { return nil }
        isal_inflate_init(state)
        state.pointee.crc_flag = dv_isal_inflate_zlib_flag()
        state.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        state.pointee.avail_in = UInt32(input.count)
        state.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        state.pointee.avail_out = UInt32(min(output.count, Int(UInt32.max)))
        guard isal_inflate_stateless(state) == ISAL_DECOMP_OK, state.pointee.avail_in == 0 else { return nil }
        return Int(state.pointee.total_out)
    }
}

/// ISA-L's CRC-32 (the gzip polynomial, the same value as zlib's `crc32`) and zero detection.
public enum IsalKernels {
    /// The corresponding C function is `crc32_gzip_refl`.
    public static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        return crc32_gzip_refl(0, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }

    /// The corresponding C function is `isal_zero_detect`.
    public static func isAllZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return true }
        return isal_zero_detect(UnsafeMutableRawPointer(mutating: base), bytes.count) == 0
    }
}
