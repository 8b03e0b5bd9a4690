import Foundation

/// Whether a key (a LUKS passphrase, or a key file's contents) opens a LUKS1 or LUKS2 volume, found the way
/// cryptsetup opens a key slot, without decrypting any of the volume's data:
///
/// 1. PBKDF2(key, slot salt, slot iterations, hash) gives the slot key;
/// 2. the slot's key material (volume-key bytes × AF stripes, in 512-byte sectors numbered from 0) is
///    decrypted with it;
/// 3. the anti-forensic merge turns the stripes back into a candidate volume key;
/// 4. PBKDF2(candidate, digest salt, digest iterations, hash) is compared with the header's digest.
///
/// LUKS1 keeps everything in its binary header (one hash and cipher for all slots, a 20-byte digest);
/// LUKS2 in its JSON area (each slot's own KDF, area cipher and AF hash; digests naming their key slots).
/// Argon2 key slots cannot be computed with this build's OpenSSL: they make the answer `.unchecked` when
/// no other slot opens.
public enum LUKSKeyCheck {
    /// Key material larger than this is a hostile header, not a key slot (real ones are 4000 × 64 bytes).
    static let maxKeyMaterial = 4 << 20
    /// Salts, digests and keys longer than this are not real.
    static let maxFieldBytes = 1024
    /// PBKDF2 iterations beyond this are not checked: cryptsetup benchmarks iterations to take a second or
    /// two (a few million); a hostile header asking for billions would keep the check busy for an hour.
    static let maxIterations: UInt64 = 100_000_000

    public static func check(key: [UInt8], volume: VolumeBytes, encryption: VolumeEncryption) throws(DiskVaultError) -> KeyCheckResult {
        switch encryption.format {
        case .luks1: return try checkLUKS1(key: key, volume: volume)
        case .luks2: return try checkLUKS2(key: key, volume: volume)
        default: return .unchecked("the volume is not LUKS (its encryption is \"\(encryption.format)\")")
        }
    }

    // MARK: - Key slots, whatever the version

    /// What opening one key slot takes.
    struct Slot {
        var id: Int
        /// The slot KDF (always PBKDF2 here).
        var kdfHash: String
        var kdfSalt: [UInt8]
        var kdfIterations: UInt64
        /// The key-material cipher and its key size (the PBKDF2 output length).
        var areaCipher: String
        var areaKeyBytes: Int
        /// Bytes from the volume's start.
        var areaOffset: UInt64
        /// The area's size when the header gives one (LUKS2).
        var areaSize: UInt64?
        var stripes: Int
        var afHash: String
        /// The volume key's size.
        var keyBytes: Int
    }

    /// The volume-key digest a slot's candidate is compared with.
    struct KeyDigest {
        var hash: String
        var salt: [UInt8]
        var iterations: UInt64
        var digest: [UInt8]
    }

    enum SlotOutcome {
        case opens
        case doesNotOpen
        /// Why the slot could not be tried (unsupported hash or cipher).
        case unchecked(String)
    }

    /// Checks the slot's geometry against the volume and returns its key material, rounded up to sectors.
    static func keyMaterial(_ slot: Slot, volume: VolumeBytes, format: String) throws(DiskVaultError) -> [UInt8] {
        let name = "\(format) key slot \(slot.id)"
        guard slot.keyBytes > 0, slot.keyBytes <= 512 else { throw volume.corrupt("\(name): a volume key of \(slot.keyBytes) bytes is not a key size") }
        guard slot.areaKeyBytes > 0, slot.areaKeyBytes <= 512 else {
            throw volume.corrupt("\(name): a key-material key of \(slot.areaKeyBytes) bytes is not a key size")
        }
        guard slot.stripes > 0 else { throw volume.corrupt("\(name): \(slot.stripes) anti-forensic stripes") }
        guard slot.stripes <= maxKeyMaterial / slot.keyBytes else {
            throw volume.corrupt("\(name): \(slot.stripes) stripes of \(slot.keyBytes) bytes is more key material than any real key slot holds")
        }
        let sectors = (slot.keyBytes * slot.stripes + SectorCipher.sectorSize - 1) / SectorCipher.sectorSize
        let length = sectors * SectorCipher.sectorSize
        if let size = slot.areaSize, size < UInt64(length) {
            throw volume.corrupt("\(name): its area of \(size) bytes is smaller than its \(length) bytes of key material")
        }
        guard slot.areaOffset >= 512 else { throw volume.corrupt("\(name): key material at offset \(slot.areaOffset) overlaps the header") }
        guard slot.areaOffset <= volume.size, UInt64(length) <= volume.size - slot.areaOffset else {
            throw volume.corrupt("\(name): key material at \(slot.areaOffset)..<\(slot.areaOffset + UInt64(length)) lies past the end of the volume (\(volume.size) bytes)")
        }
        let material = try volume.read(slot.areaOffset, length, what: "\(name) key material")
        guard material.count == length else {
            throw volume.corrupt("\(name): key material is truncated (\(material.count) of \(length) bytes)")
        }
        return material.bytes
    }

    /// Opens the slot with `key` and compares the candidate volume key with `digest`. Corrupt headers throw;
    /// what this build cannot compute comes back as `.unchecked`.
    static func open(_ slot: Slot, key: [UInt8], digest: KeyDigest, digestBytes: Int, volume: VolumeBytes, format: String) throws(DiskVaultError) -> SlotOutcome {
        let material = try keyMaterial(slot, volume: volume, format: format)
        for (what, n) in [("its PBKDF2", slot.kdfIterations), ("its volume-key digest", digest.iterations)] where n > maxIterations {
            return .unchecked("key slot \(slot.id): \(what) asks for \(n) iterations, more than this check runs (\(maxIterations))")
        }
        do {
            let kdf = try MessageDigest(slot.kdfHash)
            let slotKey = try kdf.pbkdf2(password: key, salt: slot.kdfSalt, iterations: slot.kdfIterations, length: slot.areaKeyBytes)
            let split = try SectorCipher(slot.areaCipher, key: slotKey).decrypt(material)
            let candidate = afMerge(split, keyBytes: slot.keyBytes, stripes: slot.stripes, hash: try MessageDigest(slot.afHash))
            let check = try MessageDigest(digest.hash).pbkdf2(password: candidate, salt: digest.salt, iterations: digest.iterations, length: digestBytes)
            return equalInConstantTime(check, digest.digest) ? .opens : .doesNotOpen
        } catch where error.code == .unsupported {
            return .unchecked("key slot \(slot.id) cannot be computed by this build: \(error.message)")
        } catch {
            throw volume.corrupt("\(format) key slot \(slot.id): \(error.message)")
        }
    }

    /// The anti-forensic merge (LUKS1 spec, "AF-merge"): the stripes are folded together, each running sum
    /// XORed with the next stripe and then diffused, the last stripe XORed without diffusion.
    static func afMerge(_ material: [UInt8], keyBytes: Int, stripes: Int, hash: MessageDigest) -> [UInt8] {
        var sum = [UInt8](repeating: 0, count: keyBytes)
        for stripe in 0..<stripes {
            let base = stripe * keyBytes
            for i in 0..<keyBytes { sum[i] ^= material[base + i] }
            if stripe < stripes - 1 { sum = diffuse(sum, hash: hash) }
        }
        return sum
    }

    /// The diffuser: the buffer is cut into hash-sized pieces (the last possibly shorter); piece i becomes
    /// HASH(i as 32 bits big-endian ‖ piece), cut to the piece's length.
    static func diffuse(_ buffer: [UInt8], hash: MessageDigest) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(buffer.count)
        var start = 0, index: UInt32 = 0
        while start < buffer.count {
            let end = min(start + hash.size, buffer.count)
            let counter: [UInt8] = [UInt8(index >> 24), UInt8(truncatingIfNeeded: index >> 16), UInt8(truncatingIfNeeded: index >> 8), UInt8(truncatingIfNeeded: index)]
            out += hash.hash(counter[...], buffer[start..<end]).prefix(end - start)
            start = end
            index += 1
        }
        return out
    }

    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    /// The verdict from each tried slot's outcome and the reasons slots were not tried.
    static func verdict(_ outcomes: [(id: Int, outcome: SlotOutcome)], skipped: [String], none: String) -> KeyCheckResult {
        if let open = outcomes.first(where: { if case .opens = $0.outcome { return true } else { return false } }) {
            return .fits("key slot \(open.id)")
        }
        var unchecked = skipped
        var tried: [Int] = []
        for (id, outcome) in outcomes {
            switch outcome {
            case .opens: break
            case .doesNotOpen: tried.append(id)
            case .unchecked(let why): unchecked.append(why)
            }
        }
        let triedText = tried.isEmpty ? "" : "the key opens none of key slot\(tried.count == 1 ? "" : "s") \(tried.map(String.init).joined(separator: ", "))"
        if !unchecked.isEmpty {
            return .unchecked(unchecked.joined(separator: "; ") + (triedText.isEmpty ? "" : " (\(triedText))"))
        }
        return .doesNotFit(triedText.isEmpty ? none : triedText)
    }

    // MARK: - LUKS1

    static func checkLUKS1(key: [UInt8], volume: VolumeBytes) throws(DiskVaultError) -> KeyCheckResult {
        let r = try volume.read(0, 592, what: "LUKS1 header")
        guard r.hasPrefix(LUKS1Header.magic), (try? r.u16be(6, "version")) == 1 else {
            throw volume.corrupt("no LUKS1 header at the start of the volume")
        }
        var slots: [Slot] = []
        let digest: KeyDigest
        do {
            let cipher = try r.string(8, 32, "cipher name"), mode = try r.string(40, 32, "cipher mode")
            let hash = try r.string(72, 32, "hash spec")
            let keyBytes = Int(try r.u32be(108, "key bytes"))
            guard keyBytes > 0, keyBytes <= 512 else { throw volume.corrupt("LUKS1 header: key bytes \(keyBytes) is not a key size") }
            digest = KeyDigest(hash: hash, salt: Array(try r.slice(132, 32, "master-key digest salt")),
                               iterations: UInt64(try r.u32be(164, "master-key digest iterations")),
                               digest: Array(try r.slice(112, 20, "master-key digest")))
            guard digest.iterations > 0 else { throw volume.corrupt("LUKS1 header: master-key digest iterations are 0") }
            for i in 0..<8 {
                let at = 208 + 48 * i
                let state = try r.u32be(at, "key slot \(i) state")
                guard state == LUKS1Header.slotActive || state == LUKS1Header.slotDisabled else {
                    throw volume.corrupt("LUKS1 header: key slot \(i) state 0x\(String(state, radix: 16)) is neither active nor disabled")
                }
                guard state == LUKS1Header.slotActive else { continue }
                let iterations = UInt64(try r.u32be(at + 4, "key slot \(i) iterations"))
                guard iterations > 0 else { throw volume.corrupt("LUKS1 header: key slot \(i) iterations are 0") }
                slots.append(Slot(
                    id: i, kdfHash: hash, kdfSalt: Array(try r.slice(at + 8, 32, "key slot \(i) salt")), kdfIterations: iterations,
                    areaCipher: "\(cipher)-\(mode)", areaKeyBytes: keyBytes,
                    areaOffset: UInt64(try r.u32be(at + 40, "key slot \(i) key material offset")) * 512, areaSize: nil,
                    stripes: Int(try r.u32be(at + 44, "key slot \(i) stripes")), afHash: hash, keyBytes: keyBytes))
            }
        } catch {
            throw volume.corrupt(any: error)
        }
        var outcomes: [(id: Int, outcome: SlotOutcome)] = []
        for slot in slots {
            let outcome = try open(slot, key: key, digest: digest, digestBytes: 20, volume: volume, format: "LUKS1")
            outcomes.append((slot.id, outcome))
            if case .opens = outcome { break }
        }
        return verdict(outcomes, skipped: [], none: "the LUKS1 header has no active key slot")
    }

    // MARK: - LUKS2

    /// The JSON of the header copy cryptsetup would use.
    static func luks2JSON(_ volume: VolumeBytes) throws(DiskVaultError) -> [String: Any] {
        let copies = try LUKS2HeaderCopies.read(volume)
        guard let (chosen, _) = copies.chosen else {
            let problems = copies.problems
            throw volume.corrupt("LUKS2 header: no valid copy" + (problems.isEmpty ? "" : " (\(problems.joined(separator: "; ")))"))
        }
        return chosen.json
    }

    static func checkLUKS2(key: [UInt8], volume: VolumeBytes) throws(DiskVaultError) -> KeyCheckResult {
        let json = try luks2JSON(volume)
        func bad(_ why: String) -> DiskVaultError { volume.corrupt("LUKS2 header JSON: \(why)") }
        guard let keyslots = json["keyslots"] as? [String: Any] else { throw bad("no \"keyslots\" object") }
        guard let digests = json["digests"] as? [String: Any] else { throw bad("no \"digests\" object") }

        func object(_ o: [String: Any], _ field: String, _ what: String) throws(DiskVaultError) -> [String: Any] {
            guard let v = o[field] as? [String: Any] else { throw bad("\(what) has no \"\(field)\" object") }
            return v
        }
        func string(_ o: [String: Any], _ field: String, _ what: String) throws(DiskVaultError) -> String {
            guard let v = o[field] as? String else { throw bad("\(what) has no \"\(field)\" string") }
            return v
        }
        func integer(_ o: [String: Any], _ field: String, _ what: String, max: UInt64) throws(DiskVaultError) -> UInt64 {
            guard let n = o[field] as? NSNumber, let v = UInt64(exactly: n.doubleValue), v <= max else {
                throw bad("\(what) \"\(field)\" is not a whole number from 0 to \(max)")
            }
            return v
        }
        func numberString(_ o: [String: Any], _ field: String, _ what: String) throws(DiskVaultError) -> UInt64 {
            guard let v = UInt64(try string(o, field, what)) else { throw bad("\(what) \"\(field)\" is not a number string") }
            return v
        }
        func base64(_ o: [String: Any], _ field: String, _ what: String) throws(DiskVaultError) -> [UInt8] {
            guard let data = Data(base64Encoded: try string(o, field, what)), !data.isEmpty, data.count <= maxFieldBytes else {
                throw bad("\(what) \"\(field)\" is not base64 of 1 to \(maxFieldBytes) bytes")
            }
            return [UInt8](data)
        }
        func idList(_ o: [String: Any], _ field: String, _ what: String) throws(DiskVaultError) -> [String] {
            guard let v = o[field] as? [Any] else { throw bad("\(what) has no \"\(field)\" list") }
            return v.compactMap { ($0 as? String) ?? ($0 as? NSNumber).map { "\($0)" } }
        }

        var outcomes: [(id: Int, outcome: SlotOutcome)] = []
        var skipped: [String] = []
        var unbound: [Int] = []
        let ids = keyslots.keys.compactMap { Int($0) }.sorted()
        for id in ids {
            let what = "keyslot \(id)"
            guard let ks = keyslots[String(id)] as? [String: Any] else { throw bad("\(what) is not an object") }
            let type = try string(ks, "type", what)
            guard type == "luks2" else { continue }  // reencryption slots hold no key
            let kdf = try object(ks, "kdf", what)
            let kdfType = try string(kdf, "type", "\(what) kdf")
            guard kdfType == "pbkdf2" else {
                skipped.append(kdfType.hasPrefix("argon2")
                               ? "key slot \(id) uses \(kdfType), which this build cannot compute"
                               : "key slot \(id) uses the KDF \"\(kdfType)\", which this build does not know")
                continue
            }
            // The digest vouching for this slot's key, and whether that key is the volume's (bound to a segment).
            var found: (digest: KeyDigest, bytes: Int, bound: Bool)? = nil
            var digestType: String? = nil
            for digestID in digests.keys.compactMap({ Int($0) }).sorted() {
                let dwhat = "digest \(digestID)"
                guard let d = digests[String(digestID)] as? [String: Any] else { throw bad("\(dwhat) is not an object") }
                guard try idList(d, "keyslots", dwhat).contains(String(id)) else { continue }
                let dtype = try string(d, "type", dwhat)
                guard dtype == "pbkdf2" else { digestType = dtype; continue }
                let iterations = try integer(d, "iterations", dwhat, max: UInt64(UInt32.max))
                guard iterations > 0 else { throw bad("\(dwhat) iterations are 0") }
                let value = try base64(d, "digest", dwhat)
                found = (KeyDigest(hash: try string(d, "hash", dwhat), salt: try base64(d, "salt", dwhat), iterations: iterations, digest: value),
                         value.count, !(try idList(d, "segments", dwhat)).isEmpty)
                break
            }
            guard let found else {
                skipped.append(digestType.map { "key slot \(id) is vouched for by a \"\($0)\" digest, which this build does not know" }
                               ?? "key slot \(id) has no digest to compare its key with")
                continue
            }
            let area = try object(ks, "area", what), af = try object(ks, "af", what)
            let areaType = try string(area, "type", "\(what) area")
            guard areaType == "raw" else { skipped.append("key slot \(id) has a \"\(areaType)\" area, which this build does not know"); continue }
            let afType = try string(af, "type", "\(what) af")
            guard afType == "luks1" else { skipped.append("key slot \(id) has a \"\(afType)\" anti-forensic split, which this build does not know"); continue }
            let iterations = try integer(kdf, "iterations", "\(what) kdf", max: UInt64(UInt32.max))
            guard iterations > 0 else { throw bad("\(what) kdf iterations are 0") }
            let slot = Slot(
                id: id, kdfHash: try string(kdf, "hash", "\(what) kdf"), kdfSalt: try base64(kdf, "salt", "\(what) kdf"),
                kdfIterations: iterations,
                areaCipher: try string(area, "encryption", "\(what) area"),
                areaKeyBytes: Int(try integer(area, "key_size", "\(what) area", max: 512)),
                areaOffset: try numberString(area, "offset", "\(what) area"), areaSize: try numberString(area, "size", "\(what) area"),
                stripes: Int(try integer(af, "stripes", "\(what) af", max: UInt64(maxKeyMaterial))), afHash: try string(af, "hash", "\(what) af"),
                keyBytes: Int(try integer(ks, "key_size", what, max: 512)))
            let outcome = try open(slot, key: key, digest: found.digest, digestBytes: found.bytes, volume: volume, format: "LUKS2")
            if case .opens = outcome, !found.bound {
                // An unbound key slot: the key opens it, but its key is not the volume's.
                unbound.append(id)
                outcomes.append((id, .doesNotOpen))
                continue
            }
            outcomes.append((id, outcome))
            if case .opens = outcome { break }
        }
        let result = verdict(outcomes, skipped: skipped, none: ids.isEmpty ? "the LUKS2 header has no key slot" : "the LUKS2 header has no key slot holding the volume key")
        if case .doesNotFit(let text) = result, !unbound.isEmpty {
            return .doesNotFit(text + " (it opens unbound key slot\(unbound.count == 1 ? "" : "s") \(unbound.map(String.init).joined(separator: ", ")), whose key is not the volume's)")
        }
        return result
    }
}
