/// Reports how far a long job has come; the command line draws it on a TTY.
public protocol ProgressObserver: AnyObject, Sendable {
    func progress(done: UInt64, total: UInt64?)
    /// A backup's progress: bytes of the disk done, and of them the bytes of new chunks and the blob bytes
    /// stored for them so far.
    func progress(done: UInt64, total: UInt64?, new: UInt64, stored: UInt64)
}

extension ProgressObserver {
    public func progress(done: UInt64, total: UInt64?, new: UInt64, stored: UInt64) {
        progress(done: done, total: total)
    }
}
