import Foundation

/// Backs up every protected disk that is due by its policy, each schedule slot once: safe to call from cron or a
/// timer every few minutes, and from two hosts or timers at once.
public enum RunDue {
    public enum Outcome: String, Codable, Sendable {
        case completed, skipped, failed
    }

    public struct Run: Codable, Sendable {
        public var disk: String
        public var slot: String
        public var outcome: Outcome
        public var point: String?
        public var error: String?
        /// The policy's notify command, for a failed run.
        public var notifyCommand: String?
    }

    public static func run(_ vault: Vault, now: Date, control: JobControl = .init()) throws(DiskVaultError) -> [Run] {
        let notice = control.notice
        var runs: [Run] = []
        for due in try DueBackups.due(vault, now: now) {
            let d = due.disk
            var run = Run(disk: d.disk, slot: Timestamp.format(due.slot), outcome: .completed, notifyCommand: due.policy.notifyCommand)
            do {
                var options = BackupOptions(disk: d.disk)
                options.trigger = .scheduled
                options.policy = due.policy.name
                options.now = now
                // Hold the disk, then look again: another run may have backed it up since the list was made.
                let diskLock = try VaultLock.acquire(.disk(d.disk), storage: vault.storage, purpose: "backup of disk \(d.disk)")
                defer { diskLock.release() }
                for stale in diskLock.takenOver { notice("took over \(stale)") }
                for w in diskLock.warnings { notice(w) }
                guard try DueBackups.due(vault, now: now).contains(where: { $0.disk.disk == d.disk }) else {
                    run.outcome = .skipped
                    run.error = "backed up by another run meanwhile"
                    runs.append(run)
                    continue
                }
                let jobControl = JobControl(lockWait: 0, notice: control.notice)
                run.point = try d.backUp(vault, base: options, policy: due.policy, control: jobControl, holding: [.disk(d.disk)]).id
            } catch where error.code == .locked {
                run.outcome = .skipped
                run.error = error.description
            } catch {
                run.outcome = .failed
                run.error = "\(error)"
            }
            runs.append(run)
        }
        return runs
    }
}
