import Foundation

/// A key vault: a directory, encrypted at rest, holding keys (KEKs: RSA or AES, standalone only) and secrets
/// (BEKs: a LUKS passphrase or key file, a BitLocker .BEK), each versioned, and an access policy that grants
/// principals permissions on them.
///
///     keyvault.json                 format, id, scrypt parameters, the master key sealed under the passphrase
///     principals/<p>.json           the master key sealed under that principal's credential
///     data/access                   the access policy            (sealed)
///     data/keys/<name>/<n>          one version of a key         (sealed)
///     data/secrets/<name>/<n>       one version of a secret      (sealed)
///
/// Every sealed item is AES-256-GCM under the master key with its own path as associated data, so nothing
/// in the directory is readable, or movable, without the master key. The administrator opens the vault with
/// its passphrase; a principal with the credential file `access grant` issued, and is held to its grant.
public final class KeyVault {
    public let root: String
    public let config: Config
    let masterKey: [UInt8]
    /// nil for the administrator.
    public let principal: String?
    let grant: Grant?

    public struct Config: Codable, Sendable {
        public var format: String
        public var version: Int
        public var id: String
        public var created: String
        public var kdf: KDF
        public var sealedMasterKey: String

        public struct KDF: Codable, Sendable {
            public var name: String
            public var logN: Int
            public var r: Int
            public var p: Int
            public var salt: String
        }
    }

    public enum Permission: String, Codable, Sendable, CaseIterable {
        case get, list, set, delete, wrap, unwrap, backup, restore
    }

    public enum Scope: String, Sendable { case keys, secrets }

    public struct Grant: Codable, Sendable, Equatable {
        public var keys: [Permission]
        public var secrets: [Permission]
        public init(keys: [Permission], secrets: [Permission]) {
            self.keys = keys
            self.secrets = secrets
        }
    }

    struct AccessPolicy: Codable {
        var principals: [String: Grant] = [:]
    }

    /// A credential file, as `access grant` issues it.
    struct Credential: Codable {
        var keyVault: String
        var principal: String
        var secret: String
    }

    struct PrincipalSlot: Codable {
        var principal: String
        var sealedMasterKey: String
    }

    /// A key-encryption key's kind, as the key vault stores it.
    public enum KeyKind: String, Codable, Sendable, CaseIterable {
        case rsa2048 = "rsa-2048", rsa3072 = "rsa-3072", rsa4096 = "rsa-4096"
        case aes256 = "aes-256"
    }

    public struct KeyRecord: Codable, Sendable, Equatable {
        public var name: String
        public var version: Int
        public var kind: KeyKind
        /// PKCS#8 PEM for RSA, the raw 32 bytes for AES (base64).
        public var material: String
        public var created: String
    }

    public struct SecretRecord: Codable, Sendable, Equatable {
        public var name: String
        public var version: Int
        /// The BEK, or the BEK wrapped by `wrap` (base64).
        public var value: String
        public var wrap: Wrap?
        public var tags: [String: String]
        public var created: String

        public struct Wrap: Codable, Sendable, Equatable {
            public var key: String
            public var keyVersion: Int
            /// "RSA-OAEP-256" or "A256KWP" (AES key wrap with padding, RFC 5649).
            public var algorithm: String
        }

        /// The volume this secret unlocks: a LUKS UUID or a BitLocker startup-key GUID.
        public var volume: String? { tags["volume"] }
    }

    static let formatName = "diskvault-keyvault"

    init(root: String, config: Config, masterKey: [UInt8], principal: String?, grant: Grant?) {
        self.root = root
        self.config = config
        self.masterKey = masterKey
        self.principal = principal
        self.grant = grant
    }

    // MARK: creating and opening

    /// What `create` makes before keyvault.json, which an init killed part-way may leave for the next to take over.
    static let skeleton = InitDirectory(directories: ["principals", "data", "data/keys", "data/secrets"], files: ["data/access"])

    /// Creates a key vault in a new or empty directory, its master key sealed under `passphrase`.
    @discardableResult
    public static func create(_ root: String, passphrase: [UInt8], logN: Int = 15) throws(DiskVaultError) -> KeyVault {
        guard !passphrase.isEmpty else { throw DiskVaultError(.usage, "the key vault passphrase is empty") }
        guard (10...20).contains(logN) else { throw DiskVaultError(.usage, "--kdf-work-factor must be from 10 to 20") }
        if FileSystem.exists(root) {
            guard FileSystem.isDirectory(root), !FileSystem.exists("\(root)/keyvault.json"), let leftovers = try skeleton.leftovers(in: root) else {
                throw DiskVaultError(.alreadyExists, "key vault location exists and is not an empty directory", path: root)
            }
            for path in leftovers { try FileSystem.remove(path) }
        }
        let id = randomHex(16)
        let salt = SecureRandom.bytes(16)
        guard let kek = Scrypt.derive(passphrase, salt: salt, logN: logN) else { throw DiskVaultError(.io, "scrypt failed") }
        let master = SecureRandom.bytes(32)
        let config = Config(
            format: formatName, version: 1, id: id, created: Timestamp.format(Date()),
            kdf: .init(name: "scrypt", logN: logN, r: 8, p: 1, salt: Data(salt).base64EncodedString()),
            sealedMasterKey: Data(AESGCM.seal(master, key: kek, associatedData: Array("keyvault:\(id)".utf8))).base64EncodedString())
        for dir in ["principals", "data/keys", "data/secrets"] { try FileSystem.makeDirectories("\(root)/\(dir)") }
        let vault = KeyVault(root: root, config: config, masterKey: master, principal: nil, grant: nil)
        try vault.writeSealed("data/access", AccessPolicy())
        // keyvault.json last and never over another's: until it exists the directory is no key vault, and a
        // new init may take it over (see `InitDirectory`).
        guard try FileSystem.writeNewFileAtomically("\(root)/keyvault.json", try JSON.encode(config)) else {
            throw DiskVaultError(.alreadyExists, "a key vault was created here meanwhile", path: root)
        }
        return vault
    }

    static func readConfig(_ root: String) throws(DiskVaultError) -> Config {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile("\(root)/keyvault.json", limit: 1 << 20)
        } catch where error.code == .notFound {
            throw DiskVaultError(.notFound, FileSystem.exists(root) ? "not a key vault (no keyvault.json)" : "key vault does not exist", path: root)
        }
        guard let config = try? JSONDecoder().decode(Config.self, from: Data(bytes)), config.format == formatName else {
            throw DiskVaultError(.corrupt, "keyvault.json is not a diskvault key vault", path: "\(root)/keyvault.json")
        }
        guard config.version == 1 else {
            throw DiskVaultError(.unsupported, "key vault format version \(config.version) is not supported", path: root)
        }
        return config
    }

    /// Opens as the administrator.
    public static func open(_ root: String, passphrase: [UInt8]) throws(DiskVaultError) -> KeyVault {
        let config = try readConfig(root)
        guard let salt = Data(base64Encoded: config.kdf.salt), let sealed = Data(base64Encoded: config.sealedMasterKey),
            let kek = Scrypt.derive(passphrase, salt: Array(salt), logN: config.kdf.logN, r: config.kdf.r, p: config.kdf.p)
        else { throw DiskVaultError(.corrupt, "keyvault.json has damaged key derivation parameters", path: root) }
        guard let master = AESGCM.open(Array(sealed), key: kek, associatedData: Array("keyvault:\(config.id)".utf8)) else {
            throw DiskVaultError(.permission, "wrong passphrase for key vault", path: root)
        }
        return KeyVault(root: root, config: config, masterKey: master, principal: nil, grant: nil)
    }

    /// Opens as `principal` with the credential file `access grant` issued to it.
    public static func open(_ root: String, principal: String, credentialFile: String) throws(DiskVaultError) -> KeyVault {
        let config = try readConfig(root)
        let credential: Credential
        do {
            credential = try JSONDecoder().decode(Credential.self, from: Data(try FileSystem.readFile(credentialFile, limit: 1 << 16)))
        } catch let error as DiskVaultError {
            throw error
        } catch {
            throw DiskVaultError(.corrupt, "not a diskvault key vault credential", path: credentialFile)
        }
        guard credential.keyVault == config.id, credential.principal == principal else {
            throw DiskVaultError(.permission, "credential \(credentialFile) was not issued to principal \(principal) by key vault \(root)")
        }
        try validatePrincipalName(principal)
        let slotPath = "\(root)/principals/\(principal).json"
        guard FileSystem.exists(slotPath),
            let slot = try? JSONDecoder().decode(PrincipalSlot.self, from: Data(try FileSystem.readFile(slotPath, limit: 1 << 16))),
            let sealed = Data(base64Encoded: slot.sealedMasterKey), let secret = Data(base64Encoded: credential.secret),
            let master = AESGCM.open(Array(sealed), key: credentialKey(Array(secret)), associatedData: Array("principal:\(principal)".utf8))
        else {
            throw DiskVaultError(.permission, "principal \(principal) has no access to key vault \(root) (revoked, or never granted)")
        }
        var vault = KeyVault(root: root, config: config, masterKey: master, principal: principal, grant: nil)
        let policy: AccessPolicy = try vault.readSealed("data/access")
        guard let grant = policy.principals[principal] else {
            throw DiskVaultError(.permission, "principal \(principal) has no access to key vault \(root) (revoked)")
        }
        vault = KeyVault(root: root, config: config, masterKey: master, principal: principal, grant: grant)
        return vault
    }

    static func credentialKey(_ secret: [UInt8]) -> [UInt8] {
        SHA256.digest(Array("diskvault credential".utf8) + secret).bytes
    }

    static func validatePrincipalName(_ name: String) throws(DiskVaultError) {
        do { try DiskName.validate(name) } catch {
            throw DiskVaultError(.usage, "invalid principal name \"\(name)\": use letters, digits, '.', '_' and '-'")
        }
    }

    // MARK: permissions

    /// Whether this opener holds every one of `permissions` on `scope`.
    public func holds(_ scope: Scope, _ permissions: [Permission]) -> Bool {
        guard let grant else { return true }
        let held = Set(scope == .keys ? grant.keys : grant.secrets)
        return permissions.allSatisfy(held.contains)
    }

    func authorize(_ scope: Scope, _ permissions: Permission...) throws(DiskVaultError) {
        guard holds(scope, permissions) else {
            throw DiskVaultError(.permission, "principal \(principal ?? "?") lacks \(permissions.map(\.rawValue).joined(separator: ",")) on \(scope.rawValue) in key vault \(root)")
        }
    }

    // MARK: sealed items

    func writeSealed<T: Encodable>(_ relative: String, _ value: T) throws(DiskVaultError) {
        let box = AESGCM.seal(try JSON.encode(value, pretty: false), key: masterKey, associatedData: Array(relative.utf8))
        try FileSystem.makeDirectories(FileSystem.parentDirectory(of: "\(root)/\(relative)"))
        try FileSystem.writeFileAtomically("\(root)/\(relative)", box, mode: 0o600)
    }

    func readSealed<T: Decodable>(_ relative: String) throws(DiskVaultError) -> T {
        let box = try FileSystem.readFile("\(root)/\(relative)", limit: 1 << 20)
        guard let plain = AESGCM.open(box, key: masterKey, associatedData: Array(relative.utf8)),
            let value = try? JSONDecoder().decode(T.self, from: Data(plain))
        else { throw DiskVaultError(.corrupt, "key vault item is damaged or was not sealed by this key vault", path: "\(root)/\(relative)") }
        return value
    }

    func versions(_ relative: String) throws(DiskVaultError) -> [Int] {
        try FileSystem.list("\(root)/\(relative)").compactMap(Int.init).sorted()
    }

    // MARK: keys

    public func createKey(name: String, kind: KeyKind) throws(DiskVaultError) -> KeyRecord {
        try authorize(.keys, .set)
        let material: [UInt8]
        switch kind {
        case .rsa2048: material = RSAKey.generate(bits: 2048).privatePEM()
        case .rsa3072: material = RSAKey.generate(bits: 3072).privatePEM()
        case .aes256: material = SecureRandom.bytes(32)
        case .rsa4096: throw DiskVaultError(.usage, "key kind must be rsa-2048, rsa-3072 or aes-256 (rsa-4096 keys can be imported)")
        }
        return try storeKey(name: name, kind: kind, material: material)
    }

    /// Imports a standalone PEM private key; a certificate, or a key inside one, is refused.
    public func importKey(name: String, pem: [UInt8], source: String) throws(DiskVaultError) -> KeyRecord {
        try authorize(.keys, .set)
        let key = try RSAKey.importPEM(pem, source: source)
        guard let kind = KeyKind(rawValue: "rsa-\(key.bits)") else {
            throw DiskVaultError(.unsupported, "an RSA key of \(key.bits) bits is not supported (2048, 3072 or 4096)", path: source)
        }
        return try storeKey(name: name, kind: kind, material: key.privatePEM())
    }

    func storeKey(name: String, kind: KeyKind, material: [UInt8]) throws(DiskVaultError) -> KeyRecord {
        try Self.validateItemName(name)
        let version = (try versions("data/keys/\(name)").last ?? 0) + 1
        let record = KeyRecord(name: name, version: version, kind: kind, material: Data(material).base64EncodedString(), created: Timestamp.format(Date()))
        try writeSealed("data/keys/\(name)/\(version)", record)
        return record
    }

    public func key(name: String, version: Int? = nil) throws(DiskVaultError) -> KeyRecord {
        try authorize(.keys, .get)
        try Self.validateItemName(name)
        let newest = try versions("data/keys/\(name)").last
        guard let v = version ?? newest, FileSystem.exists("\(root)/data/keys/\(name)/\(v)") else {
            throw DiskVaultError(.notFound, "key \(name)\(version.map { " version \($0)" } ?? "") is not in key vault \(root)")
        }
        return try readSealed("data/keys/\(name)/\(v)")
    }

    public func deleteKey(name: String) throws(DiskVaultError) {
        try authorize(.keys, .delete)
        try deleteItem("data/keys/\(name)", what: "key \(name)")
    }

    // MARK: secrets

    /// Stores a new version of a secret: the BEK itself, or wrapped by the key `wrapKey`.
    public func setSecret(name: String, value: [UInt8], wrapKey: String? = nil, volume: String? = nil, tags: [String: String] = [:]) throws(DiskVaultError) -> SecretRecord {
        try authorize(.secrets, .set)
        try Self.validateItemName(name)
        guard !value.isEmpty, value.count <= 1 << 16 else { throw DiskVaultError(.usage, "a secret must be 1 byte to 64 KiB") }
        var stored = value
        var wrap: SecretRecord.Wrap? = nil
        if let wrapKey {
            let kek = try key(name: wrapKey)
            stored = try Self.wrap(value, with: kek)
            wrap = .init(key: kek.name, keyVersion: kek.version, algorithm: kek.kind == .aes256 ? "A256KWP" : "RSA-OAEP-256")
        }
        var allTags = tags
        if let volume { allTags["volume"] = volume.lowercased() }
        let version = (try versions("data/secrets/\(name)").last ?? 0) + 1
        let record = SecretRecord(name: name, version: version, value: Data(stored).base64EncodedString(), wrap: wrap, tags: allTags, created: Timestamp.format(Date()))
        try writeSealed("data/secrets/\(name)/\(version)", record)
        return record
    }

    public func secret(name: String, version: Int? = nil) throws(DiskVaultError) -> SecretRecord {
        try authorize(.secrets, .get)
        try Self.validateItemName(name)
        let newest = try versions("data/secrets/\(name)").last
        guard let v = version ?? newest, FileSystem.exists("\(root)/data/secrets/\(name)/\(v)") else {
            throw DiskVaultError(.notFound, "secret \(name)\(version.map { " version \($0)" } ?? "") is not in key vault \(root)")
        }
        return try readSealed("data/secrets/\(name)/\(v)")
    }

    /// The BEK in clear: the stored value, unwrapped with its KEK when wrapped.
    public func unwrappedValue(of secret: SecretRecord) throws(DiskVaultError) -> [UInt8] {
        guard let value = Data(base64Encoded: secret.value) else { throw DiskVaultError(.corrupt, "secret \(secret.name) is damaged") }
        guard let wrap = secret.wrap else { return Array(value) }
        // Unwrapping needs the KEK: permission to unwrap with it, or to get it.
        if !holds(.keys, [.unwrap]) { try authorize(.keys, .get) }
        return try Self.unwrap(Array(value), with: try key(name: wrap.key, version: wrap.keyVersion), secret: secret.name)
    }

    public func deleteSecret(name: String) throws(DiskVaultError) {
        try authorize(.secrets, .delete)
        try deleteItem("data/secrets/\(name)", what: "secret \(name)")
    }

    /// The newest version of each secret, for listing and for finding a volume's secret.
    public func secrets() throws(DiskVaultError) -> [SecretRecord] {
        try authorize(.secrets, .list)
        try authorize(.secrets, .get)
        var out: [SecretRecord] = []
        for name in try FileSystem.list("\(root)/data/secrets").sorted() {
            if let v = try versions("data/secrets/\(name)").last { out.append(try readSealed("data/secrets/\(name)/\(v)")) }
        }
        return out
    }

    public func keys() throws(DiskVaultError) -> [KeyRecord] {
        try authorize(.keys, .list)
        var out: [KeyRecord] = []
        for name in try FileSystem.list("\(root)/data/keys").sorted() {
            if let v = try versions("data/keys/\(name)").last {
                var record: KeyRecord = try readSealed("data/keys/\(name)/\(v)")
                record.material = ""
                out.append(record)
            }
        }
        return out
    }

    /// The newest secret tagged for `volume` (a LUKS UUID or BitLocker key GUID).
    public func secret(forVolume volume: String) throws(DiskVaultError) -> SecretRecord? {
        try secrets().last { $0.volume == volume.lowercased() }
    }

    func deleteItem(_ relative: String, what: String) throws(DiskVaultError) {
        let dir = "\(root)/\(relative)"
        guard FileSystem.isDirectory(dir) else { throw DiskVaultError(.notFound, "\(what) is not in key vault \(root)") }
        for v in try FileSystem.list(dir) { try FileSystem.remove("\(dir)/\(v)") }
        try FileSystem.removeDirectory(dir)
    }

    static func validateItemName(_ name: String) throws(DiskVaultError) {
        do { try DiskName.validate(name) } catch {
            throw DiskVaultError(.usage, "invalid name \"\(name)\": use letters, digits, '.', '_' and '-'")
        }
    }

    // MARK: restoring items from a backup

    /// Puts a key or secret version back exactly as it was backed up (same name and version).
    func restore(key record: KeyRecord) throws(DiskVaultError) {
        try authorize(.keys, .restore)
        try writeSealed("data/keys/\(record.name)/\(record.version)", record)
    }

    func restore(secret record: SecretRecord) throws(DiskVaultError) {
        try authorize(.secrets, .restore)
        try writeSealed("data/secrets/\(record.name)/\(record.version)", record)
    }

    func hasKey(name: String, version: Int) -> Bool { FileSystem.exists("\(root)/data/keys/\(name)/\(version)") }
    func hasSecret(name: String, version: Int) -> Bool { FileSystem.exists("\(root)/data/secrets/\(name)/\(version)") }

    // MARK: access

    /// Grants `principal` permissions and returns the credential file's contents. Granting again replaces the
    /// permissions and issues a new credential (the old one stops working).
    public func grantAccess(principal: String, keys: [Permission], secrets: [Permission]) throws(DiskVaultError) -> [UInt8] {
        guard self.principal == nil else { throw DiskVaultError(.permission, "only the key vault administrator can grant access") }
        try Self.validatePrincipalName(principal)
        var policy: AccessPolicy = try readSealed("data/access")
        policy.principals[principal] = Grant(keys: keys, secrets: secrets)
        try writeSealed("data/access", policy)
        let secret = SecureRandom.bytes(32)
        let slot = PrincipalSlot(
            principal: principal,
            sealedMasterKey: Data(AESGCM.seal(masterKey, key: Self.credentialKey(secret), associatedData: Array("principal:\(principal)".utf8))).base64EncodedString())
        try FileSystem.writeFileAtomically("\(root)/principals/\(principal).json", try JSON.encode(slot), mode: 0o600)
        return try JSON.encode(Credential(keyVault: config.id, principal: principal, secret: Data(secret).base64EncodedString()))
    }

    public func revokeAccess(principal: String) throws(DiskVaultError) {
        guard self.principal == nil else { throw DiskVaultError(.permission, "only the key vault administrator can revoke access") }
        try Self.validatePrincipalName(principal)
        var policy: AccessPolicy = try readSealed("data/access")
        guard policy.principals.removeValue(forKey: principal) != nil else {
            throw DiskVaultError(.notFound, "principal \(principal) has no access to key vault \(root)")
        }
        try writeSealed("data/access", policy)
        try FileSystem.remove("\(root)/principals/\(principal).json")
    }

    public func accessPolicy() throws(DiskVaultError) -> [String: Grant] {
        let policy: AccessPolicy = try readSealed("data/access")
        return policy.principals
    }

    // MARK: wrapping

    static func wrap(_ bek: [UInt8], with kek: KeyRecord) throws(DiskVaultError) -> [UInt8] {
        guard let material = Data(base64Encoded: kek.material) else { throw DiskVaultError(.corrupt, "key \(kek.name) is damaged") }
        if kek.kind == .aes256 {
            guard let w = AESKeyWrap.wrap(bek, with: Array(material)) else { throw DiskVaultError(.io, "AES key wrap failed") }
            return w
        }
        let rsa = try RSAKey.importPEM(Array(material), source: "key \(kek.name)")
        guard let w = rsa.wrap(bek) else {
            throw DiskVaultError(.usage, "secret too long to wrap with \(kek.kind) key \(kek.name) (RSA-OAEP holds at most \(rsa.bits / 8 - 66) bytes)")
        }
        return w
    }

    static func unwrap(_ wrapped: [UInt8], with kek: KeyRecord, secret: String) throws(DiskVaultError) -> [UInt8] {
        guard let material = Data(base64Encoded: kek.material) else { throw DiskVaultError(.corrupt, "key \(kek.name) is damaged") }
        let plain: [UInt8]?
        if kek.kind == .aes256 {
            plain = AESKeyWrap.unwrap(wrapped, with: Array(material))
        } else {
            plain = try RSAKey.importPEM(Array(material), source: "key \(kek.name)").unwrap(wrapped)
        }
        guard let plain else {
            throw DiskVaultError(.corrupt, "key \(kek.name) version \(kek.version) does not unwrap secret \(secret)")
        }
        return plain
    }

    /// A key derived from the master key for sealing key backups stored with recovery points.
    var keyBackupKey: [UInt8] {
        HMACSHA256.authenticationCode(key: masterKey, message: Array("diskvault key backup".utf8)).bytes
    }
}
