/// A BitLocker (BDE) volume's layout, read without any key: which cipher, which protectors, where the plaintext
/// metadata lies. Learned from cryptsetup's lib/bitlk/bitlk.c and libbde's "BitLocker Drive Encryption (BDE)
/// format" document; all integers little-endian, GUIDs in Microsoft order.
///
/// Volume header (the volume boot record, first sector of the volume):
///
///     0    3  boot entry point: EB 52 90 (Windows Vista) or EB 58 90 (Windows 7 and later)
///     3    8  "-FVE-FS-"; or "MSWIN4.1" on a BitLocker To Go volume (a plain-looking FAT32 "discovery volume")
///     11   2  bytes per sector                   13  1  sectors per cluster
///     56   8  Vista only: cluster number of the first FVE metadata block (the other two are in its block header)
///     160 16  BitLocker identifier 4967d63b-2e29-4ad8-8399-f6a339e3d001 (92a84d3b-dd80-4d0e-9e4e-b1e3284eaed8
///             for "used space only"), then 176 3×8 the offsets of the three FVE metadata blocks
///     424 16  To Go: the same identifier, then 440 3×8 the three offsets. A FAT32 boot sector with "MSWIN4.1"
///             is BitLocker To Go only when this identifier is present (any Windows-made FAT32 says MSWIN4.1)
///
/// FVE metadata block (three copies, each in a 64 KiB area; 16 KiB on Vista), at each offset:
///
///     block header, 64 bytes
///     0    8  "-FVE-FS-"                        16   8  encrypted volume size (bytes)
///     8    2  v2: bytes covered by the CRC / 16  28   4  v2: sectors of the relocated volume header
///     10   2  version: 1 (Vista) or 2           32 3×8  the three metadata block offsets
///     12   2  current state, 14 2 next state    56   8  v2: offset of the relocated (encrypted) volume header
///             (4 = encrypted)
///     metadata header, 48 bytes, at 64
///     64   4  metadata size: this header and the entries        80  16  volume GUID
///     68   4  version (1)    72 4 header size (48)              96   4  next nonce counter
///     100  2  encryption method (0x8000…0x8005)                 104  8  creation time (FILETIME)
///     entries, from 112 to 64 + metadata size
///     0    2  entry size (including this header)   2 2 entry type   4 2 value type   6 2 version   8… data
///             VMK (entry type 2): 16 key identifier GUID, 8 modified time, 2 unknown, 2 protection type, then
///             properties (nested entries); description (type 7): UTF-16LE text; volume header block
///             (type 15): 8 offset, 8 size of the relocated volume header
///     v2 validation, at the CRC-covered size (field 8 × 16)
///     0    2  size   2 2 version (≤ 2)   4 4 CRC-32 of the block's bytes 0 ..< field 8 × 16
///
/// Every copy is checked; the first valid one is used and the others, if damaged, are named in `warnings`.
public enum BitLockerHeader {
    static let signature = Array("-FVE-FS-".utf8)
    static let toGoSignature = Array("MSWIN4.1".utf8)
    static let vistaBootCode: [UInt8] = [0xEB, 0x52, 0x90]
    static let identifiers = ["4967d63b-2e29-4ad8-8399-f6a339e3d001", "92a84d3b-dd80-4d0e-9e4e-b1e3284eaed8"]
    /// Every version 2 copy lives in a 64 KiB area, and no valid metadata is larger: the cap on what is read.
    static let metadataArea = 64 << 10
    static let vistaMetadataArea = 16 << 10
    /// On Vista the first 16 sectors stay in the clear (libbde); later versions say how many in the block header.
    static let vistaPlaintextHead: UInt64 = 8192
    static let blockHeaderSize = 64
    static let metadataHeaderSize = 48
    static let entryHeaderSize = 8
    static let stateEncrypted: UInt16 = 4

    /// The volume's BitLocker layout, or nil when it carries no BitLocker signature.
    public static func read(_ volume: VolumeBytes) throws(DiskVaultError) -> VolumeEncryption? {
        guard let copies = try BitLockerMetadata.read(volume) else { return nil }
        let header = copies.header, metadata = copies.first, damaged = copies.damaged
        var warnings = header.warnings
        warnings += damaged.map { "damaged copy skipped: \($0)" }
        warnings += metadata.warnings
        if metadata.version == 2 && metadata.encryptedVolumeSize > volume.size {
            // A cut-short image or a partition entry smaller than the volume BitLocker was made on.
            warnings.append("BitLocker metadata gives the volume \(metadata.encryptedVolumeSize) bytes, "
                + "but it has \(volume.size)")
        }
        if metadata.currentState != stateEncrypted || metadata.nextState != stateEncrypted {
            warnings.append("BitLocker conversion state is \(metadata.currentState) → \(metadata.nextState), "
                + "not fully encrypted (4): parts of the volume may be plaintext, but all is treated as encrypted")
        }

        var e = VolumeEncryption(format: .bitlocker)
        e.guid = metadata.volumeGUID
        if let method = EncryptionMethod(rawValue: metadata.encryptionMethod) {
            e.cipher = method.cipher
            e.keyBits = method.keyBits
            e.keyBytes = method.keyBits / 8
        } else {
            let hex = String(metadata.encryptionMethod, radix: 16)
            warnings.append("BitLocker encryption method 0x\(hex) is unknown: cipher not known")
        }
        e.sectorSize = header.bytesPerSector
        e.description = metadata.description
        e.toGo = header.isToGo
        e.protectors = metadata.vmks.map { VolumeEncryption.Protector(guid: $0.guid, kind: $0.kind) }
        e.encryptedRanges = encryptedRanges(volume, header, metadata)
        e.warnings = warnings.isEmpty ? nil : warnings
        return e
    }

    /// The encrypted part of the volume, approximated as all of it except the plaintext head (the BitLocker boot
    /// record, or To Go's discovery volume) and the three metadata areas. A volume part-way through a conversion
    /// (or encrypted "used space only") has plaintext or never-written sectors in there too; they are still listed.
    static func encryptedRanges(_ volume: VolumeBytes, _ header: BitLockerVolumeHeader,
                                _ metadata: BitLockerMetadata) -> [VolumeEncryption.ByteRange] {
        let end = volume.size
        var head: UInt64
        if header.isVista {
            head = vistaPlaintextHead
        } else if let block = metadata.volumeHeaderBlock {
            // The head is stored encrypted elsewhere, in a block of the same size.
            head = block.size
        } else {
            head = UInt64(metadata.volumeHeaderSectors) * UInt64(header.bytesPerSector)
        }
        head = min(head, end)
        var ranges: [(start: UInt64, end: UInt64)] = head < end ? [(head, end)] : []
        let area = UInt64(header.isVista ? vistaMetadataArea : metadataArea)
        for start in metadata.metadataOffsets where start < end {
            let stop = end - start > area ? start + area : end
            ranges = ranges.flatMap { r -> [(start: UInt64, end: UInt64)] in
                guard start < r.end && stop > r.start else { return [r] }
                var parts: [(start: UInt64, end: UInt64)] = []
                if r.start < start { parts.append((r.start, start)) }
                if stop < r.end { parts.append((stop, r.end)) }
                return parts
            }
        }
        return ranges.map { VolumeEncryption.ByteRange(offset: $0.start, size: $0.end - $0.start) }
    }

    /// The metadata header's encryption method, named as cryptsetup names it. Key bits are counted as bitlkDump
    /// prints them: XTS and Elephant carry a second key (tweak or sector key), so they count double.
    enum EncryptionMethod: UInt16 {
        case aesCBC128Elephant = 0x8000, aesCBC256Elephant, aesCBC128, aesCBC256, aesXTS128, aesXTS256

        var cipher: String {
            switch self {
            case .aesCBC128Elephant, .aesCBC256Elephant: "aes-cbc-elephant"
            case .aesCBC128, .aesCBC256: "aes-cbc-eboiv"
            case .aesXTS128, .aesXTS256: "aes-xts-plain64"
            }
        }

        var keyBits: Int {
            switch self {
            case .aesCBC128: 128
            case .aesCBC128Elephant, .aesCBC256, .aesXTS128: 256
            case .aesCBC256Elephant, .aesXTS256: 512
            }
        }
    }

    /// A VMK protection type by name. The values are flags (TPM 0x0100, startup key 0x0200, PIN 0x0400); the
    /// combinations with a startup key follow that pattern, the rest are cryptsetup's and libbde's.
    static func protectionKind(_ type: UInt16) -> String {
        switch type {
        case 0x0000: "clear-key"
        case 0x0100: "tpm"
        case 0x0200: "startup-key"
        case 0x0300: "tpm-startup-key"
        case 0x0500: "tpm-pin"
        case 0x0700: "tpm-pin-startup-key"
        case 0x0800: "recovery-password"
        case 0x1000: "smart-card"
        case 0x2000: "password"
        default: "unknown-0x" + hex4(type)
        }
    }

    static func hex4(_ value: UInt16) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
