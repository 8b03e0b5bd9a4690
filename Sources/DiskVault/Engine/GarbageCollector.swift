import Foundation

/// Frees what no recovery point needs: marks every digest the complete points reference, then removes every
/// other blob. Runs under the vault's exclusive lock, so no backup is running and no blob a running backup
/// wrote can be taken; leftovers of interrupted backups (temporary files, folders of points that never got a
/// manifest) go too.
public enum GarbageCollector {
    public struct Report: Codable, Sendable {
        public var points: Int
        public var referencedChunks: Int
        public var blobsRemoved: Int
        public var bytesFreed: UInt64
        public var blobsKept: Int
        public var partialPointsRemoved: Int
        public var temporaryFilesRemoved: Int
        public var dryRun: Bool
        public var seconds: Double
        /// Points whose manifest is damaged; their chunks were kept when their index could still be read.
        public var damagedPoints: [String] = []
        /// Why nothing was swept: points whose chunks cannot be known. Empty when the sweep ran.
        public var sweepSkipped: [String] = []
        /// Blobs or leftovers that could not be removed, and why: reported, never a reason to stop.
        public var warnings: [String] = []
    }

    /// Runs gc as a recorded job holding the vault alone: no backup can write a blob it would miss.
    public static func run(_ vault: Vault, dryRun: Bool = false, control: JobControl = .init()) throws(DiskVaultError) -> Report {
        try Job.run(vault, kind: .gc, disk: nil, control: control) { (outcome) throws(DiskVaultError) in
            let report = try collect(vault, dryRun: dryRun)
            outcome.bytes = report.bytesFreed
            outcome.warnings = report.warnings + report.sweepSkipped.map { "nothing swept: the chunks of \($0) cannot be known" }
            return report
        }
    }

    private static func collect(_ vault: Vault, dryRun: Bool) throws(DiskVaultError) -> Report {
        let started = Date()
        var report = Report(points: 0, referencedChunks: 0, blobsRemoved: 0, bytesFreed: 0, blobsKept: 0,
                            partialPointsRemoved: 0, temporaryFilesRemoved: 0, dryRun: dryRun, seconds: 0)
        // Mark. A point whose chunks cannot be known stops the sweep: nothing it might need is freed.
        var live = Set<Digest256>()
        for disk in try vault.disks() {
            let scan = try vault.scanPoints(disk: disk)
            for point in scan.points {
                // Streamed: the set grows with the distinct data chunks, not with the image size.
                do {
                    try vault.index(of: point).forEachDataChunk { (_, digest) in live.insert(digest) }
                } catch where error.code == .corrupt || error.code == .notFound {
                    if !markRawIndex(vault, disk: disk, id: point.id, into: &live) {
                        report.sweepSkipped.append("\(disk)@\(point.id): \(error)")
                    }
                }
                report.points += 1
            }
            for bad in scan.damaged where PointID.isValid(bad.id) {
                report.damagedPoints.append("\(disk)@\(bad.id)")
                if !markRawIndex(vault, disk: disk, id: bad.id, into: &live) { report.sweepSkipped.append("\(disk)@\(bad.id): \(bad.problem), and its index cannot be read") }
            }
            // Points without a manifest are leftovers of interrupted backups.
            for id in try vault.storage.list(RecoveryPoint.prefix(disk: disk)) where PointID.isValid(id) {
                let dir = "\(RecoveryPoint.prefix(disk: disk))/\(id)"
                guard try vault.storage.head("\(dir)/manifest.json") == nil else { continue }
                if !dryRun {
                    do {
                        try vault.removePointFolder(disk: disk, id: id)
                    } catch {
                        report.warnings.append("cannot remove the unfinished point \(disk)@\(id): \(error)")
                        continue
                    }
                }
                report.partialPointsRemoved += 1
            }
        }
        if !report.sweepSkipped.isEmpty {
            report.seconds = Date().timeIntervalSince(started)
            return report
        }
        live.remove(.zero)
        report.referencedChunks = live.count
        // Sweep: sizes from the listing, deletes a thousand at a time (one request each on an object store).
        var pending: [(key: String, size: UInt64)] = []
        func flush() throws(DiskVaultError) {
            guard !pending.isEmpty else { return }
            let failed = dryRun ? [] : try vault.storage.delete(batch: pending.map(\.key))
            for f in failed { report.warnings.append("cannot remove \(vault.location)/\(f.key): \(f.problem)") }
            let kept = Set(failed.map(\.key))
            for p in pending where !kept.contains(p.key) {
                report.bytesFreed += p.size
                report.blobsRemoved += 1
            }
            pending.removeAll(keepingCapacity: true)
        }
        for (digest, key, size) in try vault.chunks.listBlobsWithSizes() {
            if live.contains(digest) {
                report.blobsKept += 1
                continue
            }
            pending.append((key, size))
            if pending.count == 1000 { try flush() }
        }
        try flush()
        for name in try vault.storage.list("tmp") {
            report.temporaryFilesRemoved += 1
            if !dryRun {
                do { try vault.storage.delete("tmp/\(name)") } catch {
                    report.warnings.append("cannot remove \(vault.location)/tmp/\(name): \(error)")
                }
            }
        }
        if !dryRun { try vault.storage.barrier() }
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    /// Marks the data chunks of a point's index read without the manifest's digest (the manifest is damaged, or
    /// the index does not match it): false when even that cannot be read whole. Marking more is always safe.
    static func markRawIndex(_ vault: Vault, disk: String, id: String, into live: inout Set<Digest256>) -> Bool {
        let key = RecoveryPoint.indexKey(disk: disk, id: id)
        do {
            let index = try ChunkIndexReader(try vault.storage.makeReader(key), source: "\(vault.location)/\(key)")
            guard index.chunkSize == vault.config.chunkSize else { return false }
            try index.forEachDataChunk { (_, digest) in live.insert(digest) }
            return true
        } catch {
            return false
        }
    }
}
