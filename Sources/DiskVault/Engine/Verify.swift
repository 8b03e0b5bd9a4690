import Foundation

public struct VerifyOptions: Sendable {
    public var disk: String?
    public var point: String?
    public var threads = defaultThreadCount()
    /// With it, each key backup that came from this key vault is opened (authenticated), not only checked.
    public var keyVault: KeyVaultAccess?

    public init(disk: String? = nil, point: String? = nil) {
        self.disk = disk
        self.point = point
    }
}

public struct VerifyReport: Encodable, Sendable {
    /// What is wrong: a chunk missing or damaged, or a point (manifest, index, key backup) that cannot be used.
    public enum ProblemKind: String, Codable, Sendable {
        case missing, damaged, point
    }

    public struct Problem: Codable, Sendable, Equatable {
        public var kind: ProblemKind
        public var chunk: String?
        public var message: String
        /// Points (disk@id) that need this chunk, or the point that is damaged.
        public var points: [String]
    }

    public var vault: String
    public var points: [String] = []
    public var chunksChecked = 0
    public var bytesChecked: UInt64 = 0
    public var problems: [Problem] = []
    /// What is odd but not damage: points dated in the future, entries under disks/ that are not disks.
    public var warnings: [String] = []
    public var seconds: Double = 0
    public var ok: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey { case vault, points, chunksChecked, bytesChecked, problems, warnings, seconds, ok }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vault, forKey: .vault)
        try c.encode(points, forKey: .points)
        try c.encode(chunksChecked, forKey: .chunksChecked)
        try c.encode(bytesChecked, forKey: .bytesChecked)
        try c.encode(problems, forKey: .problems)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(ok, forKey: .ok)
    }
}

/// Reads every blob the selected points need — CRC, inflate, digest — and names each missing or damaged chunk
/// with the points that need it. Each distinct chunk is read once however many points share it.
public final class Verify {
    let vault: Vault
    let options: VerifyOptions
    public weak var observer: (any ProgressObserver)?

    public init(vault: Vault, options: VerifyOptions) {
        self.vault = vault
        self.options = options
    }

    struct ChunkCheck {
        var digest: Digest256
        var length: Int
        var failure: DiskVaultError?
    }

    /// What is wrong with a point's key backup, or nil. Its digest, recorded in the manifest, proves it whole;
    /// opened with its key vault, it is also authentic. Points of older builds have no digest: without the key
    /// vault only their sealed form is checked.
    func checkKeyBackup(_ point: RecoveryPoint, keyVault: KeyVault?) -> String? {
        guard let record = point.manifest.keyBackup else { return nil }
        let key = "\(RecoveryPoint.prefix(disk: point.disk))/\(point.id)/\(record.blob)"
        let bytes: [UInt8]
        do {
            bytes = try vault.storage.get(key, limit: KeyBackup.maxBlobSize)
        } catch where error.code == .notFound {
            return "key backup of point \(point.id) is missing: \(vault.location)/\(key)"
        } catch {
            return "key backup of point \(point.id) cannot be read: \(error)"
        }
        if let digest = record.blobDigest, SHA256.digest(bytes).hex != digest {
            return "key backup of point \(point.id) is damaged: it does not match the digest in its manifest: \(vault.location)/\(key)"
        }
        if !KeyBackup.isKeyBackupForm(bytes) {
            return "key backup of point \(point.id) is damaged: not a key backup: \(vault.location)/\(key)"
        }
        if let keyVault, keyVault.config.id == record.keyVaultID {
            // Every item's signature is checked; a format-1 backup this principal may not open is no problem.
            do { _ = try KeyBackup.contents(of: point, vault: vault, kv: keyVault) } catch where error.code == .permission && AESGCM.isSealedForm(bytes) {
            } catch { return error.description }
        }
        return nil
    }

    /// Runs the verify as a recorded job under the vault's shared lock.
    public func run(_ control: JobControl = .init()) throws(DiskVaultError) -> VerifyReport {
        try Job.run(vault, kind: .verify, disk: options.disk, control: control) { (outcome) throws(DiskVaultError) in
            let report = try runUnlocked()
            for w in report.warnings { control.notice(w) }
            outcome.bytes = report.bytesChecked
            outcome.warnings = report.problems.map(\.message)
            return report
        }
    }

    private func runUnlocked() throws(DiskVaultError) -> VerifyReport {
        let started = Date()
        var report = VerifyReport(vault: vault.location)
        var selected: [RecoveryPoint] = []
        var scans: [PointScan] = []
        if let disk = options.disk {
            if let id = options.point {
                selected = [try vault.point(disk: disk, id: id)]
            } else {
                scans = [try vault.scanPoints(disk: disk)]
            }
        } else {
            if options.point != nil { throw DiskVaultError(.usage, "--point needs --disk") }
            for disk in try vault.disks() { scans.append(try vault.scanPoints(disk: disk)) }
            for entry in try vault.strayDiskEntries() {
                report.warnings.append("\(vault.location)/disks/\(entry) is not a disk's folder (not a valid disk name); it was left alone")
            }
        }
        for scan in scans {
            selected += scan.points
            for bad in scan.damaged {
                report.problems.append(.init(
                    kind: .point, chunk: nil, message: "point \(bad.id) of disk \(bad.disk) is damaged: \(bad.problem) (remove it with diskvault points forget)",
                    points: ["\(bad.disk)@\(bad.id)"]))
            }
            for p in scan.fromTheFuture {
                report.warnings.append("point \(p.disk)@\(p.id) is dated \(p.manifest.created), in the future: the clock of the host that made it was wrong")
            }
        }
        let keyVault = try options.keyVault?.open()

        // Distinct chunks with their length, and who needs each.
        var lengths: [Digest256: Int] = [:]
        var users: [Digest256: [String]] = [:]
        for point in selected {
            let name = "\(point.disk)@\(point.id)"
            report.points.append(name)
            // An encrypted disk's point is only as good as its key backup.
            if let problem = checkKeyBackup(point, keyVault: keyVault) {
                report.problems.append(.init(kind: .point, chunk: nil, message: problem, points: [name]))
            }
            // Streamed: these maps grow with the distinct data chunks, not with the image size.
            do throws(DiskVaultError) {
                let index = try vault.index(of: point)
                try index.forEachDataChunk { (i, digest) throws(DiskVaultError) in
                    if lengths.updateValue(index.length(ofChunk: i), forKey: digest) == nil { users[digest] = [name] }
                    else if users[digest]?.last != name { users[digest]?.append(name) }
                }
            } catch {
                report.problems.append(.init(kind: .point, chunk: nil, message: error.description, points: [name]))
                continue
            }
        }

        let chunkSize = vault.config.chunkSize
        let workers = max(1, options.threads)
        let chunks = vault.chunks
        let work = lengths.map { ChunkCheck(digest: $0.key, length: $0.value) }.sorted { $0.digest < $1.digest }
        let total = work.reduce(UInt64(0)) { $0 + UInt64($1.length) }
        var done: UInt64 = 0
        var failures: [ChunkCheck] = []
        let observer = self.observer
        do {
            try Pipeline.run(
                workers: workers, depth: pipelineDepth(workers: workers, chunkSize: chunkSize),
                produce: { emit in for entry in work { try emit(entry) } },
                makeWorker: {
                    let codec = BlobCodec(chunkSize: chunkSize)
                    // Room in front of the chunk, so that a raw blob is checked where it was read.
                    let buffer = ByteBuffer(capacity: Blob.directIOAlignment + chunkSize + AESGCM.overhead)
                    return { (check: ChunkCheck) -> ChunkCheck in
                        var check = check
                        do throws(DiskVaultError) {
                            _ = try chunks.load(check.digest, length: check.length, into: buffer, at: Blob.directIOAlignment, codec: codec)
                        } catch {
                            check.failure = error
                        }
                        return check
                    }
                },
                consume: { (check: ChunkCheck) in
                    done += UInt64(check.length)
                    if check.failure != nil { failures.append(check) }
                    observer?.progress(done: done, total: total)
                })
        } catch let error as DiskVaultError {
            throw error
        } catch {
            throw DiskVaultError(.io, "verify failed: \(error)", path: vault.location)
        }
        var found: [Digest256: VerifyReport.ProblemKind] = [:]
        for check in failures {
            let (digest, error) = (check.digest, check.failure!)
            // Anything that keeps a blob from being read back (a directory in its place, an I/O error) is damage.
            found[digest] = error.code == .notFound ? .missing : .damaged
            report.problems.append(.init(
                kind: found[digest]!, chunk: digest.hex,
                message: error.description, points: users[digest] ?? []))
        }
        // So that the next backup stores these chunks again rather than trust the indexes that name them.
        try vault.recordDamagedChunks(found, checked: { lengths[$0] != nil })
        report.chunksChecked = work.count
        report.bytesChecked = total
        report.seconds = Date().timeIntervalSince(started)
        return report
    }
}
