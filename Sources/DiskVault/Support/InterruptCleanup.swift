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
}
