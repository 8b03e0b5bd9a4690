import Foundation

/// Decides cheaply whether deflating a chunk could pay: the byte entropy of a few samples spread over it.
/// Ciphertext and already-compressed data sit near 8 bits per byte; anything deflate shrinks by a useful
/// margin sits well below. The probe reads at most 32 KiB of a chunk, so on ciphertext it costs about 1%
/// of hashing the same chunk.
public enum CompressibilityProbe {
    public static let sampleCount = 8
    public static let sampleSize = 4096
    /// Bits per byte above which a chunk is stored raw without trying.
    public static let threshold = 7.5

    public static func entropy(_ chunk: UnsafeRawBufferPointer) -> Double {
        var histogram = [UInt32](repeating: 0, count: 256)
        var total = 0
        histogram.withUnsafeMutableBufferPointer { h in
            func count(_ range: Range<Int>) {
                for i in range { h[Int(chunk[i])] &+= 1 }
                total += range.count
            }
            if chunk.count <= sampleCount * sampleSize {
                count(0..<chunk.count)
            } else {
                let stride = chunk.count / sampleCount
                for s in 0..<sampleCount { count(s * stride..<s * stride + sampleSize) }
            }
        }
        guard total > 0 else { return 0 }
        let n = Double(total)
        var bits = 0.0
        for c in histogram where c > 0 {
            let p = Double(c) / n
            bits -= p * log2(p)
        }
        return bits
    }

    public static func worthTrying(_ chunk: UnsafeRawBufferPointer) -> Bool {
        entropy(chunk) < threshold
    }
}
