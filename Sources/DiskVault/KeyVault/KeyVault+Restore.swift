import Foundation

extension KeyVault {
    /// Puts a secret or key version from a point's key backup back, sealed again for the current keys and
    /// signed by this opener (which needs restore on its scope). Returns what it is, and whether it was put
    /// back (false: that name and version are here already).
    func restore(item c: CheckedItem, shownAs full: String) throws(DiskVaultError) -> (String, Bool) {
        switch c.item.scope {
        case .secrets:
            guard let listing = try decodePart(SecretListing.self, c.item, .listing, shownAs: full),
                let value = try decodePart(SecretValue.self, c.item, .value, shownAs: full)
            else { throw lacks(.secrets, "restore") }
            let what = "secret \(listing.name) version \(listing.version)"
            try Self.validateItemName(listing.name)
            return try withWriteLock { () throws(DiskVaultError) -> (String, Bool) in
                if try hasSecret(name: listing.name, version: listing.version) { return (what, false) }
                try writeSecret(listing, value: value.value)
                return (what, true)
            }
        case .keys:
            guard let listing = try decodePart(KeyListing.self, c.item, .listing, shownAs: full),
                let half = try decodePart(KeyHalf.self, c.item, .private, shownAs: full), let material = half.material.flatMap(unbase64)
            else { throw lacks(.keys, "restore") }
            let what = "key \(listing.name) version \(listing.version)"
            try Self.validateItemName(listing.name)
            let pub = listing.kind == .aes256 ? nil : try RSAKey.importPEM(material, source: "\(full): key \(listing.name)").publicPEM()
            return try withWriteLock { () throws(DiskVaultError) -> (String, Bool) in
                if try hasKey(name: listing.name, version: listing.version) { return (what, false) }
                try writeKey(listing, material: material, publicPEM: pub)
                return (what, true)
            }
        }
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
