import Foundation

/// The keys of an encrypted vault: a random 256-bit master key, sealed in vault.json (AES-256-GCM under a key
/// scrypt derives from the passphrase), and the keys HKDF-SHA256 derives from it (salt: the vault's id), one
/// per use so that no key serves two purposes.
public struct VaultKeys: Sendable {
    public let master: [UInt8]
    /// Seals chunk blobs.
    let blob: [UInt8]
    /// Names chunks: HMAC-SHA256 of the plaintext, so that a name says nothing about the content.
    let naming: [UInt8]
    /// Seals every other object (indexes, manifests, key backups, records).
    let metadata: [UInt8]
    /// The private half of the vault's escrow key pair (X25519): key vaults that escrow to this vault seal
    /// their items to its public half, so that a point's key backup opens without its key vault.
    let escrow: [UInt8]

    /// The escrow key pair.
    public var escrowKey: X25519Key {
        guard let key = X25519Key(privateKey: escrow) else { fatalError("X25519 refused a 32-byte private key") }
        return key
    }

    public init(master: [UInt8], vaultID: String) {
        self.master = master
        let salt = Array(vaultID.utf8)
        func derive(_ use: String) -> [UInt8] { HKDF.sha256(key: master, salt: salt, info: Array("diskvault vault \(use)".utf8), count: 32) }
        blob = derive("blob")
        naming = derive("chunk naming")
        metadata = derive("metadata")
        escrow = derive("key escrow")
    }

    /// The associated data an object is sealed with: the vault and the object's key, so that nothing moves.
    static func associatedData(vaultID: String, key: String) -> [UInt8] { Array("diskvault-vault:\(vaultID):\(key)".utf8) }

    /// A new master key sealed under `passphrase`: the encryption section of a new vault.json.
    static func seal(master: [UInt8], passphrase: [UInt8], logN: Int, vaultID: String) throws(DiskVaultError) -> VaultConfig.Encryption {
        guard !passphrase.isEmpty else { throw DiskVaultError(.usage, "the vault passphrase is empty") }
        guard (10...20).contains(logN) else { throw DiskVaultError(.usage, "--kdf-work-factor must be from 10 to 20") }
        let salt = SecureRandom.bytes(16)
        guard let key = Scrypt.derive(passphrase, salt: salt, logN: logN) else { throw DiskVaultError(.io, "scrypt failed") }
        return VaultConfig.Encryption(
            scheme: VaultConfig.Encryption.aesGCM,
            kdf: .init(name: "scrypt", logN: logN, r: 8, p: 1, salt: Data(salt).base64EncodedString()),
            sealedMasterKey: Data(AESGCM.seal(master, key: key, associatedData: Array("diskvault-vault-master:\(vaultID)".utf8))).base64EncodedString())
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
