#ifndef DISKVAULT_CZLIB_SHIM_H
#define DISKVAULT_CZLIB_SHIM_H
#include <zlib.h>

// deflateInit/inflateInit are macros; Swift cannot call them.
static inline int dv_deflate_init(z_stream *s, int level) {
    return deflateInit(s, level);
}
static inline int dv_inflate_init(z_stream *s) {
    return inflateInit(s);
}
#endif
