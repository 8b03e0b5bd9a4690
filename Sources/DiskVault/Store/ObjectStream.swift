/// An object read a piece at a time, so that an object of any size (a recovery point's index) never has to be
/// held whole in memory.
public protocol ObjectReader: AnyObject {
    /// The object's size when it was opened.
    var size: UInt64 { get }
    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the object's end.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskVaultError) -> Int
}

/// An object written as it grows and put in place only when complete: it appears whole or not at all, and
/// never over an existing object.
public protocol ObjectWriter: AnyObject {
    /// Bytes appended so far.
    var count: UInt64 { get }
    func append(_ bytes: UnsafeRawBufferPointer) throws(DiskVaultError)
    /// Puts the object in place unless the key exists (then false, and nothing changes). With `durable`, it is
    /// on stable storage when this returns.
    func commitIfAbsent(durable: Bool) throws(DiskVaultError) -> Bool
    /// Drops what was written; the key is left as it was. Safe to call after a commit (then it does nothing).
    func abandon()
}

/// An object already in memory, read through the same interface (small indexes in tests and the fuzzer).
public final class MemoryObjectReader: ObjectReader {
    let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var size: UInt64 { UInt64(bytes.count) }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> Int {
        guard offset < UInt64(bytes.count) else { return 0 }
        let n = min(buffer.count, bytes.count - Int(offset))
        bytes.withUnsafeBytes { b in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[Int(offset)..<Int(offset) + n]))
        }
        return n
    }
}
