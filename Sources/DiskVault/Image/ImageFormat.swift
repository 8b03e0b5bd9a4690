/// The container format of an image file, as qemu names it: a raw disk, or a format whose guest-visible disk
/// qemu reads (qcow2 and the others), recognised by its header.
public enum ImageFormat: String, Codable, Sendable, CaseIterable {
    case raw, qcow2, qed, vmdk, vdi, vhdx, vpc

    /// The format whose magic `head` (the file's first bytes, at least 72) starts with; raw when none does.
    /// A raw disk cannot start with these: its first sector is boot code or a protective MBR.
    public static func recognise(_ head: ByteReader) -> ImageFormat {
        if head.hasPrefix([0x51, 0x46, 0x49, 0xFB]) { return .qcow2 }  // "QFI\xfb"
        if head.hasPrefix(Array("QED\0".utf8)) { return .qed }
        if head.hasPrefix(Array("KDMV".utf8)) || head.hasPrefix(Array("# Disk DescriptorFile".utf8)) { return .vmdk }
        if head.hasPrefix(Array("vhdxfile".utf8)) { return .vhdx }
        if head.hasPrefix(Array("conectix".utf8)) { return .vpc }
        if head.hasPrefix([0x7F, 0x10, 0xDA, 0xBE], at: 0x40) { return .vdi }
        return .raw
    }

    /// The format an option names (`--format qcow2`), or a usage error listing the names.
    public static func parse(option value: String) throws(DiskVaultError) -> ImageFormat {
        guard let f = ImageFormat(rawValue: value) else {
            throw DiskVaultError(.usage, "--format \(value) is not one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return f
    }
}

/// What a qcow2 header says that a backup must know before it reads the image: how it is encrypted (qemu's
/// own LUKS, whose header lies inside the file), and whether it has a backing file. Integers are big-endian:
///
///     0  4 magic "QFI\xfb"        16  4 backing file name size    32  4 encryption (0 none, 1 AES, 2 LUKS)
///     4  4 version (2 or 3)       20  4 cluster bits              100 4 header length (version 3)
///     8  8 backing file name at   24  8 virtual size
///
/// Header extensions follow the header (at byte 72 in version 2): type, length, data padded to 8 bytes; type
/// 0x0537be77 gives the LUKS header's offset and length in the file.
public struct QCOW2Header: Sendable, Equatable {
    public var version: UInt32
    public var virtualSize: UInt64
    public var clusterBits: UInt32
    /// 0: none, 1: qemu's legacy AES-CBC, 2: LUKS.
    public var encryption: UInt32
    public var backingFile: String?
    /// Where qemu's LUKS header lies in the file, for encryption 2.
    public var luksHeader: Range<UInt64>?

    static let luksExtension: UInt32 = 0x0537_BE77
    /// The header and its extensions lie in the first cluster (at most 2 MiB).
    static let headerLimit = 1 << 16

    /// Parses the header of `file` (`fileSize` bytes long), checking each field it uses against the file.
    public static func read(_ file: VolumeBytes) throws(DiskVaultError) -> QCOW2Header {
        let r = try file.read(0, headerLimit, what: "qcow2 header")
        do {
            let version = try r.u32be(4, "version")
            guard version == 2 || version == 3 else { throw file.corrupt("qcow2 header: version \(version) is not 2 or 3") }
            let clusterBits = try r.u32be(20, "cluster bits")
            guard (9...21).contains(clusterBits) else { throw file.corrupt("qcow2 header: cluster bits \(clusterBits) is outside 9–21") }
            var h = QCOW2Header(
                version: version, virtualSize: try r.u64be(24, "virtual size"), clusterBits: clusterBits,
                encryption: try r.u32be(32, "encryption method"))
            guard h.virtualSize <= 1 << 62 else { throw file.corrupt("qcow2 header: virtual size \(h.virtualSize) is beyond any disk") }
            guard h.encryption <= 2 else { throw file.corrupt("qcow2 header: encryption method \(h.encryption) is not known") }
            let backingAt = try r.u64be(8, "backing file name offset"), backingSize = Int(try r.u32be(16, "backing file name size"))
            if backingAt != 0 {
                guard backingSize > 0, backingSize <= 1023, backingAt + UInt64(backingSize) <= UInt64(r.count) else {
                    throw file.corrupt("qcow2 header: the backing file name (\(backingSize) bytes at byte \(backingAt)) is not in the header cluster")
                }
                h.backingFile = try r.string(Int(backingAt), backingSize, "backing file name")
            }
            var at = 72
            if version == 3 {
                let length = Int(try r.u32be(100, "header length"))
                guard length >= 104, length % 8 == 0, length < r.count else { throw file.corrupt("qcow2 header: header length \(length) is not valid") }
                at = length
            }
            // Extensions end at type 0; a file with nothing after its header has none.
            while at + 8 <= r.count {
                let type = try r.u32be(at, "header extension type"), length = Int(try r.u32be(at + 4, "header extension length"))
                if type == 0 { break }
                guard length <= r.count - at - 8 else { throw file.corrupt("qcow2 header: extension 0x\(String(type, radix: 16)) of \(length) bytes runs past the header cluster") }
                if type == luksExtension {
                    guard length >= 16 else { throw file.corrupt("qcow2 header: the LUKS header extension is \(length) bytes, not 16") }
                    let offset = try r.u64be(at + 8, "LUKS header offset"), size = try r.u64be(at + 16, "LUKS header length")
                    guard size >= 592, offset <= file.size, size <= file.size - offset else {
                        throw file.corrupt("qcow2 header: the LUKS header (\(size) bytes at byte \(offset)) is not inside the file of \(file.size) bytes")
                    }
                    h.luksHeader = offset..<offset + size
                }
                at += 8 + (length + 7) / 8 * 8
            }
            if h.encryption == 2 && h.luksHeader == nil {
                throw file.corrupt("qcow2 header: encrypted with LUKS, but no header extension says where the LUKS header is")
            }
            return h
        } catch {
            throw file.corrupt(any: error)
        }
    }
}
