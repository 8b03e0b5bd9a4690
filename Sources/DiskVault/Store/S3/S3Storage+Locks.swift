import Foundation
import Synchronization

/// Locks of an object-store vault: leases. A holder puts `locks/<name>@<mode><lease>-<host>-<pid>-<random>.json`
/// (its record, or nothing), then lists the lock's leases: if one that has not run out conflicts with its mode,
/// it deletes its own and has not got the lock. With puts and lists that are strongly consistent (AWS S3 since
/// 2020, MinIO, Ceph RGW, SeaweedFS), two rivals can never both hold it: the later of the two lists sees the
/// other's lease. (Both may back off at once; the caller tries again.) A holder renews its lease (puts it
/// again) every quarter of its length; a lease whose last put is older than its length — by the store's own
/// clock, Last-Modified against the listing's Date, so hosts' clocks do not matter — belongs to a holder that
/// died or lost the store, and is ignored, and removed by the next exclusive holder. A holder whose renewals
/// failed for half its lease stops renewing and refuses to commit (`confirm`): by then a rival may judge it gone.
extension S3Storage {
    public func tryLock(_ name: String, _ mode: LockMode, record: [UInt8]?) throws(DiskVaultError) -> (any StorageLock)? {
        let key = "\(VaultLock.folder)/\(name)@\(mode == .exclusive ? "x" : "s")\(leaseSeconds)-\(HostIdentity.tag)-\(ProcessLiveness.currentID)-\(randomHex(6)).json"
        let content = record ?? []
        let started = Monotonic.seconds()
        try replace(key, content)
        let lock = S3Lock(storage: self, key: key, content: content, hasRecord: record != nil, renewed: started)
        do throws(DiskVaultError) {
            let (leases, now) = try self.leases(name)
            for lease in leases where lease.key != key && !lease.expired(now: now) {
                if mode == .exclusive || lease.mode == .exclusive {
                    lock.release()
                    return nil
                }
            }
        } catch {
            lock.release()
            throw error
        }
        held.withLock { $0.append(lock) }
        LeaseRenewer.shared.add(lock)
        return lock
    }

    public func lockRecords(_ name: String) throws(DiskVaultError) -> [LockRecordEntry] {
        let (leases, now) = try self.leases(name)
        var entries: [LockRecordEntry] = []
        for lease in leases {
            let bytes: [UInt8]?
            do { bytes = try get(lease.key, limit: 64 << 10) } catch where error.code == .notFound { continue } catch { bytes = nil }
            // A lease with no record (an intent lock's) names no one.
            if bytes?.isEmpty == true { continue }
            entries.append(LockRecordEntry(key: lease.key, bytes: bytes, leaseExpired: lease.expired(now: now)))
        }
        return entries
    }

    struct Lease {
        var key: String
        var mode: LockMode
        var seconds: Double
        var modified: Double?

        /// Run out by the store's clock; a lease whose time cannot be read never runs out (it is not taken over).
        func expired(now: Double?) -> Bool {
            guard let now, let modified else { return false }
            // Last-Modified and Date have whole seconds: two seconds of slack.
            return now - modified > seconds + 2
        }
    }

    /// The leases of lock `name`, and the store's time of the listing.
    func leases(_ name: String) throws(DiskVaultError) -> ([Lease], Double?) {
        let folder = objectKey(VaultLock.folder) + "/"
        let prefix = folder + "\(name)@"
        var found: [Lease] = []
        var now: Double?
        try forEachPage(prefix: prefix, delimiter: nil) { page in
            now = page.serverTime ?? now
            for o in page.objects where o.key.hasPrefix(prefix) && o.key.hasSuffix(".json") {
                let tail = o.key.dropFirst(prefix.count)
                guard let m = tail.first, m == "x" || m == "s",
                    let dash = tail.firstIndex(of: "-"), let seconds = Double(tail[tail.index(after: tail.startIndex)..<dash])
                else { continue }
                found.append(Lease(key: String(o.key.dropFirst(folder.count - VaultLock.folder.count - 1)), mode: m == "x" ? .exclusive : .shared, seconds: seconds, modified: o.modified))
            }
        }
        return (found, now)
    }
}

/// A lease this process holds on a lock of an `S3Storage`.
final class S3Lock: StorageLock, @unchecked Sendable {
    let storage: S3Storage
    let key: String
    let content: [UInt8]
    let hasRecord: Bool
    var recordKey: String? { hasRecord ? key : nil }
    let recordProblem: String? = nil
    private struct State {
        /// Monotonic seconds at the start of the last put that succeeded.
        var renewed: Double
        var released = false
        var lapsed = false
        var lastProblem: String?
    }
    private let state: Mutex<State>

    init(storage: S3Storage, key: String, content: [UInt8], hasRecord: Bool, renewed: Double) {
        self.storage = storage
        self.key = key
        self.content = content
        self.hasRecord = hasRecord
        state = Mutex(State(renewed: renewed))
    }

    deinit { release() }

    var lease: Double { Double(storage.leaseSeconds) }

    /// Puts the lease again when a quarter of it has passed; stops for good once half of it passed without one.
    func renewIfDue() {
        let due = state.withLock { s -> Bool in
            let age = Monotonic.seconds() - s.renewed
            if s.released || s.lapsed { return false }
            if age > lease / 2 {
                s.lapsed = true
                return false
            }
            return age >= lease / 4
        }
        guard due else { return }
        let started = Monotonic.seconds()
        do {
            try storage.replace(key, content)
            state.withLock { s in
                // A release meanwhile: the put made the lease again, so it goes again.
                if !s.lapsed { s.renewed = max(s.renewed, started) }
            }
            if state.withLock({ $0.released }) { try? storage.delete(key) }
        } catch {
            state.withLock { $0.lastProblem = error.description }
        }
    }

    var isOver: Bool { state.withLock { $0.released || $0.lapsed } }

    /// Throws when the lease may have run out for others (renewals failed for half of it), so that nothing is
    /// committed or deleted under a lock another run may have taken over.
    func confirm() throws(DiskVaultError) {
        let (age, lapsed, released, problem) = state.withLock { s in (Monotonic.seconds() - s.renewed, s.lapsed, s.released, s.lastProblem) }
        guard !released, lapsed || age > lease / 2 else { return }
        throw DiskVaultError(
            .locked, "this run's lock lapsed: its lease was last renewed \(Int(age)) s ago (a lease lasts \(Int(lease)) s\(problem.map { "; \($0)" } ?? "")), so another run may hold the vault now; nothing more is written",
            path: storage.location)
    }

    func release() {
        guard !state.withLock({ let was = $0.released; $0.released = true; return was }) else { return }
        storage.held.withLock { $0.removeAll { $0 === self } }
        try? storage.delete(key)
    }
}

/// One thread that renews every lease this process holds.
final class LeaseRenewer: @unchecked Sendable {
    static let shared = LeaseRenewer()
    private let locks = Mutex<[S3Lock]>([])
    private let started = Mutex(false)

    func add(_ lock: S3Lock) {
        locks.withLock { $0.append(lock) }
        let start = started.withLock { s -> Bool in
            defer { s = true }
            return !s
        }
        guard start else { return }
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: 0.5)
                let current = locks.withLock { list -> [S3Lock] in
                    list.removeAll { $0.isOver }
                    return list
                }
                for lock in current { lock.renewIfDue() }
            }
        }
        thread.name = "diskvault lease renewal"
        thread.start()
    }
}

/// Seconds on a clock that only goes forward.
enum Monotonic {
    static func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}

/// The name this process gives its host in locks and jobs: DISKVAULT_HOST, or the host name.
public enum HostIdentity {
    public static let name: String = {
        let given = ProcessInfo.processInfo.environment["DISKVAULT_HOST"] ?? ""
        return given.isEmpty ? ProcessInfo.processInfo.hostName : given
    }()

    /// The name as it may appear in an object key: letters, digits, '.', '-' and '_', at most 32 of them.
    static let tag: String = {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._")
        let t = String(name.map { allowed.contains($0) ? $0 : "_" }.prefix(32))
        return t.isEmpty ? "host" : t
    }()
}
