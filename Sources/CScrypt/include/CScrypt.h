#ifndef DISKVAULT_CSCRYPT_H
#define DISKVAULT_CSCRYPT_H
#include <stddef.h>
#include <stdint.h>

/// scrypt's ROMix (RFC 7914 §5) on one 128·r-byte block `b`, in place, with Salsa20/8 as its hash.
/// `v` holds 128·r·n bytes and `xy` 256·r bytes, both 16-byte aligned; n is a power of two ≥ 2.
void dv_scrypt_romix(uint8_t *b, size_t r, uint64_t n, void *v, void *xy);

/// ROMix on each of the p blocks of `b` (128·r·p bytes), in place, with its 128·r·n bytes of memory mapped for
/// the call (huge pages asked for) and wiped before they are unmapped. -1 with errno when the map fails.
int dv_scrypt_romix_blocks(uint8_t *b, size_t r, size_t p, uint64_t n);

#endif
