import Foundation

/// Applies each disk's policy (protected disks) or the Default one, and removes the points it does not keep:
/// manifest first (the point is gone from then on), then its index and key backup. Blobs stay until gc.
public enum Prune {
    public struct DiskReport: Codable, Sendable {
        public var disk: String
        public var policy: String
        public var decisions: [RetentionDecision]
        /// Points whose manifest cannot be used: never removed by a policy (`points forget` removes one).
        public var damaged: [DamagedPoint]?
        public var warnings: [String]?
    }

    /// Runs prune as a recorded job holding the vault alone.
    public static func run(_ vault: Vault, disk only: String?, now: Date, dryRun: Bool, control: JobControl = .init()) throws(DiskVaultError) -> [DiskReport] {
        try Job.run(vault, kind: .prune, disk: only, control: control) { (outcome) throws(DiskVaultError) in
            let reports = try decide(vault, disk: only, now: now, dryRun: dryRun)
            outcome.warnings = reports.flatMap { $0.warnings ?? [] }
            for w in outcome.warnings { control.notice(w) }
            return reports
        }
    }

    /// Removes one point, damaged or not (`points forget`), as a recorded job holding the vault alone.
    public static func forget(_ vault: Vault, disk: String, point: String, control: JobControl = .init()) throws(DiskVaultError) {
        try Job.run(vault, kind: .forget, disk: disk, control: control) { (outcome) throws(DiskVaultError) in
            outcome.point = point
            try vault.removePoint(disk: disk, id: point)
        }
    }

    private static func decide(_ vault: Vault, disk only: String?, now: Date, dryRun: Bool) throws(DiskVaultError) -> [DiskReport] {
        var reports: [DiskReport] = []
        let disks: [String]
        if let only { disks = [only] } else { disks = try vault.disks() }
        for disk in disks {
            let name = try vault.protection(of: disk)?.policy
            let policy = try vault.policy(name ?? "Default")
            let scan = try vault.scanPoints(disk: disk, now: now)
            let decisions = try policy.prune(scan.points, now: now)
            if !dryRun {
                for d in decisions where !d.keep { try vault.removePoint(disk: disk, id: d.id) }
            }
            let warnings = scan.fromTheFuture.map {
                "point \($0.id) is dated \($0.manifest.created), in the future: the clock of the host that made it was wrong; it is ordered by when it was committed"
            } + scan.damaged.map { "point \($0.id) is damaged and was left alone (\($0.problem)); remove it with diskvault points forget" }
            reports.append(DiskReport(
                disk: disk, policy: policy.name, decisions: decisions, damaged: scan.damaged.isEmpty ? nil : scan.damaged,
                warnings: warnings.isEmpty ? nil : warnings))
        }
        return reports
    }
}
