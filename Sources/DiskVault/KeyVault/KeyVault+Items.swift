import Foundation

/// An item read from its file and checked: signed by someone allowed to write it, bound to its path.
struct CheckedItem {
    var id: String
    var path: String
    var bytes: [UInt8]
    var item: Item
}

extension KeyVault {
    // MARK: reading items

    var adminPublicKey: [UInt8] { config.adminKey.flatMap(unbase64) ?? [] }

    static func isItemID(_ id: String) -> Bool {
        id.count == 32 && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// Checks an item file's signature and binding. `current`: the item is in this key vault (not in a key
    /// backup), so its writer must be one the current policy allows and it must not predate the last re-seal.
    func checkItem(_ bytes: [UInt8], id: String, current: Bool, shownAs full: String? = nil) throws(DiskVaultError) -> Item {
        try Self.checkItem(
            bytes, id: id, keyVaultID: config.id, adminKey: adminPublicKey, current: current ? (policy, root) : nil,
            shownAs: full ?? "\(root)/\(KeyVaultFormat.itemPath(id))")
    }

    /// `checkItem` for the key vault `keyVaultID` whose administrator's public key is `adminKey`; `current`, the
    /// policy and root of the key vault the item is in (nil: a copy in a key backup).
    static func checkItem(
        _ bytes: [UInt8], id: String, keyVaultID: String, adminKey: [UInt8], current: (policy: Policy, root: String)?, shownAs full: String
    ) throws(DiskVaultError) -> Item {
        let path = KeyVaultFormat.itemPath(id)
        let id = keyVaultID
        var writer: WriterCertificate? = nil
        let payload = try Self.checkSigned(bytes, path: path, kind: "item", full: full) { (signer, file) throws(DiskVaultError) in
            if signer == "admin" { return adminKey }
            guard signer.hasPrefix("principal:"), let text = file.certificate, let certBytes = unbase64(text) else {
                throw DiskVaultError(.permission, "item is signed by \(signer), who holds no writer certificate: refused", path: full)
            }
            let name = String(signer.dropFirst("principal:".count))
            let certPayload = try Self.checkSigned(certBytes, path: KeyVaultFormat.writerPath(name), kind: "writer", full: full) { (s, _) throws(DiskVaultError) in
                guard s == "admin" else { throw DiskVaultError(.permission, "the writer certificate of \(signer) is not the administrator's: refused", path: full) }
                return adminKey
            }
            guard let cert = try? JSONDecoder().decode(WriterCertificate.self, from: Data(certPayload)), cert.principal == name,
                cert.keyVault == id, let key = unbase64(cert.signingKey)
            else { throw DiskVaultError(.corrupt, "the writer certificate of \(signer) is damaged", path: full) }
            if let policy = current?.policy {
                guard let entry = policy.principals[name], entry.signingKey == cert.signingKey else {
                    throw DiskVaultError(.permission, "item was written by principal \(name), which the access policy no longer names with that key: refused", path: full)
                }
                writer = WriterCertificate(keyVault: id, principal: name, signingKey: entry.signingKey, keys: entry.keys, secrets: entry.secrets, since: entry.since)
            } else {
                writer = cert
            }
            return key
        }
        guard let item = try? JSONDecoder().decode(Item.self, from: Data(payload)) else {
            throw DiskVaultError(.corrupt, "item is damaged (its signed contents do not decode)", path: full)
        }
        guard item.keyVault == keyVaultID, item.id == FileSystem.lastComponent(of: path) else {
            throw DiskVaultError(.corrupt, "item belongs elsewhere (it names another item or key vault): refused", path: full)
        }
        if let writer, !writer.mayWrite(item.scope) {
            throw DiskVaultError(.permission, "item was written by principal \(writer.principal), which may not write \(item.scope.rawValue): refused", path: full)
        }
        if let (policy, root) = current {
            guard item.epoch <= policy.epoch else {
                throw DiskVaultError(.corrupt, "policy.json is older than item \(item.id): an old copy of the policy was put back; refused", path: "\(root)/\(KeyVaultFormat.policyPath)")
            }
            if let resealed = policy.resealed, item.epoch < resealed {
                throw DiskVaultError(.corrupt, "item is older than the key vault's last re-seal (an old copy was put back): refused", path: full)
            }
        }
        return item
    }

    /// Every item of this key vault, checked.
    func loadItems() throws(DiskVaultError) -> [CheckedItem] {
        let dir = "\(root)/\(KeyVaultFormat.itemsDirectory)"
        let names = try FileSystem.list(dir)
        guard names.count <= KeyVaultFormat.maxItems else {
            throw DiskVaultError(.corrupt, "holds \(names.count) items, more than the \(KeyVaultFormat.maxItems) a key vault may", path: dir)
        }
        var out: [CheckedItem] = []
        var total = 0
        for name in names.sorted() where !FileSystem.isAtomicWriteTemporary(name) {
            if let cached = itemCache[name] { out.append(cached); total += cached.bytes.count; continue }
            guard Self.isItemID(name) else {
                throw DiskVaultError(.corrupt, "is not a key vault item (not an item id): refused", path: "\(dir)/\(name)")
            }
            let path = KeyVaultFormat.itemPath(name)
            let bytes = try FileSystem.readRegularFile("\(root)/\(path)", limit: KeyVaultFormat.maxItemSize)
            total += bytes.count
            guard total <= KeyVaultFormat.maxItemBytes else {
                throw DiskVaultError(.corrupt, "holds more than \(KeyVaultFormat.maxItemBytes >> 20) MiB of items, more than a key vault may", path: dir)
            }
            let checked = CheckedItem(id: name, path: path, bytes: bytes, item: try checkItem(bytes, id: name, current: true))
            itemCache[name] = checked
            out.append(checked)
        }
        return out
    }

    static func partAD(_ kv: String, _ id: String, _ part: ItemPart) -> [UInt8] { Array("item:\(kv):\(id):\(part.rawValue)".utf8) }

    static func wrapAD(_ kv: String, _ id: String, _ part: ItemPart, _ c: Capability, _ generation: Int) -> [UInt8] {
        Array("wrap:\(kv):\(id):\(part.rawValue):\(c.rawValue):\(generation)".utf8)
    }

    /// A part in clear, or nil when this opener holds no capability key it is sealed to.
    func openPart(_ item: Item, _ part: ItemPart, shownAs full: String) throws(DiskVaultError) -> [UInt8]? {
        guard let sealed = item.parts[part.rawValue] else { return nil }
        for (name, wrap) in sealed.wraps.sorted(by: { $0.key < $1.key }) {
            guard let c = Capability(rawValue: name), let key = capabilityKeys[c]?[wrap.generation] else { continue }
            guard let wrapped = unbase64(wrap.box),
                let partKey = SealedToKey.open(wrapped, with: key, associatedData: Self.wrapAD(config.id, item.id, part, c, wrap.generation)),
                let box = unbase64(sealed.box),
                let plain = AESGCM.open(box, key: partKey, associatedData: Self.partAD(config.id, item.id, part))
            else { throw DiskVaultError(.corrupt, "item is damaged (its \(part.rawValue) does not open)", path: full) }
            return plain
        }
        return nil
    }

    func decodePart<T: Decodable>(_ type: T.Type, _ item: Item, _ part: ItemPart, shownAs full: String) throws(DiskVaultError) -> T? {
        guard let plain = try openPart(item, part, shownAs: full) else { return nil }
        guard let value = try? JSONDecoder().decode(T.self, from: Data(plain)) else {
            throw DiskVaultError(.corrupt, "item is damaged (its \(part.rawValue) does not decode)", path: full)
        }
        return value
    }

    /// Whether this opener holds a capability that reads `part` of items of `scope`.
    func canRead(_ part: ItemPart, _ scope: Scope, kind: KeyKind? = nil) -> Bool {
        ItemPart.readers(part, scope: scope, kind: kind).contains { capabilityKeys[$0] != nil }
    }

    struct Entry<Listing> { var checked: CheckedItem; var listing: Listing }
    typealias SecretEntry = Entry<SecretListing>
    typealias KeyEntry = Entry<KeyListing>

    /// Every secret version's listing. Needs list, get or restore on secrets.
    func secretEntries() throws(DiskVaultError) -> [SecretEntry] { try entries(.secrets) }

    /// Every key version's listing. Needs list, get, wrap, unwrap or restore on keys.
    func keyEntries() throws(DiskVaultError) -> [KeyEntry] { try entries(.keys) }

    /// Every version's listing in `scope`, by name and version.
    func entries<Listing: ItemListing>(_ scope: Scope) throws(DiskVaultError) -> [Entry<Listing>] {
        guard canRead(.listing, scope) else { throw lacks(scope, "list") }
        var out: [Entry<Listing>] = []
        for c in try loadItems() where c.item.scope == scope {
            guard let listing = try decodePart(Listing.self, c.item, .listing, shownAs: "\(root)/\(c.path)") else {
                throw staleSlot(c)
            }
            out.append(Entry(checked: c, listing: listing))
        }
        return out.sorted { ($0.listing.name, $0.listing.version) < ($1.listing.name, $1.listing.version) }
    }

    func lacks(_ scope: Scope, _ permission: String) -> DiskVaultError {
        DiskVaultError(.permission, "\(who) lacks \(permission) on \(scope.rawValue) in key vault \(root)")
    }

    func staleSlot(_ c: CheckedItem) -> DiskVaultError {
        DiskVaultError(.permission, "item is sealed to capability keys \(who)'s credential does not hold (a change of access was interrupted: the administrator should run it again)", path: "\(root)/\(c.path)")
    }

    // MARK: writing items

    /// Seals `parts` as item `id`: each part under its own new key, that key sealed to the current key of every
    /// capability that may read the part.
    func sealItem(id: String, scope: Scope, kind: KeyKind?, parts: [(ItemPart, [UInt8])], epoch: Int? = nil) throws(DiskVaultError) -> Item {
        var sealed: [String: Item.SealedPart] = [:]
        for (part, plain) in parts {
            let partKey = SecureRandom.bytes(32)
            var wraps: [String: Item.Wrap] = [:]
            for c in ItemPart.readers(part, scope: scope, kind: kind) {
                guard let (generation, publicKey) = sealingKey(c),
                    let box = SealedToKey.seal(partKey, to: publicKey, associatedData: Self.wrapAD(config.id, id, part, c, generation))
                else { throw DiskVaultError(.corrupt, "policy lacks a valid key for capability \(c.rawValue)", path: "\(root)/\(KeyVaultFormat.policyPath)") }
                wraps[c.rawValue] = .init(generation: generation, box: Data.base64(box))
            }
            for (vaultID, recipient) in (policy.escrow ?? [:]).sorted(by: { $0.key < $1.key }) {
                guard let publicKey = unbase64(recipient.publicKey),
                    let box = SealedToKey.seal(partKey, to: publicKey, associatedData: Self.escrowAD(config.id, id, part, vaultID))
                else { throw DiskVaultError(.corrupt, "policy names vault \(vaultID) for escrow with a damaged key", path: "\(root)/\(KeyVaultFormat.policyPath)") }
                wraps[Self.escrowWrapName(vaultID)] = .init(generation: 0, box: Data.base64(box))
            }
            sealed[part.rawValue] = .init(box: Data.base64(AESGCM.seal(plain, key: partKey, associatedData: Self.partAD(config.id, id, part))), wraps: wraps)
        }
        return Item(keyVault: config.id, id: id, scope: scope, epoch: epoch ?? policy.epoch, parts: sealed)
    }

    /// Writes an item signed by this opener. A principal may write only where its grant says `set` or `restore`.
    func writeItem(_ item: Item, replacing: Bool = false) throws(DiskVaultError) {
        if !isAdministrator {
            guard holds(item.scope, [.set]) || holds(item.scope, [.restore]) else { throw lacks(item.scope, "set") }
        }
        try writeSigned(item, kind: "item", path: KeyVaultFormat.itemPath(item.id), certificate: signer.certificate, newFile: !replacing)
        itemCache[item.id] = nil
    }

    func newItemID() -> String { randomHex(16) }

    func encodePart<T: Encodable>(_ value: T) throws(DiskVaultError) -> [UInt8] { try JSON.encode(value, pretty: false) }

    struct SecretValue: Codable { var value: String }
    struct KeyHalf: Codable { var pem: String?; var material: String? }

    func writeSecret(_ listing: SecretListing, value: String) throws(DiskVaultError) {
        let item = try sealItem(id: newItemID(), scope: .secrets, kind: nil, parts: [
            (.listing, try encodePart(listing)), (.value, try encodePart(SecretValue(value: value))),
        ])
        try writeItem(item)
    }

    func writeKey(_ listing: KeyListing, material: [UInt8], publicPEM: [UInt8]?) throws(DiskVaultError) {
        var parts: [(ItemPart, [UInt8])] = [(.listing, try encodePart(listing)), (.private, try encodePart(KeyHalf(pem: nil, material: Data.base64(material))))]
        if let publicPEM { parts.append((.public, try encodePart(KeyHalf(pem: Data.base64(publicPEM), material: nil)))) }
        try writeItem(try sealItem(id: newItemID(), scope: .keys, kind: listing.kind, parts: parts))
    }

    // MARK: keys

    public func createKey(name: String, kind: KeyKind) throws(DiskVaultError) -> KeyRecord {
        try authorize(.keys, .set)
        let material: [UInt8], pub: [UInt8]?
        switch kind {
        case .rsa2048, .rsa3072:
            let rsa = RSAKey.generate(bits: kind == .rsa2048 ? 2048 : 3072)
            material = rsa.privatePEM()
            pub = rsa.publicPEM()
        case .aes256: material = SecureRandom.bytes(32); pub = nil
        case .rsa4096: throw DiskVaultError(.usage, "key kind must be rsa-2048, rsa-3072 or aes-256 (rsa-4096 keys can be imported)")
        }
        return try storeKey(name: name, kind: kind, material: material, publicPEM: pub)
    }

    /// Imports a standalone PEM private key; a certificate, or a key inside one, is refused.
    public func importKey(name: String, pem: [UInt8], source: String) throws(DiskVaultError) -> KeyRecord {
        try authorize(.keys, .set)
        let key = try RSAKey.importPEM(pem, source: source)
        guard let kind = KeyKind(rawValue: "rsa-\(key.bits)") else {
            throw DiskVaultError(.unsupported, "an RSA key of \(key.bits) bits is not supported (2048, 3072 or 4096)", path: source)
        }
        return try storeKey(name: name, kind: kind, material: key.privatePEM(), publicPEM: key.publicPEM())
    }

    func storeKey(name: String, kind: KeyKind, material: [UInt8], publicPEM: [UInt8]?) throws(DiskVaultError) -> KeyRecord {
        try Self.validateItemName(name)
        return try withWriteLock { () throws(DiskVaultError) -> KeyRecord in
            let version = (try keyEntries().filter { $0.listing.name == name }.map(\.listing.version).max() ?? 0) + 1
            let listing = KeyListing(name: name, version: version, kind: kind, created: Timestamp.format(Date()))
            try writeKey(listing, material: material, publicPEM: publicPEM)
            return KeyRecord(name: name, version: version, kind: kind, material: Data.base64(material), created: listing.created,
                             publicPEM: publicPEM.map(Data.base64))
        }
    }

    func keyEntry(name: String, version: Int?) throws(DiskVaultError) -> KeyEntry {
        try Self.validateItemName(name)
        let all = try keyEntries().filter { $0.listing.name == name }
        guard let entry = version.map({ v in all.last { $0.listing.version == v } }) ?? all.last else {
            throw DiskVaultError(.notFound, "key \(name)\(version.map { " version \($0)" } ?? "") is not in key vault \(root)")
        }
        return entry
    }

    func record(_ entry: KeyEntry) throws(DiskVaultError) -> KeyRecord {
        let full = "\(root)/\(entry.checked.path)"
        let priv = try decodePart(KeyHalf.self, entry.checked.item, .private, shownAs: full)
        let pub = try decodePart(KeyHalf.self, entry.checked.item, .public, shownAs: full)
        let l = entry.listing
        return KeyRecord(name: l.name, version: l.version, kind: l.kind, material: priv?.material ?? "", created: l.created, publicPEM: pub?.pem)
    }

    /// A key version: its private half only where this opener may see it (unwrap, or wrap for an AES key).
    public func key(name: String, version: Int? = nil) throws(DiskVaultError) -> KeyRecord {
        try authorize(.keys, .get)
        return try record(try keyEntry(name: name, version: version))
    }

    public func deleteKey(name: String) throws(DiskVaultError) {
        try deleteVersions(of: name, .keys) { () throws(DiskVaultError) in try keyEntries().filter { $0.listing.name == name }.map(\.checked.path) }
    }

    /// Removes every version of `name` in `scope` (the files `paths` names, read under the write lock).
    func deleteVersions(of name: String, _ scope: Scope, paths: () throws(DiskVaultError) -> [String]) throws(DiskVaultError) {
        try authorize(scope, .delete)
        try Self.validateItemName(name)
        try withWriteLock { () throws(DiskVaultError) in
            let found = try paths()
            guard !found.isEmpty else { throw DiskVaultError(.notFound, "\(scope == .keys ? "key" : "secret") \(name) is not in key vault \(root)") }
            for path in found { try FileSystem.remove("\(root)/\(path)") }
            itemCache = [:]
        }
    }

    /// The newest version of each key, without its halves.
    public func keys() throws(DiskVaultError) -> [KeyRecord] {
        try authorize(.keys, .list)
        var newest: [String: KeyEntry] = [:]
        for e in try keyEntries() { newest[e.listing.name] = e }
        return newest.values.sorted { $0.listing.name < $1.listing.name }.map {
            KeyRecord(name: $0.listing.name, version: $0.listing.version, kind: $0.listing.kind, material: "", created: $0.listing.created, publicPEM: nil)
        }
    }

    func hasKey(name: String, version: Int) throws(DiskVaultError) -> Bool {
        try keyEntries().contains { $0.listing.name == name && $0.listing.version == version }
    }

    // MARK: secrets

    /// Stores a new version of a secret: the BEK itself, or wrapped by the key `wrapKey` (its public half for
    /// an RSA key; an AES key must be one this opener may wrap with).
    public func setSecret(name: String, value: [UInt8], wrapKey: String? = nil, volume: String? = nil, tags: [String: String] = [:]) throws(DiskVaultError) -> SecretRecord {
        try authorize(.secrets, .set)
        try Self.validateItemName(name)
        guard !value.isEmpty, value.count <= 1 << 16 else { throw DiskVaultError(.usage, "a secret must be 1 byte to 64 KiB") }
        var stored = value
        var wrap: SecretRecord.Wrap? = nil
        if let wrapKey {
            let kek = try record(try keyEntry(name: wrapKey, version: nil))
            stored = try Self.wrap(value, with: kek)
            wrap = .init(key: kek.name, keyVersion: kek.version, algorithm: kek.kind == .aes256 ? "A256KWP" : "RSA-OAEP-256")
        }
        var allTags = tags
        if let volume { allTags["volume"] = volume.lowercased() }
        return try withWriteLock { () throws(DiskVaultError) -> SecretRecord in
            let version = (try secretEntries().filter { $0.listing.name == name }.map(\.listing.version).max() ?? 0) + 1
            let listing = SecretListing(name: name, version: version, wrap: wrap, tags: allTags, created: Timestamp.format(Date()))
            try writeSecret(listing, value: Data.base64(stored))
            return SecretRecord(name: name, version: version, value: Data.base64(stored), wrap: wrap, tags: allTags, created: listing.created)
        }
    }

    func record(_ entry: SecretEntry) throws(DiskVaultError) -> SecretRecord {
        guard let value = try decodePart(SecretValue.self, entry.checked.item, .value, shownAs: "\(root)/\(entry.checked.path)") else {
            throw lacks(.secrets, "get")
        }
        let l = entry.listing
        return SecretRecord(name: l.name, version: l.version, value: value.value, wrap: l.wrap, tags: l.tags, created: l.created)
    }

    public func secret(name: String, version: Int? = nil) throws(DiskVaultError) -> SecretRecord {
        try authorize(.secrets, .get)
        try Self.validateItemName(name)
        let all = try secretEntries().filter { $0.listing.name == name }
        guard let entry = version.map({ v in all.last { $0.listing.version == v } }) ?? all.last else {
            throw DiskVaultError(.notFound, "secret \(name)\(version.map { " version \($0)" } ?? "") is not in key vault \(root)")
        }
        return try record(entry)
    }

    /// The BEK in clear: the stored value, unwrapped with its KEK when wrapped — which needs the KEK's private
    /// half: `unwrap` on keys (or `wrap`, for an AES KEK).
    public func unwrappedValue(of secret: SecretRecord) throws(DiskVaultError) -> [UInt8] {
        guard let value = unbase64(secret.value), !value.isEmpty else { throw DiskVaultError(.corrupt, "secret \(secret.name) is damaged") }
        guard let wrap = secret.wrap else { return value }
        let kek = try record(try keyEntry(name: wrap.key, version: wrap.keyVersion))
        guard !kek.material.isEmpty else {
            throw DiskVaultError(.permission, "\(who) lacks unwrap on keys in key vault \(root): secret \(secret.name) is wrapped by key \(wrap.key)")
        }
        return try Self.unwrap(value, with: kek, secret: secret.name)
    }

    public func deleteSecret(name: String) throws(DiskVaultError) {
        try deleteVersions(of: name, .secrets) { () throws(DiskVaultError) in try secretEntries().filter { $0.listing.name == name }.map(\.checked.path) }
    }

    /// The newest version of each secret, as listed (no value).
    public func secrets() throws(DiskVaultError) -> [SecretRecord] {
        try authorize(.secrets, .list)
        var newest: [String: SecretEntry] = [:]
        for e in try secretEntries() { newest[e.listing.name] = e }
        return newest.values.sorted { $0.listing.name < $1.listing.name }.map {
            SecretRecord(name: $0.listing.name, version: $0.listing.version, value: "", wrap: $0.listing.wrap, tags: $0.listing.tags, created: $0.listing.created)
        }
    }

    /// The newest secret tagged for `volume` (a LUKS UUID or BitLocker key GUID), with its value.
    public func secret(forVolume volume: String) throws(DiskVaultError) -> SecretRecord? {
        try authorize(.secrets, .list)
        let wanted = volume.lowercased()
        var newest: [String: SecretEntry] = [:]
        for e in try secretEntries() { newest[e.listing.name] = e }
        guard let entry = newest.values.sorted(by: { $0.listing.name < $1.listing.name }).last(where: { $0.listing.tags["volume"] == wanted }) else { return nil }
        return try record(entry)
    }

    func hasSecret(name: String, version: Int) throws(DiskVaultError) -> Bool {
        try secretEntries().contains { $0.listing.name == name && $0.listing.version == version }
    }

    /// The item file of a secret or key version, as a key backup carries it.
    func itemFile(secret name: String, version: Int) throws(DiskVaultError) -> CheckedItem? {
        try secretEntries().last { $0.listing.name == name && $0.listing.version == version }?.checked
    }

    func itemFile(key name: String, version: Int) throws(DiskVaultError) -> CheckedItem? {
        try keyEntries().last { $0.listing.name == name && $0.listing.version == version }?.checked
    }

    // MARK: wrapping

    static func wrap(_ bek: [UInt8], with kek: KeyRecord) throws(DiskVaultError) -> [UInt8] {
        if kek.kind == .aes256 {
            guard let material = unbase64(kek.material), material.count == 32 else {
                throw DiskVaultError(.permission, "wrapping with AES key \(kek.name) needs wrap or unwrap on keys")
            }
            guard let w = AESKeyWrap.wrap(bek, with: material) else { throw DiskVaultError(.io, "AES key wrap failed") }
            return w
        }
        let rsa: RSAKey
        if let pem = kek.publicPEM.flatMap(unbase64) {
            rsa = try RSAKey.importPublicPEM(pem, source: "key \(kek.name)")
        } else if let material = unbase64(kek.material), !material.isEmpty {
            rsa = try RSAKey.importPEM(material, source: "key \(kek.name)")
        } else {
            throw DiskVaultError(.permission, "wrapping with key \(kek.name) needs get on keys")
        }
        guard let w = rsa.wrap(bek) else {
            throw DiskVaultError(.usage, "secret too long to wrap with \(kek.kind) key \(kek.name) (RSA-OAEP holds at most \(rsa.bits / 8 - 66) bytes)")
        }
        return w
    }

    static func unwrap(_ wrapped: [UInt8], with kek: KeyRecord, secret: String) throws(DiskVaultError) -> [UInt8] {
        guard let material = unbase64(kek.material) else { throw DiskVaultError(.corrupt, "key \(kek.name) is damaged") }
        let plain: [UInt8]?
        if kek.kind == .aes256 {
            plain = AESKeyWrap.unwrap(wrapped, with: material)
        } else {
            plain = try RSAKey.importPEM(material, source: "key \(kek.name)").unwrap(wrapped)
        }
        guard let plain else {
            throw DiskVaultError(.corrupt, "key \(kek.name) version \(kek.version) does not unwrap secret \(secret)")
        }
        return plain
    }
}
