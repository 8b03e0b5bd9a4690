import Foundation

/// An encrypted vault's escrow key: an X25519 key pair that key vaults escrowing to the vault seal their items
/// to (`keyvault escrow add`). Its private half is sealed under a **recovery passphrase** of its own, never
/// under the vault's: every host that backs up into the vault holds the vault's passphrase, and must not be
/// able to read the keys of the disks it backs up. The object `escrow.json` is sealed in the vault like every
/// other (its path as associated data), so its public half is the vault's own: nobody without the vault's
/// passphrase can swap it for a key of theirs.
public struct VaultEscrowKey: Codable, Sendable {
    static let object = "escrow.json"
    static let formatName = "diskvault-vault-escrow"

    var format: String
    var version: Int
    var vaultID: String
    /// The public half (X25519, base64).
    public internal(set) var publicKey: String
    var kdf: VaultConfig.Encryption.KDF
    /// The private half, AES-256-GCM under scrypt of the recovery passphrase (base64).
    var sealedPrivateKey: String

    static func associatedData(_ vaultID: String) -> [UInt8] { Array("diskvault-vault-escrow:\(vaultID)".utf8) }

    public var publicKeyBytes: [UInt8] { unbase64(publicKey) ?? [] }
}

extension Vault {
    private func requireEncrypted(_ doing: String) throws(DiskVaultError) {
        guard isEncrypted else {
            throw DiskVaultError(.usage, "vault \(location) is not encrypted: a clear vault keeps no escrow of keys (\(doing) needs an encrypted vault)")
        }
    }

    /// Makes the vault's escrow key, its private half sealed under `recoveryPassphrase`. Refused when the vault
    /// has one: key backups already sealed to it would be lost.
    public func createEscrowKey(recoveryPassphrase: [UInt8], logN: Int) throws(DiskVaultError) -> VaultEscrowKey {
        try requireEncrypted("an escrow key")
        guard !recoveryPassphrase.isEmpty else { throw DiskVaultError(.usage, "the recovery passphrase is empty") }
        let pair = X25519Key.generate()
        let (kdf, sealed) = try VaultKeys.sealUnder(recoveryPassphrase, pair.privateKey, logN: logN, associatedData: VaultEscrowKey.associatedData(config.id))
        let key = VaultEscrowKey(
            format: VaultEscrowKey.formatName, version: 1, vaultID: config.id, publicKey: Data.base64(pair.publicKey), kdf: kdf,
            sealedPrivateKey: Data.base64(sealed))
        guard try storage.putIfAbsent(VaultEscrowKey.object, try JSON.encode(key), durable: true) else {
            throw DiskVaultError(.alreadyExists, "vault \(location) has an escrow key already (key backups are sealed to it: it is never replaced)")
        }
        return key
    }

    /// The vault's escrow key, nil when it has none (or is clear).
    public func escrowKey() throws(DiskVaultError) -> VaultEscrowKey? {
        guard isEncrypted, try storage.head(VaultEscrowKey.object) != nil else { return nil }
        let source = "\(location)/\(VaultEscrowKey.object)"
        let bytes = try storage.get(VaultEscrowKey.object, limit: 1 << 16)
        guard let key = try? JSONDecoder().decode(VaultEscrowKey.self, from: Data(bytes)), key.format == VaultEscrowKey.formatName,
            key.version == 1, key.vaultID == config.id, key.publicKeyBytes.count == 32
        else { throw DiskVaultError(.corrupt, "is not this vault's escrow key", path: source) }
        return key
    }

    /// The escrow key's private half, opened with the recovery passphrase.
    public func openEscrowKey(recoveryPassphrase: [UInt8]) throws(DiskVaultError) -> X25519Key {
        try requireEncrypted("opening the escrow")
        guard let key = try escrowKey() else {
            throw DiskVaultError(.notFound, "vault \(location) has no escrow key (make one with `diskvault vault escrow init`)")
        }
        let source = "\(location)/\(VaultEscrowKey.object)"
        guard let sealed = unbase64(key.sealedPrivateKey),
            let plain = try VaultKeys.openUnder(recoveryPassphrase, sealed, kdf: key.kdf, associatedData: VaultEscrowKey.associatedData(config.id), source: source)
        else { throw DiskVaultError(.permission, "wrong recovery passphrase for the escrow key of vault \(location)") }
        guard let pair = X25519Key(privateKey: plain), pair.publicKey == key.publicKeyBytes else {
            throw DiskVaultError(.corrupt, "holds a private key that is not its public key's", path: source)
        }
        return pair
    }
}
