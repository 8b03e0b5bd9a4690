/// One volume of an image (a partition, or the whole disk), read in bounded pieces for its header parsers.
/// A read past the volume's end comes back short, so a parser's field reads fail with a named field rather
/// than reading another volume's bytes.
public struct VolumeBytes: Sendable {
    public let file: any ImageBytes
    public let image: String
    public let offset: UInt64
    public let size: UInt64

    /// The most a parser may read at once: headers are small, and hostile length fields must not allocate.
    public static let readLimit = 16 << 20

    public init(file: any ImageBytes, image: String, offset: UInt64, size: UInt64) {
        self.file = file
        self.image = image
        self.offset = offset
        self.size = size
    }

    /// Bytes `at..<at+count` of the volume (fewer at its end), as a reader named `what`.
    public func read(_ at: UInt64, _ count: Int, what: String) throws(DiskVaultError) -> ByteReader {
        guard count >= 0, count <= Self.readLimit else {
            throw DiskVaultError(.corrupt, "\(what): a length of \(count) bytes is beyond any valid header", path: image)
        }
        guard at < size else { return ByteReader([], what: what) }
        let n = Int(min(UInt64(count), size - at))
        var bytes = [UInt8](repeating: 0, count: n)
        let got = try bytes.withMutableBytes { (b) throws(DiskVaultError) in try file.read(into: b, at: offset + at) }
        if got < n { bytes.removeSubrange(got...) }
        return ByteReader(bytes, what: what)
    }

    /// A damaged-header error naming the image and the field.
    public func corrupt(_ message: String) -> DiskVaultError {
        DiskVaultError(.corrupt, message, path: image)
    }

    public func corrupt(_ error: ByteReader.OutOfBounds) -> DiskVaultError {
        DiskVaultError(.corrupt, error.description, path: image)
    }

    /// A parser's error from a block that mixes field reads and its own checks.
    func corrupt(any error: any Error) -> DiskVaultError {
        if let e = error as? ByteReader.OutOfBounds { return corrupt(e) }
        return asDiskVaultError(error)
    }
}
