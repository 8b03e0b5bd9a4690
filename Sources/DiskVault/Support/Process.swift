#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Processes on this host as lock holders and temporary files name them: a pid and its start time, so that a
/// reused pid is not taken for the process that recorded it.
public enum ProcessLiveness {
    /// This process's id. The corresponding C function is `getpid`.
    public static var currentID: Int32 { getpid() }

    /// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), nil when it cannot be
    /// read (no such process, no /proc).
    public static func startTicks(of pid: Int32) -> UInt64? {
        // /proc files report size 0, so they are read as text to their end, not by their size.
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Fields after "comm)": state is field 3, starttime field 22.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// Whether a process with this pid exists (EPERM: it does, owned by another user). The corresponding C
    /// function is `kill` with signal 0.
    public static func exists(_ pid: Int32) -> Bool {
        switch retryingEINTR({ kill(pid, 0) }) {
        case .success: return true
        case .failure(let e): return e == EPERM
        }
    }

    /// False only when the process is known gone: no process with `pid`, or one that started at another time
    /// than `startTicks` (0: unknown, then any process with the pid counts).
    public static func isRunning(_ pid: Int32, startTicks: UInt64) -> Bool {
        guard exists(pid) else { return false }
        guard startTicks != 0, let now = self.startTicks(of: pid) else { return true }
        return now == startTicks
    }
}
