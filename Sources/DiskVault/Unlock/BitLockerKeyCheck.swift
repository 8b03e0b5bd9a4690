/// Whether a .BEK startup key opens a BitLocker volume, found from the FVE metadata alone: the .BEK's key
/// identifier names a VMK entry (protector); that entry's properties hold the VMK wrapped with AES-CCM under the
/// external key (value type 5: 12-byte nonce, 16-byte tag, ciphertext). The tag verifies only under the right
/// key, so unwrapping the VMK is the proof; the FVEK and the volume's data are never touched.
///
/// The unwrapped VMK is itself a key entry (2 size, 2 entry type, 2 value type 1, 2 version, 4 encryption
/// method, 32 key), which is checked too and then dropped.
public enum BitLockerKeyCheck {
    /// `.fits("startup-key protector {guid}")` when the .BEK's key unwraps its protector's VMK;
    /// `.doesNotFit` when no protector has the .BEK's key identifier, when the AES-CCM tag does not verify, or
    /// when the volume is not BitLocker; `.unchecked` for a protector that needs the TPM as well. A .BEK that is
    /// not a .BEK, or a damaged BitLocker metadata block, is an error.
    public static func check(bek: [UInt8], bekSource: String, volume: VolumeBytes) throws(DiskVaultError)
        -> KeyCheckResult {
        try check(BitLockerStartupKey.parse(bek, source: bekSource), volume: volume)
    }

    static let protectionStartupKey: UInt16 = 0x0200
    static let vmkKeySize = 32

    static func check(_ startup: BitLockerStartupKey, volume: VolumeBytes) throws(DiskVaultError) -> KeyCheckResult {
        guard let vmks = try BitLockerWrappedVMK.read(volume) else {
            return .doesNotFit("\(volume.image) is not a BitLocker volume (no BitLocker signature)")
        }
        let guid = startup.keyGUID
        let matching = vmks.filter { $0.guid == guid }
        guard !matching.isEmpty else {
            let names = vmks.map { "\($0.kind) \($0.guid)" }.joined(separator: ", ")
            return .doesNotFit("no protector of the volume has the .BEK's key identifier \(guid) "
                + "(its protectors: \(names.isEmpty ? "none" : names))")
        }
        var needsMore: VMKCandidate?
        for vmk in matching {
            let wrapped = try vmk.wrappedKey(volume)
            guard let plain = AESCCM.decrypt(key: startup.key, nonce: wrapped.nonce, ciphertext: wrapped.ciphertext,
                                             tag: wrapped.tag)
            else {
                // The startup key is one flag among TPM (0x0100) and PIN (0x0400): with those the VMK is wrapped
                // with more than the .BEK's key, which cannot be had here.
                if vmk.protection & protectionStartupKey != 0 && vmk.protection != protectionStartupKey {
                    needsMore = vmk
                }
                continue
            }
            guard isKeyDatum(plain) else {
                return .unchecked("\(vmk.kind) protector \(guid): the .BEK's key unwraps its VMK (the AES-CCM "
                    + "tag verifies), but what it holds is not a \(vmkKeySize)-byte key entry")
            }
            return .fits("\(vmk.kind) protector \(guid)")
        }
        if let vmk = needsMore {
            return .unchecked("\(vmk.kind) protector \(guid): its VMK is wrapped with the TPM as well as the "
                + "startup key, which cannot be checked without the TPM")
        }
        let kinds = Set(matching.map(\.kind))
        if !matching.contains(where: { $0.protection & protectionStartupKey != 0 }) {
            return .doesNotFit("protector \(guid) is a \(kinds.sorted().joined(separator: ", ")) protector, not a "
                + "startup key: the .BEK's key does not unwrap its VMK (AES-CCM tag does not verify)")
        }
        return .doesNotFit("\(kinds.sorted().joined(separator: ", ")) protector \(guid): the .BEK's key does not "
            + "unwrap its VMK (AES-CCM tag does not verify)")
    }

    /// The unwrapped VMK as BitLocker stores it: a key entry whose size field counts the whole of it.
    static func isKeyDatum(_ plain: [UInt8]) -> Bool {
        let r = ByteReader(plain, what: "unwrapped VMK")
        guard let size = try? r.u16le(0, "size"), let valueType = try? r.u16le(4, "value type") else { return false }
        return Int(size) == plain.count && valueType == DatumType.key && plain.count == 12 + vmkKeySize
    }
}
