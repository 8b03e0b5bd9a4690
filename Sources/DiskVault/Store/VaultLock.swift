#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Who holds a lock: enough to tell a live holder from a dead one, and to name it in messages.
public struct LockHolder: Codable, Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    /// The process's start time in clock ticks since boot (/proc/PID/stat), so a reused pid is not mistaken
    /// for the holder.
    public var startTicks: UInt64
    public var host: String
    public var purpose: String
    public var since: String

    public static func current(purpose: String) -> LockHolder {
        LockHolder(pid: getpid(), startTicks: processStartTicks(getpid()) ?? 0, host: ProcessInfo.processInfo.hostName,
                   purpose: purpose, since: Timestamp.format(Date()))
    }

    /// False only when the holder is known to be gone: same host, and no process with that pid and start time.
    public var isAlive: Bool {
        guard host == ProcessInfo.processInfo.hostName else { return true }
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard startTicks != 0, let now = processStartTicks(pid) else { return true }
        return now == startTicks
    }

    public var description: String { "\(purpose) (pid \(pid) on \(host), since \(since))" }
}

func processStartTicks(_ pid: Int32) -> UInt64? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return nil }
    // Fields after "comm)": state is field 3, starttime field 22.
    let fields = text[text.index(after: close)...].split(separator: " ")
    return fields.count > 19 ? UInt64(fields[19]) : nil
}

/// Vault locks, as files under locks/: shared ones (backups, restores) side by side; one exclusive (gc, prune,
/// vault changes) that waits for every shared one to go; and one per disk, so that two backups of a disk never
/// run at once. A lock whose holder died is reported and taken over; a live holder is waited for (up to
/// `wait`) or named in the error.
public final class VaultLock {
    public enum Kind: Sendable { case shared, exclusive, disk(String) }

    let dir: String
    let path: String
    public let holder: LockHolder
    /// Stale locks this acquisition found and took over, for the caller to report.
    public private(set) var takenOver: [String] = []
    private var released = false
    private let cleanup: InterruptCleanup.Registration

    init(dir: String, path: String, holder: LockHolder, takenOver: [String]) {
        self.dir = dir
        self.path = path
        self.holder = holder
        self.takenOver = takenOver
        cleanup = InterruptCleanup.register(path)
    }

    deinit { release() }

    public func release() {
        guard !released else { return }
        released = true
        cleanup.cancel()
        unlink(path)
    }

    /// Acquires a lock on the vault at `root` (a local directory).
    public static func acquire(_ kind: Kind, root: String, purpose: String, wait: TimeInterval = 0) throws(DiskVaultError) -> VaultLock {
        let dir = "\(root)/locks"
        try FileSystem.makeDirectories(dir)
        let holder = LockHolder.current(purpose: purpose)
        let deadline = Date().addingTimeInterval(wait)
        var takenOver: [String] = []
        switch kind {
        case .disk(let name):
            let path = "\(dir)/disk-\(name).json"
            try createExclusiveFile(path, holder: holder, deadline: deadline, takenOver: &takenOver, what: "disk \(name)")
            return VaultLock(dir: dir, path: path, holder: holder, takenOver: takenOver)
        case .shared:
            let path = "\(dir)/shared-\(holder.pid)-\(randomHex(4)).json"
            while true {
                if let owner = try liveHolder("\(dir)/exclusive.json", takenOver: &takenOver) {
                    guard Date() < deadline else {
                        throw DiskVaultError(.alreadyExists, "the vault is locked exclusively by \(owner); try again when it is done", path: root)
                    }
                    Thread.sleep(forTimeInterval: 0.2)
                    continue
                }
                try FileSystem.writeFileAtomically(path, try JSON.encode(holder))
                // An exclusive holder may have appeared meanwhile: it waits for us, unless it came first.
                if FileSystem.exists("\(dir)/exclusive.json"), try liveHolder("\(dir)/exclusive.json", takenOver: &takenOver) != nil {
                    unlink(path)
                    continue
                }
                return VaultLock(dir: dir, path: path, holder: holder, takenOver: takenOver)
            }
        case .exclusive:
            let path = "\(dir)/exclusive.json"
            try createExclusiveFile(path, holder: holder, deadline: deadline, takenOver: &takenOver, what: "the vault")
            let lock = VaultLock(dir: dir, path: path, holder: holder, takenOver: takenOver)
            // Wait for running backups and restores to finish.
            while true {
                var live: [LockHolder] = []
                for name in try FileSystem.list(dir) where name.hasPrefix("shared-") {
                    if let h = try liveHolder("\(dir)/\(name)", takenOver: &takenOver) { live.append(h) }
                }
                lock.takenOver = takenOver
                if live.isEmpty { return lock }
                guard Date() < deadline else {
                    lock.release()
                    throw DiskVaultError(.alreadyExists, "the vault is in use by \(live.map(\.description).joined(separator: ", ")); try again when it is done", path: root)
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    /// The live holder of the lock file at `path`, nil when there is none; a dead holder's file is removed
    /// and reported in `takenOver`.
    static func liveHolder(_ path: String, takenOver: inout [String]) throws(DiskVaultError) -> LockHolder? {
        guard let bytes = try? FileSystem.readFile(path, limit: 1 << 16) else { return nil }
        guard let holder = try? JSONDecoder().decode(LockHolder.self, from: Data(bytes)) else {
            // A lock file cut short by a crash while being written: it holds nothing.
            try FileSystem.remove(path)
            takenOver.append("an unreadable lock file \(FileSystem.lastComponent(of: path))")
            return nil
        }
        if holder.isAlive { return holder }
        try FileSystem.remove(path)
        takenOver.append("a stale lock of \(holder) whose process is gone")
        return nil
    }

    static func createExclusiveFile(
        _ path: String, holder: LockHolder, deadline: Date, takenOver: inout [String], what: String
    ) throws(DiskVaultError) {
        let bytes = try JSON.encode(holder)
        while true {
            let tmp = "\(path).\(randomHex(4)).tmp"
            try FileSystem.writeFileAtomically(tmp, bytes)
            // link() fails when the lock exists: the file appears whole, and only one taker wins.
            let placed = link(tmp, path) == 0
            let e = errno
            unlink(tmp)
            if placed { return }
            guard e == EEXIST else { throw DiskVaultError.system("link", e, path: path, doing: "cannot take lock") }
            if let owner = try liveHolder(path, takenOver: &takenOver) {
                guard Date() < deadline else {
                    throw DiskVaultError(.alreadyExists, "\(what) is locked by \(owner); try again when it is done", path: path)
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }
}
