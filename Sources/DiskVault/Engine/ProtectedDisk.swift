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
    /// A running VM's drive, backed up through qemu's QMP (then `source` only describes it).
    public var live: LiveSource? = nil

    public struct LiveSource: Codable, Sendable, Equatable {
        public var qmp: String
        public var drive: String
        public var scratch: String?
        public var freeze: String?
        public var thaw: String?
        public var fullReadEvery: Int?

        public init(qmp: String, drive: String, scratch: String? = nil, freeze: String? = nil, thaw: String? = nil, fullReadEvery: Int? = nil) {
            self.qmp = qmp
            self.drive = drive
            self.scratch = scratch
            self.freeze = freeze
            self.thaw = thaw
            self.fullReadEvery = fullReadEvery
        }
    }

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

extension ProtectedDisk {
    /// Backs the disk up as it is protected: its source (an image, or a running VM's drive through qemu), key
    /// vault and declarations; `base` gives the rest (trigger, policy, time, retain-until, threads). Used by
    /// run-due and by an on-demand `backup --disk D` of a protected disk.
    public func backUp(
        _ vault: Vault, base: BackupOptions, policy: BackupPolicy?, control: JobControl, holding: [VaultLock.Kind] = [],
        observer: (any ProgressObserver)? = nil
    ) throws(DiskVaultError) -> Manifest {
        var options = base
        options.withoutKeys = base.withoutKeys || (withoutKeys ?? false)
        options.keyVault = base.keyVault ?? keyVault
        if let text = declareEncrypted { options.declared = try LayoutReader.Declaration(parsing: text) }
        if let live {
            var o = LiveBackupOptions(qmp: live.qmp, drives: [(disk, live.drive)], base: options,
                                      scratch: live.scratch ?? LiveBackupOptions.defaultScratch)
            o.freeze = live.freeze
            o.thaw = live.thaw
            o.fullReadEvery = live.fullReadEvery ?? policy?.fullReadEvery ?? LiveBackupOptions.defaultFullReadEvery
            let backup = LiveBackup(vault: vault, options: o)
            backup.observer = observer
            let manifests = try backup.run(control, holding: holding)
            guard let first = manifests.first else { throw DiskVaultError(.io, "the live backup of disk \(disk) made no point") }
            return first
        }
        let opened: ImageSource
        do {
            opened = try ImageSource.open(source)
        } catch {
            // Recorded as the backup job it was to be, so that `jobs` and `status` show the failure.
            try Job.run(vault, kind: .backup, disk: disk, control: control, holding: holding) { (_) throws(DiskVaultError) -> Void in throw error }
            throw error
        }
        let backup = Backup(vault: vault, source: opened, options: options)
        backup.observer = observer
        return try backup.run(control, holding: holding)
    }
}
