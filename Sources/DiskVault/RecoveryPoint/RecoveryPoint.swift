import Foundation

/// A recovery point as found in the vault: its manifest, and where its index lives.
public struct RecoveryPoint: Sendable {
    public var manifest: Manifest
    public var id: String { manifest.id }
    public var disk: String { manifest.disk }

    static func prefix(disk: String) -> String { "disks/\(disk)/points" }
    static func indexKey(disk: String, id: String) -> String { "\(prefix(disk: disk))/\(id)/index" }
    /// The retain-until of a point kept forever (`points retain --until forever`).
    public static let retainForever = "9999-12-31T23:59:59.000Z"

    static func manifestKey(disk: String, id: String) -> String { "\(prefix(disk: disk))/\(id)/manifest.json" }

    /// A new point id: UTC time to the second, then random hex, so ids sort by time and never collide.
    static func newID(at date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ v: Int?) -> String { let v = v ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
        return "\(c.year ?? 0)\(two(c.month))\(two(c.day))T\(two(c.hour))\(two(c.minute))\(two(c.second))Z-\(randomHex(3))"
    }
}

/// A folder under disks/<disk>/points whose manifest cannot be used: reported, never trusted, never pruned by
/// policy; `points forget` removes it.
public struct DamagedPoint: Codable, Sendable, Equatable {
    public var disk: String
    /// The folder's name.
    public var id: String
    public var problem: String
}

/// What a disk's points folder holds: complete points in commit order, and damaged ones.
public struct PointScan: Sendable {
    public var points: [RecoveryPoint]
    public var damaged: [DamagedPoint]
    /// Points dated later than now (a host whose clock was wrong): ordered by commit all the same.
    public var fromTheFuture: [RecoveryPoint]
}

/// A point id as a folder name: letters, digits, '.', '_' and '-', not starting with '.', at most 128 bytes.
enum PointID {
    static func isValid(_ id: String) -> Bool { DiskName.isValid(id) }
}

extension Vault {
    /// Valid disk names that have a folder in the vault, sorted; anything else under disks/ is left alone.
    public func disks() throws(DiskVaultError) -> [String] {
        try storage.list("disks").filter(DiskName.isValid).sorted()
    }

    /// Entries under disks/ that cannot be a disk's folder (not a valid disk name), for verify to report.
    public func strayDiskEntries() throws(DiskVaultError) -> [String] {
        try storage.list("disks").filter { !DiskName.isValid($0) }.sorted()
    }

    /// Complete points of `disk`, in commit order (oldest first). A folder without a manifest (an interrupted
    /// backup) is not a point; a damaged manifest is skipped here (see `scanPoints`).
    public func points(disk: String) throws(DiskVaultError) -> [RecoveryPoint] {
        try scanPoints(disk: disk).points
    }

    /// Every point folder of `disk`: the folder's name, never a field inside the manifest, says which point it
    /// is, so a manifest naming another point or disk is damaged, not obeyed. Points are ordered by commit: by
    /// the sequence number each backup gives its point (points of older builds, which have none, come first, by
    /// date), so that a point dated in the future by a wrong clock never stays "latest" for good.
    public func scanPoints(disk: String, now: Date = Date()) throws(DiskVaultError) -> PointScan {
        try DiskName.validate(disk)
        var found: [RecoveryPoint] = []
        var damaged: [DamagedPoint] = []
        for id in try storage.list(RecoveryPoint.prefix(disk: disk)) {
            guard PointID.isValid(id) else {
                damaged.append(DamagedPoint(disk: disk, id: id, problem: "a folder whose name cannot be a point id"))
                continue
            }
            let key = RecoveryPoint.manifestKey(disk: disk, id: id)
            let bytes: [UInt8]
            do {
                bytes = try storage.get(key, limit: Manifest.maxSize)
            } catch where error.code == .notFound {
                continue
            } catch where error.code == .corrupt || error.code == .usage || error.code == .io {
                damaged.append(DamagedPoint(disk: disk, id: id, problem: "manifest cannot be read: \(error)"))
                continue
            }
            do throws(DiskVaultError) {
                let manifest = try Manifest.decode(bytes, source: "\(location)/\(key)")
                try manifest.validate(vaultChunkSize: config.chunkSize, file: "\(location)/\(key)")
                guard manifest.id == id, manifest.disk == disk else {
                    throw DiskVaultError(.corrupt, "manifest names point \(manifest.disk)@\(manifest.id), not the folder it is in (\(disk)@\(id))", path: "\(location)/\(key)")
                }
                found.append(RecoveryPoint(manifest: manifest))
            } catch {
                damaged.append(DamagedPoint(disk: disk, id: id, problem: error.description))
            }
        }
        found.sort { a, b in
            switch (a.manifest.sequence, b.manifest.sequence) {
            case (nil, .some): return true
            case (.some, nil): return false
            case (let x?, let y?) where x != y: return x < y
            default: return (a.manifest.created, a.id) < (b.manifest.created, b.id)
            }
        }
        // A few minutes of skew between hosts is ordinary; more is a clock that was wrong.
        let future = found.filter { (Timestamp.parse($0.manifest.created) ?? .distantPast) > now.addingTimeInterval(300) }
        return PointScan(points: found, damaged: damaged.sorted { $0.id < $1.id }, fromTheFuture: future)
    }

    /// The point `id` of `disk`, or its newest for nil or "latest".
    public func point(disk: String, id: String?) throws(DiskVaultError) -> RecoveryPoint {
        let scan = try scanPoints(disk: disk)
        if id == nil || id == "latest" {
            // A damaged point named (ids begin with their time) after the newest sound one may be the real
            // latest: restoring an older point instead would be a silent step back in time.
            let newer = scan.damaged.filter { PointID.isValid($0.id) && $0.id > (scan.points.last?.id ?? "") }
            if let bad = newer.last {
                throw DiskVaultError(
                    .corrupt, "the newest point of disk \(disk), \(bad.id), is damaged: \(bad.problem); name an older point with --point ID (diskvault points lists them)",
                    path: location)
            }
            guard let last = scan.points.last else {
                throw DiskVaultError(.notFound, "disk \(disk) has no recovery points in vault", path: location)
            }
            return last
        }
        if let bad = scan.damaged.first(where: { $0.id == id }) {
            throw DiskVaultError(.corrupt, "recovery point \(id!) of disk \(disk) is damaged: \(bad.problem)", path: location)
        }
        guard let p = scan.points.first(where: { $0.id == id }) else {
            throw DiskVaultError(.notFound, "disk \(disk) has no recovery point \(id!) in vault", path: location)
        }
        return p
    }

    /// Removes a point's folder: manifest first (the point is gone from then on), then the rest. `id` must be a
    /// folder name of the disk's points; blobs stay until gc.
    public func removePoint(disk: String, id: String) throws(DiskVaultError) {
        try DiskName.validate(disk)
        guard PointID.isValid(id) else { throw DiskVaultError(.usage, "invalid point id \"\(id)\"") }
        let dir = "\(RecoveryPoint.prefix(disk: disk))/\(id)"
        guard try storage.list(RecoveryPoint.prefix(disk: disk)).contains(id) else {
            throw DiskVaultError(.notFound, "disk \(disk) has no recovery point \(id) in vault", path: location)
        }
        try storage.delete("\(dir)/manifest.json")
        try storage.barrier()
        try removePointFolder(disk: disk, id: id)
    }

    /// Removes what is left of a point's folder once it has no manifest (or never had one).
    func removePointFolder(disk: String, id: String) throws(DiskVaultError) {
        let dir = "\(RecoveryPoint.prefix(disk: disk))/\(id)"
        for name in try storage.list(dir) { try storage.delete("\(dir)/\(name)") }
        try storage.delete(dir)
    }

    /// The point's index, opened for reading front to back. The manifest's numbers are range-checked first and
    /// the index's header against them and the vault's chunk size; the digest the manifest recorded is checked
    /// as the last entry is read, so a consumer trusts what it read only once the reader reached its end.
    public func index(of point: RecoveryPoint) throws(DiskVaultError) -> ChunkIndexReader {
        let key = RecoveryPoint.indexKey(disk: point.disk, id: point.id)
        let path = "\(location)/\(key)"
        let manifestPath = "\(location)/\(RecoveryPoint.manifestKey(disk: point.disk, id: point.id))"
        try point.manifest.checkNumbers(vaultChunkSize: config.chunkSize, path: manifestPath)
        guard let expected = Digest256(hex: point.manifest.indexDigest) else {
            throw DiskVaultError(.corrupt, "manifest of point \(point.id) is damaged: indexDigest is not a SHA-256", path: manifestPath)
        }
        let object: any ObjectReader
        do {
            object = try storage.makeReader(key)
        } catch where error.code == .notFound {
            throw DiskVaultError(.corrupt, "index of point \(point.id) is missing", path: path)
        }
        // Both versions hold at most one 32-byte entry per chunk; chunkCount is below 2^44 once checked.
        guard object.size <= UInt64(ChunkIndex.headerSize) + 32 * UInt64(point.manifest.chunkCount) else {
            throw DiskVaultError(.corrupt, "index of point \(point.id) is larger than its manifest allows", path: path)
        }
        let index = try ChunkIndexReader(object, source: path, what: "index of point \(point.id)", expectedDigest: expected)
        guard index.chunkSize == config.chunkSize else {
            throw DiskVaultError(.corrupt, "index of point \(point.id) is damaged: chunk size \(index.chunkSize) is not the vault's chunk size \(config.chunkSize) (vault.json)", path: path)
        }
        guard index.imageSize == point.manifest.source.size else {
            throw DiskVaultError(.corrupt, "index of point \(point.id) disagrees with its manifest", path: path)
        }
        return index
    }

    /// The point's index, once it has read whole and matched its manifest (read through a buffer at a time),
    /// for a consumer that cannot take back what it did with an entry before the end: a second reader, whose
    /// digest is checked again at its own end.
    public func checkedIndex(of point: RecoveryPoint) throws(DiskVaultError) -> ChunkIndexReader {
        try index(of: point).finish()
        return try index(of: point)
    }

    /// Commits a point: everything put so far is flushed, then the key backup and index, then the manifest,
    /// each durable.
    /// Until the manifest is in place the point does not exist.
    func commit(_ manifest: Manifest, index: any ObjectWriter, extras: [String: [UInt8]] = [:]) throws(DiskVaultError) {
        try storage.barrier()
        // Other parts of the point (its sealed key backup) land before the manifest too.
        for (name, bytes) in extras.sorted(by: { $0.key < $1.key }) {
            guard try storage.putIfAbsent("\(RecoveryPoint.prefix(disk: manifest.disk))/\(manifest.id)/\(name)", bytes, durable: true) else {
                throw DiskVaultError(.alreadyExists, "recovery point \(manifest.id) already exists", path: location)
            }
        }
        guard try index.commitIfAbsent(durable: true),
            try storage.putIfAbsent(RecoveryPoint.manifestKey(disk: manifest.disk, id: manifest.id), try JSON.encode(manifest), durable: true)
        else {
            throw DiskVaultError(.alreadyExists, "recovery point \(manifest.id) already exists", path: location)
        }
    }
}
