import Foundation
#if canImport(Glibc)
import Glibc
#endif
internal import CLinux

/// An open file, closed when the last reference goes away. Every call names the path in its errors.
public final class FileDescriptor: @unchecked Sendable {
    public let fd: Int32
    public let path: String
    private var closed = false

    public init(adopting fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Opens `path`. The corresponding C function is `open`.
    public convenience init(path: String, flags: Int32, mode: UInt32 = FileSystem.privateFileMode, doing: String = "cannot open") throws(DiskVaultError) {
        let fd = try sys("open", path: path, doing) { open(path, flags | O_CLOEXEC, mode) }
        self.init(adopting: fd, path: path)
    }

    deinit {
        if !closed { _ = Glibc.close(fd) }
    }

    /// Opens `path` with O_DIRECT added to `flags`, or nil when the file system refuses direct I/O (EINVAL,
    /// EOPNOTSUPP: tmpfs, some FUSE mounts). Every other failure throws. The corresponding C function is `open`.
    public static func openDirect(path: String, flags: Int32, mode: UInt32 = FileSystem.privateFileMode, doing: String = "cannot open") throws(DiskVaultError) -> FileDescriptor? {
        switch retryingEINTR({ open(path, flags | O_CLOEXEC | dv_o_direct(), mode) }) {
        case .success(let fd): return FileDescriptor(adopting: fd, path: path)
        case .failure(let e) where e == EINVAL || e == EOPNOTSUPP: return nil
        case .failure(let e): throw DiskVaultError.system("open", e, path: path, doing: doing)
        }
    }

    public enum ExclusiveProbe: Sendable { case free, busy }

    /// Whether the block device at `path` can be opened with O_EXCL, which the kernel refuses (EBUSY) while it
    /// is mounted, a device-mapper or md target sits on it, or another process holds it exclusively. Any other
    /// failure counts as free: the ordinary open reports it. The corresponding C function is `open`.
    public static func probeExclusive(_ path: String) -> ExclusiveProbe {
        switch retryingEINTR({ open(path, O_RDONLY | O_CLOEXEC | dv_o_excl()) }) {
        case .success(let fd):
            Glibc.close(fd)
            return .free
        case .failure(EBUSY): return .busy
        case .failure: return .free
        }
    }

    /// `path` opened again for writing with O_DIRECT, or nil where the file system does not take direct I/O
    /// (or the file cannot be opened again: the caller then writes through its buffered descriptor).
    public static func openDirect(_ path: String) -> FileDescriptor? {
        (try? openDirect(path: path, flags: O_WRONLY)) ?? nil
    }

    /// A new descriptor for the open file `fd` (standard input or output), owned by the result.
    /// The corresponding C function is `dup`.
    public static func duplicate(_ fd: Int32, path: String) throws(DiskVaultError) -> FileDescriptor {
        FileDescriptor(adopting: try sys("dup", path: path, "cannot use") { dup(fd) }, path: path)
    }

    /// A new private file in $TMPDIR (or /tmp) that has no name: it is gone when closed, however the process ends.
    public static func anonymousTemporary(doing: String) throws(DiskVaultError) -> FileDescriptor {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/diskvault-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard fd >= 0 else { throw DiskVaultError.system("mkstemp", errno, path: base, doing: doing) }
        unlink(path)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return FileDescriptor(adopting: fd, path: path)
    }

    /// Closes now, reporting a failure (a deferred write error can surface here).
    public func close() throws(DiskVaultError) {
        guard !closed else { return }
        closed = true
        if Glibc.close(fd) != 0 && errno != EINTR {
            throw DiskVaultError.system("close", errno, path: path, doing: "cannot close")
        }
    }

    public struct Status: Sendable {
        public var size: UInt64
        public var mode: UInt32
        public var allocatedBytes: UInt64
        /// Which file this is: st_dev and st_ino.
        public var device: UInt64 = 0
        public var inode: UInt64 = 0
        /// st_mtim, in nanoseconds since the epoch.
        public var modified: Int64 = 0
        public var isRegular: Bool { mode & S_IFMT == S_IFREG }
        public var isBlockDevice: Bool { mode & S_IFMT == S_IFBLK }
        public var isDirectory: Bool { mode & S_IFMT == S_IFDIR }
    }

    /// The corresponding C function is `fstat`.
    public func status() throws(DiskVaultError) -> Status {
        var st = stat()
        _ = try sys("fstat", path: path, "cannot stat") { fstat(fd, &st) }
        return Status(size: UInt64(st.st_size), mode: st.st_mode, allocatedBytes: UInt64(st.st_blocks) * 512,
                      device: UInt64(st.st_dev), inode: UInt64(st.st_ino),
                      modified: Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec))
    }

    /// Reads up to `count` bytes at `offset`, looping over short reads; fewer only at end of file.
    /// The corresponding C function is `pread`.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskVaultError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try sys("pread", path: path, "cannot read") {
                pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads from the current position (a pipe or standard input), filling the buffer unless end of input comes first.
    /// The corresponding C function is `read`.
    public func readSequential(into buffer: UnsafeMutableRawBufferPointer) throws(DiskVaultError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try sys("read", path: path, "cannot read") {
                Glibc.read(fd, buffer.baseAddress! + done, buffer.count - done)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `buffer` at `offset`. The corresponding C function is `pwrite`.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskVaultError) {
        var done = 0
        while done < buffer.count {
            let n = try sys("pwrite", path: path, "cannot write") {
                pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            done += n
        }
    }

    /// Writes all of each part in turn from the current position. The corresponding C function is `write`.
    public func writeAll(_ parts: [UnsafeRawBufferPointer]) throws(DiskVaultError) {
        for part in parts where part.count > 0 {
            var done = 0
            while done < part.count {
                let n = try sys("write", path: path, "cannot write") {
                    Glibc.write(fd, part.baseAddress! + done, part.count - done)
                }
                done += n
            }
        }
    }

    /// The corresponding C function is `ftruncate`.
    public func truncate(to size: UInt64) throws(DiskVaultError) {
        _ = try sys("ftruncate", path: path, "cannot set the size of") { ftruncate(fd, off_t(size)) }
    }

    /// The corresponding C function is `fsync`.
    public func sync() throws(DiskVaultError) {
        _ = try sys("fsync", path: path, "cannot sync") { fsync(fd) }
    }

    /// Flushes the whole file system that holds this file. The corresponding C function is `syncfs`.
    public func syncFileSystem() throws(DiskVaultError) {
        _ = try sys("syncfs", path: path, "cannot sync the file system of") { dv_syncfs(fd) }
    }

    /// Start of the next data region at or after `offset`, or nil when only a hole follows.
    /// Throws `unsupported` where the file system cannot tell. The corresponding C call is `lseek(SEEK_DATA)`.
    public func nextData(from offset: UInt64) throws(DiskVaultError) -> UInt64? {
        switch retryingEINTR({ dv_seek_data(fd, off_t(offset)) }) {
        case .success(let r): return UInt64(r)
        case .failure(ENXIO): return nil
        case .failure(let e) where e == EINVAL || e == EOPNOTSUPP:
            throw DiskVaultError(.unsupported, "holes cannot be found", path: path)
        case .failure(let e): throw DiskVaultError.system("lseek", e, path: path, doing: "cannot find data in")
        }
    }

    /// Start of the next hole at or after `offset` (end of file counts as a hole). The corresponding C call is `lseek(SEEK_HOLE)`.
    public func nextHole(from offset: UInt64) throws(DiskVaultError) -> UInt64 {
        UInt64(try sys("lseek", path: path, "cannot find holes in") { dv_seek_hole(fd, off_t(offset)) })
    }

    /// Starts writing the file's dirty pages to disk without waiting, so that a later sync finds little left
    /// to do and the disk works while the CPU hashes. The corresponding C function is `sync_file_range`.
    public func startWriteback(offset: UInt64 = 0, length: UInt64 = 0) {
        _ = dv_start_writeback(fd, Int64(offset), Int64(length))
    }

    /// A hint that the file is read front to back. The corresponding C function is `posix_fadvise`.
    public func adviseSequential() {
        _ = dv_fadvise_sequential(fd)
    }

    /// Takes an advisory lock on the whole file without waiting: shared or exclusive; false when a holder in a
    /// conflicting mode has it. It belongs to this open file and ends with it, so a holder that dies loses it.
    /// The corresponding C function is `flock`.
    public func tryLock(exclusive: Bool) throws(DiskVaultError) -> Bool {
        switch retryingEINTR({ flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) }) {
        case .success: return true
        case .failure(EWOULDBLOCK): return false
        case .failure(let e): throw DiskVaultError.system("flock", e, path: path, doing: "cannot lock")
        }
    }

    /// Takes an open-file-description lock on `length` bytes at `start` without waiting (shared: a read lock);
    /// false when another open file holds a conflicting one. It ends when this file is closed. The
    /// corresponding C call is `fcntl(F_OFD_SETLK)`.
    public func tryByteLock(start: UInt64, length: UInt64, shared: Bool) throws(DiskVaultError) -> Bool {
        switch retryingEINTR({ dv_ofd_lock(fd, shared ? 1 : 0, Int64(start), Int64(length)) }) {
        case .success: return true
        case .failure(EAGAIN), .failure(EACCES): return false
        case .failure(let e): throw DiskVaultError.system("fcntl(F_OFD_SETLK)", e, path: path, doing: "cannot lock")
        }
    }

    /// Whether another open file holds a lock on the bytes that conflicts with a lock of this kind (exclusive:
    /// a write lock, which any lock conflicts with). The corresponding C call is `fcntl(F_OFD_GETLK)`.
    public func byteLockHeld(start: UInt64, length: UInt64, exclusive: Bool) throws(DiskVaultError) -> Bool {
        var held: Int32 = 0
        let r = dv_ofd_conflict(fd, exclusive ? 1 : 0, Int64(start), Int64(length), &held)
        if r < 0 { throw DiskVaultError.system("fcntl(F_OFD_GETLK)", errno, path: path, doing: "cannot test the locks of") }
        return r == 1
    }

    /// Size of a block device. The corresponding C call is `ioctl(BLKGETSIZE64)`.
    public func blockDeviceSize() throws(DiskVaultError) -> UInt64 {
        var size: UInt64 = 0
        _ = try sys("ioctl", path: path, "cannot get the size of") {
            dv_block_device_size(fd, &size)
        }
        return size
    }
}
