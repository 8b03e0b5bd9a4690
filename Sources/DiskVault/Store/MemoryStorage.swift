import Synchronization

/// A vault held in this process's memory: every `VaultStorage` and `VaultLocking` verb over a dictionary of
/// objects, for tests of the engine and of the storage suite. Keys are folder-like as on disk (folders exist while
/// they hold an object); an object is put whole under the mutex, so it appears whole or not at all; locks are
/// leases in this process, their holders' records objects under locks/ as a local vault keeps them.
public final class MemoryStorage: VaultStorage {
    public let location: String
    private let state = Mutex(State())

    private struct State {
        var objects: [String: [UInt8]] = [:]
        var leases: [String: Lease] = [:]
        var nextToken = 0
    }

    /// Who holds a lock now: shared holders by count, or one exclusive holder.
    private enum Lease {
        case shared(Int)
        case exclusive
    }

    public init(location: String = "memory:") {
        self.location = location
    }

    private func notFound(_ key: String) -> DiskVaultError {
        DiskVaultError(.notFound, "does not exist", path: "\(location)/\(key)")
    }

    public func prepareNewVault() throws(DiskVaultError) {
        // Folders are implicit: there is nothing to make, only a vault already here to refuse.
        if try head("vault.json") != nil {
            throw DiskVaultError(.alreadyExists, "a vault already exists here", path: location)
        }
    }

    public func containerExists() throws(DiskVaultError) -> Bool {
        state.withLock { !$0.objects.isEmpty }
    }

    public func putIfAbsent(_ key: String, _ parts: [UnsafeRawBufferPointer], durable: Bool) throws(DiskVaultError) -> Bool {
        // Copied before the mutex is taken: the section that makes it visible is only the insert.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for part in parts { bytes.append(contentsOf: part) }
        return state.withLock { s in
            guard s.objects[key] == nil else { return false }
            s.objects[key] = bytes
            return true
        }
    }

    public func replace(_ key: String, _ bytes: [UInt8]) throws(DiskVaultError) {
        state.withLock { $0.objects[key] = bytes }
    }

    public func replaceBlob(_ key: String, _ blob: UnsafeRawBufferPointer) throws(DiskVaultError) {
        let bytes = [UInt8](blob)
        state.withLock { $0.objects[key] = bytes }
    }

    public func get(_ key: String, limit: Int) throws(DiskVaultError) -> [UInt8] {
        // Arrays are shared until written, so the size is checked before any copy is made.
        guard let bytes = state.withLock({ $0.objects[key] }) else { throw notFound(key) }
        guard bytes.count <= limit else {
            throw DiskVaultError(.corrupt, "object is \(bytes.count) bytes, more than the \(limit) allowed", path: "\(location)/\(key)")
        }
        return bytes
    }

    public func read(
        _ key: String, into destination: (Int) -> UnsafeMutableRawBufferPointer
    ) throws(DiskVaultError) -> UnsafeRawBufferPointer {
        guard let bytes = state.withLock({ $0.objects[key] }) else { throw notFound(key) }
        let buffer = destination(bytes.count)
        guard bytes.count <= buffer.count else {
            throw DiskVaultError(.corrupt, "object is \(bytes.count) bytes, more than the \(buffer.count) it may be", path: "\(location)/\(key)")
        }
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<bytes.count])
        bytes.withUnsafeBytes { target.copyMemory(from: $0) }
        return UnsafeRawBufferPointer(target)
    }

    public func head(_ key: String) throws(DiskVaultError) -> UInt64? {
        state.withLock { $0.objects[key].map { UInt64($0.count) } }
    }

    public func list(_ prefix: String) throws(DiskVaultError) -> [String] {
        let folder = prefix.isEmpty ? "" : "\(prefix)/"
        let names = state.withLock { s in
            Set(s.objects.keys.compactMap { key -> String? in
                guard key.hasPrefix(folder) else { return nil }
                let rest = key.dropFirst(folder.count)
                return rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
            })
        }
        // Hidden names are left out, as the local backend leaves out its atomic writes' temporaries.
        return names.filter { !$0.isEmpty && !$0.hasPrefix(".") }.sorted()
    }

    public func delete(_ key: String) throws(DiskVaultError) {
        // A folder has no object of its own: it goes with its last object, so deleting it does nothing.
        _ = state.withLock { $0.objects.removeValue(forKey: key) }
    }

    public func barrier() throws(DiskVaultError) {}

    public func makeReader(_ key: String) throws(DiskVaultError) -> any ObjectReader {
        guard let bytes = state.withLock({ $0.objects[key] }) else { throw notFound(key) }
        return MemoryObjectReader(bytes)
    }

    public func makeWriter(_ key: String) throws(DiskVaultError) -> any ObjectWriter {
        MemoryStorageWriter(storage: self, key: key)
    }
}

extension MemoryStorage {
    public func tryLock(_ name: String, _ mode: LockMode, record: [UInt8]?) throws(DiskVaultError) -> (any StorageLock)? {
        let recordKey: String?? = state.withLock { s in
            switch (s.leases[name], mode) {
            case (nil, .shared): s.leases[name] = .shared(1)
            case (.shared(let n)?, .shared): s.leases[name] = .shared(n + 1)
            case (nil, .exclusive): s.leases[name] = .exclusive
            default: return .none
            }
            s.nextToken += 1
            guard let record else { return .some(nil) }
            // Named as a local vault names its records, so that the engine finds them the same way.
            let key = "\(VaultLock.folder)/\(name)@\(ProcessLiveness.currentID)-\(s.nextToken).json"
            s.objects[key] = record
            return .some(key)
        }
        guard let recordKey else { return nil }
        return MemoryLock(storage: self, name: name, recordKey: recordKey)
    }

    public func lockRecords(_ name: String) throws(DiskVaultError) -> [LockRecordEntry] {
        try list(VaultLock.folder).filter { $0.hasPrefix("\(name)@") && $0.hasSuffix(".json") }.map { entry in
            let key = "\(VaultLock.folder)/\(entry)"
            return LockRecordEntry(key: key, bytes: try? get(key, limit: 64 << 10))
        }
    }

    /// Ends one holder's lease on `name` and removes its record, in one step: no one sees the record without the lease.
    fileprivate func release(_ name: String, recordKey: String?) {
        state.withLock { s in
            if let recordKey { s.objects[recordKey] = nil }
            switch s.leases[name] {
            case .shared(let n)? where n > 1: s.leases[name] = .shared(n - 1)
            default: s.leases[name] = nil
            }
        }
    }
}

/// A lease on a lock of a `MemoryStorage`, ended by `release` or when the last reference goes.
final class MemoryLock: StorageLock {
    private let storage: MemoryStorage
    private let name: String
    let recordKey: String?
    let recordProblem: String? = nil
    private let released = Mutex(false)

    fileprivate init(storage: MemoryStorage, name: String, recordKey: String?) {
        self.storage = storage
        self.name = name
        self.recordKey = recordKey
    }

    deinit { release() }

    func release() {
        guard !released.withLock({ let was = $0; $0 = true; return was }) else { return }
        storage.release(name, recordKey: recordKey)
    }
}

/// An object of a `MemoryStorage` gathered as it grows and put whole by `commitIfAbsent`.
final class MemoryStorageWriter: ObjectWriter {
    private let storage: MemoryStorage
    private let key: String
    private var bytes: [UInt8] = []
    private var finished = false
    var count: UInt64 { UInt64(bytes.count) }

    init(storage: MemoryStorage, key: String) {
        self.storage = storage
        self.key = key
    }

    func append(_ piece: UnsafeRawBufferPointer) throws(DiskVaultError) {
        guard !finished else { throw DiskVaultError(.io, "object writer used after it ended", path: "\(storage.location)/\(key)") }
        bytes.append(contentsOf: piece)
    }

    func commitIfAbsent(durable: Bool) throws(DiskVaultError) -> Bool {
        guard !finished else { throw DiskVaultError(.io, "object writer used after it ended", path: "\(storage.location)/\(key)") }
        finished = true
        defer { bytes = [] }
        return try bytes.withBytes { (b) throws(DiskVaultError) in try storage.putIfAbsent(key, [b], durable: durable) }
    }

    func abandon() {
        finished = true
        bytes = []
    }
}
