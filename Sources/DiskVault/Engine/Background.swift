import Foundation
import Synchronization

/// One piece of work on a thread of its own, beside the caller's: `wait` for its result, `failed` to learn
/// early that it threw. `join` before anything it uses goes away.
final class Background<T>: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    /// Written by the thread before it signals `finished`, read only after waiting for it.
    private var outcome: Result<T, DiskVaultError>?
    private let hasFailed = Atomic<Bool>(false)
    private let joined = Atomic<Bool>(false)

    init(_ work: @escaping () throws(DiskVaultError) -> T) {
        let box = UncheckedBox(work)
        let thread = Thread { [self] in
            let result: Result<T, DiskVaultError>
            do throws(DiskVaultError) {
                result = .success(try box.value())
            } catch {
                result = .failure(error)
            }
            outcome = result
            if case .failure = result { hasFailed.store(true, ordering: .releasing) }
            finished.signal()
        }
        thread.name = "diskvault-background"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Work already done on the caller's thread (too little to be worth a thread).
    init(done result: Result<T, DiskVaultError>) {
        outcome = result
        if case .failure = result { hasFailed.store(true, ordering: .releasing) }
        finished.signal()
    }

    /// True once the work has ended with an error.
    var failed: Bool { hasFailed.load(ordering: .acquiring) }

    /// Blocks until the work has ended.
    func join() {
        if joined.load(ordering: .acquiring) { return }
        finished.wait()
        joined.store(true, ordering: .releasing)
    }

    /// The work's result, once it has ended; rethrows its error.
    func wait() throws(DiskVaultError) -> T {
        join()
        return try outcome!.get()
    }
}
