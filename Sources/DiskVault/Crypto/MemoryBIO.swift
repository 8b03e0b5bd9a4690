internal import COpenSSL

/// An OpenSSL memory BIO, for reading and writing PEM in memory; freed in `deinit`.
final class MemoryBIO {
    private let bio: OpaquePointer

    /// An empty BIO, for OpenSSL to write into. The corresponding C function is `BIO_new`.
    init() {
        guard let b = BIO_new(BIO_s_mem()) else { fatalError("BIO_new: out of memory") }
        bio = b
    }

    /// A BIO holding a copy of `bytes` (so no Swift buffer has to outlive a call), for OpenSSL to read.
    /// The corresponding C function is `BIO_write`.
    convenience init(copying bytes: [UInt8]) {
        self.init()
        let written = bytes.isEmpty ? 0 : bytes.withUnsafeBytes { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
        guard Int(written) == bytes.count else { fatalError("BIO_write: out of memory") }
        // Its end reads as end of file, not "try again", as a read-only BIO_new_mem_buf would.
        BIO_ctrl(bio, BIO_C_SET_BUF_MEM_EOF_RETURN, 0, nil)
    }

    deinit { BIO_free(bio) }

    /// Runs `body` with the BIO, which lives at least until `body` returns. Do not escape the pointer.
    func withPointer<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R { try body(bio) }

    /// What the BIO holds. The corresponding C function is `BIO_get_mem_data`.
    var contents: [UInt8] {
        var data: UnsafeMutablePointer<CChar>? = nil
        let n = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data)
        guard n > 0, let data else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: n))
    }
}
