// scrypt's memory-hard core (RFC 7914): ROMix over BlockMix over Salsa20/8, on 128-bit vectors (the compiler's
// vector extensions: SSE2 on x86-64, NEON on arm64). Each 64-byte block is held in diagonal order so that a
// column round and a row round are each four whole-vector steps with lane rotations between them; blocks are
// put in that order when ROMix starts and back when it ends, and XOR and addition do not care about the order.
// Built with optimisation even in debug builds (Package.swift): unoptimised it is several times slower.
#define _GNU_SOURCE
#include "CScrypt.h"
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

typedef uint32_t v4 __attribute__((vector_size(16), aligned(16)));

#define ROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define LANES(v, a, b, c, d) __builtin_shufflevector((v), (v), a, b, c, d)

// Salsa20/8 on one block as four vectors a = (x0,x5,x10,x15), b = (x4,x9,x14,x3), c = (x8,x13,x2,x7),
// d = (x12,x1,x6,x11): the columns (x0,x4,x8,x12), (x5,x9,x13,x1), ... are lanes of (a, b, c, d); the rows
// (x0,x1,x2,x3), (x5,x6,x7,x4), ... are lanes of (a, d, c, b) each rotated by 1, 2 and 3 lanes.
static inline __attribute__((always_inline)) void salsa8(v4 *restrict x) {
    v4 a = x[0], b = x[1], c = x[2], d = x[3];
    for (int i = 0; i < 4; i++) {
        b ^= ROTL(a + d, 7);
        c ^= ROTL(b + a, 9);
        d ^= ROTL(c + b, 13);
        a ^= ROTL(d + c, 18);
        v4 rb = LANES(d, 1, 2, 3, 0), rc = LANES(c, 2, 3, 0, 1), rd = LANES(b, 3, 0, 1, 2);
        rb ^= ROTL(a + rd, 7);
        rc ^= ROTL(rb + a, 9);
        rd ^= ROTL(rc + rb, 13);
        a ^= ROTL(rd + rc, 18);
        d = LANES(rb, 3, 0, 1, 2);
        c = LANES(rc, 2, 3, 0, 1);
        b = LANES(rd, 1, 2, 3, 0);
    }
    x[0] += a;
    x[1] += b;
    x[2] += c;
    x[3] += d;
}

// out = BlockMix(in XOR other) over 2r blocks (other NULL: BlockMix(in)); out does not overlap either.
static inline __attribute__((always_inline)) void blockmix(const v4 *restrict in, const v4 *restrict other, v4 *restrict out, size_t r) {
    v4 x[4];
    const size_t last = (2 * r - 1) * 4;
    for (int k = 0; k < 4; k++) x[k] = other ? in[last + k] ^ other[last + k] : in[last + k];
    for (size_t i = 0; i < 2 * r; i++) {
        for (int k = 0; k < 4; k++) x[k] ^= other ? in[i * 4 + k] ^ other[i * 4 + k] : in[i * 4 + k];
        salsa8(x);
        // Even blocks go to the first half of the output, odd ones to the second.
        v4 *y = out + ((i / 2) + (i % 2) * r) * 4;
        for (int k = 0; k < 4; k++) y[k] = x[k];
    }
}

// Word w of a block in diagonal order is word diagonal[w] of the block in RFC order.
static const int diagonal[16] = {0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11};

static inline uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

// ROMix on one 128·r-byte block `b`, in place: `v` holds 128·r·n bytes and `xy` 256·r bytes, both 16-byte
// aligned; n is a power of two ≥ 2.
static void romix(uint8_t *b, size_t r, uint64_t n, void *v, void *xy) {
    const size_t vectors = 8 * r, words = 32 * r;
    v4 *vv = v, *x = xy, *y = (v4 *)xy + vectors;
    uint32_t *v0 = (uint32_t *)vv;
    for (size_t k = 0; k < 2 * r; k++)
        for (int w = 0; w < 16; w++) v0[k * 16 + w] = load_le32(b + 64 * k + 4 * diagonal[w]);
    // V[i+1] = BlockMix(V[i]), written in place; X = BlockMix(V[n-1]).
    for (uint64_t i = 0; i + 1 < n; i++) blockmix(vv + i * vectors, NULL, vv + (i + 1) * vectors, r);
    blockmix(vv + (n - 1) * vectors, NULL, x, r);
    // n ≤ 2^32 here, so Integerify's low 32 bits (word 0 of the last block, which diagonal order leaves first) suffice.
    for (uint64_t i = 0; i < n; i += 2) {
        uint64_t j = ((const uint32_t *)x)[words - 16] & (n - 1);
        blockmix(x, vv + j * vectors, y, r);
        j = ((const uint32_t *)y)[words - 16] & (n - 1);
        blockmix(y, vv + j * vectors, x, r);
    }
    uint32_t *xw = (uint32_t *)x;
    for (size_t k = 0; k < 2 * r; k++)
        for (int w = 0; w < 16; w++) store_le32(b + 64 * k + 4 * diagonal[w], xw[k * 16 + w]);
}

int dv_scrypt_romix_blocks(uint8_t *b, size_t r, size_t p, uint64_t n) {
    // X and Y on the stack: 256·r bytes, 8 KiB at the largest r scrypt's callers allow.
    v4 xy[16 * 32];
    if (r < 1 || r > 32 || n < 2 || (n & (n - 1)) != 0 || n > ((uint64_t)1 << 32)) {
        errno = EINVAL;
        return -1;
    }
    const size_t huge = (size_t)2 << 20, bytes = 128 * r * (size_t)n, length = bytes + huge;
    uint8_t *mapped = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) return -1;
    // V from a 2 MiB boundary, in huge pages where the kernel gives them: a fault every 2 MiB, not every 4 KiB
    // (a third of the time of N = 2^15 went on faults otherwise).
    uint8_t *v = (uint8_t *)(((uintptr_t)mapped + huge - 1) & ~(uintptr_t)(huge - 1));
#ifdef MADV_HUGEPAGE
    (void)madvise(v, bytes, MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < p; i++) romix(b + 128 * r * i, r, n, v, xy);
    // What V and X/Y held is derived from the passphrase.
    explicit_bzero(v, bytes);
    explicit_bzero(xy, sizeof xy);
    munmap(mapped, length);
    return 0;
}
