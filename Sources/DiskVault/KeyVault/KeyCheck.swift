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

extension KeyCheckResult {
    /// "fits", "does-not-fit" or "unchecked", for manifests and JSON.
    public var status: String {
        switch self {
        case .fits: return "fits"
        case .doesNotFit: return "does-not-fit"
        case .unchecked: return "unchecked"
        }
    }

    public var detail: String {
        switch self {
        case .fits(let s), .doesNotFit(let s), .unchecked(let s): return s
        }
    }
}
