/// Whether a disk key (a BEK: LUKS passphrase or key file, BitLocker .BEK) opens a volume, found without
/// touching the volume's data: LUKS opens a key slot and compares the volume-key digest; BitLocker unwraps
/// the VMK of the startup-key protector.
public enum KeyCheckResult: Sendable, Equatable, Codable {
    /// The key opens the volume; the text names how ("key slot 0", "startup-key protector {guid}").
    case fits(String)
    /// The key does not open the volume; the text says what was tried.
    case doesNotFit(String)
    /// The key could not be checked (e.g. an Argon2 key slot, a cipher this build cannot run); the text says why.
    case unchecked(String)
}

/// What a key check found, as manifests and JSON name it.
public enum KeyCheckStatus: String, Codable, Sendable {
    case fits
    case doesNotFit = "does-not-fit"
    case unchecked
}

extension KeyCheckResult {
    public var status: KeyCheckStatus {
        switch self {
        case .fits: return .fits
        case .doesNotFit: return .doesNotFit
        case .unchecked: return .unchecked
        }
    }

    public var detail: String {
        switch self {
        case .fits(let s), .doesNotFit(let s), .unchecked(let s): return s
        }
    }
}
