internal import CLinux

/// Paths removed if the process is interrupted (Ctrl-C, SIGTERM, SIGHUP): a restore's half-written disk and the
/// locks a run holds. The handler itself lives in C, where only async-signal-safe calls are made.
public enum InterruptCleanup {
    /// Installs the handler; the command line calls this once at start.
    public static func install() { dv_cleanup_install() }

    /// Removes `path` on interruption until the returned registration is cancelled.
    public static func register(_ path: String) -> Registration { Registration(slot: dv_cleanup_register(path)) }

    public struct Registration: Sendable {
        let slot: Int32
        public func cancel() { dv_cleanup_unregister(slot) }
    }

    /// Runs `body` with the first interruption deferred: it is recorded, `checkInterrupted` throws, and the run
    /// unwinds through its teardown (a backup job in a running qemu is cancelled, its bitmaps put back); when
    /// `body` has returned or thrown, the process dies of the signal as it would have. A second signal acts at once.
    public static func deferring<T>(_ body: () throws(DiskVaultError) -> T) throws(DiskVaultError) -> T {
        dv_cleanup_defer(1)
        defer {
            dv_cleanup_defer(0)
            dv_cleanup_raise_pending()
        }
        return try body()
    }

    /// Runs `body` with interruptions deferred, for a run that an interruption ends normally (a server stops on
    /// SIGINT or SIGTERM): `body` watches `pendingSignal`, and the signal is forgotten once `body` returns. A
    /// second signal acts at once.
    public static func stoppedBySignal<T>(_ body: () throws(DiskVaultError) -> T) throws(DiskVaultError) -> T {
        dv_cleanup_defer(1)
        defer {
            _ = dv_cleanup_take_pending()
            dv_cleanup_defer(0)
        }
        return try body()
    }

    /// The signal recorded while deferred, or nil.
    public static var pendingSignal: Int32? {
        let s = dv_cleanup_pending()
        return s == 0 ? nil : s
    }

    /// Throws when a deferred interruption is waiting.
    public static func checkInterrupted() throws(DiskVaultError) {
        if let s = pendingSignal { throw DiskVaultError(.interrupted, "interrupted (signal \(s)); nothing was committed") }
    }
}
