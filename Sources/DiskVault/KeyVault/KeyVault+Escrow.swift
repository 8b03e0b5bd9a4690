import Foundation

/// Escrow: a key vault whose administrator names a vault seals every item to that vault's escrow key as well,
/// so that the key backups stored in the vault open with the vault's passphrase after the key vault is lost,
/// and go back into a new one (`KeyRestore`).
extension KeyVault {
    public struct EscrowVault: Codable, Sendable, Equatable {
        public var vaultID: String
        /// Where the vault was when it was added.
        public var vault: String
        public var since: Int
    }

    static func escrowWrapName(_ vaultID: String) -> String { "escrow:\(vaultID)" }

    static func escrowAD(_ kv: String, _ id: String, _ part: ItemPart, _ vaultID: String) -> [UInt8] {
        Array("escrow:\(kv):\(id):\(part.rawValue):\(vaultID)".utf8)
    }

    /// The vaults this key vault escrows to.
    public func escrowVaults() -> [EscrowVault] {
        (policy.escrow ?? [:]).map { EscrowVault(vaultID: $0.key, vault: $0.value.vault, since: $0.value.since) }.sorted { $0.vaultID < $1.vaultID }
    }

    /// Whether the policy escrows to vault `vaultID` with exactly `publicKey`.
    func escrows(to vaultID: String, publicKey: [UInt8]) -> Bool {
        policy.escrow?[vaultID]?.publicKey == Data.base64(publicKey)
    }

    /// Whether every part of `item` is sealed to vault `vaultID`'s escrow key.
    static func isEscrowed(_ item: Item, to vaultID: String) -> Bool {
        !item.parts.isEmpty && item.parts.values.allSatisfy { $0.wraps[escrowWrapName(vaultID)] != nil }
    }

    /// Escrows every item to the vault `vaultID` (its escrow public key `publicKey`): the policy names it, then
    /// every item is sealed again. Adding a vault already named seals again whatever an interrupted add left.
    /// Returns the items moved aside because they did not check or open.
    @discardableResult
    public func addEscrow(vaultID: String, publicKey: [UInt8], location: String) throws(DiskVaultError) -> [String] {
        try requireAdministrator("escrow keys to a vault")
        // A vault id is hex (it goes into wrap names and associated data).
        guard publicKey.count == 32, (1...64).contains(vaultID.count), vaultID.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw DiskVaultError(.usage, "not a vault's escrow key")
        }
        return try withWriteLock { () throws(DiskVaultError) -> [String] in
            try changeEscrow { (p, epoch) in
                p.escrow = (p.escrow ?? [:]).merging([vaultID: .init(publicKey: Data.base64(publicKey), vault: location, since: epoch)]) { old, new in
                    old.publicKey == new.publicKey ? old : new
                }
            }
        }
    }

    /// Stops escrowing to vault `vaultID`: items are sealed again without it. Key backups already in that vault
    /// keep what they were sealed to.
    @discardableResult
    public func removeEscrow(vaultID: String) throws(DiskVaultError) -> [String] {
        try requireAdministrator("stop escrowing keys to a vault")
        return try withWriteLock { () throws(DiskVaultError) -> [String] in
            // A remove interrupted after the policy changed is finished by running it again.
            let wrap = Self.escrowWrapName(vaultID)
            let lingering = policy.escrow?[vaultID] != nil ? true : try loadItems().contains { $0.item.parts.values.contains { $0.wraps[wrap] != nil } }
            guard lingering else {
                throw DiskVaultError(.notFound, "key vault \(root) does not escrow its keys to vault \(vaultID)")
            }
            return try changeEscrow { (p, _) in
                p.escrow?[vaultID] = nil
                if p.escrow?.isEmpty == true { p.escrow = nil }
            }
        }
    }

    /// One change of escrow, safe to interrupt and to run again: the policy with the change at a new epoch,
    /// every item sealed again at that epoch, then the policy recording the re-seal at the epoch after.
    private func changeEscrow(_ change: (inout Policy, Int) -> Void) throws(DiskVaultError) -> [String] {
        guard var admin else { throw DiskVaultError(.permission, "only the key vault administrator can change escrow") }
        let epoch = max(policy.epoch, admin.secrets.epoch) + 1
        admin.secrets.epoch = epoch
        self.admin = admin
        var next = policy
        change(&next, epoch)
        next.epoch = epoch
        try writePolicy(next)
        quarantined = try resealItems()
        next.resealed = epoch
        // One epoch on, so that the interim policy put back is an old copy.
        next.epoch = epoch + 1
        try writePolicy(next)
        return quarantined
    }

    /// A part of a key backup's item in clear, opened with a vault's escrow key; nil when the item has no such
    /// part; `.permission` when the part is not sealed to that vault.
    static func openEscrowed(
        _ item: Item, _ part: ItemPart, vaultID: String, key: X25519Key, shownAs full: String
    ) throws(DiskVaultError) -> [UInt8]? {
        guard let sealed = item.parts[part.rawValue] else { return nil }
        guard let wrap = sealed.wraps[escrowWrapName(vaultID)] else {
            throw DiskVaultError(.permission, "item is not escrowed to vault \(vaultID)", path: full)
        }
        guard let wrapped = unbase64(wrap.box),
            let partKey = SealedToKey.open(wrapped, with: key, associatedData: escrowAD(item.keyVault, item.id, part, vaultID)),
            let box = unbase64(sealed.box),
            let plain = AESGCM.open(box, key: partKey, associatedData: partAD(item.keyVault, item.id, part))
        else { throw DiskVaultError(.corrupt, "item is damaged (its \(part.rawValue) does not open with the vault's escrow key)", path: full) }
        return plain
    }
}
