/// Reads an image's layout without keys: an encrypted volume on the whole disk, else a GPT or MBR partition
/// table and each partition's encryption header (LUKS1, LUKS2, BitLocker). Volumes the user declared
/// encrypted (dm-crypt plain, a detached LUKS header) are marked so; a volume with no header whose data
/// looks random earns a warning.
public enum LayoutReader {
    /// Volumes declared encrypted: "disk" (0) for the whole image, or partition numbers.
    public enum Declaration: Sendable, Equatable {
        /// Every volume of the disk.
        case all
        /// These volumes: 0 is the whole disk, others partition numbers. Empty: none.
        case volumes(Set<Int>)

        public init() { self = .volumes([]) }

        /// Parses "disk", "all" or "1,3".
        public init(parsing text: String) throws(DiskVaultError) {
            var set = Set<Int>()
            for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                if part == "disk" || part == "0" {
                    set.insert(0)
                } else if part == "all" {
                    self = .all
                    return
                } else if let n = Int(part), n > 0, n < 1 << 20 {
                    set.insert(n)
                } else {
                    throw DiskVaultError(.usage, "cannot read volume \"\(part)\" in --declare-encrypted (use disk, all, or partition numbers like 1,3)")
                }
            }
            guard !set.isEmpty else { throw DiskVaultError(.usage, "--declare-encrypted needs disk, all, or partition numbers") }
            self = .volumes(set)
        }

        func covers(_ number: Int) -> Bool {
            switch self {
            case .all: return true
            case .volumes(let set): return set.contains(number)
            }
        }
    }

    /// With `strict`, a damaged header is an error; otherwise it is a warning and the volume is "unreadable"
    /// (a backup still protects its bytes).
    public static func read(
        file: any ImageBytes, image: String, size: UInt64, declared: Declaration = .init(), strict: Bool
    ) throws(DiskVaultError) -> DiskLayout {
        let disk = VolumeBytes(file: file, image: image, offset: 0, size: size)
        var layout = DiskLayout(image: image, size: size, partitionTable: .none)
        var volumes: [DiskLayout.Volume]
        if let whole = try probe(disk, strict: strict, number: 0) {
            volumes = [DiskLayout.Volume(number: 0, offset: 0, size: size, encryption: whole)]
        } else if let gpt = try readGPT(disk, layout: &layout) {
            layout.partitionTable = .gpt
            volumes = gpt
        } else if let mbr = try MBR.read(disk, sector0: try disk.read(0, 512, what: "sector 0"), warnings: &layout.warnings) {
            layout.partitionTable = .mbr
            volumes = mbr
        } else {
            volumes = [DiskLayout.Volume(number: 0, offset: 0, size: size)]
        }
        for i in volumes.indices where volumes[i].encryption.format == .none {
            let v = volumes[i]
            let bytes = VolumeBytes(file: file, image: image, offset: v.offset, size: v.size)
            if v.number != 0, let found = try probe(bytes, strict: strict, number: v.number) {
                volumes[i].encryption = found
            }
        }
        for i in volumes.indices {
            let v = volumes[i]
            let label = v.number == 0 ? "the disk" : "volume \(v.number)"
            if declared.covers(v.number) {
                if v.encryption.format == .none {
                    var e = VolumeEncryption(format: .declared)
                    e.encryptedRanges = [.init(offset: 0, size: v.size)]
                    volumes[i].encryption = e
                } else {
                    layout.warnings.append("\(label) was declared encrypted but has a \(v.encryption.format) header; the header is used")
                }
            } else if v.encryption.format == .none && v.size >= 1 << 20 {
                let bytes = VolumeBytes(file: file, image: image, offset: v.offset, size: v.size)
                if try looksRandom(bytes) {
                    let flag = v.number == 0 ? "disk" : String(v.number)
                    layout.warnings.append("\(label) looks encrypted but has no recognised header — declare it (--declare-encrypted \(flag))")
                }
            }
        }
        layout.volumes = volumes
        return layout
    }

    /// Opens `path` and reads its layout strictly (for `inspect`).
    public static func read(path: String, declared: Declaration = .init()) throws(DiskVaultError) -> DiskLayout {
        try read(source: try ImageSource.open(path), declared: declared, strict: true)
    }

    /// The layout of the disk `source` holds, as a VM sees it: read through qemu for a format qemu reads; for a
    /// qcow2 that qemu encrypts, its LUKS header inside the file (the disk's layout is ciphertext).
    public static func read(source: ImageSource, declared: Declaration = .init(), strict: Bool) throws(DiskVaultError) -> DiskLayout {
        guard let size = source.size else {
            throw DiskVaultError(.unsupported, "cannot read the layout of a stream; give a file or a block device", path: source.path)
        }
        guard source.contents == .container, let luks = source.qcow2?.luksHeader else {
            return try read(file: source.bytes, image: source.path, size: size, declared: declared, strict: strict)
        }
        let header = VolumeBytes(file: source.bytes, image: source.path, offset: luks.lowerBound, size: UInt64(luks.count))
        var found = try LUKS1Header.read(header)
        if found == nil { found = try LUKS2Header.read(header) }
        guard var e = found else {
            throw DiskVaultError(.corrupt, "qcow2 header: no LUKS header at byte \(luks.lowerBound), where its header extension says it is", path: source.path)
        }
        // The whole container is kept from the compressor: its data clusters are ciphertext.
        e.encryptedRanges = nil
        e.payloadSize = nil
        var layout = DiskLayout(image: source.path, size: size, partitionTable: .none)
        layout.volumes = [DiskLayout.Volume(number: 0, offset: luks.lowerBound, size: UInt64(luks.count), encryption: e)]
        layout.warnings = []
        return layout
    }

    static func readGPT(_ disk: VolumeBytes, layout: inout DiskLayout) throws(DiskVaultError) -> [DiskLayout.Volume]? {
        for sectorSize in [512, 4096] where disk.size >= UInt64(sectorSize) * 3 {
            if let volumes = try GPT.read(disk, sectorSize: sectorSize, diskGUID: &layout.diskGUID, warnings: &layout.warnings) {
                return volumes
            }
        }
        return nil
    }

    /// The encryption header on a volume, if any.
    static func probe(_ volume: VolumeBytes, strict: Bool, number: Int) throws(DiskVaultError) -> VolumeEncryption? {
        do {
            if let e = try LUKS1Header.read(volume) { return e }
            if let e = try LUKS2Header.read(volume) { return e }
            if let e = try BitLockerHeader.read(volume) { return e }
            return nil
        } catch where error.code == .corrupt && !strict {
            var e = VolumeEncryption(format: .unreadable)
            e.warnings = ["\(number == 0 ? "the disk" : "volume \(number)"): \(error.message)"]
            e.encryptedRanges = [.init(offset: 0, size: volume.size)]
            return e
        }
    }

    /// Byte entropy of eight 4 KiB samples spread over the volume (past its first MiB) above 7.9 bits.
    static func looksRandom(_ volume: VolumeBytes) throws(DiskVaultError) -> Bool {
        let start: UInt64 = 1 << 20
        guard volume.size > start + 8 * 4096 else { return false }
        let stride = (volume.size - start) / 8
        var sample: [UInt8] = []
        for i in 0..<8 {
            sample += try volume.read(start + UInt64(i) * stride, 4096, what: "sample").bytes
        }
        return sample.withUnsafeBytes { CompressibilityProbe.entropy($0) } > 7.9
    }
}

extension DiskLayout {
    /// Ranges of the image (absolute) known to hold ciphertext: never worth compressing.
    public var encryptedRanges: [Range<UInt64>] {
        var ranges: [Range<UInt64>] = []
        for v in volumes {
            for r in v.encryption.encryptedRanges ?? [] where r.size > 0 {
                let start = v.offset + r.offset
                ranges.append(start..<min(start + r.size, v.offset + v.size))
            }
        }
        return ranges.sorted { $0.lowerBound < $1.lowerBound }
    }

    /// What changed in layout or encryption since `previous`, in words (empty when nothing did).
    public func changes(since previous: DiskLayout) -> [String] {
        var out: [String] = []
        if previous.partitionTable != partitionTable {
            out.append("partition table changed from \(previous.partitionTable) to \(partitionTable)")
        }
        let before = Dictionary(previous.volumes.map { ($0.number, $0) }, uniquingKeysWith: { a, _ in a })
        for v in volumes {
            let label = v.number == 0 ? "the disk" : "volume \(v.number)"
            guard let old = before[v.number] else {
                if v.encryption.isEncrypted { out.append("\(label) is new and encrypted (\(v.encryption.format))") }
                continue
            }
            let (a, b) = (old.encryption, v.encryption)
            if !a.isEncrypted && b.isEncrypted {
                out.append("\(label) became encrypted (\(b.format)\(b.uuid.map { " \($0)" } ?? "")\(b.guid.map { " \($0)" } ?? ""))")
            } else if a.isEncrypted && !b.isEncrypted {
                out.append("\(label) is no longer encrypted (was \(a.format))")
            } else if a.format != b.format {
                out.append("\(label) encryption changed from \(a.format) to \(b.format)")
            } else if a.uuid != b.uuid {
                out.append("\(label) LUKS UUID changed from \(a.uuid ?? "-") to \(b.uuid ?? "-")")
            } else if a.guid != b.guid {
                out.append("\(label) BitLocker GUID changed from \(a.guid ?? "-") to \(b.guid ?? "-")")
            }
        }
        return out
    }
}
