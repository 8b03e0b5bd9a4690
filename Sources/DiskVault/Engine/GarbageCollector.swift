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
    }

    public static func run(_ vault: Vault, dryRun: Bool = false) throws(DiskVaultError) -> Report {
        let started = Date()
        var report = Report(points: 0, referencedChunks: 0, blobsRemoved: 0, bytesFreed: 0, blobsKept: 0,
                            partialPointsRemoved: 0, temporaryFilesRemoved: 0, dryRun: dryRun, seconds: 0)
        // Mark.
        var live = Set<Digest256>()
        for disk in try vault.disks() {
            for point in try vault.points(disk: disk) {
                // A point whose index cannot be read stops the collection: its chunks must not be freed.
                // Streamed: the set grows with the distinct data chunks, not with the image size.
                try vault.index(of: point).forEachDataChunk { (_, digest) in live.insert(digest) }
                report.points += 1
            }
            // Points without a manifest are leftovers of interrupted backups.
            for id in try vault.storage.list(RecoveryPoint.prefix(disk: disk)) {
                let dir = "\(RecoveryPoint.prefix(disk: disk))/\(id)"
                guard try vault.storage.head("\(dir)/manifest.json") == nil else { continue }
                report.partialPointsRemoved += 1
                if !dryRun {
                    for name in try vault.storage.list(dir) { try vault.storage.delete("\(dir)/\(name)") }
                    try vault.storage.delete(dir)
                }
            }
        }
        live.remove(.zero)
        report.referencedChunks = live.count
        // Sweep.
        for (digest, key) in try vault.chunks.listBlobs() {
            if live.contains(digest) {
                report.blobsKept += 1
                continue
            }
            report.bytesFreed += try vault.storage.head(key) ?? 0
            report.blobsRemoved += 1
            if !dryRun { try vault.storage.delete(key) }
        }
        for name in try vault.storage.list("tmp") {
            report.temporaryFilesRemoved += 1
            if !dryRun { try vault.storage.delete("tmp/\(name)") }
        }
        if !dryRun { try vault.storage.barrier() }
        report.seconds = Date().timeIntervalSince(started)
        return report
    }
}
