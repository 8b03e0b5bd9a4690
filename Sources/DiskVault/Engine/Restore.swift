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
}

/// Writes a whole disk from a recovery point: every chunk checked against its digest, zero chunks left as
/// holes, the data in a temporary file beside the target that is renamed into place only when complete and
/// synced. There is no file-level restore.
public final class Restore {
    let vault: Vault
    let options: RestoreOptions
    public weak var observer: (any ProgressObserver)?

    public init(vault: Vault, options: RestoreOptions) {
        self.vault = vault
        self.options = options
    }

    public func run() throws(DiskVaultError) -> RestoreResult {
        let started = Date()
        let point = try vault.point(disk: options.disk, id: options.point)
        let index = try vault.index(of: point)
        let target = options.target
        let directory = FileSystem.parentDirectory(of: target)
        guard FileSystem.isDirectory(directory) else {
            throw DiskVaultError(.notFound, "target directory does not exist", path: directory)
        }
        if FileSystem.exists(target) {
            if FileSystem.isDirectory(target) {
                throw DiskVaultError(.usage, "target is a directory; give the path of the disk image to write", path: target)
            }
            if !options.replace {
                throw DiskVaultError(.alreadyExists, "target exists; restore to a new path, or pass --replace to restore over it", path: target)
            }
        }

        let tmp = "\(directory)/.\(FileSystem.lastComponent(of: target)).diskvault-restore-\(randomHex(4))"
        var result = RestoreResult(
            disk: point.disk, point: point.id, target: target, size: index.imageSize,
            writtenBytes: 0, holeBytes: 0, chunks: index.count, seconds: 0)
        do throws(DiskVaultError) {
            let file = try FileDescriptor(path: tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o644, doing: "cannot create")
            try file.truncate(to: index.imageSize)
            try write(index, to: file, result: &result)
            try file.sync()
            try file.close()
            if options.replace {
                _ = try sys("rename", path: target, "cannot rename restored disk into place") { rename(tmp, target) }
            } else if try !FileSystem.renameNoReplace(tmp, target) {
                throw DiskVaultError(.alreadyExists, "target appeared during the restore; nothing was replaced", path: target)
            }
            try FileSystem.syncDirectory(directory)
        } catch {
            unlink(tmp)
            throw error
        }
        result.seconds = Date().timeIntervalSince(started)
        return result
    }

    struct RestoredChunk {
        var length: Int
        var written: Bool
    }

    private func write(_ index: ChunkIndex, to file: FileDescriptor, result: inout RestoreResult) throws(DiskVaultError) {
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
                    for i in 0..<index.count { try emit(i) }
                },
                makeWorker: {
                    let codec = BlobCodec(chunkSize: chunkSize)
                    let buffer = ByteBuffer(capacity: chunkSize)
                    return { (i: Int) throws -> RestoredChunk in
                        let digest = index.digests[i]
                        let length = index.length(ofChunk: i)
                        if digest.isZero { return RestoredChunk(length: length, written: false) }
                        do throws(DiskVaultError) {
                            try chunks.load(digest, length: length, into: buffer, codec: codec)
                        } catch {
                            var e = error
                            e.message += " (chunk \(i) of \(pointID), at byte \(UInt64(i) * UInt64(chunkSize)))"
                            throw e
                        }
                        try file.write(buffer.prefix(length), at: UInt64(i) * UInt64(chunkSize))
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
