/// A name that becomes one path component in a vault (a disk, a point, a policy): letters, digits, '.', '_'
/// and '-', not starting with '.', at most 128 bytes, so it can never climb out of its folder.
public enum VaultName {
    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128 && !name.hasPrefix(".") && name.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d
        }
    }

    /// Throws a usage error naming `what` ("disk", "policy") when `name` is not valid.
    public static func validate(_ name: String, as what: String) throws(DiskVaultError) {
        guard isValid(name) else {
            throw DiskVaultError(.usage, "invalid \(what) name \"\(name)\": use letters, digits, '.', '_' and '-' (not starting with '.'), at most 128")
        }
    }
}

/// A disk name: a `VaultName`.
public enum DiskName {
    public static func isValid(_ name: String) -> Bool { VaultName.isValid(name) }
    public static func validate(_ name: String) throws(DiskVaultError) { try VaultName.validate(name, as: "disk") }
}
