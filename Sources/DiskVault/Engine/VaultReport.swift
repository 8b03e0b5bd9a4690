import Foundation

/// `stats`: what a vault holds and what deduplication and compression save, per disk and per point.
///
/// Logical bytes are the disks' sizes (what restoring every point would write); data bytes leave out chunks of
/// zeros; unique bytes are the distinct chunks the vault holds (one chunk size each, so a disk's short last
/// chunk counts whole); stored bytes are their blobs as they sit in the vault. Dedup ratio = data bytes /
/// unique bytes; compression ratio = unique bytes / stored bytes. A point's new and stored bytes are what its
/// backup added.
public struct VaultStats: Codable, Sendable {
    public struct PointStats: Codable, Sendable {
        public var id: String
        public var created: String
        public var trigger: Trigger
        public var logicalBytes: UInt64
        public var dataBytes: UInt64
        public var chunks: Int
        public var zeroChunks: Int
        public var newChunks: Int
        public var newBytes: UInt64
        public var storedBytes: UInt64
    }

    public struct DiskStats: Codable, Sendable {
        public var disk: String
        public var points: Int
        public var latestPoint: String?
        public var latestSize: UInt64
        public var logicalBytes: UInt64
        public var dataBytes: UInt64
        /// Blob bytes the disk's points added when they were backed up (its share of the vault, as written).
        public var storedBytes: UInt64
        public var pointStats: [PointStats]?
    }

    public var vault: String
    public var chunkSize: Int
    public var disks: [DiskStats]
    public var points: Int
    public var logicalBytes: UInt64
    public var dataBytes: UInt64
    /// Distinct chunks (blobs) in the vault, referenced or not (gc removes the rest).
    public var uniqueChunks: Int
    public var uniqueBytes: UInt64
    public var storedBytes: UInt64
    public var dedupRatio: Double?
    public var compressionRatio: Double?
    /// dataBytes / storedBytes: what deduplication and compression save together.
    public var spaceSavingRatio: Double?

    /// Reads every manifest and lists every blob with its size; `disk` limits the disks (the vault-wide blob
    /// figures stay the vault's). `perPoint` adds each point's own figures.
    public static func compute(_ vault: Vault, disk only: String? = nil, perPoint: Bool = false) throws(DiskVaultError) -> VaultStats {
        let chunkSize = vault.config.chunkSize
        var disks: [DiskStats] = []
        for disk in try vault.disks() where only == nil || disk == only {
            var d = DiskStats(disk: disk, points: 0, latestPoint: nil, latestSize: 0, logicalBytes: 0, dataBytes: 0, storedBytes: 0,
                              pointStats: perPoint ? [] : nil)
            for p in try vault.points(disk: disk) {
                let m = p.manifest
                let zeroBytes = min(m.source.size, UInt64(m.stats.zeroChunks) * UInt64(m.chunkSize))
                let data = m.source.size - zeroBytes
                d.points += 1
                d.latestPoint = m.id
                d.latestSize = m.source.size
                d.logicalBytes += m.source.size
                d.dataBytes += data
                d.storedBytes += m.stats.storedBytes
                d.pointStats?.append(PointStats(id: m.id, created: m.created, trigger: m.trigger, logicalBytes: m.source.size, dataBytes: data,
                                                chunks: m.chunkCount, zeroChunks: m.stats.zeroChunks, newChunks: m.stats.newChunks,
                                                newBytes: m.stats.newBytes, storedBytes: m.stats.storedBytes))
            }
            disks.append(d)
        }
        if let only, disks.isEmpty { throw DiskVaultError(.notFound, "no disk named \(only) in the vault", path: vault.location) }
        var unique = 0
        var stored: UInt64 = 0
        // Sizes from the listings: an object store is not asked once a blob.
        for blob in try vault.chunks.listBlobsWithSizes() {
            unique += 1
            stored += blob.size
        }
        let logical = disks.reduce(0) { $0 + $1.logicalBytes }, data = disks.reduce(0) { $0 + $1.dataBytes }
        let uniqueBytes = UInt64(unique) * UInt64(chunkSize)
        func ratio(_ a: UInt64, _ b: UInt64) -> Double? { b == 0 ? nil : (Double(a) / Double(b) * 100).rounded() / 100 }
        return VaultStats(
            vault: vault.location, chunkSize: chunkSize, disks: disks, points: disks.reduce(0) { $0 + $1.points }, logicalBytes: logical,
            dataBytes: data, uniqueChunks: unique, uniqueBytes: uniqueBytes, storedBytes: stored,
            dedupRatio: only == nil ? ratio(data, uniqueBytes) : nil, compressionRatio: ratio(uniqueBytes, stored),
            spaceSavingRatio: only == nil ? ratio(data, stored) : nil)
    }
}

/// `status`: for each protected disk, its last point and how old it is, its last backup job's result, its next
/// run, and what is wrong. A disk is overdue when it has no point at all, when its newest point is older than
/// `maxAge`, or when a scheduled slot since it was protected passed more than `grace` ago with no point since.
public struct VaultStatus: Codable, Sendable {
    public struct DiskStatus: Codable, Sendable {
        public var disk: String
        public var policy: String
        public var source: String
        public var lastPoint: String?
        public var lastPointCreated: String?
        public var lastPointAgeSeconds: Int?
        public var lastJob: String?
        public var lastJobState: JobState?
        public var lastJobEnded: String?
        public var lastJobError: String?
        public var nextRun: String?
        public var overdue: Bool
        public var warnings: [String]
    }

    public var vault: String
    public var now: String
    public var disks: [DiskStatus]
    public var overdue: Int

    public static func compute(_ vault: Vault, now: Date, maxAge: TimeInterval, grace: TimeInterval) throws(DiskVaultError) -> VaultStatus {
        let jobs = try Job.list(vault).filter { $0.kind == .backup }
        var out: [DiskStatus] = []
        for protected in try vault.protectedDisks() {
            let policy = try vault.policy(protected.policy)
            let points = try vault.points(disk: protected.disk)
            let last = points.last
            let lastTime = last.flatMap { Timestamp.parse($0.manifest.created) }
            let job = jobs.last { $0.disk == protected.disk }
            var status = DiskStatus(
                disk: protected.disk, policy: protected.policy, source: protected.source, lastPoint: last?.id, lastPointCreated: last?.manifest.created,
                lastPointAgeSeconds: lastTime.map { Int(now.timeIntervalSince($0)) }, lastJob: job?.id, lastJobState: job?.state,
                lastJobEnded: job?.ended, lastJobError: job?.error, nextRun: policy.nextScheduledTime(after: now).map(Timestamp.format),
                overdue: false, warnings: [])
            if let lastTime {
                if now.timeIntervalSince(lastTime) > maxAge {
                    status.overdue = true
                    status.warnings.append("no successful backup in \(Self.duration(maxAge)) (the last is \(Self.duration(now.timeIntervalSince(lastTime))) old)")
                }
            } else {
                status.overdue = true
                status.warnings.append("no recovery point yet")
            }
            // A slot since the disk was protected, more than `grace` ago, and no point (of any trigger) since it.
            let since = Timestamp.parse(protected.created) ?? .distantPast
            if let slot = policy.lastScheduledTime(atOrBefore: now), slot > since, now.timeIntervalSince(slot) > grace,
                let lastTime, lastTime < slot
            {
                status.overdue = true
                status.warnings.append("the run scheduled for \(Timestamp.format(slot)) has not happened (is run-due called?)")
            }
            if let job, job.state == .failed {
                status.warnings.append("the last backup failed: \(job.error ?? "see diskvault jobs show \(job.id)")")
            }
            out.append(status)
        }
        return VaultStatus(vault: vault.location, now: Timestamp.format(now), disks: out, overdue: out.filter(\.overdue).count)
    }

    /// "48 h", "3 d", "25 min".
    public static func duration(_ seconds: TimeInterval) -> String {
        let s = Int(seconds.rounded())
        if s >= 3 * 86400 { return "\(s / 86400) d" }
        if s >= 3600 { return "\(s / 3600) h" }
        if s >= 60 { return "\(s / 60) min" }
        return "\(s) s"
    }
}

/// `points diff`: the byte ranges where two points of a disk differ, chunk by chunk (equal digests are equal
/// chunks), merged into runs; the total is exact, the list of runs is cut at `limit`.
public struct PointDiff: Codable, Sendable {
    public struct Range: Codable, Sendable, Equatable {
        public var offset: UInt64
        public var length: UInt64
    }

    public var disk: String
    public var from: String
    public var to: String
    public var fromSize: UInt64
    public var toSize: UInt64
    public var chunkSize: Int
    public var changedChunks: Int
    public var changedBytes: UInt64
    public var ranges: [Range]
    /// True when there were more runs than `ranges` holds.
    public var truncated: Bool

    public static func compute(_ vault: Vault, disk: String, from a: String, to b: String, limit: Int = 10_000) throws(DiskVaultError) -> PointDiff {
        let pa = try vault.point(disk: disk, id: a), pb = try vault.point(disk: disk, id: b)
        let ia = try vault.checkedIndex(of: pa), ib = try vault.checkedIndex(of: pb)
        guard ia.chunkSize == ib.chunkSize else {
            throw DiskVaultError(.unsupported, "points \(pa.id) and \(pb.id) have different chunk sizes (\(ia.chunkSize), \(ib.chunkSize))")
        }
        let size = UInt64(ia.chunkSize)
        var diff = PointDiff(disk: disk, from: pa.id, to: pb.id, fromSize: ia.imageSize, toSize: ib.imageSize, chunkSize: ia.chunkSize,
                             changedChunks: 0, changedBytes: 0, ranges: [], truncated: false)
        // Each index as a stream of single chunks: a digest, or nil for zeros (runs of zeros counted down).
        func stream(_ index: ChunkIndexReader) -> () throws(DiskVaultError) -> Digest256?? {
            var zeros = 0
            return { () throws(DiskVaultError) -> Digest256?? in
                if zeros > 0 { zeros -= 1; return .some(nil) }
                switch try index.next() {
                case nil: return nil
                case .chunk(let d): return .some(d)
                case .zeros(let n):
                    zeros = n - 1
                    return .some(nil)
                }
            }
        }
        let nextA = stream(ia), nextB = stream(ib)
        let end = max(ia.imageSize, ib.imageSize)
        var i: UInt64 = 0
        var run: Range? = nil
        func flush() {
            guard let r = run else { return }
            run = nil
            if diff.ranges.count < limit { diff.ranges.append(r) } else { diff.truncated = true }
        }
        while i * size < end {
            let x = try nextA(), y = try nextB()
            let start = i * size
            let length = min(size, end - start)
            var same: Bool
            switch (x, y) {
            case (.some(let da), .some(let db)): same = da == db
            default: same = false  // one point is shorter here
            }
            // A chunk is its length too: the last chunk of a disk that grew or shrank differs.
            if same, start + length > min(ia.imageSize, ib.imageSize) { same = false }
            if !same {
                diff.changedChunks += 1
                diff.changedBytes += length
                if let r = run, r.offset + r.length == start { run!.length += length } else { flush(); run = Range(offset: start, length: length) }
            }
            i += 1
        }
        flush()
        return diff
    }
}

extension Vault {
    /// Sets (or with nil clears) a point's retain-until: the manifest is replaced in one atomic step, with
    /// nothing else changed. The vault is held alone meanwhile, as a prune holds it.
    public func setRetainUntil(disk: String, point id: String, until: Date?, forever: Bool, control: JobControl = .init()) throws(DiskVaultError) -> Manifest {
        let lock = try VaultLock.acquire(.exclusive, storage: storage, purpose: "points retain of disk \(disk)", wait: control.lockWait)
        defer { lock.release() }
        for stale in lock.takenOver { control.notice("took over \(stale)") }
        var point = try self.point(disk: disk, id: id)
        point.manifest.retainUntil = forever ? RecoveryPoint.retainForever : until.map(Timestamp.format)
        try storage.replace(RecoveryPoint.manifestKey(disk: disk, id: point.id), try JSON.encode(point.manifest))
        return point.manifest
    }
}
