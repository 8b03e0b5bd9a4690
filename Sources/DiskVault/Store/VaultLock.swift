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
    /// How the lock is held (records of locks; job records have none).
    public var mode: LockMode?

    public static func current(purpose: String, mode: LockMode? = nil) -> LockHolder {
        LockHolder(pid: ProcessLiveness.currentID, startTicks: ProcessLiveness.startTicks(of: ProcessLiveness.currentID) ?? 0, host: HostIdentity.name,
                   purpose: purpose, since: Timestamp.format(Date()), mode: mode)
    }

    /// False only when the holder is known to be gone: same host, and no process with that pid and start time.
    public var isAlive: Bool {
        guard host == HostIdentity.name else { return true }
        return ProcessLiveness.isRunning(pid, startTicks: startTicks)
    }

    public var description: String { "\(purpose) (pid \(pid) on \(host), since \(since))" }
}

/// The locks of a vault. Backups and restores share the vault with each other; gc, prune and vault changes hold
/// it exclusively, and one that waits keeps new shared holders out (an "intent" lock), so a stream of backups
/// cannot starve it; each disk has a lock of its own, so two backups of a disk never run at once. The storage
/// decides who holds a lock, atomically (see `VaultLocking`); the records beside it only name holders. A live
/// holder is waited for (up to `wait`) or named in a `.locked` error; a dead holder's lock is already free, and
/// its record is reported ("took over a stale lock of …") and removed by the next exclusive holder.
public final class VaultLock {
    public enum Kind: Sendable, Equatable {
        case shared, exclusive, disk(String)
    }

    public let holder: LockHolder
    /// Stale records this acquisition found and removed, for the caller to report.
    public private(set) var takenOver: [String] = []
    /// Things worth a warning that did not stop the lock (its record could not be written, say).
    public private(set) var warnings: [String] = []
    private let held: [any StorageLock]

    private init(holder: LockHolder, held: [any StorageLock], takenOver: [String], warnings: [String]) {
        self.holder = holder
        self.held = held
        self.takenOver = takenOver
        self.warnings = warnings
    }

    deinit { release() }

    public func release() {
        for lock in held.reversed() { lock.release() }
    }

    static let pollInterval: TimeInterval = 0.1
    /// Where lock files and holders' records live in a vault.
    public static let folder = "locks"

    /// Acquires a lock on the vault whose storage is `storage`, waiting up to `wait` seconds for live holders.
    public static func acquire(
        _ kind: Kind, storage: any VaultStorage, purpose: String, wait: TimeInterval = 0
    ) throws(DiskVaultError) -> VaultLock {
        let deadline = Date().addingTimeInterval(max(0, wait))
        switch kind {
        case .disk(let disk):
            try DiskName.validate(disk)
            let name = "disk-\(disk)"
            let holder = LockHolder.current(purpose: purpose, mode: .exclusive)
            let lock = try waitFor(deadline) { () throws(DiskVaultError) in
                try storage.tryLock(name, .exclusive, record: try JSON.encode(holder, pretty: false))
            } busy: { () throws(DiskVaultError) in
                DiskVaultError(.locked, "disk \(disk) is locked by \(describe(try liveHolders(storage, name))); try again when it is done", path: storage.location)
            }
            var taken: [String] = []
            try removeStale(storage, name, except: lock.recordKey, into: &taken)
            return VaultLock(holder: holder, held: [lock], takenOver: taken, warnings: recordWarnings([lock], storage))
        case .shared:
            let holder = LockHolder.current(purpose: purpose, mode: .shared)
            let record = try JSON.encode(holder, pretty: false)
            func exclusiveHolders() throws(DiskVaultError) -> String {
                describe(try liveHolders(storage, "vault").filter { $0.mode != .shared })
            }
            let lock = try waitFor(deadline) { () throws(DiskVaultError) -> (any StorageLock)? in
                // An exclusive holder or waiter holds the intent lock: a new shared holder waits behind it.
                guard let intent = try storage.tryLock("intent", .shared, record: nil) else { return nil }
                defer { intent.release() }
                return try storage.tryLock("vault", .shared, record: record)
            } busy: { () throws(DiskVaultError) in
                DiskVaultError(.locked, "the vault is locked exclusively by \(try exclusiveHolders()); try again when it is done", path: storage.location)
            }
            return VaultLock(holder: holder, held: [lock], takenOver: [], warnings: recordWarnings([lock], storage))
        case .exclusive:
            let holder = LockHolder.current(purpose: purpose, mode: .exclusive)
            let intent = try waitFor(deadline) { () throws(DiskVaultError) in
                try storage.tryLock("intent", .exclusive, record: nil)
            } busy: { () throws(DiskVaultError) in
                let others = try liveHolders(storage, "vault").filter { $0.mode == .exclusive }
                return DiskVaultError(
                    .locked, "the vault is locked exclusively by \(others.isEmpty ? "another run that is waiting for it" : describe(others)); try again when it is done",
                    path: storage.location)
            }
            // Running backups and restores finish first; new ones wait behind the intent lock meanwhile.
            let lock: any StorageLock
            do {
                lock = try waitFor(deadline) { () throws(DiskVaultError) in
                    try storage.tryLock("vault", .exclusive, record: try JSON.encode(holder, pretty: false))
                } busy: { () throws(DiskVaultError) in
                    DiskVaultError(.locked, "the vault is in use by \(describe(try liveHolders(storage, "vault"))); try again when it is done", path: storage.location)
                }
            } catch {
                intent.release()
                throw error
            }
            intent.release()
            // Holding the vault exclusively, every other record of it is a dead holder's.
            var taken: [String] = []
            try removeStale(storage, "vault", except: lock.recordKey, into: &taken)
            try removeLegacyLockFiles(storage, into: &taken)
            return VaultLock(holder: holder, held: [lock], takenOver: taken, warnings: recordWarnings([lock], storage))
        }
    }

    /// Tries `take` until it returns a lock or the deadline passes; then throws what `busy` describes.
    private static func waitFor(
        _ deadline: Date, _ take: () throws(DiskVaultError) -> (any StorageLock)?, busy: () throws(DiskVaultError) -> DiskVaultError
    ) throws(DiskVaultError) -> any StorageLock {
        while true {
            if let lock = try take() { return lock }
            guard Date() < deadline else { throw try busy() }
            // With jitter: two rivals that backed off together (an object store's leases) do not meet again.
            Thread.sleep(forTimeInterval: min(pollInterval * Double.random(in: 0.5...1.5), max(0.001, deadline.timeIntervalSinceNow)))
        }
    }

    /// The holders named by readable records of lock `name` whose processes live (or whose leases hold).
    static func liveHolders(_ storage: any VaultStorage, _ name: String) throws(DiskVaultError) -> [LockHolder] {
        try storage.lockRecords(name).compactMap { entry -> LockHolder? in
            guard entry.leaseExpired != true, let holder = entry.bytes.flatMap({ try? JSONDecoder().decode(LockHolder.self, from: Data($0)) }) else { return nil }
            // A lease that has not run out holds, even when its holder is seen gone: it runs out by itself.
            return entry.leaseExpired == false || holder.isAlive ? holder : nil
        }
    }

    static func describe(_ holders: [LockHolder]) -> String {
        holders.isEmpty ? "another process (its record cannot be read)" : holders.map(\.description).joined(separator: ", ")
    }

    private static func recordWarnings(_ locks: [any StorageLock], _ storage: any VaultStorage) -> [String] {
        locks.compactMap { $0.recordProblem.map { "this run's lock is held but its holder could not be recorded in \(storage.location)/locks (\($0))" } }
    }

    /// Removes every record of lock `name` but `own`: called only by an exclusive holder, for whom each is a dead
    /// holder's (or one cut short by a crash).
    private static func removeStale(_ storage: any VaultStorage, _ name: String, except own: String?, into taken: inout [String]) throws(DiskVaultError) {
        for entry in try storage.lockRecords(name) where entry.key != own {
            // A lease that has not run out is a rival's that saw this lock and is backing off: not stale.
            if entry.leaseExpired == false { continue }
            if let bytes = entry.bytes, let dead = try? JSONDecoder().decode(LockHolder.self, from: Data(bytes)) {
                // A holder on another host cannot be seen dead from here; it cannot hold this lock now either.
                // A lease that ran out says only that its holder stopped renewing it (dead, frozen or cut off).
                taken.append(entry.leaseExpired == true ? "a stale lock of \(dead) whose lease ran out" : "a stale lock of \(dead) whose process is gone")
            } else {
                taken.append("an unreadable lock record \(FileSystem.lastComponent(of: entry.key))")
            }
            do { try storage.delete(entry.key) } catch {
                taken.append("(it could not be removed: \(error); remove \(storage.location)/\(entry.key) by hand)")
            }
        }
    }

    /// Lock files of format version 1 builds (exclusive.json, shared-*.json, disk-*.json): information only now;
    /// a holder of the vault's exclusive lock removes them, whatever they hold.
    private static func removeLegacyLockFiles(_ storage: any VaultStorage, into taken: inout [String]) throws(DiskVaultError) {
        for name in try storage.list(VaultLock.folder) where !name.contains("@") && !name.hasSuffix(".lock")
            && (name == "exclusive.json" || name.hasPrefix("shared-") || name.hasPrefix("disk-"))
        {
            taken.append("an old lock file \(name)")
            do { try storage.delete("\(VaultLock.folder)/\(name)") } catch {
                taken.append("(it could not be removed: \(error); remove \(storage.location)/\(VaultLock.folder)/\(name) by hand)")
            }
        }
    }
}
