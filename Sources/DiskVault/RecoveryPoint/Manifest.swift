/// manifest.json of a recovery point: human-readable, written last, and the point exists only once it does.
public struct Manifest: Codable, Sendable, Equatable {
    public static let currentVersion = 1

    public var version: Int
    public var id: String
    public var disk: String
    public var created: String
    public var retainUntil: String?
    public var trigger: String
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
