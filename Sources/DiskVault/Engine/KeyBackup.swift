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

/// The sealed contents of a point's "keys" blob: the secret versions and the KEKs that wrap them.
struct KeyBackupContents: Codable {
    var keyVaultID: String
    var secrets: [KeyVault.SecretRecord]
    var keys: [KeyVault.KeyRecord]
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
            var bek: [UInt8]
            var bytes: VolumeBytes
            var encryption: VolumeEncryption
            /// The previous point's check, when it still holds.
            var reused: KeyCheckResult?
        }
        var record: KeyBackupRecord
        var contents: KeyBackupContents
        var volumes: [Volume]
        var sealKey: [UInt8]
        var associatedData: [UInt8]
        var keyVault: String

        /// Whether `finish` has real work to do (a key to check), worth a thread of its own.
        var needsCheck: Bool { volumes.contains { $0.reused == nil } }

        /// Checks each key that needs it and seals the backup; throws when a key does not open its volume.
        func finish() throws(DiskVaultError) -> (KeyBackupRecord, [UInt8]) {
            var record = self.record
            for v in volumes {
                let check: KeyCheckResult
                if let reused = v.reused {
                    check = reused
                } else {
                    check = try KeyCheck.check(bek: v.bek, volume: v.bytes, encryption: v.encryption, source: "secret \(v.secret.name)")
                }
                if case .doesNotFit(let why) = check {
                    throw DiskVaultError(.permission, "the key in secret \(v.secret.name) version \(v.secret.version) of key vault \(keyVault) does not open \(v.label): \(why)")
                }
                var entry = v.entry
                entry.check = check.status
                entry.checkDetail = check.detail
                record.volumes.append(entry)
            }
            let blob = AESGCM.seal(try JSON.encode(contents, pretty: false), key: sealKey, associatedData: associatedData)
            record.blobDigest = SHA256.digest(blob).hex
            return (record, blob)
        }
    }

    /// Before any data is read: checks the principal's permissions and finds and unwraps each encrypted
    /// volume's secret. Throws, writing nothing, when any of this fails; the key checks are left to the plan.
    static func plan(
        layout: DiskLayout, disk: String, pointID: String, access: KeyVaultAccess, file: FileDescriptor, image: String,
        previous: KeyBackupRecord? = nil
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
            contents: KeyBackupContents(keyVaultID: kv.config.id, secrets: [], keys: []),
            volumes: [], sealKey: kv.keyBackupKey, associatedData: Array("keybackup:\(disk)/\(pointID)".utf8), keyVault: access.keyVault)
        for v in encryptedVolumes(layout) {
            let ids = volumeIDs(v, disk: disk)
            var found: KeyVault.SecretRecord? = nil
            for id in ids where found == nil { found = try kv.secret(forVolume: id) }
            guard let secret = found else {
                throw DiskVaultError(.notFound, "no secret in key vault \(access.keyVault) for \(label(v)): add one with `diskvault keyvault secret set \(access.keyVault) --name NAME --file KEY --volume \(ids.first ?? disk)`")
            }
            let bek = try kv.unwrappedValue(of: secret)
            let volume = VolumeBytes(file: file, image: image, offset: v.offset, size: v.size)
            let headerDigest = try luksHeaderDigest(volume, v.encryption)
            let secretMAC = HMACSHA256.authenticationCode(key: kv.keyBackupKey, message: Array(secret.value.utf8)).hex
            var reused: KeyCheckResult? = nil
            if let digest = headerDigest,
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
            if !plan.contents.secrets.contains(secret) { plan.contents.secrets.append(secret) }
            if let wrap = secret.wrap {
                let kek = try kv.key(name: wrap.key, version: wrap.keyVersion)
                if !plan.contents.keys.contains(kek) { plan.contents.keys.append(kek) }
                entry.keyVersion = kek.version
            }
            plan.volumes.append(Plan.Volume(
                entry: entry, label: label(v), secret: secret, bek: bek, bytes: volume, encryption: v.encryption, reused: reused))
        }
        return plan
    }

    /// SHA-256 of a LUKS volume's header and key slots (everything before the payload, at most 32 MiB).
    static func luksHeaderDigest(_ volume: VolumeBytes, _ e: VolumeEncryption) throws(DiskVaultError) -> String? {
        guard e.format.isLUKS, let end = e.payloadOffset, end > 0, end <= 32 << 20 else { return nil }
        return SHA256.digest(try volume.read(0, Int(end), what: "LUKS header").bytes).hex
    }

    /// Opens a point's key backup with the key vault it came from.
    static func contents(of point: RecoveryPoint, vault: Vault, kv: KeyVault) throws(DiskVaultError) -> KeyBackupContents {
        guard let record = point.manifest.keyBackup else {
            throw DiskVaultError(.notFound, "point \(point.id) of disk \(point.disk) carries no key backup")
        }
        guard record.keyVaultID == kv.config.id else {
            throw DiskVaultError(.usage, "key vault \(kv.root) (id \(kv.config.id)) is not the one the keys of point \(point.id) came from (\(record.keyVault), id \(record.keyVaultID))")
        }
        let key = "\(RecoveryPoint.prefix(disk: point.disk))/\(point.id)/\(record.blob)"
        let blob = try vault.storage.get(key, limit: maxBlobSize)
        guard let plain = AESGCM.open(blob, key: kv.keyBackupKey, associatedData: Array("keybackup:\(point.disk)/\(point.id)".utf8)),
            let contents = try? JSONDecoder().decode(KeyBackupContents.self, from: Data(plain))
        else { throw DiskVaultError(.corrupt, "key backup of point \(point.id) is damaged or was not sealed by key vault \(kv.root)", path: "\(vault.location)/\(key)") }
        return contents
    }
}
