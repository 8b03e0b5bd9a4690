/// Reports how far a long job has come; the command line draws it on a TTY.
public protocol ProgressObserver: AnyObject, Sendable {
    func progress(done: UInt64, total: UInt64?)
}
