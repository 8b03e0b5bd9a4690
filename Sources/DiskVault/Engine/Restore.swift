#if canImport(Glibc)
import Glibc
#endif
import Foundation

public struct RestoreOptions: Sendable {
    public var disk: String
    public var point: String?
    public var target: String
    public var replace = false
    public var threads = defaultThreadCount()
    /// The key vault holding an encrypted point's keys.
    public var keyVault: KeyVaultAccess?
    /// Where to write the disk's key (BEK, unwrapped) for the user.
    public var exportKey: String?
    /// The format to write: raw or qcow2 (nil: the point's own, raw unless it holds a qcow2's container).
    public var format: ImageFormat?

    /// The target that writes the disk to standard output, in order, for a pipe (`| dd of=/dev/…`).
    public static let standardOutput = "-"

    public init(disk: String, point: String?, target: String) {
        self.disk = disk
        self.point = point
        self.target = target
    }
}

public struct RestoreResult: Codable, Sendable {
    public var disk: String
    public var point: String
    public var target: String
    public var size: UInt64
    public var writtenBytes: UInt64
    public var holeBytes: UInt64
    public var chunks: Int
    public var seconds: Double
    /// What re-attaching the disk to a VM needs, written beside it.
    public var attachFiles: [String] = []
    /// The format written, where it is not raw.
    public var format: String?
    public var exportedKeys: [String] = []
    /// What the restore found and dealt with on the way (a dead restore's temporary disk it removed).
    public var warnings: [String] = []
}

/// Writes a whole disk from a recovery point: every chunk checked against its digest, zero chunks left as
/// holes, the data in a temporary file beside the target that is renamed into place only when complete and
/// synced — or, for `--target -`, streamed to standard output in order, each chunk checked the same way.
/// There is no file-level restore.
public final class Restore {
    let vault: Vault
    let options: RestoreOptions
    public weak var observer: (any ProgressObserver)?

    public init(vault: Vault, options: RestoreOptions) {
        self.vault = vault
        self.options = options
    }

    /// Runs the restore as a recorded job under the vault's shared lock.
    public func run(_ control: JobControl = .init()) throws(DiskVaultError) -> RestoreResult {
        try Job.run(vault, kind: .restore, disk: options.disk, control: control) { (outcome) throws(DiskVaultError) in
            let result = try runUnlocked()
            outcome.bytes = result.size
            outcome.point = result.point
            outcome.warnings = result.warnings
            return result
        }
    }

    private func runUnlocked() throws(DiskVaultError) -> RestoreResult {
        let started = Date()
        let point = try vault.point(disk: options.disk, id: options.point)
        let index = try vault.index(of: point)
        let keys = try keysForRestore(point)
        var result = RestoreResult(
            disk: point.disk, point: point.id, target: options.target, size: index.imageSize,
            writtenBytes: 0, holeBytes: 0, chunks: index.count, seconds: 0)
        if options.target == RestoreOptions.standardOutput {
            if let f = options.format, f != point.manifest.source.restoredFormat {
                throw DiskVaultError(.usage, "--format \(f.rawValue) does not apply to --target - (standard output): the disk is streamed as the point holds it")
            }
            guard !options.replace else { throw DiskVaultError(.usage, "--replace does not apply to --target - (standard output)") }
            // What is streamed cannot be taken back: the index must check whole before the first byte goes out.
            let checked = try vault.checkedIndex(of: point)
            let out = try FileDescriptor.duplicate(1, path: "standard output")
            try stream(checked, to: out, result: &result)
            if let exportKey = options.exportKey, let kv = keys {
                result.exportedKeys = try exportKeys(point, kv: kv, to: exportKey)
            }
            result.seconds = Date().timeIntervalSince(started)
            return result
        }
        if let device = BlockDeviceTarget.resolve(options.target) {
            try restoreToDevice(device, point: point, index: index, result: &result)
            if let exportKey = options.exportKey, let kv = keys {
                result.exportedKeys = try exportKeys(point, kv: kv, to: exportKey)
            }
            result.seconds = Date().timeIntervalSince(started)
            return result
        }
        let format = try restoredFormat(point)
        result.format = format == .raw ? nil : format.rawValue
        let target = options.target
        let directory = FileSystem.parentDirectory(of: target)
        try RestoreTarget.check(target, replace: options.replace, sidecars: Reattach.files(for: target))
        result.warnings = try RestoreTarget.removeDeadTemporaries(target)

        let tmp = RestoreTarget.temporaryPath(target)
        let cleanup = InterruptCleanup.register(tmp)
        defer { cleanup.cancel() }
        do throws(DiskVaultError) {
            if format == .raw || format == point.manifest.source.restoredFormat {
                let file = try FileDescriptor(path: tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: FileSystem.privateFileMode, doing: "cannot create")
                try file.truncate(to: index.imageSize)
                // Whole chunks go to the disk with direct I/O where the file system takes it (not through the page
                // cache, whose buffered writes cost more CPU here than inflating); a short last chunk goes buffered.
                let direct = FileDescriptor.openDirect(tmp)
                try write(index, to: file, file: file, direct: direct, result: &result)
                try direct?.close()
                try file.sync()
                try file.close()
            } else {
                // A new image in the host's format, written through qemu: zero chunks are never written, so
                // they stay unallocated clusters.
                let image = try QemuImage.create(tmp, format: format, size: index.imageSize)
                defer { image.close() }
                try write(index, to: image, file: nil, direct: nil, result: &result)
                try image.flush()
                image.close()
                let synced = try FileDescriptor(path: tmp, flags: O_RDONLY, doing: "cannot open restored image")
                try synced.sync()
                try synced.close()
            }
            if options.replace {
                try RestoreTarget.checkStillReplaceable(target)
                try FileSystem.rename(tmp, target, doing: "cannot rename restored disk into place")
            } else if try !FileSystem.renameNoReplace(tmp, target) {
                throw DiskVaultError(.alreadyExists, "target appeared during the restore; nothing was replaced", path: target)
            }
            try FileSystem.syncDirectory(directory)
        } catch {
            try? FileSystem.remove(tmp)
            throw error
        }
        result.attachFiles = try Reattach.write(
            target: target, point: point, keyBackup: point.manifest.keyBackup, keyVault: options.keyVault?.keyVault, format: format)
        if let exportKey = options.exportKey, let kv = keys {
            result.exportedKeys = try exportKeys(point, kv: kv, to: exportKey)
        }
        result.seconds = Date().timeIntervalSince(started)
        return result
    }

    /// The format the restore writes: `--format` if given, else the point's. A container (a qcow2 that qemu
    /// encrypts) is written only as itself; a disk that is LUKS from its first byte is written raw (qemu opens
    /// it with its luks driver; a qcow2 around it would need a second layer no re-attach file describes).
    func restoredFormat(_ point: RecoveryPoint) throws(DiskVaultError) -> ImageFormat {
        let own = point.manifest.source.restoredFormat
        guard let asked = options.format, asked != own else { return own }
        guard asked == .raw || asked == .qcow2 else {
            throw DiskVaultError(.usage, "--format \(asked.rawValue): a restore writes raw or qcow2")
        }
        if point.manifest.source.contents == .container {
            throw DiskVaultError(.usage, "point \(point.id) holds a \(own.rawValue) that qemu encrypts, kept as it is (its data is never decrypted); it restores only as \(own.rawValue)")
        }
        let volumes = point.manifest.layout?.volumes ?? []
        if asked == .qcow2, volumes.count == 1, volumes[0].number == 0, volumes[0].encryption.format.isLUKS {
            throw DiskVaultError(.usage, "disk \(point.disk) is LUKS from its first byte: restore it raw (qemu opens it with its luks driver; the re-attach files say how)")
        }
        return asked
    }

    /// The rules for an encrypted point: a new target only, its key vault present and holding its keys.
    /// Returns the opened key vault when the point carries a key backup.
    func keysForRestore(_ point: RecoveryPoint) throws(DiskVaultError) -> KeyVault? {
        let encrypted = KeyBackup.encryptedVolumes(point.manifest.layout)
        if !encrypted.isEmpty && options.replace {
            throw DiskVaultError(.usage, "restoring over an existing disk is not supported for encrypted disks: restore point \(point.id) to a new target")
        }
        guard let record = point.manifest.keyBackup else {
            if options.exportKey != nil { throw DiskVaultError(.usage, "point \(point.id) carries no key backup: there is no key to export") }
            return nil
        }
        let command = "diskvault keys restore --vault \(vault.location) --disk \(point.disk) --point \(point.id) --keyvault \(options.keyVault?.keyVault ?? record.keyVault) --principal P --credential F"
        guard let access = options.keyVault else {
            throw DiskVaultError(.usage, "point \(point.id) of disk \(point.disk) is encrypted: restore needs --keyvault, --principal and --credential (its keys were backed up from key vault \(record.keyVault))")
        }
        let escrowed = KeyBackup.isEscrowed(point, in: vault)
        let kv: KeyVault
        do {
            kv = try access.open()
        } catch where error.code == .notFound && !FileSystem.exists("\(access.keyVault)/keyvault.json") {
            if escrowed {
                throw DiskVaultError(.notFound, "key vault \(access.keyVault) is missing: point \(point.id) needs its keys, backed up from key vault \(record.keyVault) (id \(record.keyVaultID)); they are escrowed in vault \(vault.location): create a new key vault, put them into it with `diskvault keys restore --vault \(vault.location) --disk \(point.disk) --point \(point.id) --keyvault NEW --principal P --credential F --recovery-passphrase-file R` (R: the recovery passphrase of the vault's escrow key), then restore with --keyvault NEW")
            }
            throw DiskVaultError(.notFound, "key vault \(access.keyVault) is missing: point \(point.id) needs its keys from key vault \(record.keyVault) (id \(record.keyVaultID)), the only place they are sealed under; put that key vault back, then restore again")
        }
        if kv.config.id != record.keyVaultID {
            guard escrowed else {
                throw DiskVaultError(.usage, "key vault \(access.keyVault) is not the one the keys of point \(point.id) came from (\(record.keyVault), id \(record.keyVaultID)), and the vault keeps no escrow of them")
            }
            try checkEscrowedKeys(point, record, in: kv, command: command)
        }
        for v in record.volumes {
            let which = v.number == 0 ? "the disk" : "volume \(v.number)"
            guard try kv.hasSecret(name: v.secret, version: v.secretVersion) else {
                throw DiskVaultError(.notFound, "secret \(v.secret) version \(v.secretVersion), the key of \(which), is missing from key vault \(access.keyVault); put it back with `\(command)`")
            }
            if let kek = v.wrappedBy, let version = v.keyVersion, !(try kv.hasKey(name: kek, version: version)) {
                throw DiskVaultError(.notFound, "key \(kek) version \(version), which wraps the key of \(which), is missing from key vault \(access.keyVault); put it back with `\(command)`")
            }
        }
        return kv
    }

    /// Another key vault than the one a point's keys came from serves its restore when it holds each volume's
    /// secret as the point recorded it (put back by `keys restore`): same name, version and wrapping, and the
    /// same stored value where its principal may read values.
    func checkEscrowedKeys(_ point: RecoveryPoint, _ record: KeyBackupRecord, in kv: KeyVault, command: String) throws(DiskVaultError) {
        let readsValues = kv.canRead(.value, .secrets)
        for v in record.volumes {
            let which = v.number == 0 ? "the disk" : "volume \(v.number)"
            let here = try kv.secretEntries().last { $0.listing.name == v.secret && $0.listing.version == v.secretVersion }
            let hereValue = try here.flatMap { (e) throws(DiskVaultError) in readsValues ? try kv.record(e).value : nil }
            guard let here, here.listing.wrap?.key == v.wrappedBy, here.listing.wrap?.keyVersion == v.keyVersion,
                hereValue == nil || v.valueDigest == nil || hereValue.map(KeyBackupRecord.valueDigest) == v.valueDigest
            else {
                throw DiskVaultError(.notFound, "secret \(v.secret) version \(v.secretVersion), the key of \(which), is not in key vault \(kv.root) as point \(point.id) backed it up; put it back with `\(command)`")
            }
        }
    }

    /// Writes each encrypted volume's BEK, unwrapped: `path` for one volume, `path.N` for several.
    func exportKeys(_ point: RecoveryPoint, kv: KeyVault, to path: String) throws(DiskVaultError) -> [String] {
        let volumes = point.manifest.keyBackup?.volumes ?? []
        var written: [String] = []
        for v in volumes {
            let bek = try kv.unwrappedValue(of: try kv.secret(name: v.secret, version: v.secretVersion))
            let file = volumes.count == 1 ? path : "\(path).\(v.number)"
            let out = try FileDescriptor(path: file, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600, doing: "cannot create key file (it must not exist yet)")
            try bek.withBytes { (b) throws(DiskVaultError) in try out.writeAll([b]) }
            try out.sync()
            try out.close()
            written.append(file)
        }
        return written
    }

    enum RestoreItem {
        case zeros(Range<Int>)
        case chunk(Int, Digest256)
    }

    struct RestoredChunk {
        var length: Int
        var written: Bool
    }

    /// The index is read as the chunks go out, never whole; a digest that differs from the manifest's shows at
    /// its end and fails the restore before the target is renamed into place.
    /// `sink` takes every chunk; `file`, when the sink is a local file, has its writeback started early.
    /// `zero`: for a target whose unwritten ranges are not zeros by themselves (a block device), what makes a
    /// range of zero chunks zeros; nil for a new file, where they stay holes.
    func write(_ index: ChunkIndexReader, to sink: any ImageSink, file: FileDescriptor?, direct: FileDescriptor?, zero: (@Sendable (UInt64, UInt64) throws(DiskVaultError) -> Void)? = nil, result: inout RestoreResult) throws(DiskVaultError) {
        let workers = max(1, options.threads)
        let chunkSize = index.chunkSize
        let chunks = vault.chunks
        let pointID = "\(options.disk)@\(options.point ?? "latest")"
        var done: UInt64 = 0
        var written: UInt64 = 0
        let observer = self.observer
        let total = index.imageSize
        do {
            try Pipeline.run(
                workers: workers, depth: pipelineDepth(workers: workers, chunkSize: chunkSize),
                produce: { emit in
                    // A run of zero chunks is one item however long: nothing to read or write (the target is
                    // sparse), so neither a worker wake-up per chunk nor a loop over an exabyte of holes.
                    var i = 0
                    var zeros = 0
                    func flushZeros() throws {
                        guard zeros > 0 else { return }
                        try emit(RestoreItem.zeros(i..<i + zeros))
                        i += zeros
                        zeros = 0
                    }
                    while let entry = try index.next() {
                        switch entry {
                        case .zeros(let n):
                            zeros += n
                        case .chunk(let digest):
                            try flushZeros()
                            try emit(RestoreItem.chunk(i, digest))
                            i += 1
                        }
                    }
                    try flushZeros()
                },
                makeWorker: {
                    let codec = BlobCodec(chunkSize: chunkSize)
                    // The chunk goes to byte 4096, aligned for the direct write; a raw blob is read straight there.
                    let at = Blob.directIOAlignment
                    let buffer = ByteBuffer(capacity: at + chunkSize + AESGCM.overhead)
                    return { (item: RestoreItem) throws -> RestoredChunk in
                        let i: Int, digest: Digest256
                        switch item {
                        case .zeros(let run):
                            // Every chunk of the run is whole but perhaps the image's last.
                            let length = (run.count - 1) * chunkSize + index.length(ofChunk: run.upperBound - 1)
                            try zero?(UInt64(run.lowerBound) * UInt64(chunkSize), UInt64(length))
                            return RestoredChunk(length: length, written: false)
                        case .chunk(let n, let d):
                            (i, digest) = (n, d)
                        }
                        let length = index.length(ofChunk: i)
                        let bytes: UnsafeRawBufferPointer
                        do throws(DiskVaultError) {
                            bytes = try chunks.load(digest, length: length, into: buffer, at: at, codec: codec)
                        } catch {
                            var e = error
                            e.message += " (chunk \(i) of \(pointID), at byte \(UInt64(i) * UInt64(chunkSize)))"
                            throw e
                        }
                        let offset = UInt64(i) * UInt64(chunkSize)
                        if let direct, length % Blob.directIOAlignment == 0 {
                            try direct.write(bytes, at: offset)
                        } else {
                            try sink.write(bytes, at: offset)
                            // The disk starts on this chunk now; the one fsync at the end has little left.
                            file?.startWriteback(offset: offset, length: UInt64(length))
                        }
                        return RestoredChunk(length: length, written: true)
                    }
                },
                consume: { (chunk: RestoredChunk) in
                    done += UInt64(chunk.length)
                    if chunk.written { written += UInt64(chunk.length) }
                    observer?.progress(done: done, total: total)
                })
        } catch let error as DiskVaultError {
            throw error
        } catch {
            throw DiskVaultError(.io, "restore failed: \(error)", path: options.target)
        }
        result.writtenBytes = written
        result.holeBytes = index.imageSize - written
    }
}
