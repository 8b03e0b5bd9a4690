/// Bounds-checked field reads over a BitLocker structure (a volume header, an FVE metadata block, a .BEK file)
/// whose failures are already `.corrupt` errors naming the file and the field, so the parsers have one error
/// type and need no closures.
struct BitLockerFields {
    let bytes: ByteReader
    /// The image or file the bytes came from, named in errors.
    let path: String

    init(_ bytes: ByteReader, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var count: Int { bytes.count }

    func corrupt(_ message: String) -> DiskVaultError { DiskVaultError(.corrupt, message, path: path) }

    func hasPrefix(_ magic: [UInt8], at offset: Int) -> Bool { bytes.hasPrefix(magic, at: offset) }

    func u8(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt8 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u8(offset, field) } catch {
            throw corrupt(error.description)
        }
    }

    func u16(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt16 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u16le(offset, field) } catch {
            throw corrupt(error.description)
        }
    }

    func u32(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt32 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u32le(offset, field) } catch {
            throw corrupt(error.description)
        }
    }

    func u64(_ offset: Int, _ field: String) throws(DiskVaultError) -> UInt64 {
        do throws(ByteReader.OutOfBounds) { return try bytes.u64le(offset, field) } catch {
            throw corrupt(error.description)
        }
    }

    func guid(_ offset: Int, _ field: String) throws(DiskVaultError) -> String {
        do throws(ByteReader.OutOfBounds) { return try bytes.guid(offset, field) } catch {
            throw corrupt(error.description)
        }
    }

    func slice(_ offset: Int, _ length: Int, _ field: String) throws(DiskVaultError) -> ArraySlice<UInt8> {
        do throws(ByteReader.OutOfBounds) { return try bytes.slice(offset, length, field) } catch {
            throw corrupt(error.description)
        }
    }

    /// One FVE metadata entry ("datum"): its header (0 2 size including the header, 2 2 entry type, 4 2 value
    /// type, 6 2 version) and where its data lies.
    struct Datum {
        var offset: Int
        var size: Int
        var entryType: UInt16
        var valueType: UInt16
        var data: Int { offset + BitLockerHeader.entryHeaderSize }
        var dataSize: Int { size - BitLockerHeader.entryHeaderSize }
        var end: Int { offset + size }
    }

    /// Calls `body` with each entry laid end to end in `start..<end`, in order, and returns where an entry of
    /// size 0 (zero padding) ended them early, if one did. A tail shorter than an entry header also ends them;
    /// an entry smaller than its header or running past `end` is an error. `what` names nested entries in
    /// messages; the top-level entries of a block are named by the block alone.
    @discardableResult
    func forEachDatum(from start: Int, to end: Int, _ what: String?,
                      _ body: (Datum) throws(DiskVaultError) -> Void) throws(DiskVaultError) -> Int? {
        let prefix = what.map { "\($0): " } ?? ""
        guard start >= 0, start <= end, end <= count else {
            throw corrupt("\(bytes.what): \(what ?? "entries") at \(start)..<\(end) lie outside its \(count) bytes")
        }
        var at = start
        // Each entry advances by at least its 8-byte header, so this ends.
        while end - at >= BitLockerHeader.entryHeaderSize {
            let size = Int(try u16(at, "\(prefix)entry size at \(at)"))
            if size == 0 { return at }
            guard size >= BitLockerHeader.entryHeaderSize, size <= end - at else {
                throw corrupt("\(bytes.what): \(prefix)entry at byte \(at) has size \(size), outside 8...\(end - at)")
            }
            try body(Datum(offset: at, size: size, entryType: try u16(at + 2, "\(prefix)entry type at \(at)"),
                           valueType: try u16(at + 4, "\(prefix)value type at \(at)")))
            at += size
        }
        return nil
    }

    /// The entries laid end to end in `start..<end` (as `forEachDatum` walks them).
    func datums(from start: Int, to end: Int, _ what: String) throws(DiskVaultError) -> [Datum] {
        var result: [Datum] = []
        try forEachDatum(from: start, to: end, what) { result.append($0) }
        return result
    }
}

/// FVE metadata value types used here (libbde's names).
enum DatumType {
    static let key: UInt16 = 0x0001
    static let aesCCMEncryptedKey: UInt16 = 0x0005
}
