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
    /// How the source was held while it was read: cold, or crash-consistent (absent in points of older builds).
    public var consistency: ImageSource.Consistency? = nil
    /// A running VM's drive read through qemu: which qemu, node and dirty bitmap, and how much was read.
    public var live: Live? = nil
    /// The VM point this disk point belongs to (a VM's disks backed up as one).
    public var vm: VMRef? = nil

    public struct VMRef: Codable, Sendable, Equatable {
        public var name: String
        public var point: String
    }

    /// What a live backup records, so that the next one can tell whether qemu's dirty bitmap covers every change
    /// since this point: the same qemu process (pid and start time), the same node, the bitmap it left recording.
    public struct Live: Codable, Sendable, Equatable {
        public enum Read: String, Codable, Sendable {
            /// Every chunk read and hashed.
            case full
            /// Only chunks qemu's dirty bitmap marked, the rest taken from the previous point.
            case incremental
        }
        public var qmp: String
        public var qemuPID: Int32
        public var qemuStart: UInt64
        public var node: String
        public var device: String?
        /// The bitmap that records the guest's writes since this point's instant.
        public var bitmap: String
        public var read: Read
        /// Why the read was full (absent for an incremental read).
        public var reason: String?
        /// Incremental points since the last full read (0 for a full read).
        public var sinceFullRead: Int
        /// The exit statuses of the freeze and thaw hooks, when they ran.
        public var freezeStatus: Int32?
        public var thawStatus: Int32?
    }

    /// No manifest is larger: a bigger file is damaged, never read whole.
    public static let maxSize = 16 << 20

    /// Checks a manifest as every reader of a point does before trusting it: its names are valid folder names,
    /// its version is known, and every number adds up (`checkNumbers`), so a crafted manifest is refused,
    /// naming the field.
    public func validate(vaultChunkSize: Int, file: String) throws(DiskVaultError) {
        func bad(_ field: String, _ why: String) -> DiskVaultError {
            DiskVaultError(.corrupt, "manifest is damaged: \(field) \(why)", path: file)
        }
        guard version == Manifest.currentVersion else { throw bad("version", "\(version) is not known") }
        guard DiskName.isValid(disk) else { throw bad("disk", "\"\(disk)\" is not a disk name") }
        guard PointID.isValid(id) else { throw bad("id", "\"\(id)\" is not a point id") }
        guard Digest256(hex: indexDigest) != nil else { throw bad("indexDigest", "is not a SHA-256") }
        if let sequence, sequence < 1 { throw bad("sequence", "\(sequence) is not positive") }
        try checkNumbers(vaultChunkSize: vaultChunkSize, path: file)
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
        public var kind: ImageSource.Kind
        public var size: UInt64
        public var sectorSize: Int
        /// The image's container format; absent for raw (and in points made before formats were read).
        public var format: ImageFormat? = nil
        /// "container" when the point holds the image file itself (a qcow2 qemu encrypts); absent: the disk.
        public var contents: ImageSource.Contents? = nil
        /// A format qemu reads: the image and each backing file, top first.
        public var chain: [QemuImage.ChainLink]? = nil
        /// The image file's own size, where it differs from the disk's (a qcow2's container).
        public var fileSize: UInt64? = nil

        /// The format a restore writes by default: the container's for a container, else raw.
        public var restoredFormat: ImageFormat { contents == .container ? (format ?? .raw) : .raw }
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
        /// Bytes qemu's dirty bitmap said were unchanged: taken from the previous point, never read.
        public var unchangedBytes: UInt64? = nil
        /// Blob bytes this backup added to the vault.
        public var storedBytes: UInt64 = 0
        public var seconds: Double = 0

        public init() {}
    }
}
