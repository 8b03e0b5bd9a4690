import Foundation

/// What a job does; each kind takes the locks it needs (`locks(disk:)`), whoever calls it.
public enum JobKind: String, Codable, Sendable, CaseIterable {
    case backup, restore, verify, prune, gc, forget, repair, copy, serve
    case keysRestore = "keys-restore"

    /// The vault locks a job of this kind holds while it runs: a backup (and a copy into the vault) holds its disk
    /// (one backup of a disk at a time) and shares the vault; a restore, verify, repair (which stores blobs as a backup does) or serve
    /// (for as long as it serves: no gc frees a chunk under a client) shares it;
    /// gc, prune and forget hold it alone.
    public func locks(disk: String?) -> [VaultLock.Kind] {
        switch self {
        case .backup, .copy: return (disk.map { [.disk($0)] } ?? []) + [.shared]
        case .restore, .verify, .keysRestore, .repair, .serve: return [.shared]
        case .prune, .gc, .forget: return [.exclusive]
        }
    }
}

public enum JobState: String, Codable, Sendable {
    case inProgress = "in-progress"
    case completed
    case completedWithWarnings = "completed-with-warnings"
    case failed
}

/// A record of one backup, restore, verify, prune or gc: jobs/<id>.json, written when it starts and when it
/// ends. A job whose process died shows as failed, not in progress forever.
public struct JobRecord: Codable, Sendable, Equatable {
    public var id: String
    public var kind: JobKind
    public var disk: String?
    public var state: JobState
    public var holder: LockHolder
    public var started: String
    public var ended: String?
    public var bytes: UInt64?
    public var point: String?
    public var error: String?
    public var warnings: [String]?
}

public final class Job {
    let vault: Vault
    public private(set) var record: JobRecord
    /// Why the record could not be written, when it could not.
    public private(set) var recordProblem: String?
    private var written = false

    static func key(_ id: String) -> String { "jobs/\(id).json" }

    /// Records the start of a job. A record that cannot be written (a full vault disk) never stops the job:
    /// `recordProblem` says why, for a warning.
    public static func start(_ vault: Vault, kind: JobKind, disk: String?) -> Job {
        let now = Date()
        let id = "\(RecoveryPoint.newID(at: now))-\(kind.rawValue)"
        let record = JobRecord(id: id, kind: kind, disk: disk, state: .inProgress, holder: .current(purpose: kind.rawValue), started: Timestamp.format(now))
        let job = Job(vault: vault, record: record)
        do {
            try vault.storage.replace(key(id), try JSON.encode(record))
            job.written = true
        } catch {
            job.recordProblem = "the job's record could not be written (\(error))"
        }
        return job
    }

    init(vault: Vault, record: JobRecord) {
        self.vault = vault
        self.record = record
    }

    /// Records the end of the job. A failure to write the record is not allowed to hide the job's own outcome:
    /// the start record, which would claim the job never ended, is removed instead (removing needs no space),
    /// and `recordProblem` says what happened.
    public func finish(error: Error? = nil, bytes: UInt64? = nil, point: String? = nil, warnings: [String] = []) {
        record.ended = Timestamp.format(Date())
        record.bytes = bytes
        record.point = point
        record.warnings = warnings.isEmpty ? nil : warnings
        if let error {
            record.state = .failed
            record.error = "\(error)"
        } else {
            record.state = warnings.isEmpty ? .completed : .completedWithWarnings
        }
        do {
            try vault.storage.replace(Self.key(record.id), try JSON.encode(record))
        } catch {
            if written { try? vault.storage.delete(Self.key(record.id)) }
            recordProblem = recordProblem ?? "the job's record could not be written (\(error))"
        }
    }

    /// Every job, oldest first; one still "in progress" whose process is gone is reported failed.
    public static func list(_ vault: Vault) throws(DiskVaultError) -> [JobRecord] {
        var out: [JobRecord] = []
        for name in try vault.storage.list("jobs") where name.hasSuffix(".json") {
            guard let bytes = try? vault.storage.get("jobs/\(name)", limit: 1 << 20),
                var record = try? JSONDecoder().decode(JobRecord.self, from: Data(bytes))
            else { continue }
            if record.state == .inProgress && !record.holder.isAlive {
                record.state = .failed
                record.error = "the process (pid \(record.holder.pid)) died, or could not record the end of the job"
            }
            out.append(record)
        }
        return out.sorted { ($0.started, $0.id) < ($1.started, $1.id) }
    }

    public static func find(_ vault: Vault, id: String) throws(DiskVaultError) -> JobRecord {
        guard let job = try list(vault).first(where: { $0.id == id }) else {
            throw DiskVaultError(.notFound, "no job \(id) in vault", path: vault.location)
        }
        return job
    }
}

/// What a job reports when it ends, beside its own result.
/// How a job waits for the locks its kind needs, and who hears what is worth a warning (stale locks taken over,
/// a job record that could not be written, damaged points skipped).
public struct JobControl: Sendable {
    public var lockWait: TimeInterval
    public var notice: @Sendable (String) -> Void

    public init(lockWait: TimeInterval = 0, notice: @escaping @Sendable (String) -> Void = { _ in }) {
        self.lockWait = lockWait
        self.notice = notice
    }
}

public struct JobOutcome: Sendable {
    public var bytes: UInt64? = nil
    public var point: String? = nil
    public var warnings: [String] = []

    public init() {}
}

extension Job {
    /// Runs `body` as a recorded job of `kind` under the locks that kind needs, waiting up to `lockWait` seconds
    /// for them. Locks and the record are released and closed however the job ends. `notice` hears what is
    /// worth a warning: stale locks taken over, a record that could not be written.
    /// `holding` names locks the caller already holds for this job (run-due holds the disk while it decides).
    public static func run<T>(
        _ vault: Vault, kind: JobKind, disk: String?, control: JobControl, holding: [VaultLock.Kind] = [],
        _ body: (inout JobOutcome) throws(DiskVaultError) -> T
    ) throws(DiskVaultError) -> T {
        let notice = control.notice
        var held: [VaultLock] = []
        defer { held.reversed().forEach { $0.release() } }
        for lockKind in kind.locks(disk: disk) where !holding.contains(lockKind) {
            let lock = try VaultLock.acquire(lockKind, storage: vault.storage, purpose: kind.rawValue + (disk.map { " of disk \($0)" } ?? ""), wait: control.lockWait)
            for stale in lock.takenOver { notice("took over \(stale)") }
            for w in lock.warnings { notice(w) }
            held.append(lock)
        }
        let job = Job.start(vault, kind: kind, disk: disk)
        defer { if let problem = job.recordProblem { notice(problem) } }
        var outcome = JobOutcome()
        do {
            let result = try body(&outcome)
            job.finish(bytes: outcome.bytes, point: outcome.point, warnings: outcome.warnings)
            return result
        } catch {
            // A usage error is the caller's typo, not a job that ran: its record is dropped, not kept forever.
            if error.code == .usage {
                job.discard()
            } else {
                job.finish(error: error, bytes: outcome.bytes, point: outcome.point)
            }
            throw error
        }
    }

    /// Removes the job's record (a job that never really began).
    func discard() {
        if written { try? vault.storage.delete(Self.key(record.id)) }
    }

    /// The default age past which `jobs prune` removes a finished job's record.
    public static let defaultRecordAge: TimeInterval = 90 * 86400

    /// Removes the records of jobs that ended more than `olderThan` before `now` (jobs still running stay);
    /// returns the ids removed (or, with `dryRun`, that would be).
    public static func prune(_ vault: Vault, olderThan: TimeInterval, now: Date, dryRun: Bool) throws(DiskVaultError) -> [String] {
        var removed: [String] = []
        for job in try list(vault) where job.state != .inProgress {
            guard let ended = job.ended.flatMap(Timestamp.parse) ?? Timestamp.parse(job.started), now.timeIntervalSince(ended) > olderThan else { continue }
            if !dryRun { try vault.storage.delete(key(job.id)) }
            removed.append(job.id)
        }
        return removed
    }
}
