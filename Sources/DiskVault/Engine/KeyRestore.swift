import Foundation

/// Puts the keys and secrets a point carries back into the key vault they came from.
public enum KeyRestore {
    public struct Result: Codable, Sendable {
        public var point: String
        public var keyVault: String
        public var restored: [String]
        public var alreadyPresent: [String]
        /// Whether they came from the vault's escrow (into another key vault than the one backed up from).
        public var fromEscrow: Bool = false
    }

    /// The recovery passphrase of the vault's escrow key, asked for only when the keys go into another key
    /// vault than the one they came from.
    public typealias RecoveryPassphrase = () throws(DiskVaultError) -> [UInt8]

    /// Runs as a recorded job under the vault's shared lock.
    public static func run(
        vault: Vault, disk: String, point id: String?, access: KeyVaultAccess, recovery: RecoveryPassphrase? = nil, control: JobControl = .init()
    ) throws(DiskVaultError) -> Result {
        try Job.run(vault, kind: .keysRestore, disk: disk, control: control) { (outcome) throws(DiskVaultError) in
            let result = try restoreKeys(vault: vault, disk: disk, point: id, access: access, recovery: recovery)
            outcome.point = result.point
            return result
        }
    }

    private static func restoreKeys(vault: Vault, disk: String, point id: String?, access: KeyVaultAccess, recovery: RecoveryPassphrase?) throws(DiskVaultError) -> Result {
        let point = try vault.point(disk: disk, id: id)
        let kv: KeyVault
        do {
            kv = try access.open()
        } catch where error.code == .notFound && !FileSystem.exists("\(access.keyVault)/keyvault.json") {
            let escrowed = KeyBackup.isEscrowed(point, in: vault)
            throw DiskVaultError(.notFound, "key vault \(access.keyVault) does not exist" + (escrowed
                ? ": create it with `diskvault keyvault init \(access.keyVault)`, grant a principal restore on keys and secrets, then run this again (the keys of point \(point.id) are escrowed in vault \(vault.location))"
                : "; the keys of point \(point.id) are sealed only under key vault \(point.manifest.keyBackup?.keyVault ?? "?"), the one they came from"))
        }
        if let record = point.manifest.keyBackup, record.keyVaultID != kv.config.id {
            return try restoreEscrowed(vault: vault, point: point, kv: kv, access: access, recovery: recovery)
        }
        let opened = try KeyBackup.contents(of: point, vault: vault, kv: kv)
        let needsKeys: Bool
        switch opened {
        case .items(let items): needsKeys = items.contains { $0.item.scope == .keys }
        case .legacy(let contents): needsKeys = !contents.keys.isEmpty
        }
        guard kv.holds(.secrets, [.restore]) && (!needsKeys || kv.holds(.keys, [.restore])) else {
            throw DiskVaultError(.permission, "principal \(access.principal) lacks restore permission on \(needsKeys ? "keys and secrets" : "secrets") in key vault \(access.keyVault)")
        }
        var result = Result(point: point.id, keyVault: access.keyVault, restored: [], alreadyPresent: [])
        func note(_ outcome: (String, Bool)) {
            if outcome.1 { result.restored.append(outcome.0) } else { result.alreadyPresent.append(outcome.0) }
        }
        switch opened {
        case .items(let items):
            let shown = "\(vault.location)/\(RecoveryPoint.prefix(disk: point.disk))/\(point.id)/keys"
            for c in keysFirst(items, scope: \.item.scope) {
                note(try kv.restore(item: c, shownAs: "\(shown) (item \(c.id))"))
            }
        case .legacy(let contents):
            for key in contents.keys { note(try kv.restore(legacyKey: key)) }
            for secret in contents.secrets { note(try kv.restore(legacySecret: secret)) }
        }
        return result
    }

    /// Keys before secrets, so that a secret is never back before the key that unwraps it.
    private static func keysFirst<T>(_ items: [T], scope: (T) -> KeyVault.Scope) -> [T] {
        items.filter { scope($0) == .keys } + items.filter { scope($0) != .keys }
    }

    /// Into another key vault than the one the point's keys came from: opened with the vault's escrow key.
    private static func restoreEscrowed(vault: Vault, point: RecoveryPoint, kv: KeyVault, access: KeyVaultAccess, recovery: RecoveryPassphrase?) throws(DiskVaultError) -> Result {
        let record = point.manifest.keyBackup!
        guard KeyBackup.isEscrowed(point, in: vault) else {
            throw DiskVaultError(.usage, "key vault \(access.keyVault) (id \(kv.config.id)) is not the one the keys of point \(point.id) came from (\(record.keyVault), id \(record.keyVaultID)), and \(vault.isEncrypted ? "that key vault did not escrow them to vault \(vault.location)" : "vault \(vault.location) is not encrypted, so it keeps no escrow of them"): they go back only into \(record.keyVault)")
        }
        // Permissions first, from the record: nothing is asked for or opened for a principal that may not restore.
        let wrapped = record.volumes.contains { $0.wrappedBy != nil }
        guard kv.holds(.secrets, [.restore]) && (!wrapped || kv.holds(.keys, [.restore])) else {
            throw DiskVaultError(.permission, "principal \(access.principal) lacks restore permission on \(wrapped ? "keys and secrets" : "secrets") in key vault \(access.keyVault)")
        }
        guard let recovery else {
            throw DiskVaultError(.usage, "the keys of point \(point.id) go into key vault \(access.keyVault) from the escrow of vault \(vault.location): give its recovery passphrase with --recovery-passphrase-file or DISKVAULT_RECOVERY_PASSPHRASE")
        }
        let escrowKey = try vault.openEscrowKey(recoveryPassphrase: try recovery())
        let items = try KeyBackup.escrowedItems(of: point, vault: vault, escrowKey: escrowKey)
        var result = Result(point: point.id, keyVault: access.keyVault, restored: [], alreadyPresent: [], fromEscrow: true)
        let shown = "\(vault.location)/\(RecoveryPoint.prefix(disk: point.disk))/\(point.id)/keys"
        // Each item's scope is authorized as it is written (`restore(_:fromElsewhere:)`).
        for o in keysFirst(items, scope: \.scope) {
            let outcome = try kv.restore(o, shownAs: "\(shown) (item \(o.id))", fromElsewhere: true)
            if outcome.1 { result.restored.append(outcome.0) } else { result.alreadyPresent.append(outcome.0) }
        }
        return result
    }
}
