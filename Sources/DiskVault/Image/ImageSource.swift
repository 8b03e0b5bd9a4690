#if canImport(Glibc)
import Glibc
#endif

/// A disk image opened for backup: a regular file or a block device (raw, or in a format qemu reads, such as
/// qcow2), a stream (standard input), or an NBD export someone else serves. Every read of a source goes
/// through here: `bytes` reads the disk as a VM sees it, whatever serves it.
public final class ImageSource: @unchecked Sendable {
    public enum Kind: String, Codable, Sendable {
        case file
        case blockDevice = "block-device"
        case stream
        case nbd
        /// A drive of a running VM, read through qemu at one instant.
        case runningVM = "running-vm"
    }

    /// What a point of the source holds: the disk as a VM sees it, or (a qcow2 that qemu encrypts) the image
    /// file itself, byte for byte, so that its data stays ciphertext.
    public enum Contents: String, Codable, Sendable {
        case disk
        case container
    }

    public let path: String
    public let kind: Kind
    /// The disk's size: known up front for files, devices and exports; a stream's is known only at its end.
    public let size: UInt64?
    public let sectorSize = 512
    /// The container format of a file or device (raw for streams and exports).
    public let format: ImageFormat
    public let contents: Contents
    /// A format qemu reads: the image, then each backing file, top first (empty for raw).
    public let chain: [QemuImage.ChainLink]
    /// The qcow2 header, for a qcow2.
    public let qcow2: QCOW2Header?
    /// The file or device opened (for a stream, standard input or the pipe); nil for an NBD export.
    let file: FileDescriptor?
    /// The disk's bytes: the file itself for a raw image or a container, else the NBD connection.
    let bytes: any ImageBytes
    let nbd: NBDClient?
    /// The file opened (st_dev, st_ino), to tell at the end whether the path still names it.
    let identity: (device: UInt64, inode: UInt64)?
    /// The file's own size at the start (for a format qemu reads, the container's size).
    public let fileSize: UInt64?
    /// How the image was held while it was read: cold (no writer could have it open), or crash-consistent
    /// (a writer had it open, and `--allow-live` said to read it anyway). Set again when it changed meanwhile.
    public internal(set) var consistency: Consistency = .cold
    /// The file's mtime at the start (files only).
    var modifiedAtStart: Int64?

    public enum Consistency: String, Codable, Sendable {
        /// No process held the image for write while it was read (qemu's locks kept writers out).
        case cold
        /// Read while a writer may have changed it: what a power cut would have left.
        case crashConsistent = "crash-consistent"
        /// A running VM's disk as of one instant (qemu's fleecing): what a power cut at that instant would have
        /// left, and every disk of the VM as of the same instant.
        case liveConsistent = "live-consistent"
        /// As live-consistent, with the guest's file systems frozen at that instant (the freeze hook succeeded).
        case applicationConsistent = "application-consistent"
    }

    init(path: String, kind: Kind, size: UInt64?, file: FileDescriptor?, bytes: (any ImageBytes)? = nil, nbd: NBDClient? = nil,
         format: ImageFormat = .raw, contents: Contents = .disk, chain: [QemuImage.ChainLink] = [], qcow2: QCOW2Header? = nil,
         identity: (device: UInt64, inode: UInt64)? = nil, fileSize: UInt64? = nil) {
        self.path = path
        self.kind = kind
        self.size = size
        self.file = file
        self.bytes = bytes ?? file!
        self.nbd = nbd
        self.format = format
        self.contents = contents
        self.chain = chain
        self.qcow2 = qcow2
        self.identity = identity
        self.fileSize = fileSize ?? size
    }

    deinit { nbd?.close() }

    /// Whether the point is read through qemu (its format is not raw and qemu serves its guest-visible disk).
    public var readThroughQemu: Bool { format != .raw && contents == .disk }

    /// What `open` does with an image some process holds for write.
    public enum InUse: Sendable {
        case refuse
        /// Read it anyway; the point is marked crash-consistent.
        case allow
    }

    static func changed(_ path: String, _ why: String) -> DiskVaultError {
        DiskVaultError(.io, "image changed while it was read (\(why)); no recovery point was written", path: path)
    }

    /// Throws when the image is no longer what was read: its size differs from the size at the start, or its path
    /// names another file (replaced or renamed over). A stream cannot be checked, nor an export someone else serves.
    public func checkUnchanged() throws(DiskVaultError) {
        guard let file, let size = fileSize, kind == .file || kind == .blockDevice else { return }
        let now = kind == .file ? try file.status().size : try file.blockDeviceSize()
        guard now == size else { throw Self.changed(path, "\(size) bytes at the start, \(now) now") }
        guard let identity else { return }
        let current: (device: UInt64, inode: UInt64)
        do {
            current = try FileSystem.identity(of: path)
        } catch where error.code == .notFound {
            throw Self.changed(path, "the path is gone")
        }
        guard current == identity else { throw Self.changed(path, "the path names another file now") }
    }

    /// A warning when the file was written while it was read (its mtime moved): the point is crash-consistent.
    public func noteModification() throws(DiskVaultError) -> String? {
        guard let file, let before = modifiedAtStart, kind == .file else { return nil }
        guard try file.status().modified != before else { return nil }
        consistency = .crashConsistent
        return "\(path) was written while it was read (its modification time changed): the point is crash-consistent"
    }

    /// qemu's image locks (block/file-posix.c): a user holding permission n has a shared lock on byte 100+n, a
    /// user that does not share it one on byte 200+n; permission 0 is consistent read, 1 write. A reader that
    /// locks bytes 100 and 201 is one no qemu can open the image for write beside; a lock on byte 101 is a
    /// qemu that has it open for write.
    static let qemuHoldsWrite: UInt64 = 101
    static let qemuReadLocks: [UInt64] = [100, 201]

    static func inUseMessage(_ path: String) -> String {
        "is open for writing by a running VM (qemu holds its write lock); stop the VM, or pass --allow-live for a crash-consistent copy; nothing was written"
    }

    /// Takes qemu's read locks on `file` for the whole read, then checks that no writer has it: refused, or
    /// read anyway as crash-consistent (then no lock is taken, so as not to stand in the VM's way).
    static func holdQemuLocks(_ file: FileDescriptor, path: String, inUse: InUse) throws(DiskVaultError) -> Consistency {
        func writerHolds() throws(DiskVaultError) -> Bool {
            guard try file.byteLockHeld(start: qemuHoldsWrite, length: 1, exclusive: true) else { return false }
            guard inUse == .allow else { throw DiskVaultError(.locked, inUseMessage(path), path: path) }
            return true
        }
        if try writerHolds() { return .crashConsistent }
        for byte in qemuReadLocks {
            guard try file.tryByteLock(start: byte, length: 1, shared: true) else {
                throw DiskVaultError(.locked, "is locked by another process (byte \(byte) of qemu's image locks); nothing was written", path: path)
            }
        }
        // A writer that opened it between the check and the locks holds byte 101 now.
        return try writerHolds() ? .crashConsistent : .cold
    }

    /// A block device some kernel user holds (mounted, a device-mapper or md target on it, another exclusive
    /// opener) is refused like an image in use: its holders are named from /sys.
    static func checkDeviceFree(_ path: String, inUse: InUse) throws(DiskVaultError) -> Consistency {
        switch FileDescriptor.probeExclusive(path) {
        case .free: return .cold
        case .busy:
            let holders = FileSystem.blockDeviceHolders(path)
            guard inUse == .allow else {
                let who = holders.isEmpty ? "mounted, or opened exclusively by another process" : "held by \(holders.joined(separator: ", "))"
                throw DiskVaultError(.locked, "is in use (\(who)); stop what uses it, or pass --allow-live for a crash-consistent copy; nothing was written", path: path)
            }
            return .crashConsistent
        }
    }

    /// Whether `given` names an NBD export rather than a file.
    public static func isNBDURI(_ given: String) -> Bool {
        ["nbd://", "nbds://", "nbd+unix://", "nbds+unix://", "nbd+vsock://", "nbds+vsock://"].contains { given.hasPrefix($0) }
    }

    /// Opens `path`, standard input for "-", or the NBD export a URI names. A file or device is read in the
    /// format its header shows (`format` overrides it); the path is kept absolute: the manifest records it.
    public static func open(_ given: String, format forced: ImageFormat? = nil, inUse: InUse = .refuse) throws(DiskVaultError) -> ImageSource {
        if given == "-" {
            return ImageSource(path: "-", kind: .stream, size: nil, file: try FileDescriptor.duplicate(0, path: "standard input"))
        }
        if isNBDURI(given) {
            let client = try NBDClient.connect(uri: given)
            return ImageSource(path: given, kind: .nbd, size: client.size, file: nil, bytes: client, nbd: client)
        }
        let path = FileSystem.absolutePath(given)
        let file: FileDescriptor
        do {
            file = try FileDescriptor(path: path, flags: O_RDONLY, doing: "cannot open image")
        } catch where error.code == .notFound {
            throw DiskVaultError(.notFound, "image does not exist", path: path)
        } catch where error.code == .permission {
            throw DiskVaultError(.permission, "image is not readable (permission denied)", path: path)
        }
        let st = try file.status()
        let kind: Kind
        let size: UInt64
        if st.isRegular {
            file.adviseSequential()
            (kind, size) = (.file, st.size)
        } else if st.isBlockDevice {
            (kind, size) = (.blockDevice, try file.blockDeviceSize())
        } else if st.isDirectory {
            throw DiskVaultError(.unsupported, "is a directory, not a disk image", path: path)
        } else if st.mode & S_IFMT == S_IFIFO || st.mode & S_IFMT == S_IFCHR {
            return ImageSource(path: path, kind: .stream, size: nil, file: file)
        } else {
            throw DiskVaultError(.unsupported, "is not a regular file, block device or stream", path: path)
        }
        let identity = (st.device, st.inode)
        let consistency = kind == .blockDevice ? try checkDeviceFree(path, inUse: inUse) : .cold
        let whole = VolumeBytes(file: file, image: path, offset: 0, size: size)
        let format: ImageFormat
        if let forced { format = forced } else { format = try ImageFormat.recognise(whole.read(0, 512, what: "image header")) }
        guard format != .raw else {
            let source = ImageSource(path: path, kind: kind, size: size, file: file, identity: identity)
            source.consistency = consistency
            if kind == .file {
                source.consistency = try holdQemuLocks(file, path: path, inUse: inUse)
                source.modifiedAtStart = st.modified
            }
            return source
        }
        var header: QCOW2Header? = nil
        if format == .qcow2 {
            header = try QCOW2Header.read(whole)
            switch header?.encryption {
            case 1:
                throw DiskVaultError(.unsupported, "the qcow2 is encrypted with qemu's legacy AES-CBC, which qemu itself no longer opens for writing; convert it to LUKS encryption (qemu-img convert -O qcow2 -o encrypt.format=luks,…) and back that up", path: path)
            case 2:
                // Encrypted by qemu: kept as its container, its data never decrypted (the README says why).
                if let backing = header?.backingFile {
                    throw DiskVaultError(.unsupported, "the qcow2 is encrypted by qemu and has a backing file (\(backing)): its container alone is not the disk; back up a copy made with qemu-img convert", path: path)
                }
                let source = ImageSource(path: path, kind: kind, size: size, file: file, format: .qcow2, contents: .container, qcow2: header, identity: identity)
                source.consistency = kind == .file ? try holdQemuLocks(file, path: path, inUse: inUse) : consistency
                source.modifiedAtStart = kind == .file ? st.modified : nil
                return source
            default:
                break
            }
        }
        let info = try QemuImage.info(path, format: format)
        // The qemu-nbd started below takes qemu's locks itself; a writer found first is named here. A format
        // qemu reads is not read under a writer even with --allow-live: its metadata changes under the reader.
        for link in info.chain {
            guard let f = try? FileDescriptor(path: link.path, flags: O_RDONLY, doing: "cannot open") else { continue }
            defer { try? f.close() }
            if try f.byteLockHeld(start: qemuHoldsWrite, length: 1, exclusive: true) {
                throw DiskVaultError(.locked, "\(link.path == path ? "" : "its backing file \(link.path) ")is open for writing by a running VM (qemu holds its write lock); a \(format.rawValue) is read only when no VM writes it (not even with --allow-live: its metadata changes under a reader); stop the VM; nothing was written", path: path)
            }
        }
        let client = try QemuImage.serve(path, format: format)
        guard client.size == info.virtualSize else {
            throw DiskVaultError(.corrupt, "qemu-img says the disk is \(info.virtualSize) bytes, qemu-nbd serves \(client.size)", path: path)
        }
        let source = ImageSource(path: path, kind: kind, size: client.size, file: file, bytes: client, nbd: client, format: format,
                                 chain: info.chain, qcow2: header, identity: identity, fileSize: size)
        source.modifiedAtStart = kind == .file ? st.modified : nil
        return source
    }

    /// Which bytes of a range hold data: holes of a sparse file and zero extents of an export are left out, so
    /// they are never read. Kept apart from how bytes are read, so that a list of changed ranges can stand in for it.
    func makeReadPlan() -> any ReadPlan {
        if let nbd { return ExtentReadPlan(client: nbd) }
        if kind == .file, let file { return SparseReadPlan(file: file, image: path, size: size ?? 0) }
        return WholeReadPlan()
    }
}

protocol ReadPlan {
    /// The data ranges within `range`, ascending; what is left out reads as zeros.
    mutating func dataRanges(in range: Range<UInt64>) throws(DiskVaultError) -> [Range<UInt64>]
}

struct WholeReadPlan: ReadPlan {
    func dataRanges(in range: Range<UInt64>) -> [Range<UInt64>] { [range] }
}

/// Finds data with NBD block status (`base:allocation`), asking ahead and keeping the extents not yet used.
struct ExtentReadPlan: ReadPlan {
    let client: NBDClient
    /// Extents known from `known.first` on, ascending and adjacent.
    private var known: [NBDClient.Extent] = []
    private var next = 0
    /// How far ahead one request asks: a few round trips per GiB, and a bounded reply.
    static let lookahead: UInt64 = 256 << 20

    init(client: NBDClient) { self.client = client }

    mutating func dataRanges(in range: Range<UInt64>) throws(DiskVaultError) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var pos = range.lowerBound
        while pos < range.upperBound {
            while next < known.count && known[next].range.upperBound <= pos { next += 1 }
            if next == known.count {
                guard pos < client.size else {
                    throw DiskVaultError(.io, "NBD export \(client.name): byte \(pos) is past the export's \(client.size) bytes")
                }
                known = try client.extents(in: pos..<min(client.size, max(range.upperBound, pos + Self.lookahead)))
                next = 0
                guard let first = known.first, first.range.lowerBound == pos else {
                    throw DiskVaultError(.io, "NBD export \(client.name): block status at byte \(pos) began elsewhere")
                }
                continue
            }
            let e = known[next]
            let end = min(range.upperBound, e.range.upperBound)
            if !e.zero {
                if let last = out.last, last.upperBound == pos { out[out.count - 1] = last.lowerBound..<end } else { out.append(pos..<end) }
            }
            pos = end
        }
        return out
    }
}

/// Finds data with SEEK_DATA/SEEK_HOLE, walking forward; two calls per extent of data.
struct SparseReadPlan: ReadPlan {
    let file: FileDescriptor
    let image: String
    /// The size at the start: "no more data" below it is checked against the size now.
    let size: UInt64
    /// The extent found last; `end..<end` (UInt64.max) once no data follows.
    private var extent: Range<UInt64>? = nil
    private var unsupported = false

    init(file: FileDescriptor, image: String, size: UInt64) {
        self.file = file
        self.image = image
        self.size = size
    }

    mutating func dataRanges(in range: Range<UInt64>) throws(DiskVaultError) -> [Range<UInt64>] {
        if unsupported { return [range] }
        var out: [Range<UInt64>] = []
        var pos = range.lowerBound
        while pos < range.upperBound {
            if let e = extent, e.upperBound > pos {
                if e.lowerBound >= range.upperBound { break }
                let end = min(range.upperBound, e.upperBound)
                out.append(max(pos, e.lowerBound)..<end)
                pos = end
                continue
            }
            let data: UInt64?
            do {
                data = try file.nextData(from: pos)
            } catch where error.code == .unsupported {
                unsupported = true
                return [range]
            }
            guard let start = data else {
                // SEEK_DATA says the same past the end of a file that shrank: that is not a hole.
                if pos < size {
                    let now = try file.status().size
                    if now < size { throw ImageSource.changed(image, "\(size) bytes at the start, \(now) at byte \(pos)") }
                }
                extent = UInt64.max..<UInt64.max
                break
            }
            extent = start..<max(start + 1, try file.nextHole(from: start))
        }
        return out
    }
}

/// Which chunks a running VM's guest wrote since the previous point, from qemu's frozen dirty bitmap exported
/// with the point in time (`qemu:dirty-bitmap:NAME`), asked ahead like `ExtentReadPlan`.
struct DirtyBitmapPlan {
    let client: NBDClient
    let context: String
    private var known: [NBDClient.Extent] = []
    private var next = 0
    static let lookahead: UInt64 = 1 << 30

    init(client: NBDClient, bitmap: String) {
        self.client = client
        self.context = "qemu:dirty-bitmap:\(bitmap)"
    }

    /// Whether any byte of `range` is dirty; ranges are asked for in ascending order.
    mutating func isChanged(_ range: Range<UInt64>) throws(DiskVaultError) -> Bool {
        var pos = range.lowerBound
        while pos < range.upperBound {
            while next < known.count && known[next].range.upperBound <= pos { next += 1 }
            if next == known.count || known[next].range.lowerBound > pos {
                guard pos < client.size else { return false }
                known = try client.dirtyExtents(in: pos..<min(client.size, max(range.upperBound, pos + Self.lookahead)), context: context)
                next = 0
                guard let first = known.first, first.range.lowerBound == pos else {
                    throw DiskVaultError(.io, "NBD export \(client.name): the dirty bitmap's status at byte \(pos) began elsewhere")
                }
                continue
            }
            if known[next].zero { return true }
            pos = known[next].range.upperBound
        }
        return false
    }
}
