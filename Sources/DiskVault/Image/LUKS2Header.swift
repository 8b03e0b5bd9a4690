import Foundation

/// The LUKS2 header: two copies, each a 4096-byte binary header followed by a JSON area, together
/// `hdr_size` bytes (16 KiB to 4 MiB). Binary header, integers big-endian:
///
///     0    6  magic "LUKS\xba\xbe" (primary) or "SKUL\xba\xbe" (secondary)
///     6    2  version (2)            8  8  hdr_size       16  8  seqid
///     24  48  label                  72 32  checksum algorithm ("sha256")
///     104 64  salt                   168 40  UUID        208 48  subsystem
///     256  8  header offset          448 64  checksum of the whole hdr_size bytes with this field zeroed
///
/// The secondary copy starts at the primary's hdr_size; when the primary is damaged it is searched for at
/// the fixed offsets the format allows. Of two valid copies the higher seqid wins.
public enum LUKS2Header {
    public static let primaryMagic: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]
    public static let secondaryMagic: [UInt8] = [0x53, 0x4B, 0x55, 0x4C, 0xBA, 0xBE]
    /// Offsets at which a secondary header may start (also the valid hdr_size values).
    static let secondaryOffsets: [UInt64] = [0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000]
    /// JSON nested deeper than this is hostile; real headers nest four levels.
    static let maxJSONDepth = 32

    struct Copy {
        var offset: UInt64
        var seqid: UInt64
        var size: UInt64
        var uuid: String
        var json: [String: Any]
    }

    /// The parsed header, or nil when neither copy's magic is present.
    public static func read(_ volume: VolumeBytes) throws(DiskVaultError) -> VolumeEncryption? {
        let copies = try LUKS2HeaderCopies.read(volume)
        if !copies.primaryPresent && copies.secondary == nil { return nil }
        let problems = copies.problems
        guard let (chosen, copyName) = copies.chosen else {
            throw volume.corrupt("LUKS2 header is damaged in both copies: \(problems.joined(separator: "; "))")
        }
        var warnings: [String] = []
        switch (copies.primary, copies.secondary) {
        case (let p?, let s?) where s.seqid != p.seqid:
            warnings.append("LUKS2 header copies differ (seqid \(p.seqid) and \(s.seqid)); using the \(copyName) (newer)")
        case (_?, nil):
            warnings.append("LUKS2 secondary header is damaged or missing" + (problems.isEmpty ? "" : " (\(problems.joined(separator: "; ")))"))
        case (nil, _?):
            warnings.append("LUKS2 primary header is damaged (\(problems.joined(separator: "; "))); using the secondary at \(chosen.offset)")
        default:
            break
        }
        var e = try describe(chosen, volume: volume)
        e.headerCopy = copyName
        if !warnings.isEmpty { e.warnings = (e.warnings ?? []) + warnings }
        return e
    }

    struct Problem: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    static func readCopy(_ volume: VolumeBytes, at offset: UInt64, magic: [UInt8]) throws(DiskVaultError) -> Result<Copy, Problem> {
        let bin = try volume.read(offset, 4096, what: "LUKS2 binary header at \(offset)")
        do {
            guard bin.hasPrefix(magic) else { return .failure(Problem("no magic")) }
            let version = try bin.u16be(6, "version")
            guard version == 2 else { return .failure(Problem("version \(version) is not 2")) }
            let size = try bin.u64be(8, "hdr_size")
            guard secondaryOffsets.contains(size) else {
                return .failure(Problem("hdr_size \(size) is not one of the sizes LUKS2 allows (16 KiB … 4 MiB)"))
            }
            let headerOffset = try bin.u64be(256, "hdr_offset")
            guard headerOffset == offset else { return .failure(Problem("hdr_offset \(headerOffset) does not match where it was found (\(offset))")) }
            let algorithm = try bin.string(72, 32, "checksum algorithm")
            guard algorithm == "sha256" else { return .failure(Problem("checksum algorithm \"\(algorithm)\" is not supported")) }
            var whole = try volume.read(offset, Int(size), what: "LUKS2 header at \(offset)").bytes
            guard whole.count == Int(size) else { return .failure(Problem("truncated: \(whole.count) of \(size) bytes")) }
            let stored = Array(whole[448..<480])
            for i in 448..<512 { whole[i] = 0 }
            guard SHA256.digest(whole).bytes == stored else { return .failure(Problem("checksum mismatch")) }
            let jsonBytes = whole[4096...].prefix(while: { $0 != 0 })
            guard jsonDepth(jsonBytes) <= maxJSONDepth else {
                return .failure(Problem("JSON area nests deeper than \(maxJSONDepth) levels"))
            }
            guard let json = try? JSONSerialization.jsonObject(with: Data(jsonBytes)) as? [String: Any] else {
                return .failure(Problem("JSON area is not a JSON object"))
            }
            return .success(Copy(offset: offset, seqid: try bin.u64be(16, "seqid"), size: size, uuid: try bin.string(168, 40, "uuid"), json: json))
        } catch {
            return .failure(Problem(volume.corrupt(any: error).message))
        }
    }

    /// Deepest nesting of objects and arrays, counted outside strings, without parsing.
    static func jsonDepth(_ bytes: ArraySlice<UInt8>) -> Int {
        var depth = 0, deepest = 0, inString = false, escaped = false
        for b in bytes {
            if inString {
                if escaped { escaped = false } else if b == 0x5C { escaped = true } else if b == 0x22 { inString = false }
                continue
            }
            switch b {
            case 0x22: inString = true
            case 0x7B, 0x5B: depth += 1; deepest = max(deepest, depth)
            case 0x7D, 0x5D: depth -= 1
            default: break
            }
        }
        return deepest
    }

    /// Reads what a backup needs from the JSON: segments, key slots, digests, config.
    static func describe(_ copy: Copy, volume: VolumeBytes) throws(DiskVaultError) -> VolumeEncryption {
        func bad(_ why: String) -> DiskVaultError { volume.corrupt("LUKS2 header JSON: \(why)") }
        var e = VolumeEncryption(format: .luks2)
        e.uuid = copy.uuid
        e.metadataSize = copy.size
        let json = copy.json
        guard let segments = json["segments"] as? [String: Any] else { throw bad("no \"segments\" object") }
        guard let keyslots = json["keyslots"] as? [String: Any] else { throw bad("no \"keyslots\" object") }
        let config = json["config"] as? [String: Any]

        // The payload: the crypt segment with the lowest id.
        let segmentIDs = segments.keys.compactMap { Int($0) }.sorted()
        var ranges: [VolumeEncryption.ByteRange] = []
        for id in segmentIDs {
            guard let seg = segments[String(id)] as? [String: Any] else { throw bad("segment \(id) is not an object") }
            guard let offsetText = seg["offset"] as? String, let offset = UInt64(offsetText) else { throw bad("segment \(id) offset is not a number string") }
            var size: UInt64
            if let s = seg["size"] as? String, s == "dynamic" {
                size = offset <= volume.size ? volume.size - offset : 0
            } else if let s = seg["size"] as? String, let n = UInt64(s) {
                size = n
            } else {
                throw bad("segment \(id) size is neither \"dynamic\" nor a number string")
            }
            if offset > volume.size || size > volume.size - min(offset, volume.size) {
                e.warnings = (e.warnings ?? []) + ["segment \(id) (\(offset)+\(size)) lies past the end of the volume: a detached header?"]
                size = offset <= volume.size ? volume.size - offset : 0
            }
            if seg["type"] as? String == "crypt" {
                if e.cipher == nil {
                    e.cipher = seg["encryption"] as? String
                    e.sectorSize = seg["sector_size"] as? Int
                    e.payloadOffset = offset
                    e.payloadSize = size
                }
                if size > 0 { ranges.append(.init(offset: offset, size: size)) }
            }
        }
        guard e.cipher != nil else { throw bad("no crypt segment") }
        if let s = e.sectorSize, ![512, 1024, 2048, 4096].contains(s) { throw bad("sector size \(s) is not 512, 1024, 2048 or 4096") }
        e.encryptedRanges = ranges

        var slots: [VolumeEncryption.Keyslot] = []
        for id in keyslots.keys.compactMap({ Int($0) }).sorted() {
            guard let ks = keyslots[String(id)] as? [String: Any] else { throw bad("keyslot \(id) is not an object") }
            var slot = VolumeEncryption.Keyslot(id: id, active: true)
            slot.type = ks["type"] as? String
            slot.keyBytes = ks["key_size"] as? Int
            slot.priority = (ks["priority"] as? Int).map { ["ignore", "normal", "prefer"][max(0, min(2, $0))] }
            if let kdf = ks["kdf"] as? [String: Any] {
                slot.kdf = kdf["type"] as? String
                slot.hash = kdf["hash"] as? String
                slot.iterations = (kdf["iterations"] as? Int).map(UInt64.init) ?? (kdf["time"] as? Int).map(UInt64.init)
            }
            if let area = ks["area"] as? [String: Any] {
                slot.offset = (area["offset"] as? String).flatMap(UInt64.init)
                slot.size = (area["size"] as? String).flatMap(UInt64.init)
            }
            if let af = ks["af"] as? [String: Any] { slot.stripes = af["stripes"] as? Int }
            slots.append(slot)
        }
        e.keyslots = slots
        e.keyBytes = slots.first(where: { $0.keyBytes != nil })?.keyBytes
        if let req = (config?["requirements"] as? [String: Any])?["mandatory"] as? [String], !req.isEmpty {
            e.requirements = req
            e.warnings = (e.warnings ?? []) + ["LUKS2 mandatory requirements this reader does not know: \(req.joined(separator: ", "))"]
        }
        return e
    }
}
