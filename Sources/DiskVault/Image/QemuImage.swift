import Foundation

/// An image in a format qemu reads (qcow2, vmdk, vhdx, vdi, qed, vpc): what `qemu-img info` says of it and its
/// backing chain, and its guest-visible disk served to this process by a qemu-nbd started for the read.
public enum QemuImage {
    /// One image of a backing chain, top first.
    public struct ChainLink: Codable, Sendable, Equatable {
        public var path: String
        public var format: String
        public var virtualSize: UInt64
    }

    public struct Info: Sendable {
        public var format: ImageFormat
        public var virtualSize: UInt64
        public var encrypted: Bool
        /// The image and then each backing file, top first.
        public var chain: [ChainLink]
    }

    private struct Entry: Decodable {
        var filename: String
        var format: String
        var virtualSize: UInt64
        var encrypted: Bool?
        enum CodingKeys: String, CodingKey {
            case filename, format, encrypted
            case virtualSize = "virtual-size"
        }
    }

    /// `qemu-img info` of the image and its backing chain, read as `format` (never probed: a raw image that
    /// holds a qcow2 header must not be taken for one). Shared locks are not taken (`-U`): whether a VM writes
    /// the image is checked by its locks before the read.
    public static func info(_ path: String, format: ImageFormat) throws(DiskVaultError) -> Info {
        let qemuImg = try ExternalCommand.require("qemu-img", package: "qemu-utils", for: "read \(format.rawValue) images")
        let r = try ExternalCommand.run([qemuImg, "info", "--output=json", "--backing-chain", "-U", "-f", format.rawValue, path])
        guard r.status == 0 else {
            throw DiskVaultError(.corrupt, "cannot read the image as \(format.rawValue): \(qemuMessage(r.stderr))", path: path)
        }
        let entries: [Entry]
        do {
            entries = try JSONDecoder().decode([Entry].self, from: Data(r.stdout.utf8))
        } catch {
            throw DiskVaultError(.corrupt, "cannot read the image as \(format.rawValue): qemu-img info printed what is not its JSON (\(error))", path: path)
        }
        guard let top = entries.first else { throw DiskVaultError(.corrupt, "qemu-img info described no image", path: path) }
        return Info(
            format: format, virtualSize: top.virtualSize, encrypted: top.encrypted ?? false,
            chain: entries.map { ChainLink(path: $0.filename, format: $0.format, virtualSize: $0.virtualSize) })
    }

    /// The guest-visible disk of `path`, read-only, through a qemu-nbd this process starts on a private socket;
    /// it stops when the connection closes, and ends by itself if this process dies.
    public static func serve(_ path: String, format: ImageFormat) throws(DiskVaultError) -> NBDClient {
        let qemuNBD = try ExternalCommand.require("qemu-nbd", package: "qemu-utils", for: "read \(format.rawValue) images")
        do {
            return try NBDClient.launch(
                [qemuNBD, "--read-only", "--format=\(format.rawValue)", "--shared=1", path],
                name: path)
        } catch {
            throw DiskVaultError(error.code, "cannot read the image as \(format.rawValue) through qemu-nbd (its own message, if any, is above): \(error.message)", path: path)
        }
    }

    /// Creates a new image of `format` and `size` bytes at `path` (mode 0600; an existing file is an error) and
    /// serves it writable through a qemu-nbd this process starts: what is never written stays unallocated.
    public static func create(_ path: String, format: ImageFormat, size: UInt64) throws(DiskVaultError) -> NBDClient {
        let qemuImg = try ExternalCommand.require("qemu-img", package: "qemu-utils", for: "write \(format.rawValue) images")
        let qemuNBD = try ExternalCommand.require("qemu-nbd", package: "qemu-utils", for: "write \(format.rawValue) images")
        // The name is taken first, exclusively and private, so that qemu-img never writes over another file.
        let placeholder = try FileDescriptor(path: path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: FileSystem.privateFileMode, doing: "cannot create")
        try placeholder.close()
        let made = try ExternalCommand.run([qemuImg, "create", "-q", "-f", format.rawValue, path, String(size)])
        guard made.status == 0 else {
            throw DiskVaultError(.io, "qemu-img cannot create a \(format.rawValue) image: \(qemuMessage(made.stderr))", path: path)
        }
        do {
            return try NBDClient.launch([qemuNBD, "--format=\(format.rawValue)", "--shared=1", "--cache=writeback", path], name: path)
        } catch {
            throw DiskVaultError(error.code, "cannot write the image as \(format.rawValue) through qemu-nbd: \(error.message)", path: path)
        }
    }

    /// qemu's message without the program-name prefix, on one line.
    static func qemuMessage(_ stderr: String) -> String {
        let lines = stderr.split(separator: "\n").map { line -> String in
            var s = String(line)
            for prefix in ["qemu-img: ", "qemu-nbd: "] where s.hasPrefix(prefix) { s.removeFirst(prefix.count) }
            return s
        }
        return lines.isEmpty ? "qemu-img failed" : lines.joined(separator: "; ")
    }
}
