import Foundation
import Synchronization

/// What a backup is asked to do beyond the image and the vault.
public struct BackupOptions: Sendable {
    public var disk: String
    public var retainUntil: Date?
    public var trigger: Trigger = .onDemand
    public var policy: String?
    public var threads = defaultThreadCount()
    public var now = Date()
    /// Volumes to treat as encrypted though they have no header.
    public var declared = LayoutReader.Declaration()
    /// The key vault that holds the disk's keys, for an encrypted disk.
    public var keyVault: KeyVaultAccess?
    /// Back up an encrypted disk without its keys (a deliberate choice, recorded in the manifest).
    public var withoutKeys = false
    /// A running VM's drive read through qemu: what the manifest records of it (its dirty bitmap).
    var live: Manifest.Live?
    /// The VM point this disk point belongs to.
    var vm: Manifest.VMRef?

    public init(disk: String, retainUntil: Date? = nil) {
        self.disk = disk
        self.retainUntil = retainUntil
    }
}

/// Streams an image into the vault in fixed-size chunks and commits a recovery point.
///
/// The reader (calling thread) reads each chunk into a pooled buffer, leaving holes of a sparse file unread;
/// workers detect zeros, hash, and store new chunks as blobs; results are taken in order into the index.
/// Blobs land first, then one file-system flush, then the index, then the manifest: a point exists only
/// when complete, and a backup killed at any moment leaves the vault as it was plus unreferenced blobs.
public final class Backup {
    let vault: Vault
    let source: ImageSource
    let options: BackupOptions
    /// Which chunks changed since the previous point (a running VM's dirty bitmap): the others are taken from
    /// the previous point's index unread. Nil: every chunk is read and hashed.
    var changes: DirtyBitmapPlan?
    /// Runs after the last chunk is read and before the point is committed (a live backup checks that qemu's
    /// fleecing job held the point in time throughout); an error stops the commit.
    var beforeCommit: (() throws(DiskVaultError) -> Void)?
    /// The disk's points as the caller scanned them under the disk's lock, held since (a live backup decides on
    /// its bitmap from them): not read again. Nil: scanned here.
    var scanned: PointScan?
    public weak var observer: (any ProgressObserver)?
    /// What the run found worth a warning without failing: damaged earlier points it skipped.
    public private(set) var warnings: [String] = []

    public init(vault: Vault, source: ImageSource, options: BackupOptions) {
        self.vault = vault
        self.source = source
        self.options = options
    }

    enum Item {
        /// `count` chunks that are holes of the source, the last `last` bytes long and the others full.
        case holes(count: Int, last: Int)
        /// A chunk read, with the digest the previous point had at the same place (nil: none).
        case data(ByteBuffer, Int, readBytes: Int, mayCompress: Bool, previous: Digest256?)
        /// A chunk the change map says is as it was at the previous point: its digest there, never read.
        case unchanged(Digest256, length: Int)
    }

    enum Output {
        case holes(count: Int, last: Int)
        case zero(length: Int, hole: Int)
        case chunk(Digest256, length: Int, readBytes: Int, stored: ChunkStore.StoreOutcome?)
        case unchanged(Digest256, length: Int)
    }

    /// Runs the backup as a recorded job under its disk's lock and the vault's shared lock.
    public func run(_ control: JobControl = .init()) throws(DiskVaultError) -> Manifest {
        try run(control, holding: [])
    }

    func run(_ control: JobControl, holding: [VaultLock.Kind]) throws(DiskVaultError) -> Manifest {
        try Job.run(vault, kind: .backup, disk: options.disk, control: control, holding: holding) { (outcome) throws(DiskVaultError) in
            let manifest = try runUnlocked()
            for w in warnings { control.notice(w) }
            outcome.bytes = manifest.source.size
            outcome.point = manifest.id
            outcome.warnings = warnings + (manifest.layout?.warnings ?? [])
                + (manifest.keyBackupWaived == true ? ["backed up without its keys"] : [])
            return manifest
        }
    }

    /// The backup without its job record and locks: for a caller that holds them (a live backup).
    func runUnlocked() throws(DiskVaultError) -> Manifest {
        do {
            return try perform()
        } catch where error.code == .noSpace {
            throw DiskVaultError(
                .noSpace, "backup stopped, no recovery point was written: no space left in the vault (diskvault prune, then diskvault gc, frees what no point needs; gc runs on a full disk)",
                path: vault.location, cause: error.cause)
        }
    }

    private func perform() throws(DiskVaultError) -> Manifest {
        try DiskName.validate(options.disk)
        let started = Date()
        let chunkSize = vault.config.chunkSize
        // Damaged points are skipped: one bad old point never stops the disk's new backups.
        let scan: PointScan
        if let scanned { scan = scanned } else { scan = try vault.scanPoints(disk: options.disk, now: options.now) }
        let earlier = scan.points
        let previous = earlier.last
        warnings = scan.damaged.map { "point \($0.id) of disk \(options.disk) is damaged and was skipped: \($0.problem)" }
        if source.consistency == .crashConsistent {
            warnings.append("\(source.path) is in use by a writer and is read anyway (--allow-live): the point is crash-consistent, as a power cut would have left the disk")
        }
        // The layout, read without keys before any data: it says which regions are ciphertext.
        var layout: DiskLayout? = nil
        if source.size != nil {
            layout = try LayoutReader.read(source: source, declared: options.declared, strict: false)
        }
        // A container encrypted by qemu is ciphertext but for a few clusters of metadata: none of it is compressed.
        let ciphertext = source.contents == .container ? [0..<(source.size ?? 0)] : layout?.encryptedRanges ?? []
        let pointID = RecoveryPoint.newID(at: options.now)
        // The keys of an encrypted disk: a missing permission or secret is refused before any data is read,
        // writing nothing. Checking each key against its header (PBKDF2, one core for a few hundred
        // milliseconds) runs beside the data pipeline; a key that does not fit stops the backup and no point
        // is committed.
        var keyPlan: KeyBackup.Plan? = nil
        let encrypted = KeyBackup.encryptedVolumes(layout)
        if let layout, !encrypted.isEmpty && !options.withoutKeys {
            guard let access = options.keyVault else {
                let what = encrypted.map(KeyBackup.label).joined(separator: ", ")
                throw DiskVaultError(.usage, "disk \(options.disk) is encrypted (\(what)): back it up with --keyvault KV --principal P --credential F, so that its keys are backed up with it (or --without-keys)")
            }
            keyPlan = try KeyBackup.plan(
                layout: layout, disk: options.disk, pointID: pointID, access: access, file: source.bytes, image: source.path,
                previous: previous?.manifest.keyBackup, vault: vault)
            warnings += keyPlan?.warnings ?? []
        }
        // Every check reused from the previous point: sealing alone is not worth a thread.
        let keyCheck = keyPlan.map { plan in Background(onItsOwnThread: plan.needsCheck) { () throws(DiskVaultError) in try plan.finish() } }
        // The check reads the source's header: it has ended before this returns, whatever happens.
        defer { keyCheck?.join() }
        // The previous point's index, read in step with the source: a chunk whose digest it holds at the same
        // place is in the vault without a lookup. No set of every digest is built (memory would grow with the
        // image); a chunk that moved is found with one `head`, and a small cache spares repeats within this run.
        var previousIndex: ChunkIndexReader? = nil
        // It is checked whole first: a damaged previous index only costs the hints (every chunk is then looked
        // up), it never stops the disk's backups.
        if let previous { previousIndex = try? vault.checkedIndex(of: previous) }
        // Chunks the change map calls unchanged come from the previous index: without a sound one of the same
        // size, every chunk is read.
        var live = options.live
        if changes != nil {
            if previousIndex == nil || previous?.manifest.source.size != source.size || previous?.manifest.chunkSize != chunkSize {
                changes = nil
                live?.read = .full
                live?.reason = "the previous point's index could not be read, or its disk had another size"
                warnings.append("disk \(options.disk): \(live?.reason ?? ""): every chunk is read")
            }
        }
        // Chunks verify found missing or damaged: never trusted from an index or a `head`, stored again.
        let damaged = try vault.damagedChunks()
        let healed = Mutex(Set<Digest256>())
        let recent = Mutex(RecentDigests())
        let indexObject = try vault.storage.makeWriter(RecoveryPoint.indexKey(disk: options.disk, id: pointID))
        defer { indexObject.abandon() }
        let indexWriter = ChunkIndexWriter(chunkSize: chunkSize, output: indexObject)

        let workers = max(1, options.threads)
        let depth = pipelineDepth(workers: workers, chunkSize: chunkSize)
        // The reader fills one while each worker holds one: memory stays bounded by the pool.
        // Each buffer is a blob frame: the chunk is read to byte Blob.headerSize, so that a chunk stored raw (all
        // ciphertext is) goes to the disk from where it was read, its header written in front of it.
        let pool = BufferPool(count: workers + 1, capacity: BlobCodec.frameCapacity(chunkSize: chunkSize))
        let chunks = vault.chunks
        let total = source.size

        var stats = Manifest.Stats()
        var imageSize: UInt64 = 0
        let observer = self.observer

        do {
            try Pipeline.run(
                workers: workers, depth: depth,
                produce: { emit in
                    try self.read(chunkSize: chunkSize, pool: pool, ciphertext: ciphertext, previous: previousIndex, damaged: damaged) { item in
                        if let keyCheck, keyCheck.failed {
                            if case .data(let buffer, _, _, _, _) = item { pool.give(buffer) }
                            _ = try keyCheck.wait()
                        }
                        try emit(item)
                    }
                },
                makeWorker: {
                    let codec = BlobCodec(chunkSize: chunkSize)
                    return { (item: Item) throws(DiskVaultError) -> Output in
                        switch item {
                        case .holes(let count, let last):
                            return .holes(count: count, last: last)
                        case .unchanged(let digest, let length):
                            return .unchanged(digest, length: length)
                        case .data(let buffer, let n, let readBytes, let mayCompress, let previous):
                            defer { pool.give(buffer) }
                            let bytes = UnsafeRawBufferPointer(BlobCodec.chunkArea(of: buffer, length: n))
                            if isAllZero(bytes) { return .zero(length: n, hole: n - readBytes) }
                            let digest = chunks.name(of: bytes)
                            let isDamaged = !damaged.isEmpty && damaged.contains(digest)
                            if digest == previous && !isDamaged {
                                return .chunk(digest, length: n, readBytes: readBytes, stored: nil)
                            }
                            if isDamaged {
                                // Stored again once per run, over whatever blob is there.
                                guard healed.withLock({ $0.insert(digest).inserted }) else {
                                    return .chunk(digest, length: n, readBytes: readBytes, stored: nil)
                                }
                                let outcome = try chunks.store(bytes, digest: digest, mayCompress: mayCompress, codec: codec, frame: buffer.storage, replacing: true)
                                return .chunk(digest, length: n, readBytes: readBytes, stored: outcome)
                            }
                            if recent.withLock({ $0.contains(digest) }) {
                                return .chunk(digest, length: n, readBytes: readBytes, stored: nil)
                            }
                            var outcome: ChunkStore.StoreOutcome? = nil
                            if try !chunks.contains(digest) {
                                outcome = try chunks.store(bytes, digest: digest, mayCompress: mayCompress, codec: codec, frame: buffer.storage)
                                if outcome?.written == false { outcome = nil }
                            }
                            recent.withLock { $0.insert(digest) }
                            return .chunk(digest, length: n, readBytes: readBytes, stored: outcome)
                        }
                    }
                },
                consume: { output in
                    switch output {
                    case .holes(let count, let last):
                        let bytes = UInt64(count - 1) * UInt64(chunkSize) + UInt64(last)
                        try indexWriter.appendZeros(count)
                        stats.zeroChunks += count
                        stats.holeBytes += bytes
                        imageSize += bytes
                        stats.chunks += count
                        observer?.progress(done: imageSize, total: total, new: stats.newBytes, stored: stats.storedBytes)
                        return
                    case .unchanged(let digest, let n):
                        if digest == .zero {
                            try indexWriter.appendZeros(1)
                            stats.zeroChunks += 1
                        } else {
                            try indexWriter.append(digest)
                            stats.reusedChunks += 1
                        }
                        stats.unchangedBytes = (stats.unchangedBytes ?? 0) + UInt64(n)
                        imageSize += UInt64(n)
                    case .zero(let n, let hole):
                        try indexWriter.appendZeros(1)
                        stats.zeroChunks += 1
                        stats.holeBytes += UInt64(hole)
                        stats.readBytes += UInt64(n - hole)
                        stats.zeroBytes += UInt64(n - hole)
                        imageSize += UInt64(n)
                    case .chunk(let digest, let n, let readBytes, let stored):
                        try indexWriter.append(digest)
                        stats.readBytes += UInt64(readBytes)
                        stats.holeBytes += UInt64(n - readBytes)
                        if let stored {
                            stats.newChunks += 1
                            stats.newBytes += UInt64(n)
                            stats.storedBytes += UInt64(stored.blobBytes)
                            if stored.compressed { stats.compressedChunks += 1 }
                        } else {
                            stats.reusedChunks += 1
                        }
                        imageSize += UInt64(n)
                    }
                    stats.chunks += 1
                    observer?.progress(done: imageSize, total: total, new: stats.newBytes, stored: stats.storedBytes)
                },
                discard: { item in if case .data(let buffer, _, _, _, _) = item { pool.give(buffer) } })
        } catch let error as DiskVaultError {
            throw error
        } catch {
            throw DiskVaultError(.io, "backup failed: \(error)", path: source.path)
        }

        let keyBackup = try keyCheck?.wait()
        // The previous index was trusted chunk by chunk: it must check whole (its digest) before this point counts.
        try previousIndex?.finish()
        try source.checkUnchanged()
        if let changed = try source.noteModification() {
            warnings.append(changed)
        }
        if let total, imageSize != total {
            throw DiskVaultError(.io, "image changed while it was read (\(total) bytes at start, \(imageSize) read); no recovery point was written", path: source.path)
        }
        let indexDigest = try indexWriter.finish(imageSize: imageSize)
        stats.seconds = Date().timeIntervalSince(started)
        var manifest = Manifest(
            version: Manifest.currentVersion,
            id: pointID,
            disk: options.disk,
            created: Timestamp.format(options.now),
            retainUntil: options.retainUntil.map(Timestamp.format),
            trigger: options.trigger,
            policy: options.policy,
            source: .init(
                path: source.path, kind: source.kind, size: imageSize, sectorSize: source.sectorSize,
                format: source.format == .raw ? nil : source.format, contents: source.contents == .disk ? nil : source.contents,
                chain: source.chain.isEmpty ? nil : source.chain, fileSize: source.fileSize == imageSize ? nil : source.fileSize),
            layout: layout,
            layoutChanges: layoutChanges(layout, previous: previous),
            keyBackup: keyBackup?.0,
            keyBackupWaived: !encrypted.isEmpty && options.withoutKeys ? true : nil,
            chunkSize: chunkSize,
            chunkCount: indexWriter.count,
            indexDigest: indexDigest.hex,
            stats: stats)
        manifest.sequence = (previous?.manifest.sequence ?? earlier.count) + 1
        manifest.consistency = source.consistency
        manifest.live = live
        manifest.vm = options.vm
        try beforeCommit?()
        try vault.commit(manifest, index: indexObject, extras: keyBackup.map { [$0.0.blob: $0.1] } ?? [:])
        // A stale entry would only make the next backup store the chunk once more: not worth failing a committed point.
        let stored = healed.withLock { $0 }
        if !stored.isEmpty { try? vault.clearDamagedChunks(stored) }
        return manifest
    }

    func layoutChanges(_ layout: DiskLayout?, previous: RecoveryPoint?) -> [String]? {
        guard let previous else { return nil }
        switch (previous.manifest.layout, layout) {
        case (let before?, let now?):
            let changes = now.changes(since: before)
            return changes.isEmpty ? nil : changes
        case (nil, let now?) where now.volumes.contains { $0.encryption.isEncrypted }:
            return ["layout first read at this point (the previous point was a stream)"]
        default:
            return nil
        }
    }

    /// The producer: one item per chunk of data, in order, and one per run of chunks that are holes (a 64 GiB
    /// sparse file is mostly such runs: a handful of items, not a worker wake-up per chunk). Holes are never
    /// read. A chunk wholly inside a region known to be ciphertext is marked so that nothing tries to compress it.
    private func read(
        chunkSize: Int, pool: BufferPool, ciphertext: [Range<UInt64>], previous: ChunkIndexReader?, damaged: Set<Digest256>,
        emit: (Item) throws -> Void
    ) throws {
        guard let size = source.size else {
            let file = source.file!
            var chunk = 0
            while true {
                let buffer = pool.take()
                let n: Int
                do {
                    n = try file.readSequential(into: BlobCodec.chunkArea(of: buffer, length: chunkSize))
                } catch {
                    pool.give(buffer)
                    throw error
                }
                if n == 0 {
                    pool.give(buffer)
                    return
                }
                try emit(.data(buffer, n, readBytes: n, mayCompress: true, previous: try previous?.digest(atChunk: chunk)))
                chunk += 1
                if n < chunkSize { return }
            }
        }
        var plan = source.makeReadPlan()
        var changes = self.changes
        var offset: UInt64 = 0
        var holes = 0, lastHole = 0
        func flushHoles() throws {
            if holes > 0 { try emit(.holes(count: holes, last: lastHole)) }
            holes = 0
        }
        while offset < size {
            try InterruptCleanup.checkInterrupted()
            let length = Int(min(UInt64(chunkSize), size - offset))
            let chunkNumber = Int(offset / UInt64(chunkSize))
            if changes != nil, let before = try previous?.digest(atChunk: chunkNumber), !damaged.contains(before),
               try !changes!.isChanged(offset..<offset + UInt64(length)) {
                try flushHoles()
                try emit(.unchanged(before, length: length))
                offset += UInt64(length)
                continue
            }
            let ranges = try plan.dataRanges(in: offset..<offset + UInt64(length))
            if ranges.isEmpty {
                holes += 1
                lastHole = length
                offset += UInt64(length)
                if holes == maxZeroRun { try flushHoles() }
                continue
            }
            try flushHoles()
            let buffer = pool.take()
            let chunkArea = BlobCodec.chunkArea(of: buffer, length: length)
            var readBytes = 0
            do {
                var filled = 0
                for r in ranges {
                    let start = Int(r.lowerBound - offset), end = Int(r.upperBound - offset)
                    if start > filled { UnsafeMutableRawBufferPointer(rebasing: chunkArea[filled..<start]).initializeMemory(as: UInt8.self, repeating: 0) }
                    let want = end - start
                    let got = try source.bytes.read(into: UnsafeMutableRawBufferPointer(rebasing: chunkArea[start..<end]), at: r.lowerBound)
                    guard got == want else {
                        throw DiskVaultError(.io, "image changed while it was read: it ended at byte \(r.lowerBound + UInt64(got)) of \(size); no recovery point was written", path: source.path)
                    }
                    readBytes += want
                    filled = end
                }
                if filled < length { UnsafeMutableRawBufferPointer(rebasing: chunkArea[filled..<length]).initializeMemory(as: UInt8.self, repeating: 0) }
            } catch {
                pool.give(buffer)
                throw error
            }
            let chunk = offset..<offset + UInt64(length)
            let encrypted = ciphertext.contains { $0.lowerBound <= chunk.lowerBound && chunk.upperBound <= $0.upperBound }
            let before = try previous?.digest(atChunk: Int(offset / UInt64(chunkSize)))
            try emit(.data(buffer, length, readBytes: readBytes, mayCompress: !encrypted, previous: before))
            offset += UInt64(length)
        }
        try flushHoles()
    }
}

/// Digests this run stored or found in the vault, so that a chunk repeated nearby costs no second lookup.
/// Bounded: emptied when full, so memory does not grow with the image.
struct RecentDigests {
    private var set = Set<Digest256>(minimumCapacity: RecentDigests.limit)
    static let limit = 1 << 14

    func contains(_ d: Digest256) -> Bool { set.contains(d) }

    mutating func insert(_ d: Digest256) {
        if set.count >= Self.limit { set.removeAll(keepingCapacity: true) }
        set.insert(d)
    }
}

extension Backup {
    /// What `protect add` checks at once, so that a scheduled run does not find out hours later: the source
    /// opens and its layout reads; an encrypted disk has a key vault (or `withoutKeys`), its principal may read
    /// each encrypted volume's secret, and each key it may unwrap opens its volume's header. Writes nothing.
    /// Returns the encrypted volumes found (labels), empty for a disk in clear.
    public static func preflight(vault: Vault, source: ImageSource, options: BackupOptions) throws(DiskVaultError) -> [String] {
        guard source.size != nil else { return [] }
        let layout = try LayoutReader.read(source: source, declared: options.declared, strict: false)
        let encrypted = KeyBackup.encryptedVolumes(layout)
        guard !encrypted.isEmpty, !options.withoutKeys else { return encrypted.map(KeyBackup.label) }
        guard let access = options.keyVault else {
            let what = encrypted.map(KeyBackup.label).joined(separator: ", ")
            throw DiskVaultError(.usage, "disk \(options.disk) is encrypted (\(what)): protect it with --keyvault KV --principal P --credential F, so that its keys are backed up with each point (or --without-keys)")
        }
        let previous = try vault.scanPoints(disk: options.disk, now: options.now).points.last
        let plan = try KeyBackup.plan(
            layout: layout, disk: options.disk, pointID: RecoveryPoint.newID(at: options.now), access: access, file: source.bytes,
            image: source.path, previous: previous?.manifest.keyBackup, vault: vault)
        _ = try plan.finish()
        return encrypted.map(KeyBackup.label)
    }
}
