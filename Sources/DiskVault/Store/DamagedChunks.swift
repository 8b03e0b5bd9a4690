import Foundation

/// state/damaged-chunks.json: the chunks verify found missing or damaged, so that the next backup (or
/// `repair`) stores them again instead of trusting an index or a `head` that says they are there. An entry
/// goes when its chunk is stored again or a later verify finds it sound.
public struct DamagedChunks: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var digest: String
        /// "missing" or "damaged", as verify found it.
        public var kind: VerifyReport.ProblemKind
        public var found: String
    }

    public var chunks: [Entry] = []

    static let key = "state/damaged-chunks.json"
    /// Far more than any real damage; a larger file is refused rather than read.
    static let limit = 64 << 20
}

extension Vault {
    /// What verify recorded (empty when nothing was).
    public func damagedChunkRecord() throws(DiskVaultError) -> DamagedChunks {
        let bytes: [UInt8]
        do {
            bytes = try storage.get(DamagedChunks.key, limit: DamagedChunks.limit)
        } catch where error.code == .notFound {
            return DamagedChunks()
        }
        guard let record = try? JSONDecoder().decode(DamagedChunks.self, from: Data(bytes)),
            record.chunks.allSatisfy({ Digest256(hex: $0.digest) != nil })
        else {
            throw DiskVaultError(.corrupt, "the record of damaged chunks is damaged; run verify again after removing it", path: "\(location)/\(DamagedChunks.key)")
        }
        return record
    }

    /// The digests of every chunk recorded missing or damaged.
    public func damagedChunks() throws(DiskVaultError) -> Set<Digest256> {
        Set(try damagedChunkRecord().chunks.compactMap { Digest256(hex: $0.digest) })
    }

    /// Records what a verify found: `found` (digest → "missing" | "damaged") is added, and every other digest in
    /// `checked` (chunks it read and found sound) leaves the record.
    func recordDamagedChunks(_ found: [Digest256: VerifyReport.ProblemKind], checked: (Digest256) -> Bool, now: Date = Date()) throws(DiskVaultError) {
        let old = try damagedChunkRecord()
        var record = DamagedChunks()
        for entry in old.chunks {
            guard let d = Digest256(hex: entry.digest), !checked(d), found[d] == nil else { continue }
            record.chunks.append(entry)
        }
        for (d, kind) in found.sorted(by: { $0.key < $1.key }) {
            let earlier = old.chunks.first { $0.digest == d.hex && $0.kind == kind }
            record.chunks.append(.init(digest: d.hex, kind: kind, found: earlier?.found ?? Timestamp.format(now)))
        }
        record.chunks.sort { $0.digest < $1.digest }
        guard record != old else { return }
        try storage.replace(DamagedChunks.key, try JSON.encode(record))
    }

    /// Takes chunks that were stored again off the record.
    func clearDamagedChunks(_ stored: Set<Digest256>) throws(DiskVaultError) {
        let old = try damagedChunkRecord()
        var record = old
        record.chunks.removeAll { Digest256(hex: $0.digest).map(stored.contains) ?? false }
        guard record != old else { return }
        try storage.replace(DamagedChunks.key, try JSON.encode(record))
    }
}
