import Foundation
internal import CLinux

/// A restore target that is a block device (given by its node, or a symbolic link to it such as
/// /dev/disk/by-id/…): written in place, never renamed over.
enum BlockDeviceTarget {
    /// The device node `target` names, or nil when it names no block device.
    static func resolve(_ target: String) -> String? {
        guard let real = realpath(target, nil) else { return nil }
        defer { free(real) }
        var st = stat()
        guard stat(real, &st) == 0, st.st_mode & S_IFMT == S_IFBLK else { return nil }
        return String(cString: real)
    }
}

extension Restore {
    /// Writes the point onto `device` in place: the device must be at least the disk's size and held by no one
    /// (mounted, a device-mapper target, another exclusive opener); it must be blank (no partition table, file
    /// system or encryption header blkid can find) unless --replace says to write over it, and always for an
    /// encrypted disk's point. Data chunks are written, zero chunks zeroed by punching them out (the device
    /// unmaps them where it can, so thin volumes stay thin); one flush at the end. No re-attach files: a device has no folder beside it.
    func restoreToDevice(_ device: String, point: RecoveryPoint, index: ChunkIndexReader, result: inout RestoreResult) throws(DiskVaultError) {
        if let f = options.format, f != .raw { throw DiskVaultError(.usage, "a block device takes the disk's raw bytes: --format \(f.rawValue) does not apply", path: device) }
        guard point.manifest.source.restoredFormat == .raw else {
            throw DiskVaultError(.usage, "point \(point.id) holds a \(point.manifest.source.restoredFormat.rawValue) image, not a raw disk: restore it to a file", path: device)
        }
        let encrypted = !KeyBackup.encryptedVolumes(point.manifest.layout).isEmpty || point.manifest.keyBackup != nil
        let file: FileDescriptor
        do {
            file = try FileDescriptor(path: device, flags: O_RDWR | dv_o_excl(), doing: "cannot open")
        } catch where "\(error)".contains("(16)") || "\(error)".lowercased().contains("busy") {
            throw DiskVaultError(.locked, "the device is in use (mounted, part of a device-mapper or RAID device, or opened exclusively by another program); nothing was written", path: device)
        }
        defer { try? file.close() }
        let size = try file.blockDeviceSize()
        guard size >= index.imageSize else {
            throw DiskVaultError(.usage, "the device holds \(ByteCount.format(size)) (\(size) bytes), less than the disk's \(ByteCount.format(index.imageSize)) (\(index.imageSize) bytes); nothing was written", path: device)
        }
        if encrypted || !options.replace {
            let blkid = try ExternalCommand.require("blkid", package: "util-linux", for: "check that a device is blank before a restore writes onto it")
            let probe = try ExternalCommand.run([blkid, "-p", "-o", "export", device])
            if probe.status == 0 {
                let found = probe.stdout.split(separator: "\n").filter { $0.hasPrefix("TYPE=") || $0.hasPrefix("PTTYPE=") }.joined(separator: ", ")
                let why = encrypted ? "an encrypted disk is never restored over existing data: wipe the device first (wipefs -a)"
                                    : "pass --replace to write over it"
                throw DiskVaultError(.alreadyExists, "the device is not blank (blkid finds \(found.isEmpty ? "a signature" : found)); \(why); nothing was written", path: device)
            }
            if probe.status != 2 {
                throw DiskVaultError(.io, "blkid could not probe the device: \(probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines)); nothing was written", path: device)
            }
        }
        let fd = file.fd
        let zero: @Sendable (UInt64, UInt64) throws(DiskVaultError) -> Void = { (offset, length) throws(DiskVaultError) in
            guard dv_block_zeroout(fd, offset, length) == 0 else {
                throw DiskVaultError.system("fallocate", errno, path: device, doing: "cannot zero \(length) bytes at \(offset) of")
            }
        }
        try write(index, to: file, file: file, direct: nil, zero: zero, result: &result)
        try file.sync()
        if size > index.imageSize {
            result.warnings.append("the device holds \(ByteCount.format(size - index.imageSize)) more than the disk: those bytes were left as they were")
        }
        result.target = device
    }
}
