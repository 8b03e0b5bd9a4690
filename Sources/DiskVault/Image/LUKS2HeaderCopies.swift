/// The two copies of a LUKS2 header as found on a volume, and the one cryptsetup would use: of the valid
/// copies, the one with the higher seqid (the primary when they tie).
struct LUKS2HeaderCopies {
    /// Whether the volume starts with a LUKS2 primary header's magic and version, valid or not.
    var primaryPresent: Bool
    var primary: LUKS2Header.Copy?
    var secondary: LUKS2Header.Copy?
    /// Why a copy that was found could not be used, for messages.
    var problems: [String]

    /// The copies of `volume`'s header. The secondary follows the primary; if the primary is unusable, it is
    /// looked for at every offset the format allows.
    static func read(_ volume: VolumeBytes) throws(DiskVaultError) -> LUKS2HeaderCopies {
        let first = try volume.read(0, 8, what: "LUKS2 header")
        var copies = LUKS2HeaderCopies(
            primaryPresent: first.hasPrefix(LUKS2Header.primaryMagic) && (try? first.u16be(6, "version")) == 2,
            primary: nil, secondary: nil, problems: [])
        if first.hasPrefix(LUKS2Header.primaryMagic) {
            switch try LUKS2Header.readCopy(volume, at: 0, magic: LUKS2Header.primaryMagic) {
            case .success(let c): copies.primary = c
            case .failure(let p): copies.problems.append("primary header: \(p.reason)")
            }
        }
        for offset in copies.primary.map({ [$0.size] }) ?? LUKS2Header.secondaryOffsets where offset < volume.size {
            let probe = try volume.read(offset, 8, what: "LUKS2 secondary header")
            guard probe.hasPrefix(LUKS2Header.secondaryMagic) else { continue }
            switch try LUKS2Header.readCopy(volume, at: offset, magic: LUKS2Header.secondaryMagic) {
            case .success(let c): copies.secondary = c
            case .failure(let p): copies.problems.append("secondary header at \(offset): \(p.reason)")
            }
            break
        }
        return copies
    }

    /// The copy to use and its name ("primary" or "secondary"), or nil when neither copy is valid.
    var chosen: (copy: LUKS2Header.Copy, name: String)? {
        switch (primary, secondary) {
        case (let p?, let s?): return s.seqid > p.seqid ? (s, "secondary") : (p, "primary")
        case (let p?, nil): return (p, "primary")
        case (nil, let s?): return (s, "secondary")
        case (nil, nil): return nil
        }
    }
}
