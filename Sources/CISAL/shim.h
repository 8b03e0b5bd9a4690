#ifndef DISKVAULT_CISAL_SHIM_H
#define DISKVAULT_CISAL_SHIM_H
#include <stdint.h>
#include <isa-l/igzip_lib.h>
#include <isa-l/crc.h>
#include <isa-l/mem_routines.h>

// The level-buffer sizes are macro arithmetic Swift cannot import.
static inline uint32_t dv_isal_level1_buffer_size(void) { return ISAL_DEF_LVL1_DEFAULT; }
static inline uint16_t dv_isal_zlib_flag(void) { return IGZIP_ZLIB; }
static inline uint32_t dv_isal_inflate_zlib_flag(void) { return ISAL_ZLIB; }
#endif
