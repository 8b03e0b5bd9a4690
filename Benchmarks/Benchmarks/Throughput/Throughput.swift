// Throughput of the per-chunk work of a backup and a restore, on 4 MiB chunks (the vault's default chunk size).
// Beside them, the passphrase key derivation each command on an encrypted vault runs once.
//
// Every benchmark does one chunk (or one index) per iteration and reports:
//   - `MB/s`: the bytes of that chunk (10^6 bytes per MB) over the time of that one call, as percentiles;
//   - `Throughput`: iterations, that is chunks, per second;
//   - `Time (wall clock)`: the time of one iteration.
//
// Run with `swift package benchmark` in this directory; `--filter 'deflate.*'` picks some.

import Benchmark
import DiskVault
import Foundation

let chunkSize = 4 << 20

/// MB/s of the chunk measured in each iteration; larger is better, never scaled.
let megabytesPerSecond = BenchmarkMetric.custom("MB/s", polarity: .prefersLarger, useScalingFactor: false)

func configuration(seconds: Int = 2) -> Benchmark.Configuration {
    .init(
        metrics: [megabytesPerSecond, .throughput, .wallClock],
        units: [megabytesPerSecond: .count],
        warmupIterations: 2,
        maxDuration: .seconds(seconds),
        maxIterations: 1_000_000
    )
}

/// Runs `body` once, records the MB/s of `bytes` over its time, and returns what it returned.
@inline(__always)
func timed<R>(_ benchmark: Benchmark, bytes: Int, _ body: () throws -> R) rethrows -> R {
    let start = ContinuousClock.now
    let result = try body()
    let elapsed = start.duration(to: .now)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    if seconds > 0 {
        benchmark.measurement(megabytesPerSecond, Int((Double(bytes) / seconds / 1e6).rounded()))
    }
    return result
}

// MARK: - Inputs, made in setup (never inside an iteration)

/// A chunk of uniformly random bytes: what an encrypted volume looks like.
func ciphertextChunk() -> ByteBuffer {
    let buffer = ByteBuffer(capacity: chunkSize)
    var generator = SystemRandomNumberGenerator()
    let words = buffer.storage.bindMemory(to: UInt64.self)
    for i in words.indices { words[i] = generator.next() }
    return buffer
}

/// A chunk of zeros: unallocated space.
func zeroChunk() -> ByteBuffer {
    let buffer = ByteBuffer(capacity: chunkSize)
    buffer.storage.initializeMemory(as: UInt8.self, repeating: 0)
    return buffer
}

/// A chunk of real text: the uncompressed files under /usr/share/doc (copyright notices, READMEs,
/// changelogs), concatenated in path order. Repeated if there are fewer than 4 MiB of them.
func textChunk() -> ByteBuffer {
    let root = "/usr/share/doc"
    let skipped: Set<String> = ["gz", "bz2", "xz", "zst", "lz", "zip", "png", "jpg", "jpeg", "gif", "ico", "pdf", "woff", "woff2"]
    var text: [UInt8] = []
    text.reserveCapacity(chunkSize)
    let paths = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).sorted()
    for path in paths where text.count < chunkSize {
        if skipped.contains((path as NSString).pathExtension.lowercased()) { continue }
        let full = "\(root)/\(path)"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue,
            let data = FileManager.default.contents(atPath: full), !data.isEmpty, !data.contains(0)
        else { continue }
        text += data.prefix(chunkSize - text.count)
    }
    precondition(!text.isEmpty, "no text files under \(root) to benchmark on")
    let buffer = ByteBuffer(capacity: chunkSize)
    for offset in stride(from: 0, to: chunkSize, by: text.count) {
        let n = min(text.count, chunkSize - offset)
        text.withUnsafeBytes { buffer.storage.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: n) }
    }
    return buffer
}

func randomDigest() -> Digest256 {
    Digest256(w0: .random(in: .min ... .max), w1: .random(in: .min ... .max), w2: .random(in: .min ... .max), w3: .random(in: .min ... .max))
}

/// A deflater or inflater under test: zlib's or ISA-L's, both writing and reading the zlib format at level 1.
struct Codec {
    var name: String
    var compress: (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) -> Int?
    var decompress: (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) -> Int?
}

let codecNames = ["zlib", "ISA-L"]

func makeCodec(_ name: String) -> Codec {
    switch name {
    case "zlib":
        let deflater = ZlibDeflater(level: 1)
        let inflater = ZlibInflater()
        return Codec(name: name, compress: { deflater.compress($0, into: $1) }, decompress: { inflater.decompress($0, into: $1) })
    case "ISA-L":
        // Sources/DiskVault/Compression/ISAL.swift: what BlobCodec uses for new blobs.
        let deflater = IsalDeflater()
        let inflater = IsalInflater()
        return Codec(name: name, compress: { deflater.compress($0, into: $1) }, decompress: { inflater.decompress($0, into: $1) })
    default:
        fatalError("no codec \(name)")
    }
}

/// The deflated size in percent of the input, recorded by the deflate benchmarks.
let deflatedPercent = BenchmarkMetric.custom("deflated size %", polarity: .prefersSmaller, useScalingFactor: false)

/// A new vault in a temporary directory, removed in teardown.
final class TemporaryVault {
    let path: String
    let chunks: ChunkStore
    let codec = BlobCodec(chunkSize: chunkSize)

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("diskvault-bench-\(UUID().uuidString)").path
        chunks = try Vault.create(path, chunkSize: chunkSize).chunks
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

// MARK: - Benchmarks

let benchmarks: @Sendable () -> Void = {
    Benchmark("SHA-256 (random chunk)", configuration: configuration()) { benchmark, chunk in
        timed(benchmark, bytes: chunkSize) { blackHole(SHA256.digest(chunk.prefix(chunkSize))) }
    } setup: {
        ciphertextChunk()
    }

    // isAllZero and CRC32.checksum are ISA-L's kernels (IsalKernels); CRC32.zlibChecksum is zlib's, for reference.
    Benchmark("zero detection (zero chunk)", configuration: configuration()) { benchmark, chunk in
        timed(benchmark, bytes: chunkSize) { blackHole(isAllZero(chunk.prefix(chunkSize))) }
    } setup: {
        zeroChunk()
    }

    Benchmark("CRC-32 ISA-L (random chunk)", configuration: configuration()) { benchmark, chunk in
        timed(benchmark, bytes: chunkSize) { blackHole(CRC32.checksum(chunk.prefix(chunkSize))) }
    } setup: {
        ciphertextChunk()
    }

    Benchmark("CRC-32 zlib (random chunk)", configuration: configuration()) { benchmark, chunk in
        timed(benchmark, bytes: chunkSize) { blackHole(CRC32.zlibChecksum(chunk.prefix(chunkSize))) }
    } setup: {
        ciphertextChunk()
    }

    // The decision whether to try deflating a chunk: it samples the chunk, so its MB/s is chunk bytes decided per second.
    Benchmark("compression probe (ciphertext chunk)", configuration: configuration()) { benchmark, chunk in
        timed(benchmark, bytes: chunkSize) { blackHole(CompressibilityProbe.worthTrying(chunk.prefix(chunkSize))) }
    } setup: { () -> ByteBuffer in
        let chunk = ciphertextChunk()
        precondition(!CompressibilityProbe.worthTrying(chunk.prefix(chunkSize)), "the probe would deflate random bytes")
        return chunk
    }

    Benchmark("compression probe (text chunk)", configuration: configuration()) { benchmark, chunk in
        timed(benchmark, bytes: chunkSize) { blackHole(CompressibilityProbe.worthTrying(chunk.prefix(chunkSize))) }
    } setup: { () -> ByteBuffer in
        let chunk = textChunk()
        precondition(CompressibilityProbe.worthTrying(chunk.prefix(chunkSize)), "the probe would not deflate text")
        return chunk
    }

    // Deflate at level 1 and inflate, of a text chunk; MB/s of the uncompressed 4 MiB both ways.
    // Both inflaters read the same stream: the one ISA-L's deflater writes, as BlobCodec does for new blobs.
    for name in codecNames {
        var deflateConfiguration = configuration()
        deflateConfiguration.metrics.append(deflatedPercent)
        deflateConfiguration.units[deflatedPercent] = .count

        Benchmark("deflate level 1 \(name) (text chunk)", configuration: deflateConfiguration) { benchmark, state in
            let (codec, chunk, output) = state
            let n = timed(benchmark, bytes: chunkSize) { codec.compress(chunk.prefix(chunkSize), output.storage) }
            benchmark.measurement(deflatedPercent, ((n ?? chunkSize) * 100 + chunkSize / 2) / chunkSize)
        } setup: { () -> (Codec, ByteBuffer, ByteBuffer) in
            let codec = makeCodec(name)
            let chunk = textChunk()
            let output = ByteBuffer(capacity: ZlibDeflater.bound(chunkSize))
            precondition(codec.compress(chunk.prefix(chunkSize), output.storage) != nil, "\(name) could not deflate text")
            return (codec, chunk, output)
        }

        Benchmark("inflate \(name) (text chunk)", configuration: configuration()) { benchmark, state in
            let (codec, compressed, count, output) = state
            timed(benchmark, bytes: chunkSize) { blackHole(codec.decompress(compressed.prefix(count), output.storage)) }
        } setup: { () -> (Codec, ByteBuffer, Int, ByteBuffer) in
            let codec = makeCodec(name)
            let chunk = textChunk()
            let compressed = ByteBuffer(capacity: ZlibDeflater.bound(chunkSize))
            guard let count = IsalDeflater().compress(chunk.prefix(chunkSize), into: compressed.storage) else { fatalError("could not deflate text") }
            let output = ByteBuffer(capacity: chunkSize)
            let n = codec.decompress(compressed.prefix(count), output.storage)
            precondition(n == chunkSize && memcmp(output.storage.baseAddress!, chunk.storage.baseAddress!, chunkSize) == 0,
                         "\(name) did not inflate the text back")
            return (codec, compressed, count, output)
        }
    }

    // ChunkStore.store of a new chunk into a local vault, as a backup's worker does it: the chunk in its frame
    // (12 bytes into the buffer it was read into), probe, deflate when it pays, blob header with CRC, a direct
    // write to tmp/ (where the file system takes it: a raw blob from the frame itself) and a rename into
    // chunks/. Not synced (as during a backup, before its barrier). Each blob is deleted after its iteration,
    // outside the measurement, so that the run does not fill the disk.
    final class Holder { var vault: TemporaryVault? }
    for (label, makeChunk, compresses) in [("text", textChunk, true), ("ciphertext", ciphertextChunk, false)] {
        let holder = Holder()

        Benchmark("blob write (\(label) chunk)", configuration: configuration(seconds: 3)) { benchmark, state in
            let (vault, chunk) = state
            let digest = randomDigest()
            let outcome = timed(benchmark, bytes: chunkSize) {
                do {
                    return try vault.chunks.store(
                        UnsafeRawBufferPointer(BlobCodec.chunkArea(of: chunk, length: chunkSize)), digest: digest,
                        mayCompress: true, codec: vault.codec, frame: chunk.storage)
                } catch {
                    fatalError("store failed: \(error)")
                }
            }
            benchmark.stopMeasurement()
            blackHole(outcome)
            do { try vault.chunks.storage.delete(vault.chunks.key(digest)) } catch { fatalError("delete failed: \(error)") }
        } setup: { () throws -> (TemporaryVault, ByteBuffer) in
            let made = try TemporaryVault()
            holder.vault = made
            let plain = makeChunk()
            let chunk = ByteBuffer(capacity: BlobCodec.frameCapacity(chunkSize: chunkSize))
            let area = BlobCodec.chunkArea(of: chunk, length: chunkSize)
            area.copyMemory(from: plain.prefix(chunkSize))
            let digest = randomDigest()
            let outcome = try made.chunks.store(
                UnsafeRawBufferPointer(area), digest: digest,
                mayCompress: true, codec: made.codec, frame: chunk.storage)
            precondition(outcome.written && outcome.compressed == compresses, "unexpected store outcome \(outcome)")
            try made.chunks.storage.delete(made.chunks.key(digest))
            return (made, chunk)
        } teardown: {
            holder.vault?.remove()
            holder.vault = nil
        }
    }

    // The index of a 64 GiB image: 16384 digests of 4 MiB chunks; MB/s of the encoded index.
    let digestCount = 16384
    let indexBytes = ChunkIndex.headerSize + 32 * digestCount
    Benchmark("index write (16384 digests)", configuration: configuration()) { benchmark, digests in
        timed(benchmark, bytes: indexBytes) {
            blackHole(ChunkIndex(chunkSize: chunkSize, imageSize: UInt64(digestCount * chunkSize), digests: digests).encoded())
        }
    } setup: { () -> [Digest256] in
        let digests = (0..<digestCount).map { _ in randomDigest() }
        precondition(ChunkIndex(chunkSize: chunkSize, imageSize: UInt64(digestCount * chunkSize), digests: digests).encoded().count == indexBytes)
        return digests
    }

    // The key derivation every command on an encrypted vault runs once (vault.json's default work factor).
    Benchmark(
        "scrypt N=2^15 r=8 p=1 (opening an encrypted vault)",
        configuration: .init(metrics: [.wallClock, .peakMemoryResident], warmupIterations: 1, maxDuration: .seconds(3), maxIterations: 40)
    ) { _ in
        blackHole(Scrypt.derive(Array("a passphrase".utf8), salt: Array(repeating: 7, count: 16), logN: 15))
    }
}
