/// The on-disk form of one chunk:
///
///     0   6  magic "dvblob"
///     6   1  format version (1)
///     7   1  flags: bit 0 zlib-compressed, bit 1 AES-256-GCM (then a 12-byte IV and 16-byte tag follow the CRC)
///     8   4  CRC-32 (little-endian) of every byte after it
///     12  …  payload: the chunk, raw or in the zlib format
///
/// The eight bytes of magic, version and flags together say how to read the rest.
public enum Blob {
    public static let magic: [UInt8] = Array("dvblob".utf8)
    public static let version: UInt8 = 1
    public static let headerSize = 12
    /// Blobs are written in whole multiples of this where the file system takes direct I/O.
    public static let directIOAlignment = 4096

    /// `n` rounded up to a whole multiple of `directIOAlignment`.
    public static func directIOLength(_ n: Int) -> Int {
        (n + directIOAlignment - 1) / directIOAlignment * directIOAlignment
    }

    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let zlib = Flags(rawValue: 1)
        public static let aes256gcm = Flags(rawValue: 2)
        static let known: Flags = [.zlib]
    }

    /// Writes the 12-byte header for `payload` into `header`.
    public static func makeHeader(flags: Flags, payload: UnsafeRawBufferPointer, into header: UnsafeMutableRawBufferPointer) {
        precondition(header.count >= headerSize)
        for (i, b) in magic.enumerated() { header[i] = b }
        header[6] = version
        header[7] = flags.rawValue
        header.storeBytes(of: CRC32.checksum(payload).littleEndian, toByteOffset: 8, as: UInt32.self)
    }

    public enum DecodeFailure: Error, CustomStringConvertible {
        case tooShort, badMagic, unknownVersion(UInt8), unknownFlags(UInt8), checksum, inflate, length(Int)

        public var description: String {
            switch self {
            case .tooShort: return "blob too short"
            case .badMagic: return "not a diskvault blob (bad magic)"
            case .unknownVersion(let v): return "blob format version \(v) is not known"
            case .unknownFlags(let f): return "blob flags 0x\(String(f, radix: 16)) are not known (an encrypted vault?)"
            case .checksum: return "CRC-32 mismatch"
            case .inflate: return "compressed data is damaged"
            case .length(let n): return "holds \(n) bytes, not the chunk's length"
            }
        }
    }

    /// Checks a blob's header and CRC; its flags and payload.
    public static func check(_ blob: UnsafeRawBufferPointer) throws(DecodeFailure) -> (Flags, UnsafeRawBufferPointer) {
        guard blob.count >= headerSize else { throw .tooShort }
        guard blob.prefix(6).elementsEqual(magic) else { throw .badMagic }
        guard blob[6] == version else { throw .unknownVersion(blob[6]) }
        let flags = Flags(rawValue: blob[7])
        guard Flags.known.isSuperset(of: flags) else { throw .unknownFlags(blob[7]) }
        let stored = UInt32(littleEndian: blob.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let payload = UnsafeRawBufferPointer(rebasing: blob[headerSize...])
        guard CRC32.checksum(payload) == stored else { throw .checksum }
        return (flags, payload)
    }

    /// Checks a blob and writes its chunk to `output`; returns the chunk's length.
    public static func decode(
        _ blob: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, inflater: IsalInflater
    ) throws(DecodeFailure) -> Int {
        let (flags, payload) = try check(blob)
        if flags.contains(.zlib) {
            guard let n = inflater.decompress(payload, into: output) else { throw .inflate }
            return n
        }
        guard payload.count <= output.count else { throw .length(payload.count) }
        output.copyMemory(from: payload)
        return payload.count
    }
}
