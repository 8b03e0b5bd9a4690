import Foundation

/// A protected disk: its source image, its policy and its key-vault settings, so that a scheduled run needs
/// no other arguments. Stored as disks/<disk>/disk.json.
public struct ProtectedDisk: Codable, Sendable, Equatable {
    public var disk: String
    public var source: String
    public var policy: String
    public var keyVault: KeyVaultAccess?
    public var declareEncrypted: String?
    public var withoutKeys: Bool?
    public var created: String

    public init(disk: String, source: String, policy: String, keyVault: KeyVaultAccess?, declareEncrypted: String?, withoutKeys: Bool?, created: String) {
        self.disk = disk
        self.source = source
        self.policy = policy
        self.keyVault = keyVault
        self.declareEncrypted = declareEncrypted
        self.withoutKeys = withoutKeys
        self.created = created
    }
}

extension Vault {
    static func policyKey(_ name: String) -> String { "policies/\(name).json" }
    static func protectionKey(_ disk: String) -> String { "disks/\(disk)/disk.json" }

    /// Every policy, the built-in Default first (it exists in every vault, stored or not).
    public func policies() throws(DiskVaultError) -> [BackupPolicy] {
        var out: [String: BackupPolicy] = ["Default": .default]
        for name in try storage.list("policies") where name.hasSuffix(".json") {
            let key = "policies/\(name)"
            let policy = try BackupPolicy.decode(try storage.get(key, limit: 1 << 20), source: "\(location)/\(key)")
            out[policy.name] = policy
        }
        return out.values.sorted { a, b in
            a.name == "Default" ? b.name != "Default" : (b.name != "Default" && a.name < b.name)
        }
    }

    public func policy(_ name: String) throws(DiskVaultError) -> BackupPolicy {
        guard let p = try policies().first(where: { $0.name == name }) else {
            throw DiskVaultError(.notFound, "no policy \(name) in vault (see diskvault policy list)", path: location)
        }
        return p
    }

    public func savePolicy(_ policy: BackupPolicy, replacing: Bool) throws(DiskVaultError) {
        if !replacing, try storage.head(Self.policyKey(policy.name)) != nil {
            throw DiskVaultError(.alreadyExists, "policy \(policy.name) exists", path: location)
        }
        try storage.replace(Self.policyKey(policy.name), try policy.encoded())
    }

    public func deletePolicy(_ name: String) throws(DiskVaultError) {
        guard name != "Default" else { throw DiskVaultError(.usage, "the Default policy cannot be deleted") }
        let users = try protectedDisks().filter { $0.policy == name }.map(\.disk)
        guard users.isEmpty else {
            throw DiskVaultError(.usage, "policy \(name) protects \(users.joined(separator: ", ")); move them to another policy first")
        }
        guard try storage.head(Self.policyKey(name)) != nil else { throw DiskVaultError(.notFound, "no policy \(name) in vault", path: location) }
        try storage.delete(Self.policyKey(name))
    }

    public func protectedDisks() throws(DiskVaultError) -> [ProtectedDisk] {
        var out: [ProtectedDisk] = []
        for disk in try disks() {
            if let p = try protection(of: disk) { out.append(p) }
        }
        return out
    }

    public func protection(of disk: String) throws(DiskVaultError) -> ProtectedDisk? {
        let key = Self.protectionKey(disk)
        guard try storage.head(key) != nil else { return nil }
        guard let p = try? JSONDecoder().decode(ProtectedDisk.self, from: Data(try storage.get(key, limit: 1 << 20))) else {
            throw DiskVaultError(.corrupt, "disk.json of disk \(disk) is damaged", path: "\(location)/\(key)")
        }
        return p
    }

    public func protect(_ disk: ProtectedDisk) throws(DiskVaultError) {
        try DiskName.validate(disk.disk)
        _ = try policy(disk.policy)
        try storage.replace(Self.protectionKey(disk.disk), try JSON.encode(disk))
    }

    public func unprotect(_ disk: String) throws(DiskVaultError) {
        guard try protection(of: disk) != nil else { throw DiskVaultError(.notFound, "disk \(disk) is not protected", path: location) }
        try storage.delete(Self.protectionKey(disk))
    }
}

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

/// Which protected disks are due by their policy now; a scheduled point is one with trigger `.scheduled`.
public enum Schedule {
    public struct Due: Sendable {
        public var disk: ProtectedDisk
        public var policy: BackupPolicy
        public var slot: Date
    }

    public static func due(_ vault: Vault, now: Date) throws(DiskVaultError) -> [Due] {
        var out: [Due] = []
        for disk in try vault.protectedDisks() {
            let policy = try vault.policy(disk.policy)
            let last = try vault.points(disk: disk.disk).last { $0.manifest.trigger == .scheduled }
            let lastTime = last.flatMap { Timestamp.parse($0.manifest.created) }
            if policy.isDue(now: now, lastScheduledBackup: lastTime), let slot = policy.lastScheduledTime(atOrBefore: now) {
                out.append(Due(disk: disk, policy: policy, slot: slot))
            }
        }
        return out
    }
}
