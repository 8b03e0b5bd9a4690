/// Dispatches a key check to the reader of the volume's format.
public enum KeyCheck {
    public static func check(bek: [UInt8], volume: VolumeBytes, encryption: VolumeEncryption, source: String) throws(DiskVaultError) -> KeyCheckResult {
        switch encryption.format {
        case .luks1, .luks2: return try LUKSKeyCheck.check(key: bek, volume: volume, encryption: encryption)
        case .bitlocker: return try BitLockerKeyCheck.check(bek: bek, bekSource: source, volume: volume)
        default: return .unchecked("a declared volume has no header to check a key against")
        }
    }
}
