import Foundation

/// A recovery point as found in the vault: its manifest, and where its index lives.
public struct RecoveryPoint: Sendable {
    public var manifest: Manifest
    public var id: String { manifest.id }
    public var disk: String { manifest.disk }

    static func prefix(disk: String) -> String { "disks/\(disk)/points" }
    static func indexKey(disk: String, id: String) -> String { "\(prefix(disk: disk))/\(id)/index" }
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

extension Vault {
    /// Disks that have a folder in the vault, sorted.
    public func disks() throws(DiskVaultError) -> [String] {
        try storage.list("disks").sorted()
    }

    /// Complete points of `disk`, oldest first. A folder without a manifest (an interrupted backup) is not a point.
    public func points(disk: String) throws(DiskVaultError) -> [RecoveryPoint] {
        try DiskName.validate(disk)
        var found: [RecoveryPoint] = []
        for id in try storage.list(RecoveryPoint.prefix(disk: disk)) {
            let key = RecoveryPoint.manifestKey(disk: disk, id: id)
            let bytes: [UInt8]
            do {
                bytes = try storage.get(key, limit: 16 << 20)
            } catch where error.code == .notFound {
                continue
            }
            do {
                let manifest = try JSONDecoder().decode(Manifest.self, from: Data(bytes))
                found.append(RecoveryPoint(manifest: manifest))
            } catch {
                throw DiskVaultError(.corrupt, "manifest of point \(id) is damaged (\(describe(error)))", path: "\(location)/\(key)")
            }
        }
        return found.sorted { ($0.manifest.created, $0.id) < ($1.manifest.created, $1.id) }
    }

    /// The point `id` of `disk`, or its newest for nil or "latest".
    public func point(disk: String, id: String?) throws(DiskVaultError) -> RecoveryPoint {
        let all = try points(disk: disk)
        if id == nil || id == "latest" {
            guard let last = all.last else {
                throw DiskVaultError(.notFound, "disk \(disk) has no recovery points in vault", path: location)
            }
            return last
        }
        guard let p = all.first(where: { $0.id == id }) else {
            throw DiskVaultError(.notFound, "disk \(disk) has no recovery point \(id!) in vault", path: location)
        }
        return p
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
