import Foundation

/// A fixed set of chunk buffers: taking one blocks while all are in use, which bounds the memory of a pipeline.
final class BufferPool: @unchecked Sendable {
    private let lock = NSCondition()
    private var free: [ByteBuffer]
    private var closed = false

    init(count: Int, capacity: Int) {
        free = (0..<count).map { _ in ByteBuffer(capacity: capacity) }
    }

    func take() -> ByteBuffer {
        lock.lock()
        defer { lock.unlock() }
        while free.isEmpty { lock.wait() }
        return free.removeLast()
    }

    /// A buffer, or nil once the pool is closed: for a pipeline whose results hold buffers, which a failure drops
    /// without giving back, so that its producer is not left waiting for them.
    func takeUnlessClosed() -> ByteBuffer? {
        lock.lock()
        defer { lock.unlock() }
        while free.isEmpty && !closed { lock.wait() }
        return closed ? nil : free.removeLast()
    }

    func close() {
        lock.lock()
        closed = true
        lock.broadcast()
        lock.unlock()
    }

    func give(_ buffer: ByteBuffer) {
        lock.lock()
        free.append(buffer)
        lock.signal()
        lock.unlock()
    }
}
