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
