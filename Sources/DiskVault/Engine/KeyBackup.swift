import Foundation

/// How backup and restore reach a key vault: as a principal, with the credential `access grant` issued.
public struct KeyVaultAccess: Codable, Sendable, Equatable {
    public var keyVault: String
    public var principal: String
    public var credential: String

    /// The paths are made absolute here, so that what records them (a point's key backup, a protected disk,
    /// the re-attach files) names the same files from any working directory.
    public init(keyVault: String, principal: String, credential: String) {
        self.keyVault = FileSystem.absolutePath(keyVault)
        self.principal = principal
        self.credential = FileSystem.absolutePath(credential)
    }

    public func open() throws(DiskVaultError) -> KeyVault {
        try KeyVault.open(keyVault, principal: principal, credentialFile: credential)
    }
}

/// A point's "keys" blob: copies of the key vault's own item files for the secret versions and KEKs the
/// point needs, each still sealed to the key vault's capabilities and signed by its writer. Whoever writes it
/// (a backup principal with get and list) needs to read none of them; a principal with restore puts them
/// back, sealed again for the key vault's current keys.
struct KeyBackupContents: Codable {
    static let formatName = "diskvault-key-backup"
    var format: String = formatName
    var version: Int = 2
    var keyVaultID: String
    /// The administrator key of the key vault that signed the items (base64).
    var adminKey: String
    var items: [BackedUpItem]

    struct BackedUpItem: Codable, Equatable {
        var id: String
        /// The item file, byte for byte (base64).
        var file: String
    }
}

/// A key backup of key vault format 1: the records in clear, sealed under the key vault's key-backup key.
struct LegacyKeyBackupContents: Codable {
    var keyVaultID: String
    var secrets: [KeyVault.SecretRecord]
    var keys: [KeyVault.KeyRecord]
}

/// A point's key backup, opened with its key vault.
enum OpenedKeyBackup {
    /// Format 2: the item files, each checked (signed by a writer the key vault's administrator certified).
    case items([CheckedItem])
    case legacy(LegacyKeyBackupContents)
}

enum KeyBackup {
    /// No key backup is larger: a bigger blob is damaged, never read whole.
    static let maxBlobSize = 1 << 20

    /// Identifiers a secret's volume tag may carry for this volume.
    static func volumeIDs(_ v: DiskLayout.Volume, disk: String) -> [String] {
        switch v.encryption.format {
        case .luks1, .luks2: return [v.encryption.uuid].compactMap { $0?.lowercased() }
        case .bitlocker:
            return (v.encryption.protectors ?? []).filter { $0.kind.contains("startup-key") }.map(\.guid)
                + [v.encryption.guid].compactMap { $0 }
        default: return ["\(disk)/\(v.number)", disk]
        }
    }

    static func label(_ v: DiskLayout.Volume) -> String {
        let which = v.number == 0 ? "the disk" : "volume \(v.number)"
        switch v.encryption.format {
        case .luks1, .luks2: return "\(which) (\(v.encryption.format) UUID \(v.encryption.uuid ?? "?"))"
        case .bitlocker: return "\(which) (BitLocker \(v.encryption.guid ?? "?"))"
        default: return "\(which) (\(v.encryption.format))"
        }
    }

    /// Volumes whose keys a backup must hold: every one with a recognised or declared encryption.
    static func encryptedVolumes(_ layout: DiskLayout?) -> [DiskLayout.Volume] {
        (layout?.volumes ?? []).filter { $0.encryption.format.needsKeys }
    }

    /// The key backup of a point, prepared before any data is read: the principal's permissions checked, each
    /// encrypted volume's secret found and unwrapped. What is left is `finish`: checking each key against its
    /// volume's header (PBKDF2 — a few hundred milliseconds on one core, skipped when the previous point checked
    /// the same header and secret) and sealing the backup. A backup runs `finish` beside its data pipeline and
    /// commits no point unless it succeeds.
    struct Plan: @unchecked Sendable {
        struct Volume {
            var entry: KeyBackupRecord.Volume
            var label: String
            var secret: KeyVault.SecretRecord
            /// The BEK in clear; nil when the principal may not unwrap it (`uncheckable` says why).
            var bek: [UInt8]?
            var uncheckable: String?
            var bytes: VolumeBytes
            var encryption: VolumeEncryption
            /// The previous point's check, when it still holds.
            var reused: KeyCheckResult?
        }
        var record: KeyBackupRecord
        var contents: KeyBackupContents
        var volumes: [Volume]
        var keyVault: String
        /// Why the keys can be restored only while their key vault exists, when they can.
        var warnings: [String] = []

        /// Whether `finish` has real work to do (a key to check), worth a thread of its own.
        var needsCheck: Bool { volumes.contains { $0.reused == nil && $0.bek != nil } }

        /// Checks each key that needs it and makes the blob; throws when a key does not open its volume.
        func finish() throws(DiskVaultError) -> (KeyBackupRecord, [UInt8]) {
            var record = self.record
            for v in volumes {
                let check: KeyCheckResult
                if let reused = v.reused {
                    check = reused
                } else if let bek = v.bek {
                    check = try KeyCheck.check(bek: bek, volume: v.bytes, encryption: v.encryption, source: "secret \(v.secret.name)")
                } else {
                    check = .unchecked(v.uncheckable ?? "no unwrap permission")
                }
                if case .doesNotFit(let why) = check {
                    throw DiskVaultError(.permission, "the key in secret \(v.secret.name) version \(v.secret.version) of key vault \(keyVault) does not open \(v.label): \(why)\(KeyCheck.newlineHint(v.bek ?? []))")
                }
                var entry = v.entry
                entry.check = check.status
                entry.checkDetail = check.detail
                record.volumes.append(entry)
            }
            let blob = try JSON.encode(contents, pretty: false)
            record.blobDigest = SHA256.digest(blob).hex
            return (record, blob)
        }
    }

    /// Before any data is read: checks the principal's permissions, finds each encrypted volume's secret and
    /// unwraps it where the principal may. Throws, writing nothing, when any of this fails; the key checks are
    /// left to the plan.
    static func plan(
        layout: DiskLayout, disk: String, pointID: String, access: KeyVaultAccess, file: any ImageBytes, image: String,
        previous: KeyBackupRecord? = nil, vault: Vault
    ) throws(DiskVaultError) -> Plan {
        let kv: KeyVault
        do {
            kv = try access.open()
        } catch where error.code == .notFound {
            throw DiskVaultError(.notFound, "key vault \(access.keyVault) does not exist; no backup was written")
        }
        guard kv.holds(.secrets, [.get, .list]) && kv.holds(.keys, [.get, .list]) else {
            throw DiskVaultError(.permission, "backup service lacks permission to key vault \(access.keyVault): grant get,list on keys and secrets to \(access.principal)")
        }
        var plan = Plan(
            record: KeyBackupRecord(keyVault: access.keyVault, keyVaultID: kv.config.id, principal: access.principal, blob: "keys", volumes: []),
            contents: KeyBackupContents(keyVaultID: kv.config.id, adminKey: kv.config.adminKey ?? "", items: []),
            volumes: [], keyVault: access.keyVault)
        func carry(_ item: CheckedItem) {
            let copy = KeyBackupContents.BackedUpItem(id: item.id, file: Data.base64(item.bytes))
            if !plan.contents.items.contains(copy) { plan.contents.items.append(copy) }
        }
        for v in encryptedVolumes(layout) {
            let ids = volumeIDs(v, disk: disk)
            var found: KeyVault.SecretRecord? = nil
            for id in ids where found == nil { found = try kv.secret(forVolume: id) }
            guard let secret = found, let secretItem = try kv.itemFile(secret: secret.name, version: secret.version) else {
                throw DiskVaultError(.notFound, "no secret in key vault \(access.keyVault) for \(label(v)): add one with `diskvault keyvault secret set \(access.keyVault) --name NAME --file KEY --volume \(ids.first ?? disk)`")
            }
            var bek: [UInt8]? = nil
            var uncheckable: String? = nil
            do {
                bek = try kv.unwrappedValue(of: secret)
            } catch where error.code == .permission && secret.wrap != nil {
                uncheckable = "no unwrap permission on key \(secret.wrap?.key ?? "?")"
            }
            let volume = VolumeBytes(file: file, image: image, offset: v.offset, size: v.size)
            let headerDigest = try luksHeaderDigest(volume, v.encryption)
            // The secret version as stored (its signed, sealed item): the same file means the same key.
            let secretMAC = SHA256.digest(secretItem.bytes).hex
            var reused: KeyCheckResult? = nil
            if let digest = headerDigest, bek != nil,
                let before = previous?.keyVaultID == kv.config.id ? previous?.volumes.first(where: { $0.number == v.number }) : nil,
                before.headerDigest == digest, before.secretMAC == secretMAC, before.secret == secret.name, before.secretVersion == secret.version,
                before.keyVersion == secret.wrap?.keyVersion, before.check == .fits
            {
                reused = .fits(before.checkDetail.hasSuffix("(as at the previous point)") ? before.checkDetail : "\(before.checkDetail) (as at the previous point)")
            }
            var entry = KeyBackupRecord.Volume(
                number: v.number, format: v.encryption.format, volumeID: secret.volume ?? ids.first ?? "", secret: secret.name,
                secretVersion: secret.version, wrappedBy: secret.wrap?.key, keyVersion: secret.wrap?.keyVersion,
                check: .unchecked, checkDetail: "", headerDigest: headerDigest, secretMAC: secretMAC)
            entry.valueDigest = KeyBackupRecord.valueDigest(secret.value)
            carry(secretItem)
            if let wrap = secret.wrap {
                guard let kekItem = try kv.itemFile(key: wrap.key, version: wrap.keyVersion) else {
                    throw DiskVaultError(.notFound, "key \(wrap.key) version \(wrap.keyVersion), which wraps secret \(secret.name), is not in key vault \(access.keyVault)")
                }
                carry(kekItem)
            }
            plan.volumes.append(Plan.Volume(
                entry: entry, label: label(v), secret: secret, bek: bek, uncheckable: uncheckable, bytes: volume, encryption: v.encryption, reused: reused))
        }
        // Escrow: an encrypted vault whose escrow key the key vault seals every item to holds keys that outlive
        // the key vault.
        let only = "the keys of disk \(disk) can be restored only while key vault \(access.keyVault) exists"
        if vault.isEncrypted {
            let vaultID = vault.config.id
            guard let escrow = try vault.escrowKey() else {
                plan.warnings.append("\(only): vault \(vault.location) has no escrow key; make one with `diskvault vault escrow init --vault \(vault.location)`, then have the key vault's administrator run `diskvault keyvault escrow add \(access.keyVault) --vault \(vault.location)`")
                return plan
            }
            if !kv.escrows(to: vaultID, publicKey: escrow.publicKeyBytes) {
                plan.warnings.append("\(only): it does not escrow its keys to vault \(vault.location); its administrator can make them restorable from this vault with `diskvault keyvault escrow add \(access.keyVault) --vault \(vault.location)`")
            } else if let stale = plan.contents.items.first(where: { copy in
                guard let bytes = unbase64(copy.file), let item = try? kv.checkItem(bytes, id: copy.id, current: false) else { return true }
                return !KeyVault.isEscrowed(item, to: vaultID)
            }) {
                plan.warnings.append("\(only): its item \(stale.id) is not yet sealed to vault \(vault.location) (an escrow change was interrupted: its administrator should run `diskvault keyvault escrow add \(access.keyVault) --vault \(vault.location)` again)")
            } else {
                plan.record.escrow = vaultID
            }
        } else {
            plan.warnings.append("\(only): vault \(vault.location) is not encrypted, so it keeps no escrow of them")
        }
        return plan
    }

    /// SHA-256 of a LUKS volume's header and key slots (everything before the payload, at most 32 MiB).
    static func luksHeaderDigest(_ volume: VolumeBytes, _ e: VolumeEncryption) throws(DiskVaultError) -> String? {
        guard e.format.isLUKS, let end = e.payloadOffset, end > 0, end <= 32 << 20 else { return nil }
        return SHA256.digest(try volume.read(0, Int(end), what: "LUKS header").bytes).hex
    }

    /// Whether `blob` has the form of a key backup (format 2 JSON, or format 1 sealed): what can be checked
    /// without the key vault.
    static func isKeyBackupForm(_ blob: [UInt8]) -> Bool {
        if AESGCM.isSealedForm(blob) { return true }
        guard let c = try? JSONDecoder().decode(KeyBackupContents.self, from: Data(blob)) else { return false }
        return c.format == KeyBackupContents.formatName && c.version == 2
    }

    /// A point's key backup blob, checked against its manifest's digest, and the path it is shown as.
    static func read(_ point: RecoveryPoint, _ record: KeyBackupRecord, vault: Vault) throws(DiskVaultError) -> ([UInt8], String) {
        let key = "\(RecoveryPoint.prefix(disk: point.disk))/\(point.id)/\(record.blob)"
        let path = "\(vault.location)/\(key)"
        let blob = try vault.storage.get(key, limit: maxBlobSize)
        if let digest = record.blobDigest, SHA256.digest(blob).hex != digest {
            throw DiskVaultError(.corrupt, "key backup of point \(point.id) is damaged: it does not match the digest in its manifest", path: path)
        }
        return (blob, path)
    }

    /// Whether the keys of `point` are escrowed in `vault` (sealed to its escrow key).
    static func isEscrowed(_ point: RecoveryPoint, in vault: Vault) -> Bool {
        vault.isEncrypted && point.manifest.keyBackup?.escrow == vault.config.id
    }

    /// Opens a point's key backup with the vault's escrow key, without the key vault it came from: each item
    /// checked as signed by that key vault's administrator (or a writer it certified; the key backup, sealed
    /// in the vault, names that administrator) and every part opened.
    static func escrowedItems(of point: RecoveryPoint, vault: Vault, escrowKey: X25519Key) throws(DiskVaultError) -> [KeyVault.OpenedItem] {
        guard let record = point.manifest.keyBackup else {
            throw DiskVaultError(.notFound, "point \(point.id) of disk \(point.disk) carries no key backup")
        }
        guard isEscrowed(point, in: vault) else {
            throw DiskVaultError(.notFound, "the keys of point \(point.id) are sealed only under key vault \(record.keyVault) (id \(record.keyVaultID)): \(vault.keys == nil ? "vault \(vault.location) is not encrypted and keeps no escrow" : "that key vault did not escrow them to vault \(vault.location)")")
        }
        let (blob, path) = try read(point, record, vault: vault)
        guard let contents = try? JSONDecoder().decode(KeyBackupContents.self, from: Data(blob)),
            contents.format == KeyBackupContents.formatName, contents.version == 2,
            contents.keyVaultID == record.keyVaultID, let adminKey = unbase64(contents.adminKey)
        else { throw DiskVaultError(.corrupt, "key backup of point \(point.id) is damaged (not a key backup of key vault \(record.keyVaultID))", path: path) }
        var out: [KeyVault.OpenedItem] = []
        for copy in contents.items {
            guard KeyVault.isItemID(copy.id), let bytes = unbase64(copy.file) else {
                throw DiskVaultError(.corrupt, "key backup of point \(point.id) is damaged (an item is not an item)", path: path)
            }
            let shown = "\(path) (item \(copy.id))"
            let item = try KeyVault.checkItem(bytes, id: copy.id, keyVaultID: contents.keyVaultID, adminKey: adminKey, current: nil, shownAs: shown)
            var parts: [ItemPart: [UInt8]] = [:]
            for name in item.parts.keys.sorted() {
                guard let part = ItemPart(rawValue: name) else { throw DiskVaultError(.corrupt, "item has an unknown part \(name)", path: shown) }
                parts[part] = try KeyVault.openEscrowed(item, part, vaultID: vault.config.id, key: escrowKey, shownAs: shown)
            }
            out.append(KeyVault.OpenedItem(id: copy.id, scope: item.scope, parts: parts))
        }
        return out
    }

    /// Opens a point's key backup with the key vault it came from: every item checked as the key vault's
    /// administrator (or a writer it certified) signed it. A format-1 key backup opens for the administrator
    /// and principals with restore on secrets only (`.permission` for others).
    static func contents(of point: RecoveryPoint, vault: Vault, kv: KeyVault) throws(DiskVaultError) -> OpenedKeyBackup {
        guard let record = point.manifest.keyBackup else {
            throw DiskVaultError(.notFound, "point \(point.id) of disk \(point.disk) carries no key backup")
        }
        guard record.keyVaultID == kv.config.id else {
            throw DiskVaultError(.usage, "key vault \(kv.root) (id \(kv.config.id)) is not the one the keys of point \(point.id) came from (\(record.keyVault), id \(record.keyVaultID))")
        }
        let (blob, path) = try read(point, record, vault: vault)
        if AESGCM.isSealedForm(blob) {
            guard let legacyKey = try kv.legacyKeyBackupKey() else {
                throw DiskVaultError(.permission, "key backup of point \(point.id) was made with key vault format 1: only the administrator or a principal with restore on secrets opens it", path: path)
            }
            guard let plain = AESGCM.open(blob, key: legacyKey, associatedData: Array("keybackup:\(point.disk)/\(point.id)".utf8)),
                let contents = try? JSONDecoder().decode(LegacyKeyBackupContents.self, from: Data(plain))
            else { throw DiskVaultError(.corrupt, "key backup of point \(point.id) is damaged or was not sealed by key vault \(kv.root)", path: path) }
            return .legacy(contents)
        }
        guard let contents = try? JSONDecoder().decode(KeyBackupContents.self, from: Data(blob)),
            contents.format == KeyBackupContents.formatName, contents.version == 2
        else { throw DiskVaultError(.corrupt, "key backup of point \(point.id) is damaged (not a key backup)", path: path) }
        guard contents.keyVaultID == kv.config.id, contents.adminKey == kv.config.adminKey else {
            throw DiskVaultError(.corrupt, "key backup of point \(point.id) names another key vault or administrator than key vault \(kv.root): refused", path: path)
        }
        var items: [CheckedItem] = []
        for copy in contents.items {
            guard KeyVault.isItemID(copy.id), let bytes = unbase64(copy.file) else {
                throw DiskVaultError(.corrupt, "key backup of point \(point.id) is damaged (an item is not an item)", path: path)
            }
            let item = try kv.checkItem(bytes, id: copy.id, current: false, shownAs: "\(path) (item \(copy.id))")
            items.append(CheckedItem(id: copy.id, path: KeyVaultFormat.itemPath(copy.id), bytes: bytes, item: item))
        }
        return .items(items)
    }
}
