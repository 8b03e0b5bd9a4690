/// Bounds-checked little/big-endian field reads over a header's bytes. Every read names the field it is for,
/// so a truncated or hostile header gives an error that says which field did not fit.
public struct ByteReader: Sendable {
    public let bytes: [UInt8]
    /// Where these bytes came from, for messages ("LUKS2 header at 0x4000").
    public let what: String

    public init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    public var count: Int { bytes.count }

    public struct OutOfBounds: Error, CustomStringConvertible {
        public var field: String
        public var offset: Int
        public var length: Int
        public var available: Int
        public var what: String
        public var description: String {
            "\(what) is truncated: field \(field) needs bytes \(offset)..<\(offset + length), only \(available) present"
        }
    }

    @inline(__always)
    func check(_ offset: Int, _ length: Int, _ field: String) throws(OutOfBounds) {
        guard offset >= 0, length >= 0, offset <= bytes.count, length <= bytes.count - offset else {
            throw OutOfBounds(field: field, offset: offset, length: length, available: bytes.count, what: what)
        }
    }

    public func u8(_ offset: Int, _ field: String) throws(OutOfBounds) -> UInt8 {
        try check(offset, 1, field)
        return bytes[offset]
    }

    public func u16le(_ offset: Int, _ field: String) throws(OutOfBounds) -> UInt16 {
        try check(offset, 2, field)
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    public func u32le(_ offset: Int, _ field: String) throws(OutOfBounds) -> UInt32 {
        try check(offset, 4, field)
        var v: UInt32 = 0
        for i in (0..<4).reversed() { v = v << 8 | UInt32(bytes[offset + i]) }
        return v
    }

    public func u64le(_ offset: Int, _ field: String) throws(OutOfBounds) -> UInt64 {
        try check(offset, 8, field)
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(bytes[offset + i]) }
        return v
    }

    public func u16be(_ offset: Int, _ field: String) throws(OutOfBounds) -> UInt16 {
        try check(offset, 2, field)
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    public func u32be(_ offset: Int, _ field: String) throws(OutOfBounds) -> UInt32 {
        try check(offset, 4, field)
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[offset + i]) }
        return v
    }

    public func u64be(_ offset: Int, _ field: String) throws(OutOfBounds) -> UInt64 {
        try check(offset, 8, field)
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
        return v
    }

    public func slice(_ offset: Int, _ length: Int, _ field: String) throws(OutOfBounds) -> ArraySlice<UInt8> {
        try check(offset, length, field)
        return bytes[offset..<offset + length]
    }

    /// A NUL-padded ASCII/UTF-8 string field.
    public func string(_ offset: Int, _ length: Int, _ field: String) throws(OutOfBounds) -> String {
        let s = try slice(offset, length, field)
        return String(decoding: s.prefix(while: { $0 != 0 }), as: UTF8.self)
    }

    /// A GUID stored the Microsoft way (first three groups little-endian), printed lower-case with dashes.
    public func guid(_ offset: Int, _ field: String) throws(OutOfBounds) -> String {
        let b = Array(try slice(offset, 16, field))
        let order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
        var s = ""
        for i in order { s += i < 0 ? "-" : hexByte(b[i]) }
        return s
    }

    public func hasPrefix(_ magic: [UInt8], at offset: Int = 0) -> Bool {
        offset >= 0 && offset + magic.count <= bytes.count && bytes[offset..<offset + magic.count].elementsEqual(magic)
    }
}
