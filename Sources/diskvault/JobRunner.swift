import ArgumentParser
import DiskVault

struct LockOptions: ParsableArguments {
    @Option(name: .long, help: "Seconds to wait for a lock another run holds (default 0: fail at once, naming the holder).")
    var lockWait: Double = 0
}

struct JobOutcome {
    var bytes: UInt64? = nil
    var point: String? = nil
    var warnings: [String] = []
}

/// Runs a command's work as a recorded job under the vault locks it needs. Locks are released when it ends,
/// however it ends; a stale lock that was taken over is reported.
func runJob<T>(
    _ vault: Vault, kind jobKind: String, disk: String?, locks: [VaultLock.Kind], wait: Double,
    _ body: (inout JobOutcome) throws -> T
) throws -> T {
    var held: [VaultLock] = []
    defer { held.reversed().forEach { $0.release() } }
    for kind in locks {
        let lock = try VaultLock.acquire(kind, storage: vault.storage, purpose: kind.purpose(job: jobKind, disk: disk), wait: wait)
        for stale in lock.takenOver { Terminal.warning("took over \(stale)") }
        for w in lock.warnings { Terminal.warning(w) }
        held.append(lock)
    }
    let job = Job.start(vault, kind: jobKind, disk: disk)
    defer { if let problem = job.recordProblem { Terminal.warning(problem) } }
    var outcome = JobOutcome()
    do {
        let result = try body(&outcome)
        job.finish(bytes: outcome.bytes, point: outcome.point, warnings: outcome.warnings)
        return result
    } catch let failed as CommandFailed {
        job.finish(error: DiskVaultError(.corrupt, "finished with problems (exit \(failed.status))"), bytes: outcome.bytes, point: outcome.point)
        throw failed
    } catch {
        job.finish(error: error, bytes: outcome.bytes, point: outcome.point)
        throw error
    }
}

extension VaultLock.Kind {
    /// How a holder is named in another run's message: "backup of disk web".
    func purpose(job: String, disk: String?) -> String {
        job + (disk.map { " of disk \($0)" } ?? "")
    }
}
