import Foundation

/// A record of one backup, restore, verify, prune or gc: jobs/<id>.json, written when it starts and when it
/// ends. A job whose process died shows as failed, not in progress forever.
public struct JobRecord: Codable, Sendable, Equatable {
    public var id: String
    /// "backup", "restore", "verify", "prune", "gc".
    public var kind: String
    public var disk: String?
    /// "in-progress", "completed", "completed-with-warnings" or "failed".
    public var state: String
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
    public static func start(_ vault: Vault, kind: String, disk: String?) -> Job {
        let now = Date()
        let id = "\(RecoveryPoint.newID(at: now))-\(kind)"
        let record = JobRecord(id: id, kind: kind, disk: disk, state: "in-progress", holder: .current(purpose: kind), started: Timestamp.format(now))
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
            record.state = "failed"
            record.error = "\(error)"
        } else {
            record.state = warnings.isEmpty ? "completed" : "completed-with-warnings"
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
            if record.state == "in-progress" && !record.holder.isAlive {
                record.state = "failed"
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
