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
        let boot = BitLockerFields(try volume.read(0, 512, what: "BitLocker volume header"), volume)
        guard let header = try BitLockerVolumeHeader(boot) else { return nil }
        var warnings = header.warnings

        var offsets = header.metadataOffsets
        var chosen: BitLockerMetadata?
        var damaged: [String] = []
        var copy = 0
        while copy < offsets.count {
            do throws(DiskVaultError) {
                let metadata = try BitLockerMetadata(volume, copy: copy, at: offsets[copy], header: header)
                if chosen == nil { chosen = metadata }
                // Vista names only the first copy in the volume header; its block header names all three.
                if header.isVista && offsets.count == 1 { offsets += metadata.metadataOffsets.dropFirst() }
            } catch {
                damaged.append(error.message)
            }
            copy += 1
        }
        guard let metadata = chosen else {
            let reasons = damaged.isEmpty ? "" : ": " + damaged.joined(separator: "; ")
            throw volume.corrupt("BitLocker volume has no valid FVE metadata block\(reasons)")
        }
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

/// What the volume boot record says: which BitLocker variant, the sector size, where the metadata copies are.
struct BitLockerVolumeHeader {
    var isVista = false
    var isToGo = false
    var bytesPerSector = 512
    var metadataOffsets: [UInt64] = []
    var warnings: [String] = []

    /// Nil when the boot record has no BitLocker signature.
    init?(_ boot: BitLockerFields) throws(DiskVaultError) {
        if boot.hasPrefix(BitLockerHeader.signature, at: 3) {
            isVista = boot.hasPrefix(BitLockerHeader.vistaBootCode, at: 0)
        } else if boot.hasPrefix(BitLockerHeader.toGoSignature, at: 3), boot.count >= 440,
                  BitLockerHeader.identifiers.contains(try boot.guid(424, "To Go BitLocker identifier")) {
            isToGo = true
        } else {
            return nil
        }
        let sectorSize = Int(try boot.u16(11, "bytes per sector"))
        // cryptsetup reads 0 as 512; anything else must be a real sector size.
        bytesPerSector = sectorSize == 0 ? 512 : sectorSize
        guard [512, 1024, 2048, 4096].contains(bytesPerSector) else {
            throw boot.volume.corrupt("BitLocker volume header: bytes per sector \(sectorSize) is not a sector size")
        }
        if isVista {
            let clusterSize = UInt64(bytesPerSector) * UInt64(try boot.u8(13, "sectors per cluster"))
            let cluster = try boot.u64(56, "first FVE metadata cluster")
            let (offset, overflow) = cluster.multipliedReportingOverflow(by: clusterSize)
            guard clusterSize > 0, !overflow else {
                throw boot.volume.corrupt("BitLocker volume header: first FVE metadata cluster \(cluster) "
                    + "× cluster size \(clusterSize) is not an offset")
            }
            metadataOffsets = [offset]
            return
        }
        let base = isToGo ? 424 : 160
        if !isToGo {
            let identifier = try boot.guid(base, "BitLocker identifier")
            if !BitLockerHeader.identifiers.contains(identifier) {
                warnings.append("BitLocker identifier \(identifier) is not one known")
            }
        }
        for i in 0..<3 {
            metadataOffsets.append(try boot.u64(base + 16 + 8 * i, "FVE metadata block \(i + 1) offset"))
        }
    }
}

/// One FVE metadata block copy: its block header, metadata header and entries, validated.
struct BitLockerMetadata {
    var version: UInt16
    var currentState: UInt16
    var nextState: UInt16
    var encryptedVolumeSize: UInt64
    var volumeHeaderSectors: UInt32
    var metadataOffsets: [UInt64] = []
    var volumeGUID: String
    var encryptionMethod: UInt16
    /// FILETIME: 100 ns ticks since 1601-01-01.
    var creationTime: UInt64
    var description: String?
    var vmks: [VMKEntry] = []
    var volumeHeaderBlock: (offset: UInt64, size: UInt64)?
    var hasFVEK = false
    var warnings: [String] = []

    init(_ volume: VolumeBytes, copy: Int, at offset: UInt64, header: BitLockerVolumeHeader) throws(DiskVaultError) {
        let name = "FVE metadata block \(copy + 1) at offset \(offset)"
        guard offset < volume.size else {
            throw volume.corrupt("\(name) lies past the end of the volume (\(volume.size) bytes)")
        }
        let area = header.isVista ? BitLockerHeader.vistaMetadataArea : BitLockerHeader.metadataArea
        let f = BitLockerFields(try volume.read(offset, area, what: name), volume)
        guard f.hasPrefix(BitLockerHeader.signature, at: 0) else {
            throw volume.corrupt("\(name) has no -FVE-FS- signature")
        }
        version = try f.u16(10, "block header version")
        guard version == (header.isVista ? 1 : 2) else {
            throw volume.corrupt("\(name): block header version \(version) does not match the volume header")
        }

        // Version 2 covers the block with a CRC-32; version 1 has none and is bounded by its 16 KiB area.
        var blockSize = f.count
        if version == 2 {
            blockSize = Int(try f.u16(8, "block header size")) * 16
            let minimum = BitLockerHeader.blockHeaderSize + BitLockerHeader.metadataHeaderSize
            guard blockSize >= minimum, blockSize + 8 <= area else {
                throw volume.corrupt("\(name): block size \(blockSize) is not within \(minimum)...\(area - 8) bytes")
            }
            let validationSize = try f.u16(blockSize, "validation size")
            let validationVersion = try f.u16(blockSize + 2, "validation version")
            let stored = try f.u32(blockSize + 4, "validation CRC-32")
            guard validationSize >= 8, validationVersion <= 2 else {
                throw volume.corrupt("\(name): validation header (size \(validationSize), version "
                    + "\(validationVersion)) is not one known")
            }
            let computed = CRC32.checksum(Array(try f.slice(0, blockSize, "CRC-covered block")))
            guard computed == stored else {
                throw volume.corrupt("\(name): CRC-32 is 0x\(String(computed, radix: 16)), "
                    + "the validation field says 0x\(String(stored, radix: 16))")
            }
        }

        currentState = try f.u16(12, "current state")
        nextState = try f.u16(14, "next state")
        encryptedVolumeSize = try f.u64(16, "encrypted volume size")
        volumeHeaderSectors = version == 2 ? try f.u32(28, "volume header sectors") : 0
        for i in 0..<3 {
            metadataOffsets.append(try f.u64(32 + 8 * i, "FVE metadata block \(i + 1) offset"))
        }
        // A copy that does not know where it lives is a stray block, not this volume's metadata.
        guard metadataOffsets[copy] == offset else {
            throw volume.corrupt("\(name) names offset \(metadataOffsets[copy]) for itself")
        }

        let metadataSize = Int(try f.u32(64, "metadata size"))
        let headerSize = Int(try f.u32(72, "metadata header size"))
        let entriesEnd = BitLockerHeader.blockHeaderSize + metadataSize
        guard metadataSize >= BitLockerHeader.metadataHeaderSize, entriesEnd <= blockSize else {
            throw volume.corrupt("\(name): metadata size \(metadataSize) does not fit the block "
                + "(\(blockSize - BitLockerHeader.blockHeaderSize) bytes)")
        }
        guard headerSize >= BitLockerHeader.metadataHeaderSize, headerSize <= metadataSize else {
            throw volume.corrupt("\(name): metadata header size \(headerSize) is not within 48...\(metadataSize)")
        }
        volumeGUID = try f.guid(80, "volume GUID")
        encryptionMethod = try f.u16(100, "encryption method")
        creationTime = try f.u64(104, "creation time")

        var at = BitLockerHeader.blockHeaderSize + headerSize
        // Each entry advances by at least its 8-byte header, so this ends within 64 KiB / 8 steps.
        while entriesEnd - at >= BitLockerHeader.entryHeaderSize {
            let size = Int(try f.u16(at, "entry size at \(at)"))
            if size == 0 {
                // Zero padding ends the entries (cryptsetup stops here too); anything after it is suspect.
                if try f.slice(at, entriesEnd - at, "entries after \(at)").contains(where: { $0 != 0 }) {
                    warnings.append("\(name): an entry of size 0 at byte \(at) ends the entries before "
                        + "the metadata does (\(entriesEnd)); the rest is ignored")
                }
                break
            }
            guard size >= BitLockerHeader.entryHeaderSize, size <= entriesEnd - at else {
                throw volume.corrupt("\(name): entry at byte \(at) has size \(size), "
                    + "outside 8...\(entriesEnd - at)")
            }
            try readEntry(f, at: at, size: size, name: name)
            at += size
        }
        if !hasFVEK { warnings.append("\(name) holds no FVEK entry") }
    }

    enum EntryType: UInt16 {
        case vmk = 0x0002, fvek = 0x0003, description = 0x0007, volumeHeaderBlock = 0x000F
    }

    mutating func readEntry(_ f: BitLockerFields, at: Int, size: Int, name: String) throws(DiskVaultError) {
        let data = at + BitLockerHeader.entryHeaderSize
        switch EntryType(rawValue: try f.u16(at + 2, "entry type at \(at)")) {
        case .vmk:
            guard size >= BitLockerHeader.entryHeaderSize + VMKEntry.headerSize else {
                throw f.volume.corrupt("\(name): VMK entry at byte \(at) has size \(size), too small for a VMK")
            }
            let guid = try f.guid(data, "VMK key identifier")
            let modified = try f.u64(data + 16, "VMK modification time")
            let protection = try f.u16(data + 26, "VMK protection type")
            vmks.append(VMKEntry(guid: guid, modified: modified, protection: protection))
        case .fvek:
            hasFVEK = true
        case .description where description == nil:
            let text = try f.slice(data, size - BitLockerHeader.entryHeaderSize, "description")
            var units: [UInt16] = []
            var i = text.startIndex
            while i + 1 < text.endIndex {
                units.append(UInt16(text[i]) | UInt16(text[i + 1]) << 8)
                i += 2
            }
            while units.last == 0 { units.removeLast() }
            description = String(decoding: units, as: UTF16.self)
        case .volumeHeaderBlock:
            guard size >= BitLockerHeader.entryHeaderSize + 16 else {
                throw f.volume.corrupt("\(name): volume header entry at byte \(at) has size \(size), too small")
            }
            let blockOffset = try f.u64(data, "volume header block offset")
            let blockSize = try f.u64(data + 8, "volume header block size")
            volumeHeaderBlock = (blockOffset, blockSize)
        default:
            break
        }
    }
}

/// A Volume Master Key entry: one protector (password, recovery password, startup key, TPM...).
struct VMKEntry {
    /// Key identifier, modification time, unknown, protection type.
    static let headerSize = 28
    var guid: String
    var modified: UInt64
    var protection: UInt16
    var kind: String { BitLockerHeader.protectionKind(protection) }
}

/// Bounds-checked field reads whose failures are already the volume's `corrupt` error (naming the image and
/// the field), so the parser has one error type and needs no closures.
struct BitLockerFields {
    let bytes: ByteReader
    let volume: VolumeBytes

    init(_ bytes: ByteReader, _ volume: VolumeBytes) {
        self.bytes = bytes
        self.volume = volume
    }

    var count: Int { bytes.count }

    func hasPrefix(_ magic: [UInt8], at offset: Int) -> Bool { bytes.hasPrefix(magic, at: offset) }

    func u8(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt8 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u8(offset, field) } catch {
            throw volume.corrupt(error)
        }
    }

    func u16(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt16 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u16le(offset, field) } catch {
            throw volume.corrupt(error)
        }
    }

    func u32(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt32 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u32le(offset, field) } catch {
            throw volume.corrupt(error)
        }
    }

    func u64(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt64 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u64le(offset, field) } catch {
            throw volume.corrupt(error)
        }
    }

    func guid(_ offset: Int, _ field: String) throws(DiskVaultError) -> String {
        do throws(ByteReader.OutOfBounds) { return try bytes.guid(offset, field) } catch {
            throw volume.corrupt(error)
        }
    }

    func slice(_ offset: Int, _ length: Int, _ field: String) throws(DiskVaultError) -> ArraySlice<UInt8> {
        do throws(ByteReader.OutOfBounds) { return try bytes.slice(offset, length, field) } catch {
            throw volume.corrupt(error)
        }
    }
}
