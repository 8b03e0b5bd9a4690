import Foundation

/// vault.json: what a vault is and how its chunks are made.
public struct VaultConfig: Codable, Sendable, Equatable {
    public static let formatName = "diskvault"
    /// 2: blobs at chunks/<64 hex>, `chunkPrefixDigits` recorded. 1: the first format, chunks/<4 hex>/<64 hex>;
    /// still read and written. A build that knows only version 1 refuses a version-2 vault rather than look
    /// for its blobs in the wrong place.
    public static let currentVersion = 2
    public static let readableVersions = 1...2

    public var format: String
    public var version: Int
    public var id: String
    public var created: String
    public var chunkSize: Int
    public var hash: String
    public var compression: String
    public var encryption: Encryption
    /// Hex digits of the folder a chunk's blob sits in (format version 2): 0 (vaults made now) is
    /// `chunks/<64 hex>`, one folder that ext4, XFS and btrfs index by hash. Version-1 vaults have no field
    /// and keep `chunks/<4 hex>/<64 hex>`, which costs a 4 KiB folder and a mkdir per prefix.
    public var chunkPrefixDigits: Int?

    /// The prefix length in effect: a version-1 vault's is 4.
    public var prefixDigits: Int { version == 1 ? 4 : chunkPrefixDigits ?? -1 }

    public struct Encryption: Codable, Sendable, Equatable {
        public static let none = "none"
        public static let aesGCM = "aes-256-gcm"
        /// "none" or "aes-256-gcm".
        public var scheme: String
        /// How the passphrase becomes the key that seals the master key (encrypted vaults).
        public var kdf: KDF?
        /// The master key, AES-256-GCM sealed under that key (base64).
        public var sealedMasterKey: String?

        public init(scheme: String, kdf: KDF? = nil, sealedMasterKey: String? = nil) {
            self.scheme = scheme
            self.kdf = kdf
            self.sealedMasterKey = sealedMasterKey
        }

        public struct KDF: Codable, Sendable, Equatable {
            public var name: String
            public var logN: Int
            public var r: Int
            public var p: Int
            public var salt: String
        }

        public var isEncrypted: Bool { scheme == Self.aesGCM }
    }
}

extension VaultConfig {
    /// Parses vault.json and checks every field this build relies on; `source` names the file in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws(DiskVaultError) -> VaultConfig {
        let config: VaultConfig
        do {
            config = try JSONDecoder().decode(VaultConfig.self, from: Data(bytes))
        } catch {
            throw DiskVaultError(.corrupt, "vault.json is not a diskvault vault configuration (\(describe(error)))", path: source)
        }
        guard config.format == VaultConfig.formatName else {
            throw DiskVaultError(.notAVault, "vault.json names format \"\(config.format)\", not diskvault", path: source)
        }
        guard VaultConfig.readableVersions.contains(config.version) else {
            throw DiskVaultError(.unsupported, "vault format version \(config.version) is not supported (this build reads versions \(VaultConfig.readableVersions.lowerBound) to \(VaultConfig.readableVersions.upperBound))", path: source)
        }
        guard Vault.isValidChunkSize(config.chunkSize), config.hash == "sha256" else {
            throw DiskVaultError(.corrupt, "vault.json has chunk size \(config.chunkSize) and hash \(config.hash); expected a power of two in 64 KiB–16 MiB and sha256", path: source)
        }
        guard config.version == 1 ? config.chunkPrefixDigits == nil : [0, 2, 4].contains(config.prefixDigits) else {
            throw DiskVaultError(.corrupt, "vault.json of format version \(config.version) has chunkPrefixDigits \(config.chunkPrefixDigits.map(String.init) ?? "missing"); expected \(config.version == 1 ? "none" : "0, 2 or 4")", path: source)
        }
        switch config.encryption.scheme {
        case VaultConfig.Encryption.none: break
        case VaultConfig.Encryption.aesGCM:
            guard let kdf = config.encryption.kdf, kdf.name == "scrypt", (10...22).contains(kdf.logN), (1...32).contains(kdf.r), (1...16).contains(kdf.p),
                config.encryption.sealedMasterKey.flatMap({ Data(base64Encoded: $0) }) != nil
            else { throw DiskVaultError(.corrupt, "vault.json of an encrypted vault has damaged key derivation parameters or sealed key", path: source) }
        default:
            throw DiskVaultError(.unsupported, "vault encryption \"\(config.encryption.scheme)\" is not supported by this build", path: source)
        }
        return config
    }
}

/// An opened vault: its configuration and the storage that holds it.
public final class Vault: Sendable {
    public let storage: any VaultStorage
    public let config: VaultConfig
    public let chunks: ChunkStore

    public static let minChunkSize = 64 << 10
    public static let maxChunkSize = 16 << 20
    public static let defaultChunkSize = 4 << 20

    /// The keys of an encrypted vault (nil for a clear one).
    public let keys: VaultKeys?

    /// `storage` as the backend gives it; an encrypted vault reaches it through `EncryptedStorage`.
    init(storage: any VaultStorage, config: VaultConfig, keys: VaultKeys? = nil) {
        self.storage = keys.map { EncryptedStorage(storage, keys: $0, vaultID: config.id) } ?? storage
        self.config = config
        self.keys = keys
        self.chunks = ChunkStore(storage: self.storage, chunkSize: config.chunkSize, prefixDigits: config.prefixDigits, namingKey: keys?.naming)
    }

    public var isEncrypted: Bool { keys != nil }

    public var location: String { storage.location }

    /// Opens the vault at `location` (a directory). Refuses a missing vault, something that is not a vault,
    /// and a format version this build does not know.
    /// An encrypted vault asks `passphrase` for its passphrase (a clear vault never does).
    public static func open(_ location: String, passphrase: () throws(DiskVaultError) -> [UInt8] = Vault.askNoOne) throws(DiskVaultError) -> Vault {
        try open(storage: try storageFor(location), passphrase: passphrase)
    }

    /// What an encrypted vault opened without a way to ask for its passphrase says.
    public static let noPassphrase = DiskVaultError(.usage, "the vault is encrypted: give --passphrase-file or set DISKVAULT_PASSPHRASE")

    /// The passphrase source of an opener that has none.
    public static func askNoOne() throws(DiskVaultError) -> [UInt8] { throw noPassphrase }

    /// Opens the vault `storage` holds, on any backend.
    public static func open(storage: any VaultStorage, passphrase: () throws(DiskVaultError) -> [UInt8] = Vault.askNoOne) throws(DiskVaultError) -> Vault {
        let bytes: [UInt8]
        do {
            bytes = try storage.get("vault.json", limit: 1 << 20)
        } catch where error.code == .notFound {
            if try storage.containerExists() {
                throw DiskVaultError(.notAVault, "not a diskvault vault (no vault.json)", path: storage.location)
            }
            throw DiskVaultError(.notFound, "vault does not exist", path: storage.location)
        } catch where error.cause?.errno == ENOTDIR {
            throw DiskVaultError(.notAVault, "not a vault: it is a file, and a vault is the folder `diskvault vault init` makes", path: storage.location)
        }
        let config = try VaultConfig.decode(bytes, source: "\(storage.location)/vault.json")
        guard config.encryption.isEncrypted else { return Vault(storage: storage, config: config) }
        let keys = try VaultKeys.open(config, passphrase: try passphrase(), location: storage.location)
        return Vault(storage: storage, config: config, keys: keys)
    }

    /// Creates a new, empty vault. Refuses a location that already holds a vault or other files; takes over
    /// one that holds only what an interrupted `create` left (vault.json is written last, see `InitDirectory`).
    @discardableResult
    public static func create(_ location: String, chunkSize: Int = defaultChunkSize, now: Date = Date(), encryption: NewEncryption? = nil) throws(DiskVaultError) -> Vault {
        try checkChunkSize(chunkSize)
        return try create(storage: try storageFor(location), chunkSize: chunkSize, now: now, encryption: encryption)
    }

    /// How a new vault is encrypted: its passphrase and scrypt's cost (log2 N).
    public struct NewEncryption: Sendable {
        public var passphrase: [UInt8]
        public var logN: Int
        public init(passphrase: [UInt8], logN: Int = 15) {
            self.passphrase = passphrase
            self.logN = logN
        }
    }

    /// Creates a new, empty vault in `storage`: its container readied by the backend, then vault.json put last.
    @discardableResult
    public static func create(storage: any VaultStorage, chunkSize: Int = defaultChunkSize, now: Date = Date(), encryption: NewEncryption? = nil) throws(DiskVaultError) -> Vault {
        try checkChunkSize(chunkSize)
        let id = randomHex(16)
        var keys: VaultKeys? = nil
        var section = VaultConfig.Encryption(scheme: VaultConfig.Encryption.none)
        if let encryption {
            let master = SecureRandom.bytes(32)
            section = try VaultKeys.seal(master: master, passphrase: encryption.passphrase, logN: encryption.logN, vaultID: id)
            keys = VaultKeys(master: master, vaultID: id)
        }
        try storage.prepareNewVault()
        let config = VaultConfig(
            format: VaultConfig.formatName, version: VaultConfig.currentVersion, id: id,
            created: Timestamp.format(now), chunkSize: chunkSize, hash: "sha256", compression: "zlib",
            encryption: section, chunkPrefixDigits: 0)
        // Last, durable, and never over another init's that got here first.
        guard try storage.putIfAbsent("vault.json", try JSON.encode(config), durable: true) else {
            throw DiskVaultError(.alreadyExists, "a vault was created here meanwhile", path: storage.location)
        }
        return Vault(storage: storage, config: config, keys: keys)
    }

    /// Seals the master key under a new passphrase (new salt; `logN` as given, or as before) and puts vault.json
    /// back in one atomic replace: killed at any moment, the vault opens with the old passphrase or the new one.
    /// Nothing else changes: the master key, and so every blob and record, stays.
    public func changePassphrase(_ passphrase: [UInt8], logN: Int? = nil) throws(DiskVaultError) {
        guard let keys else { throw DiskVaultError(.usage, "vault \(location) is not encrypted: it has no passphrase to change") }
        var config = self.config
        config.encryption = try VaultKeys.seal(master: keys.master, passphrase: passphrase, logN: logN ?? config.encryption.kdf?.logN ?? 15, vaultID: config.id)
        try storage.replace("vault.json", try JSON.encode(config))
    }

    static func checkChunkSize(_ chunkSize: Int) throws(DiskVaultError) {
        guard isValidChunkSize(chunkSize) else {
            throw DiskVaultError(.usage, "chunk size must be a power of two from 64 KiB to 16 MiB, not \(chunkSize > 0 ? ByteCount.format(UInt64(chunkSize)) : "\(chunkSize)") (\(chunkSize) bytes)")
        }
    }

    static func isValidChunkSize(_ n: Int) -> Bool {
        n >= minChunkSize && n <= maxChunkSize && n & (n - 1) == 0
    }

    static func storageFor(_ location: String) throws(DiskVaultError) -> any VaultStorage {
        if S3Location.isS3(location) { return try S3Storage(try S3Location.parse(location)) }
        guard !location.isEmpty else { throw DiskVaultError(.usage, "no vault given (--vault or DISKVAULT_VAULT)") }
        return LocalStorage(root: location)
    }
}
