#if canImport(Glibc)
import Glibc
#endif
import Foundation
internal import CLinux

/// Path-level file operations, each through `sys`, each error naming the path.
public enum FileSystem {
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    /// Mode of the directories and files a vault or key vault is made of, whatever the umask: private to their
    /// owner, as restic and borg make theirs (they hold a disk's data, its keys, the paths of its images).
    public static let privateDirectoryMode: UInt32 = 0o700
    public static let privateFileMode: UInt32 = 0o600

    /// What is at a path itself (a symbolic link is not followed), nil when nothing is.
    /// The corresponding C function is `lstat`.
    public enum EntryKind: Sendable, Equatable {
        case regularFile, directory, symbolicLink, blockDevice, characterDevice, fifo, socket
    }

    public static func entryKind(_ path: String) throws(DiskVaultError) -> EntryKind? {
        var st = stat()
        switch retryingEINTR({ lstat(path, &st) }) {
        case .success: break
        case .failure(ENOENT): return nil
        case .failure(let e): throw DiskVaultError.system("lstat", e, path: path, doing: "cannot stat")
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .regularFile
        case S_IFDIR: return .directory
        case S_IFLNK: return .symbolicLink
        case S_IFBLK: return .blockDevice
        case S_IFCHR: return .characterDevice
        case S_IFIFO: return .fifo
        default: return .socket
        }
    }

    /// `path` made absolute against the working directory, so that what records it (a manifest, a re-attach
    /// file) still names the same file when read from elsewhere. An absolute path is kept as given.
    public static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var relative = Substring(path)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2).drop { $0 == "/" } }
        let cwd = FileManager.default.currentDirectoryPath
        if relative.isEmpty || relative == "." { return cwd }
        return (cwd.hasSuffix("/") ? cwd : cwd + "/") + relative
    }

    /// Creates `path` and its missing parents. The corresponding C function is `mkdir`.
    public static func makeDirectories(_ path: String, mode: UInt32 = privateDirectoryMode) throws(DiskVaultError) {
        if isDirectory(path) { return }
        let parent = parentDirectory(of: path)
        if parent != path && !parent.isEmpty { try makeDirectories(parent, mode: mode) }
        switch retryingEINTR({ mkdir(path, mode) }) {
        case .success: return
        case .failure(EEXIST) where isDirectory(path): return
        case .failure(let e): throw DiskVaultError.system("mkdir", e, path: path, doing: "cannot create directory")
        }
    }

    public static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    public static func lastComponent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Reads a whole file of at most `limit` bytes; a larger one is refused, never allocated. A pipe or a
    /// terminal (`/dev/stdin`) has no size to go by: it is read until end of input.
    public static func readFile(_ path: String, limit: Int = 64 << 20) throws(DiskVaultError) -> [UInt8] {
        let file = try FileDescriptor(path: path, flags: O_RDONLY, doing: "cannot open")
        let st = try file.status()
        if st.isDirectory { throw DiskVaultError(.usage, "is a directory, not a file", path: path) }
        if !st.isRegular && !st.isBlockDevice { return try readStream(file, limit: limit) }
        if st.size > UInt64(limit) {
            throw DiskVaultError(.corrupt, "file is \(st.size) bytes, more than the \(limit) allowed", path: path)
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.size))
        let n = try bytes.withMutableBytes { (b) throws(DiskVaultError) in try file.read(into: b, at: 0) }
        bytes.removeSubrange(n...)
        return bytes
    }

    /// Reads a whole regular file of at most `limit` bytes that a folder holds (a key vault's files): a symbolic
    /// link, a FIFO, a device or a socket in its place is refused at once, never followed or waited on.
    public static func readRegularFile(_ path: String, limit: Int) throws(DiskVaultError) -> [UInt8] {
        let file: FileDescriptor
        do {
            file = try FileDescriptor(path: path, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK, doing: "cannot open")
        } catch where error.cause?.errno == ELOOP {
            throw DiskVaultError(.corrupt, "is a symbolic link, not a regular file: refused", path: path)
        }
        let st = try file.status()
        guard st.isRegular else { throw DiskVaultError(.corrupt, "is not a regular file (a FIFO, a device or a socket): refused", path: path) }
        if st.size > UInt64(limit) {
            throw DiskVaultError(.corrupt, "file is \(st.size) bytes, more than the \(limit) allowed", path: path)
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.size))
        let n = try bytes.withMutableBytes { (b) throws(DiskVaultError) in try file.read(into: b, at: 0) }
        bytes.removeSubrange(n...)
        return bytes
    }

    /// Reads `file` from its current position to end of input, refusing more than `limit` bytes.
    static func readStream(_ file: FileDescriptor, limit: Int) throws(DiskVaultError) -> [UInt8] {
        var bytes: [UInt8] = []
        var piece = [UInt8](repeating: 0, count: min(limit + 1, 64 << 10))
        while true {
            let n = try piece.withMutableBytes { (b) throws(DiskVaultError) in try file.readSequential(into: b) }
            bytes += piece[..<n]
            if bytes.count > limit {
                throw DiskVaultError(.corrupt, "input is more than the \(limit) bytes allowed", path: file.path)
            }
            if n < piece.count { return bytes }
        }
    }

    /// Writes a file so that it appears whole or not at all: tmp beside it, fsync, rename, fsync the directory.
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: UInt32 = privateFileMode) throws(DiskVaultError) {
        _ = try writeAtomically(path, bytes, mode: mode, replacing: true)
    }

    /// `writeFileAtomically`, but never over an existing file: false, and nothing written, when `path` exists.
    public static func writeNewFileAtomically(_ path: String, _ bytes: [UInt8], mode: UInt32 = privateFileMode) throws(DiskVaultError) -> Bool {
        try writeAtomically(path, bytes, mode: mode, replacing: false)
    }

    private static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: UInt32, replacing: Bool) throws(DiskVaultError) -> Bool {
        let dir = parentDirectory(of: path)
        let tmp = "\(dir)/.\(lastComponent(of: path)).tmp-\(randomHex(6))"
        do {
            let file = try FileDescriptor(path: tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode, doing: "cannot create")
            try bytes.withBytes { (b) throws(DiskVaultError) in try file.writeAll([b]) }
            try file.sync()
            try file.close()
            if replacing {
                try rename(tmp, path, doing: "cannot rename into place")
            } else if try !renameNoReplace(tmp, path) {
                unlink(tmp)
                return false
            }
        } catch {
            unlink(tmp)
            throw error
        }
        try syncDirectory(dir)
        return true
    }

    /// Whether `name` is the hidden temporary of an atomic write (`.NAME.tmp-XXXX`), which a crash can leave.
    static func isAtomicWriteTemporary(_ name: String) -> Bool {
        name.hasPrefix(".") && name.contains(".tmp-")
    }

    /// Makes a rename or a new entry in `dir` durable.
    public static func syncDirectory(_ dir: String) throws(DiskVaultError) {
        let d = try FileDescriptor(path: dir, flags: O_RDONLY | O_DIRECTORY, doing: "cannot open directory")
        try d.sync()
    }

    /// Renames `from` to `to` only when `to` does not exist; returns false when it does.
    public static func renameNoReplace(_ from: String, _ to: String) throws(DiskVaultError) -> Bool {
        switch retryingEINTR({ dv_rename_noreplace(AT_FDCWD, from, AT_FDCWD, to) }) {
        case .success: return true
        case .failure(EEXIST): return false
        case .failure(let e) where e == EINVAL || e == ENOSYS:
            // A file system without RENAME_NOREPLACE: link() fails the same way when `to` exists.
            switch retryingEINTR({ link(from, to) }) {
            case .success: unlink(from); return true
            case .failure(EEXIST): return false
            case .failure(let e): throw DiskVaultError.system("link", e, path: to, doing: "cannot put in place")
            }
        case .failure(let e): throw DiskVaultError.system("renameat2", e, path: to, doing: "cannot put in place")
        }
    }

    /// Renames `from` over `to`, replacing what is there atomically. The corresponding C function is `rename`.
    public static func rename(_ from: String, _ to: String, doing: String = "cannot put in place") throws(DiskVaultError) {
        _ = try sys("rename", path: to, doing) { Glibc.rename(from, to) }
    }

    public static func remove(_ path: String) throws(DiskVaultError) {
        switch retryingEINTR({ unlink(path) }) {
        case .success, .failure(ENOENT): return
        case .failure(let e): throw DiskVaultError.system("unlink", e, path: path, doing: "cannot remove")
        }
    }

    public static func removeDirectory(_ path: String) throws(DiskVaultError) {
        switch retryingEINTR({ rmdir(path) }) {
        case .success, .failure(ENOENT): return
        case .failure(let e): throw DiskVaultError.system("rmdir", e, path: path, doing: "cannot remove directory")
        }
    }

    /// Names in a directory, without "." and "..", unsorted. A missing directory has none, and so has a file
    /// where a directory was expected (a stray file under disks/ is a disk with no points, not an error).
    public static func list(_ path: String) throws(DiskVaultError) -> [String] {
        guard let dir = opendir(path) else {
            let e = errno
            if e == ENOENT || e == ENOTDIR { return [] }
            throw DiskVaultError.system("opendir", e, path: path, doing: "cannot list")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Which file `path` names now (st_dev, st_ino), following symbolic links. The corresponding C function is `stat`.
    /// What the kernel lists as holding the block device at `path` (/sys/dev/block/MAJ:MIN/holders: dm-0, md1…),
    /// with a device-mapper holder's name where it has one; empty when none or unknown.
    public static func blockDeviceHolders(_ path: String) -> [String] {
        var st = stat()
        guard fstatat(AT_FDCWD, path, &st, 0) == 0, st.st_mode & S_IFMT == S_IFBLK else { return [] }
        let major = (UInt64(st.st_rdev) >> 8) & 0xfff | (UInt64(st.st_rdev) >> 32) & ~0xfff
        let minor = UInt64(st.st_rdev) & 0xff | (UInt64(st.st_rdev) >> 12) & ~0xff
        let dir = "/sys/dev/block/\(major):\(minor)/holders"
        guard let names = try? list(dir) else { return [] }
        return names.sorted().map { name in
            let dm = (try? readFile("/sys/class/block/\(name)/dm/name", limit: 256)).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
            return dm.map { "\(name) (\($0))" } ?? name
        }
    }

    public static func identity(of path: String) throws(DiskVaultError) -> (device: UInt64, inode: UInt64) {
        var st = stat()
        _ = try sys("stat", path: path, "cannot stat") { stat(path, &st) }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// The size of what `path` names (following symbolic links), or nil when nothing is there (ENOENT, or a
    /// parent that is a file: ENOTDIR); any other failure throws. The corresponding C function is `stat`.
    public static func sizeIfExists(_ path: String) throws(DiskVaultError) -> UInt64? {
        var st = stat()
        switch retryingEINTR({ stat(path, &st) }) {
        case .success: return UInt64(st.st_size)
        case .failure(ENOENT), .failure(ENOTDIR): return nil
        case .failure(let e): throw DiskVaultError.system("stat", e, path: path, doing: "cannot stat")
        }
    }

    public static func size(_ path: String) -> UInt64? {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_size) : nil
    }
}

/// `count` random bytes as lower-case hex.
public func randomHex(_ count: Int) -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<count).map { _ in hexByte(UInt8.random(in: 0...255, using: &g)) }.joined()
}

@inline(__always)
func hexByte(_ b: UInt8) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}
