internal import COpenSSL

/// One EVP public-key algorithm context (key generation, RSA-OAEP), freed in `deinit`.
final class PKeyContext {
    private let ctx: OpaquePointer

    /// A context for generating keys of the algorithm `id`; nil when OpenSSL has none.
    /// The corresponding C function is `EVP_PKEY_CTX_new_id`.
    init?(algorithm id: Int32) {
        guard let c = EVP_PKEY_CTX_new_id(id, nil) else { return nil }
        ctx = c
    }

    /// A context for operations with `pkey`, which it keeps a reference to.
    /// The corresponding C function is `EVP_PKEY_CTX_new`.
    init?(key pkey: OpaquePointer) {
        guard let c = EVP_PKEY_CTX_new(pkey, nil) else { return nil }
        ctx = c
    }

    deinit { EVP_PKEY_CTX_free(ctx) }

    /// Runs `body` with the context, which lives at least until `body` returns. Do not escape the pointer.
    func withPointer<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R { try body(ctx) }
}
