import Foundation

/// A key vault: a directory holding keys (KEKs: RSA or AES, standalone only) and secrets (BEKs: a LUKS
/// passphrase or key file, a BitLocker .BEK), each versioned, and an access policy that grants principals
/// permissions on them — enforced by cryptography: a principal's credential opens exactly what its grant
/// reveals, and only the administrator can write the policy. The files and who can open them are described
/// in `KeyVaultFormat`.
public final class KeyVault {
    public let root: String
    public internal(set) var config: Config
    /// nil for the administrator.
    public let principal: String?
    let grant: Grant?
    var policy: Policy
    /// The capability private keys this opener holds: capability → generation → key.
    var capabilityKeys: [Capability: [Int: X25519Key]]
    let signer: Signer
    /// The administrator's secrets and the key that seals them (nil for a principal).
    var admin: (secrets: AdminSecrets, sealingKey: [UInt8])?
    /// Items read so far, by id (each checked once per opening).
    var itemCache: [String: CheckedItem] = [:]
    /// What the last change of access moved aside (items that did not check or open), for the caller to name.
    public internal(set) var quarantined: [String] = []

    /// keyvault.json. Format 1 holds `sealedMasterKey`; format 2 holds `adminKey` and `sealedAdmin`.
    public struct Config: Codable, Sendable {
        public var format: String
        public var version: Int
        public var id: String
        public var created: String
        public var kdf: KDF
        /// The administrator's Ed25519 public key (base64), pinned in every credential file.
        public var adminKey: String?
        /// `AdminSecrets`, AES-256-GCM sealed under the key scrypt derives from the passphrase (base64).
        public var sealedAdmin: String?
        /// Format 1: the master key sealed under the passphrase.
        public var sealedMasterKey: String?

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

    /// A key-encryption key's kind, as the key vault stores it.
    public enum KeyKind: String, Codable, Sendable, CaseIterable {
        case rsa2048 = "rsa-2048", rsa3072 = "rsa-3072", rsa4096 = "rsa-4096"
        case aes256 = "aes-256"
    }

    public struct KeyRecord: Codable, Sendable, Equatable {
        public var name: String
        public var version: Int
        public var kind: KeyKind
        /// PKCS#8 PEM for RSA, the raw 32 bytes for AES (base64); empty when the opener may not see it.
        public var material: String
        public var created: String
        /// An RSA key's public half (PEM, base64), when the opener may see it.
        public var publicPEM: String?
    }

    public struct SecretRecord: Codable, Sendable, Equatable {
        public var name: String
        public var version: Int
        /// The BEK, or the BEK wrapped by `wrap` (base64); empty in a listing.
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

    /// Who signs what this opener writes: the administrator, or a principal with its writer certificate.
    struct Signer {
        var key: Ed25519Key
        /// "admin" or "principal:<name>".
        var name: String
        var certificate: String?
    }

    init(root: String, config: Config, principal: String?, grant: Grant?, policy: Policy,
         capabilityKeys: [Capability: [Int: X25519Key]], signer: Signer, admin: (secrets: AdminSecrets, sealingKey: [UInt8])?) {
        self.root = root
        self.config = config
        self.principal = principal
        self.grant = grant
        self.policy = policy
        self.capabilityKeys = capabilityKeys
        self.signer = signer
        self.admin = admin
    }

    var isAdministrator: Bool { principal == nil }
    var who: String { principal.map { "principal \($0)" } ?? "the administrator" }

    // MARK: creating

    /// What `create` makes before keyvault.json, which an init killed part-way may leave for the next to take over.
    static let skeleton = InitDirectory(directories: ["principals", "items"], files: [KeyVaultFormat.policyPath])

    /// Creates a key vault in a new or empty directory, its administrator's keys sealed under `passphrase`.
    @discardableResult
    public static func create(_ root: String, passphrase: [UInt8], logN: Int = 15) throws(DiskVaultError) -> KeyVault {
        try prepareDirectory(root)
        let id = randomHex(16)
        return try createFormat2(root, id: id, passphrase: passphrase, logN: logN, created: Timestamp.format(Date()))
    }

    static func prepareDirectory(_ root: String) throws(DiskVaultError) {
        if FileSystem.exists(root) {
            guard FileSystem.isDirectory(root), !FileSystem.exists("\(root)/keyvault.json"), let leftovers = try skeleton.leftovers(in: root) else {
                throw DiskVaultError(.alreadyExists, "key vault location exists and is not an empty directory", path: root)
            }
            for path in leftovers { try FileSystem.remove(path) }
        }
    }

    /// Writes a new format-2 key vault with no principal and no item; keyvault.json last and never over
    /// another's unless `replacing` (an upgrade): until it exists the directory is no key vault.
    static func createFormat2(
        _ root: String, id: String, passphrase: [UInt8], logN: Int, created: String,
        legacyKeyBackupKey: [UInt8]? = nil, replacing: Bool = false,
        beforeCommit: (KeyVault) throws(DiskVaultError) -> Void = { _ in }
    ) throws(DiskVaultError) -> KeyVault {
        guard !passphrase.isEmpty else { throw DiskVaultError(.usage, "the key vault passphrase is empty") }
        guard (10...20).contains(logN) else { throw DiskVaultError(.usage, "--kdf-work-factor must be from 10 to 20") }
        let signing = Ed25519Key.generate()
        var capabilities: [String: [String: String]] = [:]
        var keys: [Capability: [Int: X25519Key]] = [:]
        var published: [String: Policy.CapabilityKey] = [:]
        for c in Capability.allCases {
            let k = X25519Key.generate()
            keys[c] = [1: k]
            capabilities[c.rawValue] = ["1": Data.base64(k.privateKey)]
            published[c.rawValue] = .init(generation: 1, publicKey: Data.base64(k.publicKey))
        }
        let secrets = AdminSecrets(
            signingSeed: Data.base64(signing.seed), capabilities: capabilities, epoch: 1,
            legacyKeyBackupKey: legacyKeyBackupKey.map(Data.base64))
        let (kdf, sealingKey) = try newKDF(passphrase, logN: logN)
        var config = Config(format: KeyVaultFormat.configFormat, version: KeyVaultFormat.version, id: id, created: created, kdf: kdf,
                            adminKey: Data.base64(signing.publicKey), sealedAdmin: nil, sealedMasterKey: nil)
        config.sealedAdmin = try sealAdmin(secrets, key: sealingKey, id: id)
        for dir in [KeyVaultFormat.principalsDirectory, KeyVaultFormat.itemsDirectory] { try FileSystem.makeDirectories("\(root)/\(dir)") }
        let policy = Policy(keyVault: id, epoch: 1, capabilities: published, principals: [:])
        let vault = KeyVault(root: root, config: config, principal: nil, grant: nil, policy: policy, capabilityKeys: keys,
                             signer: Signer(key: signing, name: "admin", certificate: nil), admin: (secrets, sealingKey))
        try vault.writePolicy(policy)
        if legacyKeyBackupKey != nil { try vault.writeLegacy() }
        try beforeCommit(vault)
        let bytes = try JSON.encode(config)
        if replacing {
            try FileSystem.writeFileAtomically("\(root)/keyvault.json", bytes)
        } else {
            guard try FileSystem.writeNewFileAtomically("\(root)/keyvault.json", bytes) else {
                throw DiskVaultError(.alreadyExists, "a key vault was created here meanwhile", path: root)
            }
        }
        return vault
    }

    static func newKDF(_ passphrase: [UInt8], logN: Int) throws(DiskVaultError) -> (Config.KDF, [UInt8]) {
        let salt = SecureRandom.bytes(16)
        guard let key = Scrypt.derive(passphrase, salt: salt, logN: logN) else { throw DiskVaultError(.io, "scrypt failed") }
        return (.init(name: "scrypt", logN: logN, r: 8, p: 1, salt: Data.base64(salt)), key)
    }

    static func sealAdmin(_ secrets: AdminSecrets, key: [UInt8], id: String) throws(DiskVaultError) -> String {
        Data.base64(AESGCM.seal(try JSON.encode(secrets, pretty: false), key: key, associatedData: Array("keyvault-admin:\(id)".utf8)))
    }

    // MARK: opening

    static func readConfig(_ root: String) throws(DiskVaultError) -> Config {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readRegularFile("\(root)/keyvault.json", limit: 1 << 20)
        } catch where error.code == .notFound {
            throw DiskVaultError(.notFound, FileSystem.exists(root) ? "not a key vault (no keyvault.json)" : "key vault does not exist", path: root)
        }
        guard let config = try? JSONDecoder().decode(Config.self, from: Data(bytes)), config.format == KeyVaultFormat.configFormat else {
            throw DiskVaultError(.corrupt, "keyvault.json is not a diskvault key vault", path: "\(root)/keyvault.json")
        }
        guard config.version == 1 || config.version == KeyVaultFormat.version else {
            throw DiskVaultError(.unsupported, "key vault format version \(config.version) is not supported", path: root)
        }
        return config
    }

    static func upgradeNeeded(_ root: String) -> DiskVaultError {
        DiskVaultError(.unsupported, "key vault \(root) has format 1, where a principal's credential opened every key: the administrator must upgrade it with `diskvault keyvault upgrade \(root) --credentials-out DIR` (the passphrase is needed; every principal then gets a new credential)")
    }

    static func passphraseKey(_ config: Config, _ passphrase: [UInt8], root: String) throws(DiskVaultError) -> [UInt8] {
        guard let salt = unbase64(config.kdf.salt), config.kdf.name == "scrypt",
            let key = Scrypt.derive(passphrase, salt: salt, logN: config.kdf.logN, r: config.kdf.r, p: config.kdf.p)
        else { throw DiskVaultError(.corrupt, "keyvault.json has damaged key derivation parameters", path: "\(root)/keyvault.json") }
        return key
    }

    /// Opens as the administrator.
    public static func open(_ root: String, passphrase: [UInt8]) throws(DiskVaultError) -> KeyVault {
        let config = try readConfig(root)
        guard config.version == KeyVaultFormat.version else { throw upgradeNeeded(root) }
        let key = try passphraseKey(config, passphrase, root: root)
        let path = "\(root)/keyvault.json"
        guard let sealed = config.sealedAdmin.flatMap(unbase64), let adminKey = config.adminKey.flatMap(unbase64) else {
            throw DiskVaultError(.corrupt, "keyvault.json lacks the administrator's keys", path: path)
        }
        guard let plain = AESGCM.open(sealed, key: key, associatedData: Array("keyvault-admin:\(config.id)".utf8)) else {
            throw DiskVaultError(.permission, "wrong passphrase for key vault", path: root)
        }
        let (secrets, signing, keys) = try decodeAdmin(plain, adminKey: adminKey, path: path)
        let policy = try readPolicy(root: root, config: config, adminKey: adminKey)
        return KeyVault(root: root, config: config, principal: nil, grant: nil, policy: policy, capabilityKeys: keys,
                        signer: Signer(key: signing, name: "admin", certificate: nil), admin: (secrets, key))
    }

    /// The administrator's secrets from their sealed form: the signing key (which must be the one keyvault.json
    /// names) and every generation of every capability key.
    static func decodeAdmin(_ plain: [UInt8], adminKey: [UInt8], path: String) throws(DiskVaultError) -> (AdminSecrets, Ed25519Key, [Capability: [Int: X25519Key]]) {
        guard let secrets = try? JSONDecoder().decode(AdminSecrets.self, from: Data(plain)),
            let signing = unbase64(secrets.signingSeed).flatMap({ Ed25519Key(seed: $0) })
        else { throw DiskVaultError(.corrupt, "the administrator's keys in keyvault.json are damaged", path: path) }
        guard signing.publicKey == adminKey else {
            throw DiskVaultError(.corrupt, "keyvault.json names an administrator key its sealed keys do not hold: refused", path: path)
        }
        var keys: [Capability: [Int: X25519Key]] = [:]
        for (name, generations) in secrets.capabilities {
            guard let c = Capability(rawValue: name) else { continue }
            for (g, text) in generations {
                guard let gen = Int(g), gen > 0, let k = unbase64(text).flatMap({ X25519Key(privateKey: $0) }) else {
                    throw DiskVaultError(.corrupt, "the administrator's keys in keyvault.json are damaged (capability \(name))", path: path)
                }
                keys[c, default: [:]][gen] = k
            }
        }
        for c in Capability.allCases where keys[c]?.isEmpty ?? true {
            throw DiskVaultError(.corrupt, "the administrator's keys in keyvault.json lack capability \(c.rawValue)", path: path)
        }
        return (secrets, signing, keys)
    }

    /// Reads keyvault.json and the policy again, as they are now: a writer does so once it holds the write lock,
    /// so that what another process changed meanwhile is built on, never overwritten.
    func reload() throws(DiskVaultError) {
        let fresh = try Self.readConfig(root)
        let path = "\(root)/keyvault.json"
        guard fresh.version == KeyVaultFormat.version, fresh.id == config.id, fresh.adminKey == config.adminKey else {
            throw DiskVaultError(.corrupt, "keyvault.json was replaced by another key vault's meanwhile: refused", path: path)
        }
        if let admin {
            guard fresh.kdf.salt == config.kdf.salt, let sealed = fresh.sealedAdmin.flatMap(unbase64),
                let plain = AESGCM.open(sealed, key: admin.sealingKey, associatedData: Array("keyvault-admin:\(config.id)".utf8))
            else { throw DiskVaultError(.locked, "the key vault's passphrase was changed meanwhile: run the command again", path: root) }
            let (secrets, _, keys) = try Self.decodeAdmin(plain, adminKey: adminPublicKey, path: path)
            // Checked and recorded under the write lock, which every change of keyvault.json holds.
            if let seen = KeyVaultHighWater.seen(config.id), secrets.epoch < seen {
                throw DiskVaultError(.corrupt, "keyvault.json is older than this host last saw it (epoch \(secrets.epoch), seen \(seen)): an old copy of the key vault was put back; refused (if it was restored on purpose, remove \(KeyVaultHighWater.path(config.id) ?? "the record"))", path: path)
            }
            KeyVaultHighWater.record(config.id, epoch: secrets.epoch)
            self.admin = (secrets, admin.sealingKey)
            capabilityKeys = keys
        }
        config = fresh
        let fresher = try Self.readPolicy(root: root, config: config, adminKey: adminPublicKey)
        if let seen = KeyVaultHighWater.seen(config.id, .policy), fresher.epoch < seen {
            throw DiskVaultError(.corrupt, "policy.json is older than this host last saw it (epoch \(fresher.epoch), seen \(seen)): an old copy was put back; refused (if the key vault was restored on purpose, principals revoked since that copy are granted again in it: revoke them, then remove \(KeyVaultHighWater.path(config.id, .policy) ?? "the record"))", path: "\(root)/\(KeyVaultFormat.policyPath)")
        }
        KeyVaultHighWater.record(config.id, epoch: fresher.epoch, .policy)
        if let principal {
            // A principal revoked, rotated or granted otherwise since it opened the key vault writes nothing.
            guard let before = policy.principals[principal], let now = fresher.principals[principal],
                now.boxKey == before.boxKey, now.signingKey == before.signingKey, now.grant == before.grant
            else { throw DiskVaultError(.permission, "principal \(principal)'s access to key vault \(root) was revoked or changed meanwhile: nothing was written") }
        }
        policy = fresher
        itemCache = [:]
    }

    /// The key to seal to for capability `c`: for the administrator the newest generation it holds, whatever
    /// the policy says (an old policy put back must not make it seal to keys a revoked principal has); for a
    /// principal the policy's.
    func sealingKey(_ c: Capability) -> (generation: Int, publicKey: [UInt8])? {
        if isAdministrator {
            guard let (gen, key) = capabilityKeys[c]?.max(by: { $0.key < $1.key }) else { return nil }
            return (gen, key.publicKey)
        }
        guard let current = policy.key(c), let publicKey = unbase64(current.publicKey) else { return nil }
        return (current.generation, publicKey)
    }

    /// The credential keys a credential's 32 random bytes derive.
    static func credentialKeys(_ secret: [UInt8], keyVault id: String) -> (box: X25519Key, signing: Ed25519Key) {
        let salt = Array(id.utf8)
        let box = X25519Key(privateKey: HKDF.sha256(key: secret, salt: salt, info: Array("diskvault credential box".utf8), count: 32))!
        let signing = Ed25519Key(seed: HKDF.sha256(key: secret, salt: salt, info: Array("diskvault credential signing".utf8), count: 32))!
        return (box, signing)
    }

    /// Opens as `principal` with the credential file `access grant` issued to it.
    public static func open(_ root: String, principal: String, credentialFile: String) throws(DiskVaultError) -> KeyVault {
        let config = try readConfig(root)
        let credential: CredentialFile
        do {
            credential = try JSONDecoder().decode(CredentialFile.self, from: Data(try FileSystem.readFile(credentialFile, limit: 1 << 16)))
        } catch let error as DiskVaultError {
            throw error
        } catch {
            throw DiskVaultError(.corrupt, "not a diskvault key vault credential", path: credentialFile)
        }
        guard credential.keyVault == config.id, credential.principal == principal else {
            throw DiskVaultError(.permission, "credential \(credentialFile) was not issued to principal \(principal) by key vault \(root)")
        }
        try validatePrincipalName(principal)
        guard config.version == KeyVaultFormat.version else { throw upgradeNeeded(root) }
        guard credential.version == KeyVaultFormat.version, let pinned = credential.adminKey.flatMap(unbase64) else {
            throw DiskVaultError(.permission, "credential \(credentialFile) was issued by key vault format 1: ask the administrator for a new one (`keyvault access rotate`)")
        }
        guard let adminKey = config.adminKey.flatMap(unbase64), adminKey == pinned else {
            throw DiskVaultError(.permission, "keyvault.json does not name the administrator key credential \(credentialFile) trusts: refused", path: "\(root)/keyvault.json")
        }
        guard let secret = unbase64(credential.secret), secret.count == 32 else {
            throw DiskVaultError(.corrupt, "credential is damaged (its secret is not 32 bytes)", path: credentialFile)
        }
        let (box, signing) = credentialKeys(secret, keyVault: config.id)
        let policy = try readPolicy(root: root, config: config, adminKey: adminKey)
        guard let entry = policy.principals[principal] else {
            throw DiskVaultError(.permission, "principal \(principal) has no access to key vault \(root) (revoked, or never granted)")
        }
        guard entry.boxKey == Data.base64(box.publicKey), entry.signingKey == Data.base64(signing.publicKey) else {
            throw DiskVaultError(.permission, "credential \(credentialFile) is not principal \(principal)'s current credential in key vault \(root) (it was rotated or granted again)")
        }
        let slotPath = KeyVaultFormat.slotPath(principal)
        let slot: Slot
        do {
            slot = try readAdminSigned(root: root, path: slotPath, kind: "slot", adminKey: adminKey)
        } catch where error.code == .notFound {
            throw DiskVaultError(.permission, "principal \(principal) has no access to key vault \(root) (its slot is gone: revoked)")
        }
        let full = "\(root)/\(slotPath)"
        guard slot.keyVault == config.id, slot.principal == principal, slot.boxKey == entry.boxKey else {
            throw DiskVaultError(.corrupt, "slot of principal \(principal) belongs elsewhere: refused", path: full)
        }
        guard slot.epoch >= entry.since else {
            throw DiskVaultError(.permission, "slot of principal \(principal) is older than its credential (an old copy was put back): refused", path: full)
        }
        guard slot.epoch <= policy.epoch else {
            throw DiskVaultError(.corrupt, "policy.json is older than principal \(principal)'s slot: an old copy of the policy was put back; refused", path: "\(root)/\(KeyVaultFormat.policyPath)")
        }
        var keys: [Capability: [Int: X25519Key]] = [:]
        for (name, generations) in slot.capabilities {
            guard let c = Capability(rawValue: name) else { continue }
            for (g, sealed) in generations {
                guard let gen = Int(g), let boxBytes = unbase64(sealed),
                    let plain = SealedToKey.open(boxBytes, with: box, associatedData: slotAD(config.id, principal, c, gen)),
                    let k = X25519Key(privateKey: plain)
                else { throw DiskVaultError(.corrupt, "slot of principal \(principal) is damaged (capability \(name) generation \(g))", path: full) }
                keys[c, default: [:]][gen] = k
            }
        }
        // The slot must hold the current generation of every capability the grant names.
        for c in Capability.held(by: entry.grant) {
            guard let current = policy.key(c), let k = keys[c]?[current.generation], Data.base64(k.publicKey) == current.publicKey else {
                throw DiskVaultError(.permission, "slot of principal \(principal) lacks the current key of \(c.rawValue): the administrator must grant its access again", path: full)
            }
        }
        return KeyVault(root: root, config: config, principal: principal, grant: entry.grant, policy: policy, capabilityKeys: keys,
                        signer: Signer(key: signing, name: "principal:\(principal)", certificate: slot.certificate), admin: nil)
    }

    static func slotAD(_ id: String, _ principal: String, _ c: Capability, _ generation: Int) -> [UInt8] {
        Array("slot:\(id):\(principal):\(c.rawValue):\(generation)".utf8)
    }

    static func validatePrincipalName(_ name: String) throws(DiskVaultError) {
        do { try DiskName.validate(name) } catch {
            throw DiskVaultError(.usage, "invalid principal name \"\(name)\": use letters, digits, '.', '_' and '-'")
        }
    }

    static func validateItemName(_ name: String) throws(DiskVaultError) {
        do { try DiskName.validate(name) } catch {
            throw DiskVaultError(.usage, "invalid name \"\(name)\": use letters, digits, '.', '_' and '-'")
        }
    }

    // MARK: permissions

    /// Whether this opener holds every one of `permissions` on `scope` (the administrator holds all). What
    /// it can decrypt follows from the capability keys it holds, whatever this says.
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

    func requireAdministrator(_ doing: String) throws(DiskVaultError) {
        guard isAdministrator else { throw DiskVaultError(.permission, "only the key vault administrator can \(doing)") }
    }

    // MARK: signed files

    /// Reads and checks a file the administrator signed, and decodes its payload.
    static func readAdminSigned<T: Decodable>(root: String, path: String, kind: String, adminKey: [UInt8]) throws(DiskVaultError) -> T {
        let full = "\(root)/\(path)"
        let bytes = try FileSystem.readRegularFile(full, limit: KeyVaultFormat.maxFileSize)
        let payload = try checkSigned(bytes, path: path, kind: kind, full: full) { (signer, _) throws(DiskVaultError) in
            guard signer == "admin" else {
                throw DiskVaultError(.permission, "\(kind) is signed by \(signer), not by the key vault's administrator: refused", path: full)
            }
            return adminKey
        }
        guard let value = try? JSONDecoder().decode(T.self, from: Data(payload)) else {
            throw DiskVaultError(.corrupt, "\(kind) is damaged (its signed contents do not decode)", path: full)
        }
        return value
    }

    /// Checks a signed file's form and signature; `key` names the public key its signer must have signed with.
    static func checkSigned(
        _ bytes: [UInt8], path: String, kind: String, full: String,
        key: (String, SignedFile) throws(DiskVaultError) -> [UInt8]
    ) throws(DiskVaultError) -> [UInt8] {
        guard let file = try? JSONDecoder().decode(SignedFile.self, from: Data(bytes)), file.format == KeyVaultFormat.signedFormat else {
            throw DiskVaultError(.corrupt, "not a signed key vault file", path: full)
        }
        guard file.kind == kind else { throw DiskVaultError(.corrupt, "holds a \(file.kind), not a \(kind): refused", path: full) }
        guard let payload = unbase64(file.payload), let signature = unbase64(file.signature) else {
            throw DiskVaultError(.corrupt, "signed file is damaged (not base64)", path: full)
        }
        let publicKey = try key(file.signer, file)
        guard Ed25519Key.verify(signature, message: SignedFile.message(kind: kind, path: path, payload: payload), publicKey: publicKey) else {
            throw DiskVaultError(.permission, "\(kind) was not signed by \(file.signer == "admin" ? "the key vault's administrator" : file.signer) (written or moved by someone else): refused", path: full)
        }
        return payload
    }

    static func readPolicy(root: String, config: Config, adminKey: [UInt8]) throws(DiskVaultError) -> Policy {
        let policy: Policy = try readAdminSigned(root: root, path: KeyVaultFormat.policyPath, kind: "policy", adminKey: adminKey)
        guard policy.keyVault == config.id else {
            throw DiskVaultError(.corrupt, "policy belongs to another key vault: refused", path: "\(root)/\(KeyVaultFormat.policyPath)")
        }
        return policy
    }

    /// Signs `value` as this opener and writes it to `path` atomically.
    func writeSigned<T: Encodable>(_ value: T, kind: String, path: String, certificate: String? = nil, newFile: Bool = false) throws(DiskVaultError) {
        let payload = try JSON.encode(value, pretty: false)
        let file = SignedFile(
            format: KeyVaultFormat.signedFormat, kind: kind, payload: Data.base64(payload), signer: signer.name,
            signature: Data.base64(signer.key.sign(SignedFile.message(kind: kind, path: path, payload: payload))), certificate: certificate)
        let full = "\(root)/\(path)"
        try FileSystem.makeDirectories(FileSystem.parentDirectory(of: full))
        if newFile {
            guard try FileSystem.writeNewFileAtomically(full, try JSON.encode(file)) else {
                throw DiskVaultError(.alreadyExists, "a key vault item with this id exists", path: full)
            }
        } else {
            try FileSystem.writeFileAtomically(full, try JSON.encode(file))
        }
    }

    func writePolicy(_ policy: Policy) throws(DiskVaultError) {
        try requireAdministrator("change the access policy")
        try writeSigned(policy, kind: "policy", path: KeyVaultFormat.policyPath)
        self.policy = policy
        KeyVaultHighWater.record(config.id, epoch: policy.epoch, .policy)
    }

    /// Holds the key vault's write lock (a kernel lock on keyvault.lock) while `body` runs, so that two
    /// writers never interleave their changes.
    func withWriteLock<R>(_ body: () throws(DiskVaultError) -> R) throws(DiskVaultError) -> R {
        let file = try FileDescriptor(path: "\(root)/keyvault.lock", flags: O_RDWR | O_CREAT | O_NOFOLLOW, doing: "cannot open the key vault's lock")
        defer { try? file.close() }
        let deadline = Date().addingTimeInterval(60)
        while !(try file.tryLock(exclusive: true)) {
            guard Date() < deadline else { throw DiskVaultError(.locked, "key vault \(root) is being changed by another process (waited 60 s)") }
            usleep(20_000)
        }
        try reload()
        return try body()
    }
}
