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

/// Reports how far a long job has come; the command line draws it on a TTY.
public protocol ProgressObserver: AnyObject, Sendable {
    func progress(done: UInt64, total: UInt64?)
}

/// How many worker threads to use by default: one per core, and one more. Workers write blobs and restored
/// chunks with direct I/O, so each spends part of its time waiting on the disk; the extra worker keeps every
/// core busy meanwhile (measured on 2 cores: a full backup of ciphertext 10-20% faster, a restore 10-30%).
public func defaultThreadCount() -> Int {
    max(1, ProcessInfo.processInfo.activeProcessorCount) + 1
}

/// The most chunks of zeros or holes a pipeline carries as one item: long runs are still cut now and then,
/// so that progress moves across them.
let maxZeroRun = 1 << 14

/// Buffers in flight for a pipeline over chunks of `chunkSize`: enough to keep every worker busy,
/// few enough that chunk buffers stay within about 32 MiB whatever the image size.
func pipelineDepth(workers: Int, chunkSize: Int) -> Int {
    max(2, min(workers + 2, (32 << 20) / chunkSize))
}
