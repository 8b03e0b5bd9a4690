import Foundation

/// Puts the keys and secrets a point carries back into the key vault they came from.
public enum KeyRestore {
    public struct Result: Codable, Sendable {
        public var point: String
        public var keyVault: String
        public var restored: [String]
        public var alreadyPresent: [String]
    }

    /// Runs as a recorded job under the vault's shared lock.
    public static func run(vault: Vault, disk: String, point id: String?, access: KeyVaultAccess, control: JobControl = .init()) throws(DiskVaultError) -> Result {
        try Job.run(vault, kind: .keysRestore, disk: disk, control: control) { (outcome) throws(DiskVaultError) in
            let result = try restoreKeys(vault: vault, disk: disk, point: id, access: access)
            outcome.point = result.point
            return result
        }
    }

    private static func restoreKeys(vault: Vault, disk: String, point id: String?, access: KeyVaultAccess) throws(DiskVaultError) -> Result {
        let point = try vault.point(disk: disk, id: id)
        let kv = try access.open()
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
            // Keys first, so that a secret is never back before the key that unwraps it.
            let shown = "\(vault.location)/\(RecoveryPoint.prefix(disk: point.disk))/\(point.id)/keys"
            for c in items.sorted(by: { ($0.item.scope == .keys ? 0 : 1) < ($1.item.scope == .keys ? 0 : 1) }) {
                note(try kv.restore(item: c, shownAs: "\(shown) (item \(c.id))"))
            }
        case .legacy(let contents):
            for key in contents.keys { note(try kv.restore(legacyKey: key)) }
            for secret in contents.secrets { note(try kv.restore(legacySecret: secret)) }
        }
        return result
    }
}
