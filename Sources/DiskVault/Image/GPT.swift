/// The GUID partition table: a header at LBA 1 ("EFI PART", header CRC-32 over its first header-size bytes
/// with the CRC field zeroed) pointing at an array of entries (their CRC-32 in the header), and a backup
/// header at the last LBA pointing at a backup array. A damaged primary falls back to the backup, with a warning.
public enum GPT {
    static let signature = Array("EFI PART".utf8)
    /// Entry arrays larger than this are hostile (the usual array is 16 KiB).
    static let maxEntryArrayBytes = 4 << 20

    struct Header {
        var myLBA: UInt64
        var alternateLBA: UInt64
        var firstUsable: UInt64
        var lastUsable: UInt64
        var diskGUID: String
        var entriesLBA: UInt64
        var entryCount: UInt32
        var entrySize: UInt32
        var entriesCRC: UInt32
    }

    /// Whether LBA 1 (for `sectorSize`) holds a GPT signature.
    static func present(_ disk: VolumeBytes, sectorSize: Int) throws(DiskVaultError) -> Bool {
        try disk.read(UInt64(sectorSize), 8, what: "GPT header").hasPrefix(signature)
    }

    /// Reads a header at `lba` and its entry array, checking both CRCs; the reason when either is bad.
    static func header(_ disk: VolumeBytes, lba: UInt64, sectorSize: Int, label: String) throws(DiskVaultError) -> Result<(Header, ByteReader), HeaderProblem> {
        let r = try disk.read(lba * UInt64(sectorSize), sectorSize, what: "\(label) GPT header at LBA \(lba)")
        do {
            guard r.hasPrefix(signature) else { return .failure(.init("no \"EFI PART\" signature")) }
            let headerSize = Int(try r.u32le(12, "header size"))
            guard headerSize >= 92 && headerSize <= sectorSize else {
                return .failure(.init("header size \(headerSize) is outside 92…\(sectorSize)"))
            }
            let stored = try r.u32le(16, "header CRC-32")
            var copy = Array(try r.slice(0, headerSize, "header"))
            for i in 16..<20 { copy[i] = 0 }
            guard CRC32.checksum(copy) == stored else { return .failure(.init("header CRC-32 mismatch")) }
            let h = Header(
                myLBA: try r.u64le(24, "my LBA"), alternateLBA: try r.u64le(32, "alternate LBA"),
                firstUsable: try r.u64le(40, "first usable LBA"), lastUsable: try r.u64le(48, "last usable LBA"),
                diskGUID: try r.guid(56, "disk GUID"), entriesLBA: try r.u64le(72, "partition entries LBA"),
                entryCount: try r.u32le(80, "number of partition entries"), entrySize: try r.u32le(84, "size of a partition entry"),
                entriesCRC: try r.u32le(88, "partition entries CRC-32"))
            guard h.entrySize >= 128, h.entrySize % 8 == 0, h.entrySize <= 4096 else {
                return .failure(.init("partition entry size \(h.entrySize) is not a multiple of 8 from 128 to 4096"))
            }
            let arrayBytes = UInt64(h.entryCount) * UInt64(h.entrySize)
            guard arrayBytes <= UInt64(maxEntryArrayBytes) else {
                return .failure(.init("\(h.entryCount) partition entries of \(h.entrySize) bytes is more than any real table"))
            }
            guard h.entriesLBA.multipliedReportingOverflow(by: UInt64(sectorSize)).overflow == false,
                h.entriesLBA * UInt64(sectorSize) + arrayBytes <= disk.size
            else {
                return .failure(.init("partition entries at LBA \(h.entriesLBA) lie past the end of the disk"))
            }
            let entries = try disk.read(h.entriesLBA * UInt64(sectorSize), Int(arrayBytes), what: "\(label) GPT partition entries")
            guard entries.count == Int(arrayBytes) else { return .failure(.init("partition entries are truncated")) }
            guard CRC32.checksum(entries.bytes) == h.entriesCRC else { return .failure(.init("partition entries CRC-32 mismatch")) }
            return .success((h, entries))
        } catch let error as ByteReader.OutOfBounds {
            return .failure(.init(error.description))
        } catch {
            throw asDiskVaultError(error)
        }
    }

    struct HeaderProblem: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// The partitions of a GPT disk, or nil when there is no GPT signature at LBA 1.
    static func read(_ disk: VolumeBytes, sectorSize: Int, diskGUID: inout String?, warnings: inout [String]) throws(DiskVaultError) -> [DiskLayout.Volume]? {
        guard try present(disk, sectorSize: sectorSize) else { return nil }
        let lastLBA = disk.size / UInt64(sectorSize) - 1
        var chosen: (Header, ByteReader)
        switch try header(disk, lba: 1, sectorSize: sectorSize, label: "primary") {
        case .success(let found):
            chosen = found
            if case .failure(let problem) = try header(disk, lba: found.0.alternateLBA < disk.size / UInt64(sectorSize) ? found.0.alternateLBA : lastLBA, sectorSize: sectorSize, label: "backup") {
                warnings.append("backup GPT header is damaged (\(problem.reason)); the primary is intact")
            }
        case .failure(let primaryProblem):
            switch try header(disk, lba: lastLBA, sectorSize: sectorSize, label: "backup") {
            case .success(let found):
                chosen = found
                warnings.append("primary GPT header is damaged (\(primaryProblem.reason)); using the backup header at LBA \(lastLBA)")
            case .failure(let backupProblem):
                throw disk.corrupt("GPT is damaged: primary header: \(primaryProblem.reason); backup header: \(backupProblem.reason)")
            }
        }
        let (h, entries) = chosen
        diskGUID = h.diskGUID
        var volumes: [DiskLayout.Volume] = []
        for i in 0..<Int(h.entryCount) {
            let at = i * Int(h.entrySize)
            do {
                let typeBytes = try entries.slice(at, 16, "entry \(i + 1) type")
                if typeBytes.allSatisfy({ $0 == 0 }) { continue }
                let type = try entries.guid(at, "entry \(i + 1) type")
                let first = try entries.u64le(at + 32, "entry \(i + 1) first LBA")
                let last = try entries.u64le(at + 40, "entry \(i + 1) last LBA")
                guard first <= last, last <= lastLBA else {
                    warnings.append("GPT partition \(i + 1) has LBAs \(first)…\(last) outside the disk; left out")
                    continue
                }
                var name: [UInt16] = []
                for j in 0..<36 {
                    let c = try entries.u16le(at + 56 + 2 * j, "entry \(i + 1) name")
                    if c == 0 { break }
                    name.append(c)
                }
                volumes.append(DiskLayout.Volume(
                    number: i + 1, offset: first * UInt64(sectorSize), size: (last - first + 1) * UInt64(sectorSize),
                    type: type, typeName: typeNames[type], name: name.isEmpty ? nil : String(decoding: name, as: UTF16.self),
                    guid: try entries.guid(at + 16, "entry \(i + 1) unique GUID")))
            } catch {
                throw disk.corrupt(error)
            }
        }
        return volumes
    }

    static let typeNames: [String: String] = [
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "EFI System",
        "21686148-6449-6e6f-744e-656564454649": "BIOS boot",
        "0fc63daf-8483-4772-8e79-3d69d8477de4": "Linux filesystem",
        "ca7d7ccb-63ed-4c53-861c-1742536059cc": "Linux LUKS",
        "7ffec5c9-2d00-49b7-8941-3ea10a5586b7": "Linux dm-crypt",
        "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "Linux swap",
        "e6d6d379-f507-44c2-a23c-238f2a3df928": "Linux LVM",
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": "Linux root (x86-64)",
        "933ac7e1-2eb4-4f13-b844-0e14e2aef915": "Linux home",
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "Microsoft basic data",
        "e3c9e316-0b5c-4db8-817d-f92df00215ae": "Microsoft reserved",
        "de94bba4-06d1-4d40-a16a-bfd50179d6ac": "Windows recovery",
    ]
}
