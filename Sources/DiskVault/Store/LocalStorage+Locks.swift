#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Locks of a local vault: `locks/<name>.lock`, an empty file that is never removed (removing a lock file lets
/// two processes lock two different files of one name), locked with flock. The kernel decides who holds it and
/// drops a dead holder's lock at once, so taking over after a crash needs no guess about whether the holder is
/// alive, and no file is unlinked on the strength of what another process wrote.
extension LocalStorage {

    public func tryLock(_ name: String, _ mode: LockMode, record: [UInt8]?) throws(DiskVaultError) -> (any StorageLock)? {
        let dir = path(VaultLock.folder)
        try FileSystem.makeDirectories(dir, mode: 0o700)
        let lockPath = "\(dir)/\(name).lock"
        let file: FileDescriptor
        do {
            // O_NOFOLLOW: a symbolic link planted at the lock's name is refused, never followed out of the vault.
            file = try FileDescriptor(path: lockPath, flags: O_RDWR | O_CREAT | O_NOFOLLOW, mode: 0o600, doing: "cannot open lock file")
        } catch where error.cause?.errno == ELOOP || error.cause?.errno == EISDIR {
            throw DiskVaultError(
                .corrupt, "lock file is not a regular file (\(error.cause?.errno == ELOOP ? "a symbolic link" : "a directory")); remove it while no diskvault runs",
                path: lockPath)
        }
        guard try file.status().isRegular else {
            throw DiskVaultError(.corrupt, "lock file is not a regular file; remove it while no diskvault runs", path: lockPath)
        }
        guard try file.tryLock(exclusive: mode == .exclusive) else { return nil }
        guard let record else { return LocalLock(file: file, recordPath: nil, recordKey: nil, problem: nil) }
        let key = "\(VaultLock.folder)/\(name)@\(ProcessLiveness.currentID)-\(randomHex(6)).json"
        do throws(DiskVaultError) {
            // Written in place, not through a temporary file: a record cut short by a crash reads as unreadable and
            // is cleaned up like a dead holder's, and nothing else is ever left behind.
            // Registered before it exists: a SIGTERM between the create and the registration would leave the
            // record behind. The name is this process's own (pid, random), so removing it early harms no one.
            let cleanup = InterruptCleanup.register(path(key))
            let out: FileDescriptor
            do {
                out = try FileDescriptor(path: path(key), flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600, doing: "cannot record lock holder")
            } catch {
                cleanup.cancel()
                throw error
            }
            do {
                try record.withBytes { (b) throws(DiskVaultError) in try out.writeAll([b]) }
                try out.close()
            } catch {
                cleanup.cancel()
                try? FileSystem.remove(path(key))
                throw error
            }
            return LocalLock(file: file, recordPath: path(key), recordKey: key, problem: nil, cleanup: cleanup)
        } catch {
            return LocalLock(file: file, recordPath: nil, recordKey: nil, problem: error.description)
        }
    }

    public func lockRecords(_ name: String) throws(DiskVaultError) -> [LockRecordEntry] {
        try FileSystem.list(path(VaultLock.folder)).filter { $0.hasPrefix("\(name)@") && $0.hasSuffix(".json") }.sorted().map { entry in
            let key = "\(VaultLock.folder)/\(entry)"
            return LockRecordEntry(key: key, bytes: try? FileSystem.readFile(path(key), limit: 64 << 10))
        }
    }
}

/// A flock held through an open lock file; closing the file releases it.
final class LocalLock: StorageLock, @unchecked Sendable {
    private let file: FileDescriptor
    private let recordPath: String?
    let recordKey: String?
    let recordProblem: String?
    private let cleanup: InterruptCleanup.Registration?
    private let released = Mutex(false)

    init(file: FileDescriptor, recordPath: String?, recordKey: String?, problem: String?, cleanup: InterruptCleanup.Registration? = nil) {
        self.file = file
        self.recordPath = recordPath
        self.recordKey = recordKey
        self.recordProblem = problem
        self.cleanup = cleanup
    }

    deinit { release() }

    func release() {
        guard !released.withLock({ let was = $0; $0 = true; return was }) else { return }
        // The record goes first: while it exists the lock is still held, so no reader sees a live holder's record missing.
        if let recordPath { try? FileSystem.remove(recordPath) }
        cleanup?.cancel()
        try? file.close()
    }
}
