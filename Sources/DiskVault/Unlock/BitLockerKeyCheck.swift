/// A BitLocker startup key: the external key held in a .BEK file (the file Windows writes to a USB stick as
/// `{key identifier}.BEK`). Learned from cryptsetup's lib/bitlk/bitlk.c and libbde's "BitLocker Drive
/// Encryption (BDE) format" document; all integers little-endian, GUIDs in Microsoft order.
///
/// A .BEK file is an FVE metadata header (as in the volume's FVE metadata block, without the block header)
/// followed by its entries:
///
///     0    4  metadata size: the whole file        16  16  key identifier GUID: the VMK entry it opens
///     4    4  version (1)                          32   4  next nonce counter
///     8    4  header size (48)                     36   4  encryption method, 40 8 creation time
///     12   4  metadata size copy
///     entries, from 48 (each: 0 2 size, 2 2 entry type, 4 2 value type, 6 2 version, 8… data)
///             startup key (entry type 6) holding an external key (value type 9): 16 key identifier GUID (the
///             header's again), 8 modification time, then properties (nested entries): a key (value type 1:
///             4 encryption method, then the key bytes, 32 of them) and optionally the string "ExternalKey"
public struct BitLockerStartupKey: Sendable {
    /// The key identifier, lower-case with dashes, as `VolumeEncryption.Protector.guid` prints it.
    public let keyGUID: String
    /// The external key that unwraps the VMK of the protector with that identifier.
    public let key: [UInt8]

    static let headerSize = 48
    static let entryTypeStartupKey: UInt16 = 0x0006
    static let valueTypeExternalKey: UInt16 = 0x0009
    /// Key identifier and modification time, before the external key's properties.
    static let externalKeyHeaderSize = 24

    /// The startup key in `bek`, the bytes of a .BEK file read from `source` (named in errors). Anything that is
    /// not a well-formed .BEK (truncated, another file, hostile sizes) is a `.corrupt` error saying what is wrong.
    public static func parse(_ bek: [UInt8], source: String) throws(DiskVaultError) -> BitLockerStartupKey {
        let f = BitLockerFields(ByteReader(bek, what: "BitLocker startup key file"), path: source)
        guard bek.count >= headerSize else {
            throw f.corrupt("not a BitLocker startup key (.BEK) file: \(bek.count) bytes, "
                + "shorter than the \(headerSize)-byte BEK header")
        }
        let size = try f.u32(0, "metadata size")
        let version = try f.u32(4, "metadata version")
        let header = try f.u32(8, "metadata header size")
        guard version == 1, header == UInt32(headerSize) else {
            throw f.corrupt("not a BitLocker startup key (.BEK) file: metadata version \(version) and header size "
                + "\(header) (a BEK has version 1 and a 48-byte header)")
        }
        guard Int(size) == bek.count else {
            throw f.corrupt("BitLocker startup key (.BEK) file: its metadata size is \(size) bytes, "
                + "the file has \(bek.count)")
        }
        let keyGUID = try f.guid(16, "key identifier")

        for entry in try f.datums(from: headerSize, to: bek.count, "BEK entries")
        where entry.entryType == entryTypeStartupKey && entry.valueType == valueTypeExternalKey {
            guard entry.dataSize >= externalKeyHeaderSize else {
                throw f.corrupt("BitLocker startup key (.BEK) file: external key entry at byte \(entry.offset) "
                    + "has \(entry.dataSize) bytes of data, too few for its \(externalKeyHeaderSize)-byte header")
            }
            let entryGUID = try f.guid(entry.data, "external key identifier")
            guard entryGUID == keyGUID else {
                throw f.corrupt("BitLocker startup key (.BEK) file: the header names key \(keyGUID), "
                    + "its external key entry \(entryGUID)")
            }
            let properties = try f.datums(from: entry.data + externalKeyHeaderSize, to: entry.end,
                                          "external key properties")
            guard let property = properties.first(where: { $0.entryType == 0 && $0.valueType == DatumType.key })
            else {
                throw f.corrupt("BitLocker startup key (.BEK) file: the external key entry holds no key")
            }
            // 4 bytes of encryption method, then the key.
            let keySize = property.dataSize - 4
            guard keySize == 32 || keySize == 16 else {
                throw f.corrupt("BitLocker startup key (.BEK) file: the external key holds \(max(keySize, 0)) "
                    + "bytes of key, not an AES key (32 bytes)")
            }
            let key = Array(try f.slice(property.data + 4, keySize, "external key"))
            return BitLockerStartupKey(keyGUID: keyGUID, key: key)
        }
        throw f.corrupt("BitLocker startup key (.BEK) file holds no external key entry")
    }
}

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

/// One VMK entry of a volume's FVE metadata, with where its properties lie.
struct VMKCandidate {
    var guid: String
    var protection: UInt16
    var kind: String { BitLockerHeader.protectionKind(protection) }
    /// The metadata block copy's bytes, and the VMK entry's properties within them.
    var block: BitLockerFields
    var properties: Range<Int>

    /// The VMK wrapped under this protector's key: its top-level AES-CCM encrypted key property. (A startup-key
    /// protector also holds a "use key" property with an AES-CCM key nested inside; that one is not the VMK.)
    func wrappedKey(_ volume: VolumeBytes) throws(DiskVaultError) -> BitLockerWrappedVMK {
        let name = "\(kind) protector \(guid)"
        let props = try block.datums(from: properties.lowerBound, to: properties.upperBound, "\(name) properties")
        guard let p = props.first(where: { $0.entryType == 0 && $0.valueType == DatumType.aesCCMEncryptedKey }) else {
            throw volume.corrupt("BitLocker \(name) holds no AES-CCM encrypted VMK")
        }
        let minimum = AESCCM.nonceSize + AESCCM.tagSize
        guard p.dataSize >= minimum else {
            throw volume.corrupt("BitLocker \(name): its AES-CCM encrypted VMK has \(p.dataSize) bytes, "
                + "too few for a nonce and a tag (\(minimum))")
        }
        let nonce = Array(try block.slice(p.data, AESCCM.nonceSize, "\(name) VMK nonce"))
        let tag = Array(try block.slice(p.data + AESCCM.nonceSize, AESCCM.tagSize, "\(name) VMK tag"))
        let ciphertext = Array(try block.slice(p.data + minimum, p.dataSize - minimum, "\(name) VMK ciphertext"))
        return BitLockerWrappedVMK(nonce: nonce, tag: tag, ciphertext: ciphertext)
    }
}

/// A VMK wrapped with AES-CCM, and the reader of a volume's VMK entries.
struct BitLockerWrappedVMK {
    var nonce: [UInt8]
    var tag: [UInt8]
    var ciphertext: [UInt8]

    /// The VMK entries of the volume's first valid FVE metadata block (the copy `BitLockerHeader.read` uses),
    /// or nil when the volume carries no BitLocker signature.
    static func read(_ volume: VolumeBytes) throws(DiskVaultError) -> [VMKCandidate]? {
        guard let metadata = try BitLockerMetadata.read(volume)?.first else { return nil }
        return metadata.vmks.map {
            VMKCandidate(guid: $0.guid, protection: $0.protection, block: metadata.block, properties: $0.properties)
        }
    }
}
