#if canImport(Glibc)
import Glibc
#endif

/// A raw disk image opened for backup: a regular file, a block device, or a stream (standard input).
/// Every read of a source goes through here, so that later locking of a live VM's image has one place to go.
public final class ImageSource: @unchecked Sendable {
    public enum Kind: String, Sendable {
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

    init(path: String, kind: Kind, size: UInt64?, file: FileDescriptor) {
        self.path = path
        self.kind = kind
        self.size = size
        self.file = file
    }

    /// Opens `path`, or standard input for "-". The path is kept absolute: the manifest records it.
    public static func open(_ given: String) throws(DiskVaultError) -> ImageSource {
        if given == "-" {
            return ImageSource(path: "-", kind: .stream, size: nil, file: FileDescriptor(adopting: dup(0), path: "standard input"))
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
            return ImageSource(path: path, kind: .file, size: st.size, file: file)
        }
        if st.isBlockDevice {
            return ImageSource(path: path, kind: .blockDevice, size: try file.blockDeviceSize(), file: file)
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
        kind == .file ? SparseReadPlan(file: file) : WholeReadPlan()
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
    /// The extent found last; `end..<end` (UInt64.max) once no data follows.
    private var extent: Range<UInt64>? = nil
    private var unsupported = false

    init(file: FileDescriptor) { self.file = file }

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
                extent = UInt64.max..<UInt64.max
                break
            }
            extent = start..<max(start + 1, try file.nextHole(from: start))
        }
        return out
    }
}
