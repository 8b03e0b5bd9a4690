import Foundation

extension KeyVault {
    // MARK: access

    /// Grants `principal` permissions and returns the credential file's contents. Granting again replaces the
    /// permissions and the credential: the old credential stops working, and every capability it held gets a
    /// new key (as on revocation), so what it copied out opens nothing written from now on.
    public func grantAccess(principal: String, keys: [Permission], secrets: [Permission]) throws(DiskVaultError) -> [UInt8] {
        try requireAdministrator("grant access")
        try Self.validatePrincipalName(principal)
        return try withWriteLock { () throws(DiskVaultError) -> [UInt8] in
            let grant = Grant(keys: keys, secrets: secrets)
            let rotated = policy.principals[principal].map { Capability.held(by: $0.grant) } ?? []
            return try changeAccess(issue: (principal, grant), removing: nil, rotating: rotated)!
        }
    }

    /// Revokes a principal: its slot goes, every capability it held gets a new key, and every item is sealed
    /// again under new part keys. A secret set afterwards is unreadable to it even with an old copy of every file.
    public func revokeAccess(principal: String) throws(DiskVaultError) {
        try requireAdministrator("revoke access")
        try Self.validatePrincipalName(principal)
        try withWriteLock { () throws(DiskVaultError) in
            guard let entry = policy.principals[principal] else {
                throw DiskVaultError(.notFound, "principal \(principal) has no access to key vault \(root)")
            }
            _ = try changeAccess(issue: nil, removing: principal, rotating: Capability.held(by: entry.grant))
        }
    }

    /// Issues `principal` a new credential with the same grant; the old one stops working, as on revocation.
    public func rotateCredential(principal: String) throws(DiskVaultError) -> [UInt8] {
        try requireAdministrator("rotate a credential")
        try Self.validatePrincipalName(principal)
        return try withWriteLock { () throws(DiskVaultError) -> [UInt8] in
            guard let entry = policy.principals[principal] else {
                throw DiskVaultError(.notFound, "principal \(principal) has no access to key vault \(root)")
            }
            return try changeAccess(issue: (principal, entry.grant), removing: nil, rotating: Capability.held(by: entry.grant))!
        }
    }

    public func accessPolicy() throws(DiskVaultError) -> [String: Grant] {
        policy.principals.mapValues(\.grant)
    }

    /// One change of access, in an order that a crash at any point leaves safe and that running the same
    /// command again finishes: (1) keyvault.json with new generations of the rotated capabilities; (2) when a
    /// principal's key leaves (revoke, rotate, grant again): the policy as it was but at the new epoch, then
    /// every item sealed again at that epoch under new part keys to the newest keys and signed by the
    /// administrator — while the leaving principal is still named, so the items it wrote are accepted one last
    /// time — and anything that does not check or open moved aside (never a veto on the change); (3) the slots
    /// of everyone who keeps a rotated capability, the issued one, the removed one deleted; (4) the policy,
    /// naming the new keys and recording the re-seal, so that an item older than it is an old copy, at the next
    /// epoch, so that the interim policy is an old copy too.
    func changeAccess(issue: (String, Grant)?, removing: String?, rotating: Set<Capability>) throws(DiskVaultError) -> [UInt8]? {
        guard var admin else { throw DiskVaultError(.permission, "only the key vault administrator can change access") }
        quarantined = []
        let epoch = max(self.policy.epoch, admin.secrets.epoch) + 1
        let current = self.policy
        let leaving = removing ?? issue.flatMap { current.principals[$0.0] != nil ? $0.0 : nil }
        // (1) New generations.
        for c in rotating.sorted() {
            let gen = max(current.key(c)?.generation ?? 0, capabilityKeys[c]?.keys.max() ?? 0) + 1
            let k = X25519Key.generate()
            admin.secrets.capabilities[c.rawValue, default: [:]][String(gen)] = Data.base64(k.privateKey)
            capabilityKeys[c, default: [:]][gen] = k
        }
        admin.secrets.epoch = epoch
        // keyvault.json changes only when keys were made (a new principal needs none): an upgrade grants its
        // principals before it writes keyvault.json, which is its commit.
        if !rotating.isEmpty { try writeAdminSecrets(admin.secrets, key: admin.sealingKey) }
        self.admin = admin
        // (2) Every item sealed again, at the new epoch.
        var policy = self.policy
        var resealed = false
        if leaving != nil || !rotating.isEmpty {
            var interim = self.policy
            interim.epoch = epoch
            try writePolicy(interim)
            quarantined = try resealItems()
            resealed = true
        }
        for c in Capability.allCases {
            if let (gen, key) = sealingKey(c) { policy.capabilities[c.rawValue] = .init(generation: gen, publicKey: Data.base64(key)) }
        }
        // (3) Slots.
        var credential: [UInt8]? = nil
        policy.epoch = epoch
        if resealed { policy.resealed = epoch }
        if let removing {
            policy.principals[removing] = nil
            try? FileSystem.remove("\(root)/\(KeyVaultFormat.slotPath(removing))")
        }
        if let (name, grant) = issue {
            let secret = SecureRandom.bytes(32)
            let (box, signing) = Self.credentialKeys(secret, keyVault: config.id)
            policy.principals[name] = .init(keys: grant.keys, secrets: grant.secrets, boxKey: Data.base64(box.publicKey),
                                            signingKey: Data.base64(signing.publicKey), since: epoch)
            credential = try JSON.encode(CredentialFile(
                format: KeyVaultFormat.credentialFormat, version: KeyVaultFormat.version, keyVault: config.id, principal: name,
                adminKey: config.adminKey, secret: Data.base64(secret)))
        }
        for (name, entry) in policy.principals.sorted(by: { $0.key < $1.key }) {
            let held = Capability.held(by: entry.grant)
            guard name == issue?.0 || !held.isDisjoint(with: rotating) else { continue }
            try writeSlot(name, entry, epoch: epoch)
        }
        // (4) The policy, one epoch after the interim one (which still names the leaving principal), so that a
        // copy of the interim put back is older than what this host saw.
        if resealed { policy.epoch = epoch + 1 }
        try writePolicy(policy)
        return credential
    }

    /// Writes `name`'s slot: every generation of each capability its grant names, sealed to its box key, and
    /// its writer certificate.
    func writeSlot(_ name: String, _ entry: Policy.PrincipalEntry, epoch: Int) throws(DiskVaultError) {
        guard isAdministrator, let boxKey = unbase64(entry.boxKey) else { throw DiskVaultError(.corrupt, "principal \(name) has a damaged box key in the policy") }
        var sealed: [String: [String: String]] = [:]
        for c in Capability.held(by: entry.grant) {
            for (gen, key) in capabilityKeys[c] ?? [:] {
                guard let box = SealedToKey.seal(key.privateKey, to: boxKey, associatedData: Self.slotAD(config.id, name, c, gen)) else {
                    throw DiskVaultError(.corrupt, "cannot seal capability \(c.rawValue) for principal \(name)")
                }
                sealed[c.rawValue, default: [:]][String(gen)] = Data.base64(box)
            }
        }
        let cert = WriterCertificate(keyVault: config.id, principal: name, signingKey: entry.signingKey, keys: entry.keys, secrets: entry.secrets, since: entry.since)
        let certPayload = try JSON.encode(cert, pretty: false)
        let certPath = KeyVaultFormat.writerPath(name)
        let certFile = SignedFile(
            format: KeyVaultFormat.signedFormat, kind: "writer", payload: Data.base64(certPayload), signer: "admin",
            signature: Data.base64(signer.key.sign(SignedFile.message(kind: "writer", path: certPath, payload: certPayload))), certificate: nil)
        let slot = Slot(keyVault: config.id, principal: name, epoch: epoch, boxKey: entry.boxKey, capabilities: sealed,
                        certificate: Data.base64(try JSON.encode(certFile, pretty: false)))
        try writeSigned(slot, kind: "slot", path: KeyVaultFormat.slotPath(name))
    }

    /// Seals every item again, under new part keys and the newest capability keys, signed by the administrator,
    /// keeping each item's id, at the current policy's epoch. An item that does not check or open is moved to
    /// quarantine/ (returned, for the caller to name) rather than stop the change: whoever can write the folder
    /// must not be able to veto a revocation.
    func resealItems() throws(DiskVaultError) -> [String] {
        let epoch = policy.epoch
        itemCache = [:]
        var moved: [String] = []
        let dir = "\(root)/\(KeyVaultFormat.itemsDirectory)"
        for name in try FileSystem.list(dir).sorted() {
            // Under the write lock a temporary file is a dead writer's: it may hold an item sealed to keys the
            // change takes away (a revoked capability, a vault no longer escrowed to), so it goes.
            if FileSystem.isAtomicWriteTemporary(name) {
                try? FileSystem.remove("\(dir)/\(name)")
                continue
            }
            let path = KeyVaultFormat.itemPath(name)
            let full = "\(root)/\(path)"
            do throws(DiskVaultError) {
                guard Self.isItemID(name) else { throw DiskVaultError(.corrupt, "is not a key vault item", path: full) }
                let bytes = try FileSystem.readRegularFile(full, limit: KeyVaultFormat.maxItemSize)
                let item = try checkItem(bytes, id: name, current: true)
                var parts: [(ItemPart, [UInt8])] = []
                var kind: KeyKind? = nil
                if item.scope == .keys, let listing = try decodePart(KeyListing.self, item, .listing, shownAs: full) { kind = listing.kind }
                for partName in item.parts.keys.sorted() {
                    guard let part = ItemPart(rawValue: partName), let plain = try openPart(item, part, shownAs: full) else {
                        throw DiskVaultError(.corrupt, "item has a part the administrator cannot open (\(partName))", path: full)
                    }
                    parts.append((part, plain))
                }
                guard item.parts[ItemPart.listing.rawValue] != nil else { throw DiskVaultError(.corrupt, "item has no listing", path: full) }
                try writeItem(try sealItem(id: name, scope: item.scope, kind: kind, parts: parts, epoch: epoch), replacing: true)
            } catch where error.code == .corrupt || error.code == .permission {
                let aside = "\(root)/quarantine"
                try FileSystem.makeDirectories(aside)
                try FileSystem.rename(full, "\(aside)/\(name).\(randomHex(4))", doing: "cannot move aside")
                moved.append("\(full): \(error.message)")
            }
        }
        if admin?.secrets.legacyKeyBackupKey != nil { try writeLegacy() }
        itemCache = [:]
        return moved
    }

    func writeAdminSecrets(_ secrets: AdminSecrets, key: [UInt8]) throws(DiskVaultError) {
        var config = self.config
        config.sealedAdmin = try Self.sealAdmin(secrets, key: key, id: config.id)
        try FileSystem.writeFileAtomically("\(root)/keyvault.json", try JSON.encode(config))
        self.config = config
        KeyVaultHighWater.record(config.id, epoch: secrets.epoch)
    }

    /// Seals the administrator's keys under a new passphrase (new salt; `logN` as given, or as before).
    public func changePassphrase(_ passphrase: [UInt8], logN: Int? = nil) throws(DiskVaultError) {
        try requireAdministrator("change the passphrase")
        if let logN, !(10...20).contains(logN) { throw DiskVaultError(.usage, "--kdf-work-factor must be from 10 to 20") }
        guard !passphrase.isEmpty else { throw DiskVaultError(.usage, "the key vault passphrase is empty") }
        try withWriteLock { () throws(DiskVaultError) in
            guard let admin else { return }
            let (kdf, key) = try Self.newKDF(passphrase, logN: logN ?? config.kdf.logN)
            var config = self.config
            config.kdf = kdf
            config.sealedAdmin = try Self.sealAdmin(admin.secrets, key: key, id: config.id)
            try FileSystem.writeFileAtomically("\(root)/keyvault.json", try JSON.encode(config))
            self.config = config
            self.admin = (admin.secrets, key)
        }
    }

    // MARK: format-1 key backups

    /// legacy.json: the format-1 key-backup key sealed to the current `secrets.restore` key.
    func writeLegacy() throws(DiskVaultError) {
        guard let key = admin?.secrets.legacyKeyBackupKey.flatMap(unbase64), let (generation, publicKey) = sealingKey(.secretsRestore),
            let box = SealedToKey.seal(key, to: publicKey, associatedData: Array("legacy:\(config.id):\(generation)".utf8))
        else { return }
        try writeSigned(Legacy(keyVault: config.id, generation: generation, sealedKey: Data.base64(box)), kind: "legacy", path: KeyVaultFormat.legacyPath)
    }

    /// The format-1 key-backup key, for the administrator and principals with restore on secrets; nil when
    /// this key vault was never upgraded from format 1 or the opener may not have it.
    func legacyKeyBackupKey() throws(DiskVaultError) -> [UInt8]? {
        if let admin { return admin.secrets.legacyKeyBackupKey.flatMap(unbase64) }
        guard FileSystem.exists("\(root)/\(KeyVaultFormat.legacyPath)") else { return nil }
        let legacy: Legacy = try Self.readAdminSigned(root: root, path: KeyVaultFormat.legacyPath, kind: "legacy", adminKey: adminPublicKey)
        guard let key = capabilityKeys[.secretsRestore]?[legacy.generation], let box = unbase64(legacy.sealedKey) else { return nil }
        guard let plain = SealedToKey.open(box, with: key, associatedData: Array("legacy:\(config.id):\(legacy.generation)".utf8)) else {
            throw DiskVaultError(.corrupt, "legacy.json is damaged", path: "\(root)/\(KeyVaultFormat.legacyPath)")
        }
        return plain
    }
}
