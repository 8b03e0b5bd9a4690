#if canImport(Glibc)
import Glibc
#endif

extension Restore {
    /// An item of the streamed disk: a chunk and the pooled buffer it is loaded into, or a run of zero chunks.
    enum StreamItem {
        case zeros(Range<Int>)
        case chunk(Int, Digest256, ByteBuffer)
    }

    /// What a worker hands the writer: a checked chunk in its buffer, or how many zero bytes to write.
    struct StreamedChunk {
        var bytes: UnsafeRawBufferPointer
        var buffer: ByteBuffer?
        var zeroBytes: UInt64
    }

    /// Writes the whole disk to `out` (a pipe, a terminal, a file) front to back: workers load and check each
    /// chunk against its digest exactly as a file restore does; the consumer writes them in index order and
    /// zero chunks as zeros, since a stream has no holes. Each chunk's buffer is taken from a pool by the
    /// producer, in order, and given back once written, so memory is bounded and the pipeline cannot stall.
    /// A stream cannot be taken back, so `index` comes from `Vault.checkedIndex(of:)`.
    func stream(_ index: ChunkIndexReader, to out: FileDescriptor, result: inout RestoreResult) throws(DiskVaultError) {
        let workers = max(1, options.threads)
        let chunkSize = index.chunkSize
        let chunks = vault.chunks
        let pointID = "\(options.disk)@\(options.point ?? "latest")"
        let depth = pipelineDepth(workers: workers, chunkSize: chunkSize)
        // Room for the blob header in front, so that a raw blob is read straight into place.
        let at = Blob.headerSize
        let pool = BufferPool(count: depth + workers + 1, capacity: at + chunkSize)
        let zeros = ByteBuffer(capacity: min(chunkSize, 1 << 20))
        zeros.storage.initializeMemory(as: UInt8.self, repeating: 0)
        var done: UInt64 = 0
        var written: UInt64 = 0
        let observer = self.observer
        let total = index.imageSize
        // A chunk checked in its buffer, or a run of zero chunks written as zeros: a stream has no holes.
        func write(_ chunk: StreamedChunk) throws(DiskVaultError) {
            if chunk.buffer != nil {
                try out.writeAll([chunk.bytes])
                written += UInt64(chunk.bytes.count)
                done += UInt64(chunk.bytes.count)
                return
            }
            var left = chunk.zeroBytes
            while left > 0 {
                let n = Int(min(left, UInt64(zeros.capacity)))
                try out.writeAll([zeros.prefix(n)])
                left -= UInt64(n)
            }
            done += chunk.zeroBytes
        }
        do {
            try Pipeline.run(
                workers: workers, depth: depth,
                produce: { emit in
                    var i = 0
                    while let entry = try index.next() {
                        switch entry {
                        case .zeros(var n):
                            while n > 0 {
                                let run = min(n, maxZeroRun)
                                try emit(StreamItem.zeros(i..<i + run))
                                i += run
                                n -= run
                            }
                        case .chunk(let digest):
                            // Closed: a worker or the writer failed, and its error is the one to report.
                            guard let buffer = pool.takeUnlessClosed() else { return }
                            try emit(StreamItem.chunk(i, digest, buffer))
                            i += 1
                        }
                    }
                },
                makeWorker: {
                    let codec = BlobCodec(chunkSize: chunkSize)
                    return { (item: StreamItem) throws -> StreamedChunk in
                        switch item {
                        case .zeros(let run):
                            let length = (run.count - 1) * chunkSize + index.length(ofChunk: run.upperBound - 1)
                            return StreamedChunk(bytes: UnsafeRawBufferPointer(start: nil, count: 0), buffer: nil, zeroBytes: UInt64(length))
                        case .chunk(let i, let digest, let buffer):
                            do throws(DiskVaultError) {
                                let bytes = try chunks.load(digest, length: index.length(ofChunk: i), into: buffer, at: at, codec: codec)
                                return StreamedChunk(bytes: bytes, buffer: buffer, zeroBytes: 0)
                            } catch {
                                pool.close()
                                var e = error
                                e.message += " (chunk \(i) of \(pointID), at byte \(UInt64(i) * UInt64(chunkSize)))"
                                throw e
                            }
                        }
                    }
                },
                consume: { (chunk: StreamedChunk) in
                    defer { chunk.buffer.map(pool.give) }
                    do throws(DiskVaultError) {
                        try write(chunk)
                    } catch {
                        pool.close()
                        throw error
                    }
                    observer?.progress(done: done, total: total)
                },
                discard: { item in
                    if case .chunk(_, _, let buffer) = item { pool.give(buffer) }
                })
            let st = try out.status()
            // A disk redirected into a file or onto a device is made durable as a file restore is; a pipe is
            // the reader's to sync.
            if st.isRegular || st.isBlockDevice { try out.sync() }
            try out.close()
        } catch let error as DiskVaultError {
            throw error
        } catch {
            throw DiskVaultError(.io, "restore failed: \(error)", path: out.path)
        }
        result.writtenBytes = written
        result.holeBytes = 0
    }
}
