/// The MBR partition table: four 16-byte entries at 446 of sector 0, signature 0x55AA at 510. An extended
/// partition (type 0x05, 0x0F or 0x85) holds a chain of EBRs, each with one logical partition (relative to the
/// EBR) and a link to the next EBR (relative to the extended partition's start).
public enum MBR {
    static let extendedTypes: Set<UInt8> = [0x05, 0x0F, 0x85]
    /// A chain longer than this is hostile (or a loop).
    static let maxLogicalPartitions = 128

    public struct Entry: Sendable, Equatable {
        public var status: UInt8
        public var type: UInt8
        public var firstLBA: UInt64
        public var sectors: UInt64
    }

    /// The four primary entries of a sector, or nil when it is not an MBR.
    static func entries(of sector: ByteReader) throws(ByteReader.OutOfBounds) -> [Entry]? {
        guard sector.count >= 512, try sector.u8(510, "MBR signature") == 0x55, try sector.u8(511, "MBR signature") == 0xAA else {
            return nil
        }
        var entries: [Entry] = []
        for i in 0..<4 {
            let at = 446 + 16 * i
            let entry = Entry(
                status: try sector.u8(at, "MBR entry \(i + 1) status"),
                type: try sector.u8(at + 4, "MBR entry \(i + 1) type"),
                firstLBA: UInt64(try sector.u32le(at + 8, "MBR entry \(i + 1) first LBA")),
                sectors: UInt64(try sector.u32le(at + 12, "MBR entry \(i + 1) sector count")))
            // Boot flags other than 0x00/0x80 mean this is a boot sector of a file system, not a partition table.
            guard entry.status == 0 || entry.status == 0x80 else { return nil }
            entries.append(entry)
        }
        return entries
    }

    /// True when sector 0 is a protective MBR for a GPT disk.
    static func isProtective(_ entries: [Entry]) -> Bool {
        entries.contains { $0.type == 0xEE }
    }

    /// The partitions of an MBR disk, primary (1–4) then logical (5…), as volumes without encryption yet.
    static func read(_ disk: VolumeBytes, sector0: ByteReader, warnings: inout [String]) throws(DiskVaultError) -> [DiskLayout.Volume]? {
        let primary: [Entry]
        do throws(ByteReader.OutOfBounds) {
            guard let e = try entries(of: sector0) else { return nil }
            primary = e
        } catch {
            throw disk.corrupt(error)
        }
        let entries = primary
        let used = entries.filter { $0.type != 0 && $0.sectors > 0 }
        // A valid table has at least one partition, each inside the disk.
        guard !used.isEmpty else { return nil }
        let diskSectors = disk.size / 512
        var volumes: [DiskLayout.Volume] = []
        for (i, e) in entries.enumerated() where e.type != 0 && e.sectors > 0 {
            if e.firstLBA + e.sectors > diskSectors {
                warnings.append("MBR partition \(i + 1) runs past the end of the disk (sectors \(e.firstLBA)+\(e.sectors) of \(diskSectors)); left out")
                continue
            }
            if extendedTypes.contains(e.type) {
                volumes += try logicalPartitions(disk, extendedStart: e.firstLBA, extendedSectors: e.sectors, warnings: &warnings)
                continue
            }
            volumes.append(volume(number: i + 1, e))
        }
        return volumes
    }

    static func volume(number: Int, _ e: Entry) -> DiskLayout.Volume {
        DiskLayout.Volume(
            number: number, offset: e.firstLBA * 512, size: e.sectors * 512,
            type: "0x" + hexByte(e.type), typeName: typeNames[e.type])
    }

    static func logicalPartitions(
        _ disk: VolumeBytes, extendedStart: UInt64, extendedSectors: UInt64, warnings: inout [String]
    ) throws(DiskVaultError) -> [DiskLayout.Volume] {
        var volumes: [DiskLayout.Volume] = []
        var ebr = extendedStart
        var visited = Set<UInt64>()
        while volumes.count < maxLogicalPartitions {
            guard visited.insert(ebr).inserted else {
                warnings.append("MBR extended partition: the EBR chain loops back to sector \(ebr); stopped there")
                break
            }
            let sector = try disk.read(ebr * 512, 512, what: "EBR at sector \(ebr)")
            let entries: [Entry]?
            do throws(ByteReader.OutOfBounds) { entries = try MBR.entries(of: sector) } catch { throw disk.corrupt(error) }
            guard let entries else {
                warnings.append("MBR extended partition: no EBR signature at sector \(ebr); logical partitions after it are left out")
                break
            }
            let logical = entries[0]
            if logical.type != 0 && logical.sectors > 0 {
                let first = ebr + logical.firstLBA
                if first + logical.sectors > extendedStart + extendedSectors {
                    warnings.append("logical partition \(5 + volumes.count) runs past its extended partition; left out")
                } else {
                    var e = logical
                    e.firstLBA = first
                    volumes.append(volume(number: 5 + volumes.count, e))
                }
            }
            let next = entries[1]
            guard MBR.extendedTypes.contains(next.type) || next.type != 0, next.firstLBA != 0 else { break }
            ebr = extendedStart + next.firstLBA
            if ebr >= extendedStart + extendedSectors {
                warnings.append("MBR extended partition: an EBR link points past the extended partition; stopped")
                break
            }
        }
        if volumes.count == maxLogicalPartitions {
            warnings.append("MBR extended partition: more than \(maxLogicalPartitions) logical partitions; the rest are left out")
        }
        return volumes
    }

    static let typeNames: [UInt8: String] = [
        0x01: "FAT12", 0x04: "FAT16", 0x05: "extended", 0x06: "FAT16", 0x07: "NTFS/exFAT/BitLocker",
        0x0B: "FAT32", 0x0C: "FAT32 (LBA)", 0x0E: "FAT16 (LBA)", 0x0F: "extended (LBA)", 0x27: "Windows recovery",
        0x82: "Linux swap", 0x83: "Linux", 0x85: "Linux extended", 0x8E: "Linux LVM", 0xEE: "GPT protective",
        0xEF: "EFI System", 0xFD: "Linux RAID",
    ]
}
