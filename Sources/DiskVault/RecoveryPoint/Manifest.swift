import Foundation

/// manifest.json of a recovery point: human-readable, written last, and the point exists only once it does.
/// Why a point was made.
public enum Trigger: String, Codable, Sendable {
    case scheduled
    case onDemand = "on-demand"
}

public struct Manifest: Codable, Sendable, Equatable {
    public static let currentVersion = 1

    public var version: Int
    public var id: String
    public var disk: String
    public var created: String
    public var retainUntil: String?
    public var trigger: Trigger
    public var policy: String?
    public var source: Source
    /// The layout read from the image without keys (absent for a stream).
    public var layout: DiskLayout?
    /// What changed in layout or encryption since the disk's previous point.
    public var layoutChanges: [String]?
    /// For an encrypted disk: which secrets and keys were backed up with the point, from which key vault.
    public var keyBackup: KeyBackupRecord?
    /// True when an encrypted disk was backed up with --without-keys: no key backup exists.
    public var keyBackupWaived: Bool?
    public var chunkSize: Int
    public var chunkCount: Int
    public var indexDigest: String
    public var stats: Stats
    /// The point's place in its disk's commit order: the previous point's plus one (absent in points of older
    /// builds). Dates can be wrong; this cannot go backwards.
    public var sequence: Int? = nil

    /// No manifest is larger: a bigger file is damaged, never read whole.
    public static let maxSize = 16 << 20

    /// The largest image a point may describe (2^60 bytes): every size and offset derived from it fits an Int64.
    public static let maxImageSize: UInt64 = 1 << 60

    /// Checks every number a reader will compute with against the others and the vault's chunk size, before
    /// any arithmetic or allocation: a crafted manifest is refused, naming the field, never trusted.
    public func validate(vaultChunkSize: Int, file: String) throws(DiskVaultError) {
        func bad(_ field: String, _ why: String) -> DiskVaultError {
            DiskVaultError(.corrupt, "manifest is damaged: \(field) \(why)", path: file)
        }
        guard version == Manifest.currentVersion else { throw bad("version", "\(version) is not known") }
        guard DiskName.isValid(disk) else { throw bad("disk", "\"\(disk)\" is not a disk name") }
        guard PointID.isValid(id) else { throw bad("id", "\"\(id)\" is not a point id") }
        guard chunkSize == vaultChunkSize else {
            throw bad("chunkSize", "\(chunkSize) is not the vault's chunk size \(vaultChunkSize)")
        }
        guard source.size < Manifest.maxImageSize else { throw bad("source.size", "\(source.size) is too large") }
        let expected = (source.size + UInt64(chunkSize) - 1) / UInt64(chunkSize)
        guard chunkCount >= 0, UInt64(chunkCount) == expected else {
            throw bad("chunkCount", "\(chunkCount) chunks cannot make an image of \(source.size) bytes")
        }
        guard indexDigest.utf8.count == 64, Digest256(hex: indexDigest) != nil else { throw bad("indexDigest", "is not a SHA-256") }
        guard (1...65536).contains(source.sectorSize) else { throw bad("source.sectorSize", "\(source.sectorSize) is out of range") }
        if let sequence, sequence < 1 { throw bad("sequence", "\(sequence) is not positive") }
        let s = stats
        guard s.chunks >= 0, s.zeroChunks >= 0, s.newChunks >= 0, s.reusedChunks >= 0, s.compressedChunks >= 0,
            s.seconds.isFinite, s.seconds >= 0
        else { throw bad("stats", "holds a negative or non-finite count") }
    }

    /// Parses a manifest; `source` names it in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws(DiskVaultError) -> Manifest {
        do {
            return try JSONDecoder().decode(Manifest.self, from: Data(bytes))
        } catch {
            throw DiskVaultError(.corrupt, "manifest is damaged (\(describe(error)))", path: source)
        }
    }

    public struct Source: Codable, Sendable, Equatable {
        public var path: String
        /// "file", "block-device" or "stream".
        public var kind: String
        public var size: UInt64
        public var sectorSize: Int
    }

    public struct Stats: Codable, Sendable, Equatable {
        /// Bytes read from the source.
        public var readBytes: UInt64 = 0
        /// Bytes skipped as holes of a sparse source, never read.
        public var holeBytes: UInt64 = 0
        /// Bytes read that were all zero (stored as nothing).
        public var zeroBytes: UInt64 = 0
        public var chunks: Int = 0
        public var zeroChunks: Int = 0
        public var newChunks: Int = 0
        public var newBytes: UInt64 = 0
        public var reusedChunks: Int = 0
        public var compressedChunks: Int = 0
        /// Blob bytes this backup added to the vault.
        public var storedBytes: UInt64 = 0
        public var seconds: Double = 0

        public init() {}
    }
}
