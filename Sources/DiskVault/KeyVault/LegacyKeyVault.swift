import Foundation

/// Key vaults of format 1, read only to upgrade them: one master key, sealed under the passphrase and under
/// every principal's credential, sealed every item and the policy, so a principal's credential opened
/// everything and the policy was only what the command line chose to honour.
///
///     keyvault.json                 format 1, id, scrypt parameters, sealedMasterKey
///     data/access                   { principals: { name: Grant } }      AES-256-GCM, master key, AD its path
///     data/keys/<name>/<n>          KeyRecord                            ditto
///     data/secrets/<name>/<n>       SecretRecord                         ditto
///     principals/<p>.json           the master key sealed under the principal's credential
enum LegacyKeyVault {
    struct Contents {
        var config: KeyVault.Config
        var master: [UInt8]
        var grants: [String: KeyVault.Grant]
        var keys: [KeyVault.KeyRecord]
        var secrets: [KeyVault.SecretRecord]
    }

    private struct AccessPolicy: Codable { var principals: [String: KeyVault.Grant] = [:] }

    /// The key a format-1 key vault sealed its points' key backups with.
    static func keyBackupKey(master: [UInt8]) -> [UInt8] {
        HMACSHA256.authenticationCode(key: master, message: Array("diskvault key backup".utf8)).bytes
    }

    static func read(_ root: String, passphrase: [UInt8]) throws(DiskVaultError) -> Contents {
        let config = try KeyVault.readConfig(root)
        guard config.version == 1, let sealed = config.sealedMasterKey.flatMap(unbase64) else {
            throw DiskVaultError(.usage, "key vault has format \(config.version); there is nothing to upgrade", path: root)
        }
        let key = try KeyVault.passphraseKey(config, passphrase, root: root)
        guard let master = AESGCM.open(sealed, key: key, associatedData: Array("keyvault:\(config.id)".utf8)) else {
            throw DiskVaultError(.permission, "wrong passphrase for key vault", path: root)
        }
        func open<T: Decodable>(_ relative: String) throws(DiskVaultError) -> T {
            let box = try FileSystem.readFile("\(root)/\(relative)", limit: 1 << 20)
            guard let plain = AESGCM.open(box, key: master, associatedData: Array(relative.utf8)),
                let value = try? JSONDecoder().decode(T.self, from: Data(plain))
            else { throw DiskVaultError(.corrupt, "key vault item is damaged or was not sealed by this key vault", path: "\(root)/\(relative)") }
            return value
        }
        /// Every version under data/<folder>/<name>/<n>, each checked to be the one its path names.
        func records<T: Decodable>(_ folder: String, _ what: String, _ id: (T) -> (String, Int)) throws(DiskVaultError) -> [T] {
            var out: [T] = []
            for name in try FileSystem.list("\(root)/data/\(folder)").sorted() where !FileSystem.isAtomicWriteTemporary(name) {
                let versions = try FileSystem.list("\(root)/data/\(folder)/\(name)").compactMap(Int.init).sorted()
                for v in versions {
                    let record: T = try open("data/\(folder)/\(name)/\(v)")
                    guard id(record) == (name, v) else {
                        throw DiskVaultError(.corrupt, "key vault item names another \(what)", path: "\(root)/data/\(folder)/\(name)/\(v)")
                    }
                    out.append(record)
                }
            }
            return out
        }
        let policy: AccessPolicy = try open("data/access")
        let keys: [KeyVault.KeyRecord] = try records("keys", "key") { ($0.name, $0.version) }
        let secrets: [KeyVault.SecretRecord] = try records("secrets", "secret") { ($0.name, $0.version) }
        return Contents(config: config, master: master, grants: policy.principals, keys: keys, secrets: secrets)
    }
}

extension KeyVault {
    public struct UpgradeResult: Codable, Sendable {
        public var keyVault: String
        public var id: String
        public var keys: Int
        public var secrets: Int
        /// principal → its new credential file.
        public var credentials: [String: String]
        /// principal → its grant, kept from format 1 (which any principal could have rewritten: check them).
        public var grants: [String: Grant]
        /// The key vault was upgraded already: only what an interrupted upgrade left was removed.
        public var resumed: Bool
    }

    /// Upgrades a format-1 key vault in place to format 2, keeping its id, every key and secret version and
    /// every grant; each principal gets a new credential in `credentialsOut` (<principal>.cred), the old ones
    /// stop working. Every new file is written before keyvault.json, which is the upgrade's commit: an upgrade
    /// killed part-way leaves a format-1 key vault that the next upgrade takes from the start.
    public static func upgrade(_ root: String, passphrase: [UInt8], credentialsOut: String?) throws(DiskVaultError) -> UpgradeResult {
        // Killed after its commit, an upgrade leaves the format-1 folder, sealed under a key nothing holds.
        let current = try readConfig(root)
        if current.version == KeyVaultFormat.version && FileSystem.exists("\(root)/data") {
            let kv = try open(root, passphrase: passphrase)
            try removeTree("\(root)/data")
            return UpgradeResult(keyVault: root, id: kv.config.id, keys: 0, secrets: 0, credentials: [:], grants: [:], resumed: true)
        }
        let old = try LegacyKeyVault.read(root, passphrase: passphrase)
        var paths: [String: String] = [:]
        if !old.grants.isEmpty {
            guard let credentialsOut else {
                throw DiskVaultError(.usage, "key vault \(root) has principals (\(old.grants.keys.sorted().joined(separator: ", "))): give --credentials-out DIR for their new credentials")
            }
            try FileSystem.makeDirectories(credentialsOut)
            for name in old.grants.keys.sorted() {
                try validatePrincipalName(name)
                let path = "\(credentialsOut)/\(name).cred"
                if FileSystem.exists(path) {
                    // One an upgrade of this key vault wrote before it was killed (the key vault is still format 1,
                    // so it opens nothing) is replaced; anything else is kept and refused.
                    guard let bytes = try? FileSystem.readRegularFile(path, limit: 1 << 16),
                        let c = try? JSONDecoder().decode(CredentialFile.self, from: Data(bytes)),
                        c.keyVault == old.config.id, c.version == KeyVaultFormat.version, c.principal == name
                    else { throw DiskVaultError(.alreadyExists, "credential file exists (it must not exist yet)", path: path) }
                    try FileSystem.remove(path)
                }
                paths[name] = path
            }
        }
        // What an upgrade killed part-way left.
        for dir in [KeyVaultFormat.itemsDirectory] where FileSystem.isDirectory("\(root)/\(dir)") {
            for name in try FileSystem.list("\(root)/\(dir)") { try FileSystem.remove("\(root)/\(dir)/\(name)") }
        }
        for file in [KeyVaultFormat.policyPath, KeyVaultFormat.legacyPath] where FileSystem.exists("\(root)/\(file)") {
            try FileSystem.remove("\(root)/\(file)")
        }
        var credentials: [String: [UInt8]] = [:]
        _ = try createFormat2(
            root, id: old.config.id, passphrase: passphrase, logN: old.config.kdf.logN, created: old.config.created,
            legacyKeyBackupKey: LegacyKeyVault.keyBackupKey(master: old.master), replacing: true
        ) { (kv) throws(DiskVaultError) in
            for k in old.keys {
                guard let material = unbase64(k.material) else { throw DiskVaultError(.corrupt, "key \(k.name) version \(k.version) is damaged", path: root) }
                let pub = k.kind == .aes256 ? nil : try RSAKey.importPEM(material, source: "key \(k.name)").publicPEM()
                try kv.writeKey(KeyListing(name: k.name, version: k.version, kind: k.kind, created: k.created), material: material, publicPEM: pub)
            }
            for s in old.secrets {
                try kv.writeSecret(SecretListing(name: s.name, version: s.version, wrap: s.wrap, tags: s.tags, created: s.created), value: s.value)
            }
            for (name, grant) in old.grants.sorted(by: { $0.key < $1.key }) {
                credentials[name] = try kv.changeAccess(issue: (name, grant), removing: nil, rotating: [])
            }
            // The credentials before the commit: an upgrade killed after it must not leave principals without one.
            for (name, path) in paths.sorted(by: { $0.key < $1.key }) {
                guard let bytes = credentials[name] else { continue }
                let file = try FileDescriptor(path: path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: FileSystem.privateFileMode, doing: "cannot create credential file")
                try bytes.withBytes { (b) throws(DiskVaultError) in try file.writeAll([b]) }
                try file.sync()
                try file.close()
            }
            if let credentialsOut, !paths.isEmpty { try FileSystem.syncDirectory(credentialsOut) }
        }
        // Committed: the format-1 files are sealed under a master key nothing holds any more.
        try removeTree("\(root)/data")
        return UpgradeResult(keyVault: root, id: old.config.id, keys: old.keys.count, secrets: old.secrets.count, credentials: paths,
                             grants: old.grants, resumed: false)
    }

    static func removeTree(_ path: String) throws(DiskVaultError) {
        guard let kind = try FileSystem.entryKind(path) else { return }
        if kind == .directory {
            for name in try FileSystem.list(path) { try removeTree("\(path)/\(name)") }
            try FileSystem.removeDirectory(path)
        } else {
            try FileSystem.remove(path)
        }
    }
}
