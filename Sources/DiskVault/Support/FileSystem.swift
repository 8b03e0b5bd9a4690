#if canImport(Glibc)
import Glibc
#endif
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

    /// Creates `path` and its missing parents. The corresponding C function is `mkdir`.
    public static func makeDirectories(_ path: String, mode: UInt32 = 0o755) throws(DiskVaultError) {
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

    /// Reads a whole file of at most `limit` bytes; a larger one is refused, never allocated.
    public static func readFile(_ path: String, limit: Int = 64 << 20) throws(DiskVaultError) -> [UInt8] {
        let file = try FileDescriptor(path: path, flags: O_RDONLY, doing: "cannot open")
        let st = try file.status()
        if st.isDirectory { throw DiskVaultError(.usage, "is a directory, not a file", path: path) }
        if st.size > UInt64(limit) {
            throw DiskVaultError(.corrupt, "file is \(st.size) bytes, more than the \(limit) allowed", path: path)
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.size))
        let n = try bytes.withMutableBytes { (b) throws(DiskVaultError) in try file.read(into: b, at: 0) }
        bytes.removeSubrange(n...)
        return bytes
    }

    /// Writes a file so that it appears whole or not at all: tmp beside it, fsync, rename, fsync the directory.
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o644) throws(DiskVaultError) {
        let dir = parentDirectory(of: path)
        let tmp = "\(dir)/.\(lastComponent(of: path)).tmp-\(randomHex(6))"
        do {
            let file = try FileDescriptor(path: tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode, doing: "cannot create")
            try bytes.withBytes { (b) throws(DiskVaultError) in try file.writeAll([b]) }
            try file.sync()
            try file.close()
            _ = try sys("rename", path: path, "cannot rename into place") { rename(tmp, path) }
        } catch {
            unlink(tmp)
            throw error
        }
        try syncDirectory(dir)
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

    /// Names in a directory, without "." and "..", unsorted. A missing directory has none.
    public static func list(_ path: String) throws(DiskVaultError) -> [String] {
        guard let dir = opendir(path) else {
            let e = errno
            if e == ENOENT { return [] }
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
    public static func identity(of path: String) throws(DiskVaultError) -> (device: UInt64, inode: UInt64) {
        var st = stat()
        _ = try sys("stat", path: path, "cannot stat") { stat(path, &st) }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
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
