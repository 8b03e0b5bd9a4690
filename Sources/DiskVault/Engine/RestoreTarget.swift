/// Where a restore may write as a file: a new path, or with `--replace` an existing regular file; never a device
/// node, a directory, a FIFO, a socket or a symbolic link (renaming a file over a device node would silently
/// replace the node). Block devices are written in place instead (Restore+Device). The re-attach files beside it are held to the same
/// rule, up front, so that a restore is refused before anything is written rather than after the disk is.
enum RestoreTarget {
    static func check(_ target: String, replace: Bool, sidecars: [String]) throws(DiskVaultError) {
        let directory = FileSystem.parentDirectory(of: target)
        guard FileSystem.isDirectory(directory) else {
            throw DiskVaultError(.notFound, "target directory does not exist", path: directory)
        }
        switch try FileSystem.entryKind(target) {
        case nil: break
        case .regularFile?:
            if !replace {
                throw DiskVaultError(.alreadyExists, "target exists; restore to a new path, or pass --replace to restore over it", path: target)
            }
        case let kind?:
            throw DiskVaultError(.unsupported, "target is \(describe(kind)); restore writes a new or existing regular file, or a block device (use --target - to write the disk to standard output)", path: target)
        }
        for path in sidecars {
            switch try FileSystem.entryKind(path) {
            case nil: break
            case .regularFile? where replace: break
            case .regularFile?:
                throw DiskVaultError(.alreadyExists, "re-attach file exists beside the target; restore to a new path, or pass --replace to restore over it", path: path)
            case let kind?:
                throw DiskVaultError(.unsupported, "re-attach file path is \(describe(kind)), not a regular file; move it away first", path: path)
            }
        }
    }

    /// The target is checked again just before the restored disk is renamed over it, so that a device node that
    /// appeared meanwhile is not replaced either.
    static func checkStillReplaceable(_ target: String) throws(DiskVaultError) {
        if let kind = try FileSystem.entryKind(target), kind != .regularFile {
            throw DiskVaultError(.unsupported, "target became \(describe(kind)) during the restore; nothing was replaced", path: target)
        }
    }

    /// Hidden, beside the target, so that the rename into place stays on one file system.
    static func temporaryPrefix(_ target: String) -> String {
        ".\(FileSystem.lastComponent(of: target)).diskvault-restore-"
    }

    static func temporaryPath(_ target: String) -> String {
        "\(FileSystem.parentDirectory(of: target))/\(temporaryPrefix(target))\(MakerTag.current())-\(randomHex(4))"
    }

    /// Removes the temporary disks of earlier restores to `target` whose process is gone (killed, or its machine
    /// lost power); one of a restore still running is never touched. Returns a warning for each removed.
    static func removeDeadTemporaries(_ target: String) throws(DiskVaultError) -> [String] {
        let directory = FileSystem.parentDirectory(of: target)
        let prefix = temporaryPrefix(target)
        var warnings: [String] = []
        for name in try FileSystem.list(directory) where MakerTag.isGone(name, prefix: prefix) {
            let path = "\(directory)/\(name)"
            guard try FileSystem.entryKind(path) == .regularFile else { continue }
            let size = FileSystem.size(path).map { " (\(ByteCount.format($0)))" } ?? ""
            try FileSystem.remove(path)
            warnings.append("removed \(path)\(size), the temporary disk of an earlier restore whose process is gone")
        }
        return warnings
    }

    static func describe(_ kind: FileSystem.EntryKind) -> String {
        switch kind {
        case .regularFile: return "a regular file"
        case .directory: return "a directory"
        case .symbolicLink: return "a symbolic link"
        case .blockDevice: return "a block device"
        case .characterDevice: return "a character device"
        case .fifo: return "a FIFO"
        case .socket: return "a socket"
        }
    }
}
