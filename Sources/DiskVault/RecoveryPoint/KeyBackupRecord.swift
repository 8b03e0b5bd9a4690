/// What a recovery point of an encrypted disk records about its keys (never a key itself).
public struct KeyBackupRecord: Codable, Sendable, Equatable {
    public var keyVault: String
    public var keyVaultID: String
    public var principal: String
    /// The sealed blob stored beside the index ("keys").
    public var blob: String
    public var volumes: [Volume]
    /// SHA-256 of the sealed blob, so verify can prove it whole without the key vault (absent in points of
    /// older builds).
    public var blobDigest: String? = nil
    /// The id of the vault whose escrow key every item of the key backup is also sealed to (the vault the
    /// point is in), so that the keys go back into another key vault; absent: only the key vault opens them.
    public var escrow: String? = nil

    public struct Volume: Codable, Sendable, Equatable {
        public var number: Int
        public var format: EncryptionFormat
        /// The LUKS UUID, BitLocker startup-key GUID, or disk/number of a declared volume.
        public var volumeID: String
        public var secret: String
        public var secretVersion: Int
        public var wrappedBy: String?
        public var keyVersion: Int?
        /// Fits, or unchecked (e.g. an Argon2 key slot); a key that does not fit fails the backup.
        public var check: KeyCheckStatus
        public var checkDetail: String
        /// SHA-256 of the volume's LUKS header and key-slot area when the key was checked: while it and the
        /// secret version stay the same, the next point reuses the check instead of paying for PBKDF2 again.
        public var headerDigest: String?
        /// SHA-256 of the secret version's item file (sealed and signed; format 1: an HMAC of its value): a
        /// secret deleted and set again with the same version number is not mistaken for the one checked before.
        public var secretMAC: String?
        /// SHA-256 of the secret's stored value (the wrapped BEK when wrapped; what a get on secrets reveals
        /// anyway), so that a restore with another key vault knows it holds this secret and not a namesake.
        public var valueDigest: String? = nil
    }

    static func valueDigest(_ storedValue: String) -> String { SHA256.digest(Array("diskvault stored secret value\0\(storedValue)".utf8)).hex }
}
