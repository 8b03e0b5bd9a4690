import Foundation

extension KeyVault {
    /// A key backup's item with its parts in clear.
    struct OpenedItem {
        var id: String
        var scope: Scope
        var parts: [ItemPart: [UInt8]]
    }

    /// Puts a secret or key version from a point's key backup back, sealed again for the current keys and
    /// signed by this opener (which needs restore on its scope). Returns what it is, and whether it was put
    /// back (false: that name and version are here already).
    func restore(item c: CheckedItem, shownAs full: String) throws(DiskVaultError) -> (String, Bool) {
        var parts: [ItemPart: [UInt8]] = [:]
        for part in [ItemPart.listing, .value, .public, .private] {
            if let plain = try openPart(c.item, part, shownAs: full) { parts[part] = plain }
        }
        return try restore(OpenedItem(id: c.id, scope: c.item.scope, parts: parts), shownAs: full, fromElsewhere: false)
    }

    /// Puts an opened item back. `fromElsewhere`: it comes from another key vault (through a vault's escrow),
    /// so a version of the same name and number already here must be the same, or the restore is refused.
    func restore(_ o: OpenedItem, shownAs full: String, fromElsewhere: Bool) throws(DiskVaultError) -> (String, Bool) {
        func decode<T: Decodable>(_ type: T.Type, _ part: ItemPart) throws(DiskVaultError) -> T {
            guard let plain = o.parts[part] else { throw lacks(o.scope, "restore") }
            guard let value = try? JSONDecoder().decode(T.self, from: Data(plain)) else {
                throw DiskVaultError(.corrupt, "item is damaged (its \(part.rawValue) does not decode)", path: full)
            }
            return value
        }
        if fromElsewhere { try authorize(o.scope, .restore) }
        switch o.scope {
        case .secrets:
            let listing = try decode(SecretListing.self, .listing), value = try decode(SecretValue.self, .value)
            let what = "secret \(listing.name) version \(listing.version)"
            try Self.validateItemName(listing.name)
            return try withWriteLock { () throws(DiskVaultError) -> (String, Bool) in
                if let here = try secretEntries().last(where: { $0.listing.name == listing.name && $0.listing.version == listing.version }) {
                    if fromElsewhere {
                        let same = try record(here)
                        guard same.value == value.value, same.wrap == listing.wrap, same.tags == listing.tags else { throw notTheSame(what) }
                    }
                    return (what, false)
                }
                try writeSecret(listing, value: value.value)
                return (what, true)
            }
        case .keys:
            let listing = try decode(KeyListing.self, .listing), half = try decode(KeyHalf.self, .private)
            guard let material = half.material.flatMap(unbase64) else { throw DiskVaultError(.corrupt, "item is damaged (its private half is empty)", path: full) }
            let what = "key \(listing.name) version \(listing.version)"
            try Self.validateItemName(listing.name)
            let pub = listing.kind == .aes256 ? nil : try RSAKey.importPEM(material, source: "\(full): key \(listing.name)").publicPEM()
            return try withWriteLock { () throws(DiskVaultError) -> (String, Bool) in
                if let here = try keyEntries().last(where: { $0.listing.name == listing.name && $0.listing.version == listing.version }) {
                    if fromElsewhere {
                        let same = try record(here)
                        guard same.kind == listing.kind, unbase64(same.material) == material else { throw notTheSame(what) }
                    }
                    return (what, false)
                }
                try writeKey(listing, material: material, publicPEM: pub)
                return (what, true)
            }
        }
    }

    private func notTheSame(_ what: String) -> DiskVaultError {
        DiskVaultError(.alreadyExists, "key vault \(root) already holds a \(what) that is not the one in the key backup: refused (restore into a key vault without it)")
    }

    /// Puts a version from a format-1 key backup back.
    func restore(legacyKey k: KeyRecord) throws(DiskVaultError) -> (String, Bool) {
        try authorize(.keys, .restore)
        try Self.validateItemName(k.name)
        let what = "key \(k.name) version \(k.version)"
        guard let material = unbase64(k.material) else { throw DiskVaultError(.corrupt, "\(what) in the key backup is damaged") }
        let pub = k.kind == .aes256 ? nil : try RSAKey.importPEM(material, source: what).publicPEM()
        return try withWriteLock { () throws(DiskVaultError) -> (String, Bool) in
            if try hasKey(name: k.name, version: k.version) { return (what, false) }
            try writeKey(KeyListing(name: k.name, version: k.version, kind: k.kind, created: k.created), material: material, publicPEM: pub)
            return (what, true)
        }
    }

    func restore(legacySecret s: SecretRecord) throws(DiskVaultError) -> (String, Bool) {
        try authorize(.secrets, .restore)
        try Self.validateItemName(s.name)
        let what = "secret \(s.name) version \(s.version)"
        return try withWriteLock { () throws(DiskVaultError) -> (String, Bool) in
            if try hasSecret(name: s.name, version: s.version) { return (what, false) }
            try writeSecret(SecretListing(name: s.name, version: s.version, wrap: s.wrap, tags: s.tags, created: s.created), value: s.value)
            return (what, true)
        }
    }
}
