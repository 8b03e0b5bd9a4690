import Foundation

/// Copies recovery points, and the chunks they need, from one vault to another — local or object store,
/// encrypted or not — for off-site copies (the 3-2-1 rule), as `restic copy` and Proxmox's sync jobs do.
/// Each chunk is read through the checked path (its blob's CRC, inflated, its name checked against its
/// content) and stored in the target as the target names and seals it, so vaults with different keys exchange
/// points; chunks the target has already are not sent again. The index is written anew with the target's chunk
/// names, then the point's key backup, then the manifest, last: a copy stopped at any moment leaves no point, and
/// a second copy takes up where it stopped (stored chunks are found there; a point already in the target is
/// skipped), so copying again transfers nothing.
public enum Copy {
    public struct Report: Codable, Sendable {
        public var from: String
        public var to: String
        /// Points copied, as disk@id.
        public var copied: [String] = []
        /// Points the target had already.
        public var alreadyThere: Int = 0
        public var chunksCopied: Int = 0
        public var chunksAlreadyThere: Int = 0
        /// Bytes of chunk data sent (before compression and sealing).
        public var bytesCopied: UInt64 = 0
        /// VM points (vm@id) whose record was copied: every disk point it lists is in the target.
        public var vmPointsCopied: [String] = []
        public var warnings: [String] = []
        public var seconds: Double = 0
    }

    /// Copies the points of `disk` (every disk when nil) — only `point` when given — from `source` to `target`.
    /// The source is shared while it is read; each disk of the target is locked as a backup locks it.
    public static func run(
        from source: Vault, to target: Vault, disk: String?, point: String?, control: JobControl = JobControl(),
        progress: ((String) -> Void)? = nil
    ) throws(DiskVaultError) -> Report {
        guard source.config.id != target.config.id else {
            throw DiskVaultError(.usage, "vault \(source.location) and vault \(target.location) are the same vault (id \(source.config.id))")
        }
        guard source.config.chunkSize == target.config.chunkSize else {
            throw DiskVaultError(
                .usage, "vault \(source.location) has chunk size \(ByteCount.format(UInt64(source.config.chunkSize))) and vault \(target.location) \(ByteCount.format(UInt64(target.config.chunkSize))): points copy only between vaults of one chunk size")
        }
        if point != nil && disk == nil { throw DiskVaultError(.usage, "--point needs --disk") }
        let started = Date()
        var report = Report(from: source.location, to: target.location)
        let sourceLock = try VaultLock.acquire(.shared, storage: source.storage, purpose: "copy to \(target.location)", wait: control.lockWait)
        defer { sourceLock.release() }
        for stale in sourceLock.takenOver { control.notice("took over \(stale)") }
        let disks: [String]
        if let disk {
            try DiskName.validate(disk)
            disks = [disk]
        } else {
            disks = try source.disks()
        }
        for d in disks {
            let scan = try source.scanPoints(disk: d)
            for damaged in scan.damaged { report.warnings.append("point \(d)@\(damaged.id) of \(source.location) is damaged and not copied: \(damaged.problem)") }
            var points = scan.points
            if let point {
                let chosen = try source.point(disk: d, id: point)
                points = [chosen]
            }
            guard !points.isEmpty else { continue }
            try Job.run(target, kind: .copy, disk: d, control: control) { (outcome) throws(DiskVaultError) in
                let present = Set(try target.points(disk: d).map(\.id))
                for p in points {
                    if present.contains(p.id) {
                        report.alreadyThere += 1
                        continue
                    }
                    progress?("copying \(d)@\(p.id)")
                    try copyPoint(p, from: source, to: target, report: &report)
                    report.copied.append("\(d)@\(p.id)")
                    outcome.bytes = (outcome.bytes ?? 0) + p.manifest.source.size
                }
                outcome.warnings = report.warnings
            }
        }
        // A VM point's record once every disk point it lists is in the target, written after them, as a backup
        // writes it: `vm restore` and a prune as a unit work on the copy. The target is shared meanwhile, so no
        // prune removes a disk point between the look and the write.
        let targetLock = try VaultLock.acquire(.shared, storage: target.storage, purpose: "copy from \(source.location)", wait: control.lockWait)
        defer { targetLock.release() }
        for vm in try source.vms() {
            let scan = try source.scanVMPoints(vm)
            for damaged in scan.damaged { report.warnings.append("VM point \(vm)@\(damaged.id) of \(source.location) is damaged and not copied: \(damaged.problem)") }
            let present = Set(try target.vmPoints(vm).map(\.id))
            for p in scan.points where !present.contains(p.id) {
                guard disk == nil || p.disks.contains(where: { $0.disk == disk }) else { continue }
                var complete = true
                for m in p.disks where complete {
                    complete = try target.storage.head(RecoveryPoint.manifestKey(disk: m.disk, id: m.point)) != nil
                }
                guard complete else { continue }
                try target.saveVMPoint(p)
                report.vmPointsCopied.append("\(vm)@\(p.id)")
            }
        }
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    private static func copyPoint(_ p: RecoveryPoint, from source: Vault, to target: Vault, report: inout Report) throws(DiskVaultError) {
        let chunkSize = source.config.chunkSize
        // A folder of this id without a manifest is what a stopped copy left: it goes first.
        if try target.storage.list(RecoveryPoint.prefix(disk: p.disk)).contains(p.id) {
            try target.removePointFolder(disk: p.disk, id: p.id)
        }
        let index = try source.checkedIndex(of: p)
        let writer = try target.storage.makeWriter(RecoveryPoint.indexKey(disk: p.disk, id: p.id))
        defer { writer.abandon() }
        let indexWriter = ChunkIndexWriter(chunkSize: chunkSize, output: writer)
        let sourceCodec = BlobCodec(chunkSize: chunkSize), targetCodec = BlobCodec(chunkSize: chunkSize)
        let frame = ByteBuffer(capacity: BlobCodec.frameCapacity(chunkSize: chunkSize))
        var i = 0
        while let entry = try index.next() {
            switch entry {
            case .zeros(let n):
                try indexWriter.appendZeros(n)
                i += n
            case .chunk(let name):
                let length = index.length(ofChunk: i)
                let area = BlobCodec.chunkArea(of: frame, length: length)
                let chunk = try source.chunks.load(name, length: length, into: frame, at: Blob.headerSize, codec: sourceCodec)
                if chunk.baseAddress != UnsafeRawPointer(area.baseAddress) { area.copyMemory(from: chunk) }
                let bytes = UnsafeRawBufferPointer(area)
                let targetName = target.chunks.name(of: bytes)
                if try target.chunks.contains(targetName) {
                    report.chunksAlreadyThere += 1
                } else {
                    // Ciphertext (an encrypted disk's data) never pays to compress: the probe says so.
                    _ = try target.chunks.store(bytes, digest: targetName, mayCompress: true, codec: targetCodec, frame: frame.storage)
                    report.chunksCopied += 1
                    report.bytesCopied += UInt64(length)
                }
                try indexWriter.append(targetName)
                i += 1
            }
        }
        var manifest = p.manifest
        manifest.indexDigest = try indexWriter.finish(imageSize: p.manifest.source.size).hex
        var extras: [String: [UInt8]] = [:]
        if let record = p.manifest.keyBackup {
            // The key backup is sealed by the key vault it came from (and, as escrow, to the source vault):
            // copied as it is; the target vault opens it through that key vault.
            let key = "\(RecoveryPoint.prefix(disk: p.disk))/\(p.id)/\(record.blob)"
            extras[record.blob] = try source.storage.get(key, limit: 64 << 20)
            if record.escrow != nil {
                report.warnings.append("the keys of \(p.disk)@\(p.id) are escrowed to vault \(source.location) only: from \(target.location) they restore through their key vault")
            }
        }
        try target.commit(manifest, index: writer, extras: extras)
    }
}
