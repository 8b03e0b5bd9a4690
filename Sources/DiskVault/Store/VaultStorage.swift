import Foundation
/// The narrow interface every vault access goes through: put-if-absent, get, head, list, delete.
/// Keys are relative paths ("chunks/ab12/ab12…", "disks/web/points/ID/manifest.json"). The local directory is
/// the default backend; an object store implements the same five verbs.
public protocol VaultStorage: VaultLocking {
    /// Where the vault lives, for messages.
    var location: String { get }

    /// Readies the container of a new vault (a directory: made, with its folders; an object store: nothing to
    /// make) before vault.json is put, last. Refuses one that holds a vault or anything else worth keeping; takes
    /// over one that holds only what an interrupted create left.
    func prepareNewVault() throws(DiskVaultError)

    /// Whether the vault's container is there at all, so that a missing vault and something that is not a
    /// vault are told apart.
    func containerExists() throws(DiskVaultError) -> Bool

    /// Stores `parts` (concatenated) under `key` unless the key exists; returns false when it did.
    /// An object appears whole or not at all. With `durable`, it is on stable storage when this returns;
    /// otherwise only after the next `barrier()`.
    func putIfAbsent(_ key: String, _ parts: [UnsafeRawBufferPointer], durable: Bool) throws(DiskVaultError) -> Bool

    /// Stores `bytes` under `key`, replacing what was there, atomically and durably (small metadata only).
    func replace(_ key: String, _ bytes: [UInt8]) throws(DiskVaultError)

    /// The whole object, at most `limit` bytes (a larger one is an error, never an allocation).
    func get(_ key: String, limit: Int) throws(DiskVaultError) -> [UInt8]

    /// How a stored blob frames the blob its writer gave: bytes before it and after it (an encrypted vault's
    /// seal), so that a reader can leave room for them and have the blob land where it wants.
    var blobFraming: (before: Int, after: Int) { get }

    /// Reads the object into the buffer `destination` gives for the size it is stored at, and returns the
    /// object's bytes, which lie in that buffer (at its start, or `blobFraming.before` bytes in when the storage
    /// unseals them in place). An object larger than that buffer is corrupt.
    func read(
        _ key: String, into destination: (Int) -> UnsafeMutableRawBufferPointer
    ) throws(DiskVaultError) -> UnsafeRawBufferPointer

    /// The object's size, or nil when it does not exist.
    func head(_ key: String) throws(DiskVaultError) -> UInt64?

    /// Names directly under `prefix` (a folder-like key ending without "/"): objects and sub-folders.
    func list(_ prefix: String) throws(DiskVaultError) -> [String]

    func delete(_ key: String) throws(DiskVaultError)
    /// Deletes every key, as `delete` does (a missing one is no error); returns the keys that could not be
    /// deleted, with why. An object store deletes a thousand a request.
    func delete(batch keys: [String]) throws(DiskVaultError) -> [(key: String, problem: String)]
    /// The objects directly under `prefix` with their sizes as `head` gives them (folders left out): one
    /// listing, where `list` and a `head` each would cost an object store a request an object.
    func listSizes(_ prefix: String) throws(DiskVaultError) -> [(name: String, size: UInt64)]

    /// Makes every object put so far durable (one flush rather than one per object).
    func barrier() throws(DiskVaultError)

    /// `putIfAbsent` of a chunk blob of `length` bytes at the start of `padded`, a 4 KiB-aligned buffer at least
    /// `length` rounded up to 4 KiB long, so that a backend may write it with direct I/O. Durable after `barrier()`.
    func putBlobIfAbsent(_ key: String, padded: UnsafeRawBufferPointer, length: Int) throws(DiskVaultError) -> Bool

    /// `putBlobIfAbsent` of the blob of `length` bytes at the start of `scratch`, a 4 KiB-aligned buffer the
    /// blob's writer owns whole and gives up: the storage may overwrite it (an encrypted vault seals the blob in
    /// it, with no copy, and still writes it with direct I/O).
    func putBlobIfAbsent(_ key: String, scratch: UnsafeMutableRawBufferPointer, length: Int) throws(DiskVaultError) -> Bool

    /// Stores a chunk blob under `key` whether or not one is there: for a blob known to be damaged, which must
    /// never count as present. The new blob is written whole first and then put over the old one atomically.
    /// Durable after `barrier()`.
    func replaceBlob(_ key: String, _ blob: UnsafeRawBufferPointer) throws(DiskVaultError)

    /// Opens the object for reading a piece at a time. Throws `notFound` when it does not exist.
    func makeReader(_ key: String) throws(DiskVaultError) -> any ObjectReader

    /// A new object under `key`, written as it grows and put in place by `commitIfAbsent`.
    func makeWriter(_ key: String) throws(DiskVaultError) -> any ObjectWriter
}

extension VaultStorage {
    public func delete(batch keys: [String]) throws(DiskVaultError) -> [(key: String, problem: String)] {
        var failed: [(key: String, problem: String)] = []
        for key in keys {
            do { try delete(key) } catch { failed.append((key, "\(error)")) }
        }
        return failed
    }

    public func listSizes(_ prefix: String) throws(DiskVaultError) -> [(name: String, size: UInt64)] {
        var out: [(name: String, size: UInt64)] = []
        for name in try list(prefix) {
            if let size = try head("\(prefix)/\(name)") { out.append((name, size)) }
        }
        return out
    }

    /// Reads the object into `buffer`; its length. An object larger than the buffer is corrupt.
    public func read(_ key: String, into buffer: UnsafeMutableRawBufferPointer) throws(DiskVaultError) -> Int {
        let got = try read(key, into: { _ in buffer })
        if let from = got.baseAddress, let to = buffer.baseAddress, from != UnsafeRawPointer(to) { memmove(to, from, got.count) }
        return got.count
    }

    public var blobFraming: (before: Int, after: Int) { (0, 0) }

    public func putBlobIfAbsent(_ key: String, padded: UnsafeRawBufferPointer, length: Int) throws(DiskVaultError) -> Bool {
        try putIfAbsent(key, [UnsafeRawBufferPointer(rebasing: padded[..<length])], durable: false)
    }

    public func putBlobIfAbsent(_ key: String, scratch: UnsafeMutableRawBufferPointer, length: Int) throws(DiskVaultError) -> Bool {
        try putBlobIfAbsent(key, padded: UnsafeRawBufferPointer(rebasing: scratch[..<min(Blob.directIOLength(length), scratch.count)]), length: length)
    }

    public func putIfAbsent(_ key: String, _ bytes: [UInt8], durable: Bool) throws(DiskVaultError) -> Bool {
        try bytes.withBytes { (b) throws(DiskVaultError) in try putIfAbsent(key, [b], durable: durable) }
    }
}

/// Whether a lock admits other holders beside it.
public enum LockMode: String, Sendable, Codable {
    case shared, exclusive
}

/// A lock this process holds on a vault. The backend, not a file's contents, decides who holds it: the kernel
/// (flock) for a local vault, so a holder that dies loses it at once and take-over is atomic; a lease renewed
/// by a conditional write for an object store.
public protocol StorageLock: AnyObject, Sendable {
    /// The key of the record that names this holder to others, or nil when it could not be written.
    var recordKey: String? { get }
    /// Why the record could not be written (a full disk, say): the lock holds all the same.
    var recordProblem: String? { get }
    /// Releases the lock and removes its record; calling it again does nothing.
    func release()
}

/// A holder's record as found under locks/: its bytes, or nil when it cannot be read (cut short by a crash,
/// not a regular file, too large).
public struct LockRecordEntry: Sendable {
    public var key: String
    public var bytes: [UInt8]?
    /// Whether the holder's lease ran out (an object store's locks); nil where the storage has no leases.
    public var leaseExpired: Bool?

    public init(key: String, bytes: [UInt8]?, leaseExpired: Bool? = nil) {
        self.key = key
        self.bytes = bytes
        self.leaseExpired = leaseExpired
    }
}

/// The lock verbs a vault's storage offers.
public protocol VaultLocking: Sendable {
    /// Takes lock `name` in `mode` without waiting; nil when a holder in a conflicting mode has it. While held,
    /// `record` (when given) is kept under locks/ as `<name>@<token>.json`, information only: it names the
    /// holder in other runs' messages and outlives a holder that died until a later exclusive holder removes it.
    func tryLock(_ name: String, _ mode: LockMode, record: [UInt8]?) throws(DiskVaultError) -> (any StorageLock)?

    /// Every record of lock `name`'s holders, the caller's own and those left by dead holders included.
    func lockRecords(_ name: String) throws(DiskVaultError) -> [LockRecordEntry]
}
