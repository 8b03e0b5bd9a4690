import Foundation
import Synchronization

/// One piece of work beside the caller's: `wait` for its result, `failed` to learn early that it threw.
/// `join` before anything it uses goes away.
final class Background<T>: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    /// Written before `finished` is signalled, read only after waiting for it.
    private var outcome: Result<T, DiskVaultError>?
    private let hasFailed = Atomic<Bool>(false)

    /// Runs `work` on a thread of its own, or at once on the caller's when it is too little to be worth one.
    init(onItsOwnThread: Bool = true, _ work: @escaping () throws(DiskVaultError) -> T) {
        guard onItsOwnThread else {
            finish(work)
            return
        }
        let box = UncheckedBox(work)
        let thread = Thread { [self] in finish(box.value) }
        thread.name = "diskvault-background"
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func finish(_ work: () throws(DiskVaultError) -> T) {
        do throws(DiskVaultError) {
            outcome = .success(try work())
        } catch {
            outcome = .failure(error)
            hasFailed.store(true, ordering: .releasing)
        }
        finished.signal()
    }

    /// True once the work has ended with an error.
    var failed: Bool { hasFailed.load(ordering: .acquiring) }

    /// Blocks until the work has ended; any number of times.
    func join() {
        finished.wait()
        finished.signal()
    }

    /// The work's result, once it has ended; rethrows its error.
    func wait() throws(DiskVaultError) -> T {
        join()
        return try outcome!.get()
    }
}
