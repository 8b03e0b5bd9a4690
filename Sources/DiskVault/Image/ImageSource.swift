#if canImport(Glibc)
import Glibc
#endif

/// A raw disk image opened for backup: a regular file, a block device, or a stream (standard input).
/// Every read of a source goes through here, so that later locking of a live VM's image has one place to go.
public final class ImageSource: @unchecked Sendable {
    public enum Kind: String, Codable, Sendable {
        case file
        case blockDevice = "block-device"
        case stream
    }

    public let path: String
    public let kind: Kind
    /// Known up front for files and devices; a stream's size is known only at its end.
    public let size: UInt64?
    public let sectorSize = 512
    let file: FileDescriptor
    /// The file opened (st_dev, st_ino), to tell at the end whether the path still names it.
    let identity: (device: UInt64, inode: UInt64)?

    init(path: String, kind: Kind, size: UInt64?, file: FileDescriptor, identity: (device: UInt64, inode: UInt64)? = nil) {
        self.path = path
        self.kind = kind
        self.size = size
        self.file = file
        self.identity = identity
    }

    static func changed(_ path: String, _ why: String) -> DiskVaultError {
        DiskVaultError(.io, "image changed while it was read (\(why)); no recovery point was written", path: path)
    }

    /// Throws when the image is no longer what was read: its size differs from the size at the start, or its path
    /// names another file (replaced or renamed over). A stream cannot be checked.
    public func checkUnchanged() throws(DiskVaultError) {
        guard let size, kind != .stream else { return }
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

    /// Opens `path`, or standard input for "-". The path is kept absolute: the manifest records it.
    public static func open(_ given: String) throws(DiskVaultError) -> ImageSource {
        if given == "-" {
            return ImageSource(path: "-", kind: .stream, size: nil, file: try FileDescriptor.duplicate(0, path: "standard input"))
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
        if st.isRegular {
            file.adviseSequential()
            return ImageSource(path: path, kind: .file, size: st.size, file: file, identity: (st.device, st.inode))
        }
        if st.isBlockDevice {
            return ImageSource(path: path, kind: .blockDevice, size: try file.blockDeviceSize(), file: file, identity: (st.device, st.inode))
        }
        if st.isDirectory {
            throw DiskVaultError(.unsupported, "is a directory, not a disk image", path: path)
        }
        if st.mode & S_IFMT == S_IFIFO || st.mode & S_IFMT == S_IFCHR {
            return ImageSource(path: path, kind: .stream, size: nil, file: file)
        }
        throw DiskVaultError(.unsupported, "is not a regular file, block device or stream", path: path)
    }

    /// Which bytes of a range hold data: holes of a sparse file are left out, so they are never read.
    /// Kept apart from how bytes are read, so that a list of changed ranges can stand in for it later.
    func makeReadPlan() -> any ReadPlan {
        kind == .file ? SparseReadPlan(file: file, image: path, size: size ?? 0) : WholeReadPlan()
    }
}

protocol ReadPlan {
    /// The data ranges within `range`, ascending; what is left out reads as zeros.
    mutating func dataRanges(in range: Range<UInt64>) throws(DiskVaultError) -> [Range<UInt64>]
}

struct WholeReadPlan: ReadPlan {
    func dataRanges(in range: Range<UInt64>) -> [Range<UInt64>] { [range] }
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
