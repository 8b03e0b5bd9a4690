import Foundation

/// The keys of an encrypted vault: a random 256-bit master key, sealed in vault.json (AES-256-GCM under a key
/// scrypt derives from the passphrase), and the keys HKDF-SHA256 derives from it (salt: the vault's id), one
/// per use so that no key serves two purposes. The escrow key (`VaultEscrowKey`) is not among them: whoever
/// holds the passphrase (every host that backs up into the vault) must not hold it.
public struct VaultKeys: Sendable {
    public let master: [UInt8]
    /// Seals chunk blobs.
    let blob: [UInt8]
    /// Names chunks: HMAC-SHA256 of the plaintext, so that a name says nothing about the content.
    let naming: [UInt8]
    /// Seals every other object (indexes, manifests, key backups, records).
    let metadata: [UInt8]
    public init(master: [UInt8], vaultID: String) {
        self.master = master
        let salt = Array(vaultID.utf8)
        func derive(_ use: String) -> [UInt8] { HKDF.sha256(key: master, salt: salt, info: Array("diskvault vault \(use)".utf8), count: 32) }
        blob = derive("blob")
        naming = derive("chunk naming")
        metadata = derive("metadata")
    }

    /// The associated data an object is sealed with: the vault and the object's key, so that nothing moves.
    static func associatedData(vaultID: String, key: String) -> [UInt8] { Array("diskvault-vault:\(vaultID):\(key)".utf8) }

    /// A new master key sealed under `passphrase`: the encryption section of a new vault.json.
    static func seal(master: [UInt8], passphrase: [UInt8], logN: Int, vaultID: String) throws(DiskVaultError) -> VaultConfig.Encryption {
        guard !passphrase.isEmpty else { throw DiskVaultError(.usage, "the vault passphrase is empty") }
        let (kdf, sealed) = try sealUnder(passphrase, master, logN: logN, associatedData: Array("diskvault-vault-master:\(vaultID)".utf8))
        return VaultConfig.Encryption(scheme: VaultConfig.Encryption.aesGCM, kdf: kdf, sealedMasterKey: Data(sealed).base64EncodedString())
    }

    /// `secret` AES-256-GCM sealed under scrypt(`passphrase`) with a new salt, and the parameters.
    static func sealUnder(_ passphrase: [UInt8], _ secret: [UInt8], logN: Int, associatedData: [UInt8]) throws(DiskVaultError) -> (VaultConfig.Encryption.KDF, [UInt8]) {
        guard (10...20).contains(logN) else { throw DiskVaultError(.usage, "--kdf-work-factor must be from 10 to 20") }
        let salt = SecureRandom.bytes(16)
        guard let key = Scrypt.derive(passphrase, salt: salt, logN: logN) else { throw DiskVaultError(.io, "scrypt failed") }
        return (.init(name: "scrypt", logN: logN, r: 8, p: 1, salt: Data(salt).base64EncodedString()), AESGCM.seal(secret, key: key, associatedData: associatedData))
    }

    /// What `sealUnder` sealed; nil for a wrong passphrase (or damaged box), `.corrupt` for damaged parameters.
    static func openUnder(_ passphrase: [UInt8], _ sealed: [UInt8], kdf: VaultConfig.Encryption.KDF, associatedData: [UInt8], source: String) throws(DiskVaultError) -> [UInt8]? {
        guard kdf.name == "scrypt", let salt = Data(base64Encoded: kdf.salt),
            let key = Scrypt.derive(passphrase, salt: Array(salt), logN: kdf.logN, r: kdf.r, p: kdf.p)
        else { throw DiskVaultError(.corrupt, "has damaged key derivation parameters", path: source) }
        return AESGCM.open(sealed, key: key, associatedData: associatedData)
    }

    /// The master key of `config`, opened with `passphrase`; "wrong passphrase" when it does not open.
    static func open(_ config: VaultConfig, passphrase: [UInt8], location: String) throws(DiskVaultError) -> VaultKeys {
        let e = config.encryption
        guard let kdf = e.kdf, let salt = Data(base64Encoded: kdf.salt), let sealed = e.sealedMasterKey.flatMap({ Data(base64Encoded: $0) }),
            let key = Scrypt.derive(passphrase, salt: Array(salt), logN: kdf.logN, r: kdf.r, p: kdf.p)
        else { throw DiskVaultError(.corrupt, "vault.json has damaged key derivation parameters", path: "\(location)/vault.json") }
        guard let master = AESGCM.open(Array(sealed), key: key, associatedData: Array("diskvault-vault-master:\(config.id)".utf8)), master.count == 32 else {
            throw DiskVaultError(.permission, "wrong passphrase for vault \(location)")
        }
        return VaultKeys(master: master, vaultID: config.id)
    }
}
