/// How a disk is partitioned, as `inspect --json` and manifests name it.
public enum PartitionTable: String, Codable, Sendable {
    case none, mbr, gpt
}

/// A volume's encryption format, as `inspect --json` and manifests name it.
public enum EncryptionFormat: String, Codable, Sendable {
    case none, luks1, luks2, bitlocker
    /// No header, but the user said the volume is encrypted (dm-crypt plain, a detached LUKS header).
    case declared
    /// A header was found but is damaged (read leniently by a backup): its bytes are kept from the compressor.
    case unreadable

    public var isLUKS: Bool { self == .luks1 || self == .luks2 }
    /// Whether a backup must hold this volume's keys: a known or declared encryption (a damaged header has
    /// no key to check against).
    public var needsKeys: Bool { self != .none && self != .unreadable }
}

/// What diskvault found on an image without any key: its partition table, and each volume's encryption.
/// This is the `inspect --json` contract and what a manifest records.
public struct DiskLayout: Codable, Sendable, Equatable {
    public var image: String
    public var size: UInt64
    public var partitionTable: PartitionTable
    public var diskGUID: String?
    public var volumes: [Volume]
    public var warnings: [String]
    /// `inspect` of a format qemu reads: the format, and the image with each backing file (a manifest keeps
    /// these in its source instead).
    public var format: ImageFormat? = nil
    public var chain: [QemuImage.ChainLink]? = nil

    public init(image: String, size: UInt64, partitionTable: PartitionTable, diskGUID: String? = nil, volumes: [Volume] = [], warnings: [String] = []) {
        self.image = image
        self.size = size
        self.partitionTable = partitionTable
        self.diskGUID = diskGUID
        self.volumes = volumes
        self.warnings = warnings
    }

    public struct Volume: Codable, Sendable, Equatable {
        /// 1-based partition number, or 0 for a whole-disk volume.
        public var number: Int
        public var offset: UInt64
        public var size: UInt64
        /// The partition type: an MBR type byte ("0x83") or a GPT type GUID, with a name where known.
        public var type: String?
        public var typeName: String?
        public var name: String?
        public var guid: String?
        public var encryption: VolumeEncryption

        public init(number: Int, offset: UInt64, size: UInt64, type: String? = nil, typeName: String? = nil,
                    name: String? = nil, guid: String? = nil, encryption: VolumeEncryption = .none) {
            self.number = number
            self.offset = offset
            self.size = size
            self.type = type
            self.typeName = typeName
            self.name = name
            self.guid = guid
            self.encryption = encryption
        }
    }
}

/// A volume's encryption as read from its header (or declared by the user). Fields not relevant to a format
/// are absent from its JSON.
public struct VolumeEncryption: Codable, Sendable, Equatable {
    public var format: EncryptionFormat
    public var uuid: String?
    /// As cryptsetup names it: "aes-xts-plain64", "aes-cbc-eboiv", "aes-cbc-elephant".
    public var cipher: String?
    public var keyBytes: Int?
    public var keyBits: Int?
    /// Bytes from the volume's start to its encrypted payload.
    public var payloadOffset: UInt64?
    public var payloadSize: UInt64?
    public var sectorSize: Int?
    public var hash: String?
    public var keyslots: [Keyslot]?
    /// LUKS2: which header copy was used ("primary" or "secondary"), and its metadata size.
    public var headerCopy: String?
    public var metadataSize: UInt64?
    public var requirements: [String]?
    /// BitLocker: the volume GUID, protectors, description, To Go.
    public var guid: String?
    public var protectors: [Protector]?
    public var description: String?
    public var toGo: Bool?
    /// Where the encrypted data lies, relative to the volume: never sent to the compressor.
    public var encryptedRanges: [ByteRange]?
    public var warnings: [String]?

    public static let none = VolumeEncryption(format: .none)

    public init(format: EncryptionFormat) { self.format = format }

    public var isEncrypted: Bool { format != .none }

    public struct Keyslot: Codable, Sendable, Equatable {
        public var id: Int
        public var active: Bool
        public var type: String?
        public var kdf: String?
        public var hash: String?
        public var iterations: UInt64?
        public var offset: UInt64?
        public var size: UInt64?
        public var stripes: Int?
        public var keyBytes: Int?
        public var priority: String?

        public init(id: Int, active: Bool) {
            self.id = id
            self.active = active
        }
    }

    public struct Protector: Codable, Sendable, Equatable {
        public var guid: String
        /// "password", "recovery-password", "startup-key", "tpm", "tpm-pin", "tpm-startup-key",
        /// "tpm-pin-startup-key", "clear-key", "smart-card", or "unknown-0xNNNN".
        public var kind: String
        public init(guid: String, kind: String) {
            self.guid = guid
            self.kind = kind
        }
    }

    public struct ByteRange: Codable, Sendable, Equatable {
        public var offset: UInt64
        public var size: UInt64
        public init(offset: UInt64, size: UInt64) {
            self.offset = offset
            self.size = size
        }
    }
}
