internal import COpenSSL

/// One EVP cipher context, freed in `deinit`.
final class CipherContext {
    private let ctx: OpaquePointer

    init() {
        guard let c = EVP_CIPHER_CTX_new() else { fatalError("EVP_CIPHER_CTX_new: out of memory") }
        ctx = c
    }

    deinit { EVP_CIPHER_CTX_free(ctx) }

    /// Runs `body` with the context, which lives at least until `body` returns. Do not escape the pointer.
    func withPointer<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R { try body(ctx) }
}
