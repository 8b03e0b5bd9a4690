internal import COpenSSL

/// One EVP cipher context, freed in `deinit`.
final class CipherContext {
    let ctx: OpaquePointer
    init() {
        guard let c = EVP_CIPHER_CTX_new() else { fatalError("EVP_CIPHER_CTX_new: out of memory") }
        ctx = c
    }
    deinit { EVP_CIPHER_CTX_free(ctx) }
}
