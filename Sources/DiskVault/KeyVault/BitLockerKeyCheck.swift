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
        let f = BitLockerDatumFields(ByteReader(bek, what: "BitLocker startup key file"), path: source)
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

/// FVE metadata value types used here (libbde's names).
enum DatumType {
    static let key: UInt16 = 0x0001
    static let aesCCMEncryptedKey: UInt16 = 0x0005
}

/// One VMK entry of a volume's FVE metadata, with where its properties lie.
struct VMKCandidate {
    var guid: String
    var protection: UInt16
    var kind: String { BitLockerHeader.protectionKind(protection) }
    /// The metadata block copy's bytes, and the VMK entry's properties within them.
    var block: BitLockerDatumFields
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
    /// or nil when the volume carries no BitLocker signature. `BitLockerMetadata` validates the copy (signature,
    /// version, CRC-32, sizes); its entries are then walked again here for what it does not keep.
    static func read(_ volume: VolumeBytes) throws(DiskVaultError) -> [VMKCandidate]? {
        let boot = BitLockerFields(try volume.read(0, 512, what: "BitLocker volume header"), volume)
        guard let header = try BitLockerVolumeHeader(boot) else { return nil }
        var offsets = header.metadataOffsets
        var damaged: [String] = []
        var copy = 0
        while copy < offsets.count {
            do throws(DiskVaultError) {
                let metadata = try BitLockerMetadata(volume, copy: copy, at: offsets[copy], header: header)
                if header.isVista && offsets.count == 1 { offsets += metadata.metadataOffsets.dropFirst() }
                return try vmkEntries(volume, copy: copy, at: offsets[copy], header: header)
            } catch {
                damaged.append(error.message)
            }
            copy += 1
        }
        let reasons = damaged.isEmpty ? "" : ": " + damaged.joined(separator: "; ")
        throw volume.corrupt("BitLocker volume has no valid FVE metadata block\(reasons)")
    }

    static func vmkEntries(_ volume: VolumeBytes, copy: Int, at offset: UInt64,
                           header: BitLockerVolumeHeader) throws(DiskVaultError) -> [VMKCandidate] {
        let name = "FVE metadata block \(copy + 1) at offset \(offset)"
        let area = header.isVista ? BitLockerHeader.vistaMetadataArea : BitLockerHeader.metadataArea
        let f = BitLockerDatumFields(try volume.read(offset, area, what: name), path: volume.image)
        let metadataSize = Int(try f.u32(64, "metadata size"))
        let headerSize = Int(try f.u32(72, "metadata header size"))
        let start = BitLockerHeader.blockHeaderSize + headerSize
        let end = BitLockerHeader.blockHeaderSize + metadataSize
        guard start <= end, end <= f.count else {
            throw volume.corrupt("\(name): entries \(start)..<\(end) do not fit the \(f.count)-byte block")
        }
        var vmks: [VMKCandidate] = []
        for entry in try f.datums(from: start, to: end, "\(name) entries")
        where entry.entryType == BitLockerMetadata.EntryType.vmk.rawValue {
            guard entry.dataSize >= VMKEntry.headerSize else {
                throw volume.corrupt("\(name): VMK entry at byte \(entry.offset) has size \(entry.size), "
                    + "too small for a VMK")
            }
            let guid = try f.guid(entry.data, "VMK key identifier")
            let protection = try f.u16(entry.data + 26, "VMK protection type")
            vmks.append(VMKCandidate(guid: guid, protection: protection, block: f,
                                     properties: entry.data + VMKEntry.headerSize ..< entry.end))
        }
        return vmks
    }
}

/// Bounds-checked reads of FVE metadata entries ("datums") in a .BEK file or a metadata block, whose failures
/// are already `.corrupt` errors naming the file, so the parsers need no closures.
struct BitLockerDatumFields {
    let bytes: ByteReader
    let path: String

    init(_ bytes: ByteReader, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var count: Int { bytes.count }

    func corrupt(_ message: String) -> DiskVaultError { DiskVaultError(.corrupt, message, path: path) }

    func u16(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt16 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u16le(offset, field) } catch {
            throw corrupt(error.description)
        }
    }

    func u32(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt32 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u32le(offset, field) } catch {
            throw corrupt(error.description)
        }
    }

    func guid(_ offset: Int, _ field: String) throws(DiskVaultError) -> String {
        do throws(ByteReader.OutOfBounds) { return try bytes.guid(offset, field) } catch {
            throw corrupt(error.description)
        }
    }

    func slice(_ offset: Int, _ length: Int, _ field: String) throws(DiskVaultError) -> ArraySlice<UInt8> {
        do throws(ByteReader.OutOfBounds) { return try bytes.slice(offset, length, field) } catch {
            throw corrupt(error.description)
        }
    }

    /// One entry's header and where its data lies.
    struct Datum {
        var offset: Int
        var size: Int
        var entryType: UInt16
        var valueType: UInt16
        var data: Int { offset + 8 }
        var dataSize: Int { size - 8 }
        var end: Int { offset + size }
    }

    /// The entries laid end to end in `start..<end`. An entry of size 0 ends them (zero padding), as does a tail
    /// shorter than an entry header; an entry smaller than its header or running past `end` is an error.
    func datums(from start: Int, to end: Int, _ what: String) throws(DiskVaultError) -> [Datum] {
        guard start >= 0, start <= end, end <= count else {
            throw corrupt("\(bytes.what): \(what) at \(start)..<\(end) lie outside its \(count) bytes")
        }
        var result: [Datum] = []
        var at = start
        // Each entry advances by at least its 8-byte header, so this ends.
        while end - at >= 8 {
            let size = Int(try u16(at, "\(what): entry size at \(at)"))
            if size == 0 { break }
            guard size >= 8, size <= end - at else {
                throw corrupt("\(bytes.what): \(what): entry at byte \(at) has size \(size), outside 8...\(end - at)")
            }
            result.append(Datum(offset: at, size: size, entryType: try u16(at + 2, "\(what): entry type at \(at)"),
                                valueType: try u16(at + 4, "\(what): value type at \(at)")))
            at += size
        }
        return result
    }
}
