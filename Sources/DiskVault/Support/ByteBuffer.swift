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

/// True when every byte is zero.
@inline(__always)
public func isAllZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
    let count = bytes.count
    guard count > 0, let base = bytes.baseAddress else { return true }
    // Words first (the buffer is aligned), then the tail.
    let words = count / 8
    let w = base.assumingMemoryBound(to: UInt64.self)
    var i = 0
    while i + 4 <= words {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3]) != 0 { return false }
        i += 4
    }
    while i < words {
        if w[i] != 0 { return false }
        i += 1
    }
    var j = words * 8
    while j < count {
        if bytes[j] != 0 { return false }
        j += 1
    }
    return true
}
