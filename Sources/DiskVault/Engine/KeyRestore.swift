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
        let contents = try KeyBackup.contents(of: point, vault: vault, kv: kv)
        guard kv.holds(.secrets, [.restore]) && (contents.keys.isEmpty || kv.holds(.keys, [.restore])) else {
            throw DiskVaultError(.permission, "principal \(access.principal) lacks restore permission on \(contents.keys.isEmpty ? "secrets" : "keys and secrets") in key vault \(access.keyVault)")
        }
        var result = Result(point: point.id, keyVault: access.keyVault, restored: [], alreadyPresent: [])
        for key in contents.keys {
            let name = "key \(key.name) version \(key.version)"
            if kv.hasKey(name: key.name, version: key.version) { result.alreadyPresent.append(name); continue }
            try kv.restore(key: key)
            result.restored.append(name)
        }
        for secret in contents.secrets {
            let name = "secret \(secret.name) version \(secret.version)"
            if kv.hasSecret(name: secret.name, version: secret.version) { result.alreadyPresent.append(name); continue }
            try kv.restore(secret: secret)
            result.restored.append(name)
        }
        return result
    }
}
