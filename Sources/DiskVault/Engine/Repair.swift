import Foundation

public struct RepairOptions: Sendable {
    public var disk: String?
    public init(disk: String? = nil) { self.disk = disk }
}

public struct RepairReport: Encodable, Sendable {
    public var vault: String
    /// Chunks stored again, each checked against its digest.
    public var healed: [String] = []
    /// Chunks still missing or damaged: no source held them.
    public var stillDamaged: [String] = []
    /// Points (disk@id) that need a chunk still damaged.
    public var damagedPoints: [String] = []
    /// The images read for the chunks.
    public var sourcesRead: [String] = []
    public var seconds: Double = 0
    public var ok: Bool { stillDamaged.isEmpty }

    enum CodingKeys: String, CodingKey { case vault, healed, stillDamaged, damagedPoints, sourcesRead, seconds, ok }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vault, forKey: .vault)
        try c.encode(healed, forKey: .healed)
        try c.encode(stillDamaged, forKey: .stillDamaged)
        try c.encode(damagedPoints, forKey: .damagedPoints)
        try c.encode(sourcesRead, forKey: .sourcesRead)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(ok, forKey: .ok)
    }
}

/// Heals the chunks verify recorded as missing or damaged from the disks' sources: each protected disk's
/// source (disk.json) and each point's recorded source path that still exists is read and chunked as a backup
/// would; every chunk whose digest is on the record is stored again over the bad blob and read back against
/// its digest. What no source holds stays on the record, with the points that need it.
public final class Repair {
    let vault: Vault
    let options: RepairOptions
    public weak var observer: (any ProgressObserver)?

    public init(vault: Vault, options: RepairOptions) {
        self.vault = vault
        self.options = options
    }

    /// Runs the repair as a recorded job under the vault's shared lock: it stores blobs as a backup does.
    public func run(_ control: JobControl = .init()) throws(DiskVaultError) -> RepairReport {
        try Job.run(vault, kind: .repair, disk: options.disk, control: control) { (outcome) throws(DiskVaultError) in
            let report = try runUnlocked()
            outcome.warnings = report.stillDamaged.map { "chunk \($0) is still missing or damaged" }
            return report
        }
    }

    private func runUnlocked() throws(DiskVaultError) -> RepairReport {
        let started = Date()
        var report = RepairReport(vault: vault.location)
        var remaining = try vault.damagedChunks()
        let disks: [String]
        if let disk = options.disk {
            try DiskName.validate(disk)
            disks = [disk]
        } else {
            disks = try vault.disks()
        }
        var healed = Set<Digest256>()
        let codec = BlobCodec(chunkSize: vault.config.chunkSize)
        let buffer = ByteBuffer(capacity: BlobCodec.frameCapacity(chunkSize: vault.config.chunkSize))
        let check = ByteBuffer(capacity: Blob.directIOAlignment + vault.config.chunkSize)
        var tried = Set<String>()
        for disk in disks where !remaining.isEmpty {
            for path in try sources(of: disk) where !remaining.isEmpty && tried.insert(path).inserted {
                report.sourcesRead.append(path)
                let found = try heal(from: path, wanted: remaining, codec: codec, buffer: buffer, check: check)
                remaining.subtract(found)
                healed.formUnion(found)
            }
        }
        if !healed.isEmpty { try vault.clearDamagedChunks(healed) }
        report.healed = healed.map(\.hex).sorted()
        report.stillDamaged = remaining.map(\.hex).sorted()
        if !remaining.isEmpty {
            for disk in disks {
                for point in try vault.points(disk: disk) {
                    var needs = false
                    do throws(DiskVaultError) {
                        try vault.index(of: point).forEachDataChunk { (_, d) in if remaining.contains(d) { needs = true } }
                    } catch {
                        needs = true
                    }
                    if needs { report.damagedPoints.append("\(disk)@\(point.id)") }
                }
            }
        }
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    /// Where the disk's data may still be: its protected source, then each point's source path, newest first;
    /// only regular files and block devices that exist.
    func sources(of disk: String) throws(DiskVaultError) -> [String] {
        var out: [String] = []
        if let protected = try vault.protection(of: disk) { out.append(protected.source) }
        for point in try vault.points(disk: disk).reversed() where point.manifest.source.kind != .stream {
            out.append(point.manifest.source.path)
        }
        var seen = Set<String>()
        return out.filter { $0 != "-" && FileSystem.exists($0) && seen.insert($0).inserted }
    }

    /// Reads `path` chunk by chunk (holes skipped) and stores again each chunk in `wanted`; the digests healed.
    func heal(from path: String, wanted: Set<Digest256>, codec: BlobCodec, buffer: ByteBuffer, check: ByteBuffer) throws(DiskVaultError) -> Set<Digest256> {
        let source = try ImageSource.open(path)
        guard let size = source.size else { return [] }
        let chunkSize = vault.config.chunkSize
        var plan = source.makeReadPlan()
        var healed = Set<Digest256>()
        var offset: UInt64 = 0
        while offset < size && healed.count < wanted.count {
            let length = Int(min(UInt64(chunkSize), size - offset))
            defer { offset += UInt64(length) }
            guard try !plan.dataRanges(in: offset..<offset + UInt64(length)).isEmpty else { continue }
            let area = BlobCodec.chunkArea(of: buffer, length: length)
            guard try source.bytes.read(into: area, at: offset) == length else { break }
            let bytes = UnsafeRawBufferPointer(area)
            let digest = vault.chunks.name(of: bytes)
            guard wanted.contains(digest), !healed.contains(digest) else { continue }
            _ = try vault.chunks.store(bytes, digest: digest, mayCompress: true, codec: codec, frame: buffer.storage, replacing: true)
            try vault.storage.barrier()
            // Read back: only a blob that holds its digest's chunk counts as healed.
            _ = try vault.chunks.load(digest, length: length, into: check, at: Blob.directIOAlignment, codec: codec)
            healed.insert(digest)
            observer?.progress(done: offset, total: size)
        }
        return healed
    }
}
