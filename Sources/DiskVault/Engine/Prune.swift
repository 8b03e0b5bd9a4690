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
            _ = try vault.removeEmptyVMPoints()
        }
    }

    /// Removes a VM point: every disk point it lists, then its record (`vm forget`).
    /// Returns the point removed, nil for a damaged record removed alone.
    @discardableResult
    public static func forgetVM(_ vault: Vault, vm: String, point: String, control: JobControl = .init()) throws(DiskVaultError) -> VMPoint? {
        try Job.run(vault, kind: .forget, disk: nil, control: control) { (outcome) throws(DiskVaultError) in
            // A damaged record is removed as it is: its disk points stay, as ordinary points.
            if try vault.scanVMPoints(vm).damaged.contains(where: { $0.id == point }) {
                try vault.storage.delete(VMPoint.key(vm, point))
                outcome.point = point
                return nil
            }
            let p = try vault.vmPoint(vm, id: point)
            outcome.point = p.id
            for m in p.disks where try vault.storage.list(RecoveryPoint.prefix(disk: m.disk)).contains(m.point) {
                try vault.removePoint(disk: m.disk, id: m.point)
            }
            _ = try vault.removeEmptyVMPoints()
            return p
        }
    }

    private static func decide(_ vault: Vault, disk only: String?, now: Date, dryRun: Bool) throws(DiskVaultError) -> [DiskReport] {
        var reports: [DiskReport] = []
        let disks: [String]
        if let only { disks = [only] } else { disks = try vault.disks() }
        // A VM's disks are pruned as a unit: a disk point is kept while its policy keeps any disk point of the
        // same VM point, so a VM point never loses some of its disks. Every disk is decided first (a VM's other
        // disks too, when one disk is pruned alone).
        var decided: [String: (BackupPolicy, PointScan, [RetentionDecision])] = [:]
        func decision(_ disk: String) throws(DiskVaultError) -> (BackupPolicy, PointScan, [RetentionDecision]) {
            if let d = decided[disk] { return d }
            let name = try vault.protection(of: disk)?.policy
            let policy = try vault.policy(name ?? "Default")
            let scan = try vault.scanPoints(disk: disk, now: now)
            let d = (policy, scan, try policy.prune(scan.points, now: now))
            decided[disk] = d
            return d
        }
        var vmKept: Set<String> = []
        var vmPoints: [String: VMPoint] = [:]
        let allDisks = Set(try vault.disks())
        for vm in try vault.vms() {
            for p in try vault.vmPoints(vm) {
                vmPoints["\(vm)@\(p.id)"] = p
                for m in p.disks where allDisks.contains(m.disk) {
                    if try decision(m.disk).2.contains(where: { $0.id == m.point && $0.keep }) { vmKept.insert("\(vm)@\(p.id)") }
                }
            }
        }
        for disk in disks {
            var (policy, scan, decisions) = try decision(disk)
            for (i, d) in decisions.enumerated() where !d.keep {
                guard let ref = scan.points.first(where: { $0.id == d.id })?.manifest.vm else { continue }
                let key = "\(ref.name)@\(ref.point)"
                if vmKept.contains(key), vmPoints[key]?.disks.contains(where: { $0.disk == disk && $0.point == d.id }) ?? false {
                    decisions[i].keep = true
                    decisions[i].reasons.append("kept with VM point \(key), whose other disks are kept")
                }
            }
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
        if !dryRun { _ = try vault.removeEmptyVMPoints() }
        return reports
    }
}
