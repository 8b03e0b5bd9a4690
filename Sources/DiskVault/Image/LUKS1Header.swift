/// The LUKS1 header (all integers big-endian), as cryptsetup writes it:
///
///     0    6  magic "LUKS\xba\xbe"          104  4  payload offset (512-byte sectors)
///     6    2  version (1)                   108  4  key bytes
///     8   32  cipher name ("aes")           112 20  master-key digest
///     40  32  cipher mode ("xts-plain64")   132 32  digest salt      164 4 digest iterations
///     72  32  hash spec ("sha256")          168 40  UUID
///     208 8 × 48  key slots: active (0x00AC71F3) or disabled (0x0000DEAD), iterations, salt[32],
///                 key-material offset (sectors), anti-forensic stripes
public enum LUKS1Header {
    public static let magic: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]
    static let slotActive: UInt32 = 0x00AC_71F3
    static let slotDisabled: UInt32 = 0x0000_DEAD

    /// The parsed header, or nil when the volume does not start with the LUKS magic and version 1.
    public static func read(_ volume: VolumeBytes) throws(DiskVaultError) -> VolumeEncryption? {
        let r = try volume.read(0, 592, what: "LUKS1 header")
        guard r.hasPrefix(magic), r.count >= 8, (try? r.u16be(6, "version")) == 1 else { return nil }
        do {
            var e = VolumeEncryption(format: .luks1)
            let cipher = try r.string(8, 32, "cipher name"), mode = try r.string(40, 32, "cipher mode")
            guard !cipher.isEmpty, !mode.isEmpty else { throw volume.corrupt("LUKS1 header has an empty cipher name or mode") }
            e.cipher = "\(cipher)-\(mode)"
            e.hash = try r.string(72, 32, "hash spec")
            let payloadSectors = UInt64(try r.u32be(104, "payload offset"))
            let keyBytes = Int(try r.u32be(108, "key bytes"))
            guard keyBytes > 0 && keyBytes <= 512 else { throw volume.corrupt("LUKS1 header: key bytes \(keyBytes) is not a key size") }
            e.keyBytes = keyBytes
            e.payloadOffset = payloadSectors * 512
            e.sectorSize = 512
            e.uuid = try r.string(168, 40, "UUID")
            var slots: [VolumeEncryption.Keyslot] = []
            for i in 0..<8 {
                let at = 208 + 48 * i
                let state = try r.u32be(at, "key slot \(i) state")
                guard state == slotActive || state == slotDisabled else {
                    throw volume.corrupt("LUKS1 header: key slot \(i) state 0x\(String(state, radix: 16)) is neither active nor disabled")
                }
                var slot = VolumeEncryption.Keyslot(id: i, active: state == slotActive)
                slot.type = "luks1"
                slot.kdf = "pbkdf2"
                slot.hash = e.hash
                slot.iterations = UInt64(try r.u32be(at + 4, "key slot \(i) iterations"))
                slot.offset = UInt64(try r.u32be(at + 40, "key slot \(i) key material offset")) * 512
                slot.stripes = Int(try r.u32be(at + 44, "key slot \(i) stripes"))
                slot.keyBytes = keyBytes
                slot.size = UInt64(keyBytes) * UInt64(slot.stripes!)
                if slot.active, slot.offset! + slot.size! > e.payloadOffset! && e.payloadOffset! > 0 {
                    throw volume.corrupt("LUKS1 header: key slot \(i) material runs into the payload")
                }
                slots.append(slot)
            }
            e.keyslots = slots
            if e.payloadOffset! > volume.size {
                e.warnings = ["payload offset \(e.payloadOffset!) lies past the end of the volume (\(volume.size) bytes): a detached header?"]
            } else {
                e.payloadSize = volume.size - e.payloadOffset!
                e.encryptedRanges = [.init(offset: e.payloadOffset!, size: e.payloadSize!)]
            }
            return e
        } catch {
            throw volume.corrupt(any: error)
        }
    }
}
