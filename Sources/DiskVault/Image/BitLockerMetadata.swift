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
    /// The block's bytes, for what its entries' properties hold (a protector's wrapped VMK).
    var block: BitLockerFields

    init(_ volume: VolumeBytes, copy: Int, at offset: UInt64, header: BitLockerVolumeHeader) throws(DiskVaultError) {
        let name = "FVE metadata block \(copy + 1) at offset \(offset)"
        guard offset < volume.size else {
            throw volume.corrupt("\(name) lies past the end of the volume (\(volume.size) bytes)")
        }
        let area = header.isVista ? BitLockerHeader.vistaMetadataArea : BitLockerHeader.metadataArea
        let f = BitLockerFields(try volume.read(offset, area, what: name), path: volume.image)
        block = f
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

        let start = BitLockerHeader.blockHeaderSize + headerSize
        let padding = try f.forEachDatum(from: start, to: entriesEnd, nil) { (entry) throws(DiskVaultError) in
            try readEntry(f, entry, name: name)
        }
        // Zero padding ends the entries (cryptsetup stops there too); anything after it is suspect.
        if let at = padding, try f.slice(at, entriesEnd - at, "entries after \(at)").contains(where: { $0 != 0 }) {
            warnings.append("\(name): an entry of size 0 at byte \(at) ends the entries before "
                + "the metadata does (\(entriesEnd)); the rest is ignored")
        }
        if !hasFVEK { warnings.append("\(name) holds no FVEK entry") }
    }

    /// What a volume's FVE metadata copies give: its volume header, the first valid copy (the one used), and
    /// why each damaged copy was refused.
    struct Copies {
        var header: BitLockerVolumeHeader
        var first: BitLockerMetadata
        var damaged: [String]
    }

    /// Every copy of the volume's FVE metadata, checked; nil when the volume carries no BitLocker signature,
    /// an error when no copy is valid.
    static func read(_ volume: VolumeBytes) throws(DiskVaultError) -> Copies? {
        let boot = BitLockerFields(try volume.read(0, 512, what: "BitLocker volume header"), path: volume.image)
        guard let header = try BitLockerVolumeHeader(boot) else { return nil }
        var offsets = header.metadataOffsets
        var first: BitLockerMetadata?
        var damaged: [String] = []
        var copy = 0
        while copy < offsets.count {
            do throws(DiskVaultError) {
                let metadata = try BitLockerMetadata(volume, copy: copy, at: offsets[copy], header: header)
                if first == nil { first = metadata }
                // Vista names only the first copy in the volume header; its block header names all three.
                if header.isVista && offsets.count == 1 { offsets += metadata.metadataOffsets.dropFirst() }
            } catch {
                damaged.append(error.message)
            }
            copy += 1
        }
        guard let first else {
            let reasons = damaged.isEmpty ? "" : ": " + damaged.joined(separator: "; ")
            throw volume.corrupt("BitLocker volume has no valid FVE metadata block\(reasons)")
        }
        return Copies(header: header, first: first, damaged: damaged)
    }

    enum EntryType: UInt16 {
        case vmk = 0x0002, fvek = 0x0003, description = 0x0007, volumeHeaderBlock = 0x000F
    }

    mutating func readEntry(_ f: BitLockerFields, _ entry: BitLockerFields.Datum, name: String) throws(DiskVaultError) {
        let at = entry.offset, size = entry.size, data = entry.data
        switch EntryType(rawValue: entry.entryType) {
        case .vmk:
            guard size >= BitLockerHeader.entryHeaderSize + VMKEntry.headerSize else {
                throw f.corrupt("\(name): VMK entry at byte \(at) has size \(size), too small for a VMK")
            }
            let guid = try f.guid(data, "VMK key identifier")
            let modified = try f.u64(data + 16, "VMK modification time")
            let protection = try f.u16(data + 26, "VMK protection type")
            vmks.append(VMKEntry(guid: guid, modified: modified, protection: protection,
                                 properties: data + VMKEntry.headerSize ..< entry.end))
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
                throw f.corrupt("\(name): volume header entry at byte \(at) has size \(size), too small")
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
    /// Where the entry's properties (nested entries) lie in its metadata block.
    var properties: Range<Int>
    var kind: String { BitLockerHeader.protectionKind(protection) }
}
