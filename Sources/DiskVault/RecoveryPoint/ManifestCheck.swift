extension Manifest {
    /// Range-checks every number of the manifest against the others and the vault's chunk size, before any
    /// of them goes into arithmetic or an allocation: a hostile or damaged manifest is a `.corrupt` error
    /// naming `path` and the field, never an overflow trap. `vaultChunkSize` is vault.json's.
    func checkNumbers(vaultChunkSize: Int, path: String) throws(DiskVaultError) {
        func bad(_ why: String) -> DiskVaultError {
            DiskVaultError(.corrupt, "manifest of point \(id) is damaged: \(why)", path: path)
        }
        guard chunkSize == vaultChunkSize else {
            throw bad("chunkSize \(chunkSize) is not the vault's chunk size \(vaultChunkSize) (vault.json)")
        }
        guard source.size < ChunkIndex.maxImageSize else { throw bad("source.size \(source.size) is beyond any disk") }
        let chunks = ChunkIndex.chunkCount(imageSize: source.size, chunkSize: chunkSize)
        guard chunkCount == chunks else {
            throw bad("chunkCount \(chunkCount) cannot make an image of \(source.size) bytes (source.size) in chunks of \(chunkSize)")
        }
        guard (1...(1 << 16)).contains(source.sectorSize) else { throw bad("source.sectorSize \(source.sectorSize)") }
        for (name, value) in [("chunks", stats.chunks), ("zeroChunks", stats.zeroChunks), ("newChunks", stats.newChunks),
                              ("reusedChunks", stats.reusedChunks), ("compressedChunks", stats.compressedChunks)]
        where !(0...chunks).contains(value) {
            throw bad("stats.\(name) \(value) is not within the point's \(chunks) chunks")
        }
        for (name, value) in [("readBytes", stats.readBytes), ("holeBytes", stats.holeBytes), ("zeroBytes", stats.zeroBytes),
                              ("newBytes", stats.newBytes)]
        where value > source.size {
            throw bad("stats.\(name) \(value) is more than the image's \(source.size) bytes")
        }
        // A raw blob is its chunk and a header; nothing a backup adds is larger.
        guard stats.storedBytes <= source.size + UInt64(chunks) * UInt64(Blob.headerSize) else {
            throw bad("stats.storedBytes \(stats.storedBytes) is more than \(chunks) blobs can hold")
        }
        guard stats.seconds.isFinite && stats.seconds >= 0 else { throw bad("stats.seconds \(stats.seconds)") }
    }
}
