import Foundation

/// The storage of an encrypted vault: every object AES-256-GCM sealed on its way in and opened on its way out,
/// bound to the vault and to its own key (`VaultKeys.associatedData`), so that an object renamed, swapped with
/// another or planted by someone without the key does not open. Chunk blobs are sealed with the blob key,
/// everything else with the metadata key; objects read a piece at a time (indexes) are sealed in segments
/// (`SealedObjectWriter`). Left in clear: vault.json (it holds the sealed master key and its KDF parameters)
/// and the lock holders' records under locks/ (who holds which lock). Names are the backend's: disk names, point
/// ids, policy names, job ids and chunk names (HMAC-SHA256 of the plaintext under the naming key).
public final class EncryptedStorage: VaultStorage {
    public let inner: any VaultStorage
    let keys: VaultKeys
    let vaultID: String

    public init(_ inner: any VaultStorage, keys: VaultKeys, vaultID: String) {
        self.inner = inner
        self.keys = keys
        self.vaultID = vaultID
    }

    public var location: String { inner.location }

    /// The two objects that are never sealed.
    static func isClear(_ key: String) -> Bool { key == "vault.json" || key.hasPrefix("locks/") }
    static func isBlob(_ key: String) -> Bool { key.hasPrefix("chunks/") }

    func sealKey(_ key: String) -> [UInt8] { Self.isBlob(key) ? keys.blob : keys.metadata }
    func ad(_ key: String) -> [UInt8] { VaultKeys.associatedData(vaultID: vaultID, key: key) }

    func seal(_ key: String, _ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        AESGCM.seal(bytes, key: sealKey(key), associatedData: ad(key))
    }

    func refused(_ key: String) -> DiskVaultError {
        DiskVaultError(.corrupt, "is damaged or was not written for this place in this vault (it does not open with the vault's key)", path: "\(location)/\(key)")
    }

    public func prepareNewVault() throws(DiskVaultError) { try inner.prepareNewVault() }
    public func containerExists() throws(DiskVaultError) -> Bool { try inner.containerExists() }

    public func putIfAbsent(_ key: String, _ parts: [UnsafeRawBufferPointer], durable: Bool) throws(DiskVaultError) -> Bool {
        if Self.isClear(key) { return try inner.putIfAbsent(key, parts, durable: durable) }
        let sealed: [UInt8]
        if parts.count == 1 {
            sealed = seal(key, parts[0])
        } else {
            var joined: [UInt8] = []
            for p in parts { joined.append(contentsOf: p) }
            sealed = joined.withUnsafeBytes { seal(key, $0) }
        }
        return try sealed.withBytes { (b) throws(DiskVaultError) in try inner.putIfAbsent(key, [b], durable: durable) }
    }

    public func replace(_ key: String, _ bytes: [UInt8]) throws(DiskVaultError) {
        if Self.isClear(key) { return try inner.replace(key, bytes) }
        try inner.replace(key, bytes.withUnsafeBytes { seal(key, $0) })
    }

    public func get(_ key: String, limit: Int) throws(DiskVaultError) -> [UInt8] {
        if Self.isClear(key) { return try inner.get(key, limit: limit) }
        let box = try inner.get(key, limit: limit + AESGCM.overhead)
        guard let plain = AESGCM.open(box, key: sealKey(key), associatedData: ad(key)) else { throw refused(key) }
        return plain
    }

    /// A blob's seal: magic and nonce before it, the tag after.
    public var blobFraming: (before: Int, after: Int) { (AESGCM.overhead - 16, 16) }

    /// Reads the sealed object into the buffer `destination` gives for its sealed size, opens it there and
    /// returns the plaintext where it lies (`blobFraming.before` bytes in): no byte is moved.
    public func read(
        _ key: String, into destination: (Int) -> UnsafeMutableRawBufferPointer
    ) throws(DiskVaultError) -> UnsafeRawBufferPointer {
        if Self.isClear(key) { return try inner.read(key, into: destination) }
        let got = try inner.read(key, into: destination)
        guard let base = got.baseAddress else { throw refused(key) }
        let box = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: base), count: got.count)
        guard let plain = AESGCM.openWhereItLies(box, key: sealKey(key), associatedData: ad(key)) else { throw refused(key) }
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(box)[plain])
    }

    /// The plaintext's size, from the sealed object's: a sealed box adds `AESGCM.overhead`; a streamed object
    /// (`makeWriter`) its header and each 64 KiB segment's nonce and tag. Which of the two an index is only its
    /// first bytes say (it may have been put whole), so they are read.
    public func head(_ key: String) throws(DiskVaultError) -> UInt64? {
        guard let sealed = try inner.head(key) else { return nil }
        return try plaintextSize(key, sealed: sealed)
    }

    /// `head`'s answer for an object of `sealed` bytes stored under `key`.
    private func plaintextSize(_ key: String, sealed: UInt64) throws(DiskVaultError) -> UInt64 {
        if Self.isClear(key) { return sealed }
        if Self.mayBeStream(key), try isStream(key) { return SealedObjectStream.plaintextSize(sealedSize: sealed) }
        return sealed >= UInt64(AESGCM.overhead) ? sealed - UInt64(AESGCM.overhead) : 0
    }

    /// Keys the vault writes with `makeWriter`: a point's index.
    static func mayBeStream(_ key: String) -> Bool { key.hasSuffix("/index") }

    /// Whether the object begins as a sealed stream (else it is read as a sealed box).
    func isStream(_ key: String) throws(DiskVaultError) -> Bool {
        let reader: any ObjectReader
        do {
            reader = try inner.makeReader(key)
        } catch where error.code == .notFound {
            return false
        }
        var prefix = [UInt8](repeating: 0, count: 5)
        var got = 0
        while got < prefix.count {
            let n = try prefix.withMutableBytes { (b) throws(DiskVaultError) in
                try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: b[got...]), at: UInt64(got))
            }
            guard n > 0 else { break }
            got += n
        }
        return SealedObjectStream.isSealedForm(Array(prefix[..<got]))
    }

    public func list(_ prefix: String) throws(DiskVaultError) -> [String] { try inner.list(prefix) }
    public func delete(_ key: String) throws(DiskVaultError) { try inner.delete(key) }
    public func delete(batch keys: [String]) throws(DiskVaultError) -> [(key: String, problem: String)] { try inner.delete(batch: keys) }

    /// Sizes as `head` gives them, from the inner listing (an object that may be a stream has its first bytes read).
    public func listSizes(_ prefix: String) throws(DiskVaultError) -> [(name: String, size: UInt64)] {
        var out: [(name: String, size: UInt64)] = []
        for (name, sealed) in try inner.listSizes(prefix) { out.append((name, try plaintextSize("\(prefix)/\(name)", sealed: sealed))) }
        return out
    }
    public func barrier() throws(DiskVaultError) { try inner.barrier() }

    public func putBlobIfAbsent(_ key: String, padded: UnsafeRawBufferPointer, length: Int) throws(DiskVaultError) -> Bool {
        let sealed = seal(key, UnsafeRawBufferPointer(rebasing: padded[..<length]))
        return try sealed.withBytes { (b) throws(DiskVaultError) in try inner.putIfAbsent(key, [b], durable: false) }
    }

    /// Sealed where it lies when `scratch` has room, then written from there as a clear blob would be.
    public func putBlobIfAbsent(_ key: String, scratch: UnsafeMutableRawBufferPointer, length: Int) throws(DiskVaultError) -> Bool {
        guard scratch.count >= Blob.directIOLength(length + AESGCM.overhead) else {
            return try putBlobIfAbsent(key, padded: UnsafeRawBufferPointer(scratch), length: length)
        }
        let sealed = AESGCM.sealInPlace(scratch, length: length, key: keys.blob, associatedData: ad(key))
        return try inner.putBlobIfAbsent(key, padded: UnsafeRawBufferPointer(rebasing: scratch[..<Blob.directIOLength(sealed)]), length: sealed)
    }

    public func replaceBlob(_ key: String, _ blob: UnsafeRawBufferPointer) throws(DiskVaultError) {
        let sealed = seal(key, blob)
        try sealed.withBytes { (b) throws(DiskVaultError) in try inner.replaceBlob(key, b) }
    }

    public func makeReader(_ key: String) throws(DiskVaultError) -> any ObjectReader {
        try SealedObjectReader(try inner.makeReader(key), key: keys.metadata, associatedData: ad(key), source: "\(location)/\(key)")
    }

    public func makeWriter(_ key: String) throws(DiskVaultError) -> any ObjectWriter {
        SealedObjectWriter(try inner.makeWriter(key), key: keys.metadata, associatedData: ad(key))
    }

    public func tryLock(_ name: String, _ mode: LockMode, record: [UInt8]?) throws(DiskVaultError) -> (any StorageLock)? {
        try inner.tryLock(name, mode, record: record)
    }

    public func lockRecords(_ name: String) throws(DiskVaultError) -> [LockRecordEntry] { try inner.lockRecords(name) }
}
