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

/// A program this process runs and waits for (qemu-img): its output captured up to a bound, its exit status.
public enum ExternalCommand {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// The path of `name` on PATH, or nil.
    public static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let dirs: [String] = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        for dir in dirs {
            let p = "\(dir)/\(name)"
            if access(p, X_OK) == 0 { return p }
        }
        return nil
    }

    /// The path of `name`, or an error saying which package provides it and what it is needed for.
    public static func require(_ name: String, package: String, for purpose: String) throws(DiskVaultError) -> String {
        guard let p = find(name) else {
            throw DiskVaultError(.unsupported, "\(name) is not installed (Debian package \(package)); it is needed to \(purpose)")
        }
        return p
    }

    /// Runs `argv` with standard input closed, keeping at most `limit` bytes of each output stream.
    public static func run(_ argv: [String], limit: Int = 1 << 20) throws(DiskVaultError) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        do {
            try process.run()
        } catch {
            throw DiskVaultError(.io, "cannot run \(argv[0]): \(error)")
        }
        // Both streams are drained at once, so that a full pipe never stalls the program.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = drain(err.fileHandleForReading, limit: limit)
            group.leave()
        }
        let outData = drain(out.fileHandleForReading, limit: limit)
        group.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs a hook (`/bin/sh -c command`, a freeze or thaw around a live backup) with `environment` added, its
    /// output on this process's standard error; stopped (SIGTERM, then SIGKILL) after `timeout` seconds. Returns
    /// its exit status: 128+N when a signal N ended it, 127 when it could not start.
    public static func runHook(_ command: String, environment: [String: String], timeout: TimeInterval) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.standardError
        process.standardError = FileHandle.standardError
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        do { try process.run() } catch { return 127 }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            let grace = Date().addingTimeInterval(5)
            while process.isRunning && Date() < grace { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    private static func drain(_ handle: FileHandle, limit: Int) -> Data {
        var kept = Data()
        while true {
            let piece = handle.availableData
            if piece.isEmpty { return kept }
            if kept.count < limit { kept.append(piece.prefix(limit - kept.count)) }
        }
    }
}
