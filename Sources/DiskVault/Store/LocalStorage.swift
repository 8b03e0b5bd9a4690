#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The vault as a directory on a local file system. New objects are written under tmp/ and renamed into place
/// without replacing, so a reader never sees a partial object and an existing object is never rewritten.
public final class LocalStorage: VaultStorage {
    public let root: String
    public var location: String { root }
    private let createdDirectories = Mutex<Set<String>>([])
    /// Whether the file system takes O_DIRECT (tmpfs does not): learned on the first blob.
    private let directIO = Mutex<Bool?>(nil)

    public init(root: String) {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    public func path(_ key: String) -> String { "\(root)/\(key)" }

    private func ensureParent(of key: String) throws(DiskVaultError) {
        let dir = FileSystem.parentDirectory(of: path(key))
        if createdDirectories.withLock({ $0.contains(dir) }) { return }
        try FileSystem.makeDirectories(dir)
        createdDirectories.withLock { _ = $0.insert(dir) }
    }

    public func putIfAbsent(_ key: String, _ parts: [UnsafeRawBufferPointer], durable: Bool) throws(DiskVaultError) -> Bool {
        let final = path(key)
        let tmpDir = path("tmp")
        let tmp = "\(tmpDir)/\(FileSystem.lastComponent(of: key)).\(randomHex(8))"
        do {
            let file: FileDescriptor
            do {
                file = try FileDescriptor(path: tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: FileSystem.privateFileMode, doing: "cannot create")
            } catch where error.code == .notFound {
                try FileSystem.makeDirectories(tmpDir)
                file = try FileDescriptor(path: tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: FileSystem.privateFileMode, doing: "cannot create")
            }
            try file.writeAll(parts)
            if durable { try file.sync() } else { file.startWriteback() }
            try file.close()
            try ensureParent(of: key)
            let placed = try FileSystem.renameNoReplace(tmp, final)
            if !placed { try FileSystem.remove(tmp) }
            if placed && durable { try FileSystem.syncDirectory(FileSystem.parentDirectory(of: final)) }
            return placed
        } catch {
            try? FileSystem.remove(tmp)
            throw error
        }
    }

    /// Writes a chunk blob with direct I/O, so that its bytes go from the worker's buffer to the disk without the
    /// page cache (on this kind of machine buffered writes cost more CPU than hashing); the file is then cut to
    /// its length. Falls back to `putIfAbsent` where direct I/O is not available.
    public func putBlobIfAbsent(_ key: String, padded: UnsafeRawBufferPointer, length: Int) throws(DiskVaultError) -> Bool {
        let rounded = Blob.directIOLength(length)
        guard directIO.withLock({ $0 }) != false, length >= 64 << 10, padded.count >= rounded,
            let base = padded.baseAddress, Int(bitPattern: base) % Blob.directIOAlignment == 0
        else {
            return try putIfAbsent(key, [UnsafeRawBufferPointer(rebasing: padded[..<length])], durable: false)
        }
        let tmpDir = path("tmp")
        let tmp = "\(tmpDir)/\(FileSystem.lastComponent(of: key)).\(randomHex(8))"
        let flags = O_WRONLY | O_CREAT | O_EXCL
        var opened: FileDescriptor?
        do {
            do {
                opened = try FileDescriptor.openDirect(path: tmp, flags: flags, doing: "cannot create")
            } catch where error.code == .notFound {
                try FileSystem.makeDirectories(tmpDir)
                opened = try FileDescriptor.openDirect(path: tmp, flags: flags, doing: "cannot create")
            }
        } catch {
            try? FileSystem.remove(tmp)
            throw error
        }
        guard let file = opened else {
            // Some file systems create the file before refusing O_DIRECT.
            try? FileSystem.remove(tmp)
            directIO.withLock { $0 = false }
            return try putIfAbsent(key, [UnsafeRawBufferPointer(rebasing: padded[..<length])], durable: false)
        }
        directIO.withLock { $0 = true }
        do throws(DiskVaultError) {
            try file.write(UnsafeRawBufferPointer(rebasing: padded[..<rounded]), at: 0)
            try file.truncate(to: UInt64(length))
            try file.close()
            try ensureParent(of: key)
            let placed = try FileSystem.renameNoReplace(tmp, path(key))
            if !placed { try FileSystem.remove(tmp) }
            return placed
        } catch {
            try? FileSystem.remove(tmp)
            throw error
        }
    }

    public func replaceBlob(_ key: String, _ blob: UnsafeRawBufferPointer) throws(DiskVaultError) {
        let final = path(key)
        let tmp = try createTemporary(for: key)
        do throws(DiskVaultError) {
            try tmp.file.writeAll([blob])
            tmp.file.startWriteback()
            try tmp.file.close()
            try ensureParent(of: key)
            // Over the damaged blob: a reader sees the old one or the new one, never a mix.
            try FileSystem.rename(tmp.path, final)
        } catch {
            try? FileSystem.remove(tmp.path)
            throw error
        }
    }

    /// A new file under tmp/ named after `key`, created exclusively.
    private func createTemporary(for key: String) throws(DiskVaultError) -> (file: FileDescriptor, path: String) {
        let tmpDir = path("tmp")
        let tmp = "\(tmpDir)/\(FileSystem.lastComponent(of: key)).\(randomHex(8))"
        do {
            return (try FileDescriptor(path: tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: FileSystem.privateFileMode, doing: "cannot create"), tmp)
        } catch where error.code == .notFound {
            try FileSystem.makeDirectories(tmpDir)
            return (try FileDescriptor(path: tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: FileSystem.privateFileMode, doing: "cannot create"), tmp)
        }
    }

    public func makeReader(_ key: String) throws(DiskVaultError) -> any ObjectReader {
        let file = try FileDescriptor(path: path(key), flags: O_RDONLY, doing: "cannot open")
        return LocalObjectReader(file: file, size: try file.status().size)
    }

    public func makeWriter(_ key: String) throws(DiskVaultError) -> any ObjectWriter {
        let tmp = try createTemporary(for: key)
        return LocalObjectWriter(storage: self, key: key, file: tmp.file, tmp: tmp.path)
    }

    /// Puts a finished temporary file in place under `key` unless the key exists.
    fileprivate func place(_ tmp: String, as key: String, durable: Bool) throws(DiskVaultError) -> Bool {
        try ensureParent(of: key)
        let final = path(key)
        let placed = try FileSystem.renameNoReplace(tmp, final)
        if !placed { try FileSystem.remove(tmp) }
        if placed && durable { try FileSystem.syncDirectory(FileSystem.parentDirectory(of: final)) }
        return placed
    }

    public func replace(_ key: String, _ bytes: [UInt8]) throws(DiskVaultError) {
        try ensureParent(of: key)
        try FileSystem.writeFileAtomically(path(key), bytes)
    }

    public func get(_ key: String, limit: Int) throws(DiskVaultError) -> [UInt8] {
        try FileSystem.readFile(path(key), limit: limit)
    }

    public func read(
        _ key: String, into destination: (Int) -> UnsafeMutableRawBufferPointer
    ) throws(DiskVaultError) -> UnsafeRawBufferPointer {
        let file = try FileDescriptor(path: path(key), flags: O_RDONLY, doing: "cannot open")
        let size = try file.status().size
        let buffer = destination(Int(clamping: size))
        guard size <= UInt64(buffer.count) else {
            throw DiskVaultError(.corrupt, "object is \(size) bytes, more than the \(buffer.count) it may be", path: path(key))
        }
        let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(size)]), at: 0)
        return UnsafeRawBufferPointer(rebasing: buffer[0..<n])
    }

    public func head(_ key: String) throws(DiskVaultError) -> UInt64? {
        try FileSystem.sizeIfExists(path(key))
    }

    public func list(_ prefix: String) throws(DiskVaultError) -> [String] {
        try FileSystem.list(path(prefix)).filter { !$0.hasPrefix(".") }
    }

    public func delete(_ key: String) throws(DiskVaultError) {
        if FileSystem.isDirectory(path(key)) {
            // What an atomic replace killed before its rename leaves (`.NAME.tmp-XXXX`) is ours, hidden from
            // `list`, and would keep the folder from going.
            for name in (try? FileSystem.list(path(key))) ?? [] where FileSystem.isAtomicWriteTemporary(name) {
                try FileSystem.remove("\(path(key))/\(name)")
            }
            try FileSystem.removeDirectory(path(key))
        } else {
            try FileSystem.remove(path(key))
        }
    }

    public func barrier() throws(DiskVaultError) {
        let dir = try FileDescriptor(path: root, flags: O_RDONLY | O_DIRECTORY, doing: "cannot open vault")
        try dir.syncFileSystem()
    }
}

final class LocalObjectReader: ObjectReader {
    let file: FileDescriptor
    let size: UInt64

    init(file: FileDescriptor, size: UInt64) {
        self.file = file
        self.size = size
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskVaultError) -> Int {
        try file.read(into: buffer, at: offset)
    }
}

/// A temporary file under tmp/, renamed into place without replacing when complete.
final class LocalObjectWriter: ObjectWriter {
    let storage: LocalStorage
    let key: String
    let file: FileDescriptor
    let tmp: String
    private(set) var count: UInt64 = 0
    private var finished = false

    init(storage: LocalStorage, key: String, file: FileDescriptor, tmp: String) {
        self.storage = storage
        self.key = key
        self.file = file
        self.tmp = tmp
    }

    // An abandoned or failed writer leaves no temporary file behind.
    deinit { abandon() }

    func append(_ bytes: UnsafeRawBufferPointer) throws(DiskVaultError) {
        try file.writeAll([bytes])
        count += UInt64(bytes.count)
    }

    func commitIfAbsent(durable: Bool) throws(DiskVaultError) -> Bool {
        do throws(DiskVaultError) {
            if durable { try file.sync() }
            try file.close()
            let placed = try storage.place(tmp, as: key, durable: durable)
            finished = true
            return placed
        } catch {
            abandon()
            throw error
        }
    }

    func abandon() {
        guard !finished else { return }
        finished = true
        try? file.close()
        try? FileSystem.remove(tmp)
    }
}
