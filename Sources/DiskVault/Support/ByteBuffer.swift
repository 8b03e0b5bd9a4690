/// A fixed-size, aligned, uninitialised byte buffer owned by one holder at a time; freed in `deinit`.
/// Chunk data lives in these so that a backup or restore allocates a bounded set once, not per chunk.
/// The pointers it hands out are valid only while the buffer is referenced: hold it (a pool, a codec, a
/// worker's closure) for as long as they are used.
public final class ByteBuffer: @unchecked Sendable {
    public let storage: UnsafeMutableRawBufferPointer
    public var capacity: Int { storage.count }

    public init(capacity: Int) {
        storage = .allocate(byteCount: max(capacity, 1), alignment: 4096)
    }

    deinit { storage.deallocate() }

    public func prefix(_ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage[0..<count])
    }

    public func mutablePrefix(_ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: storage[0..<count])
    }
}

/// True when every byte is zero (ISA-L's vectorised check).
@inline(__always)
public func isAllZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
    IsalKernels.isAllZero(bytes)
}
