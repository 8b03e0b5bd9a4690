#ifndef DISKVAULT_CSCRYPT_H
#define DISKVAULT_CSCRYPT_H
#include <stddef.h>
#include <stdint.h>

/// scrypt's ROMix (RFC 7914 §5, Salsa20/8 as its hash) on each of the p blocks of `b` (128·r·p bytes), in
/// place, with its 128·r·n bytes of memory mapped for the call (huge pages asked for) and wiped before they
/// are unmapped. -1 with errno when the parameters are out of bounds or the map fails.
int dv_scrypt_romix_blocks(uint8_t *b, size_t r, size_t p, uint64_t n);

#endif
