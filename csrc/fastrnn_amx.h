/*
 * fastrnn's use of the AMX tile registers (Intel Xeons since Sapphire Rapids), shared
 * by the int8 and bfloat16 products: plain C, no Python API.
 *
 * Both multiply tiles of mr rows (at most 16) of 64-byte A rows against B tiles of
 * 16 rows of 64 bytes (one group of a product's panel each), so they share one set
 * of tile shapes:
 *   tiles 0-1  C, mr rows of 16 32-bit sums (one panel each);
 *   tiles 2-3  A, mr rows of 64 bytes, and of the K tail's bytes;
 *   tiles 4-5  B, 16 groups of a panel; 6-7 the tail's groups (tail bytes / 4).
 * A thread configures them on first use (and when the shape changes) and releases
 * them at the end of each product, so no AMX state outlives a call.
 */
#ifndef FASTRNN_AMX_H
#define FASTRNN_AMX_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FR_AMX_X86 1
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#else
#define FR_AMX_X86 0
#endif

#define FR_AMX_ROWS 16

/* Linux lets a process use the AMX tile registers once it has asked for them
 * (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); asked once. */
static inline int fr_amx_permitted(void)
{
#if FR_AMX_X86 && defined(__linux__) && defined(SYS_arch_prctl)
    static int permitted = -1;
    int p = __atomic_load_n(&permitted, __ATOMIC_RELAXED);
    if (p < 0) {
        p = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
        __atomic_store_n(&permitted, p, __ATOMIC_RELAXED);
    }
    return p;
#else
    return 0;
#endif
}

#if FR_AMX_X86
#define FR_AMX_TILES __attribute__((target("amx-tile")))

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} fr_amx_config;

/* The shape this thread's tiles have now (mr * 64 + tail), -1 when released. */
static __thread int fr_amx_shape = -1;

/* Tiles for mr rows and a K tail of `tail` bytes (a multiple of 4, below 64). */
FR_AMX_TILES static void fr_amx_configure(int mr, int tail)
{
    if (fr_amx_shape == mr * 64 + tail)
        return;
    fr_amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; ++t) {
        const int b = t >= 4, in_tail = t == 3 || t >= 6;
        cfg.colsb[t] = (uint16_t)(in_tail && !b ? tail : 64);
        cfg.rows[t] = (uint8_t)(b ? (in_tail ? tail / 4 : 16) : mr);
    }
    if (!tail)
        cfg.rows[3] = cfg.rows[6] = cfg.rows[7] = cfg.colsb[3] = cfg.colsb[6] = cfg.colsb[7] = 0;
    /* GCC takes ldtilecfg to read fewer bytes than its 64 and drops the stores to
     * the shapes: the barrier keeps them. */
    __asm__ __volatile__("" : : "r"(&cfg) : "memory");
    _tile_loadconfig(&cfg);
    fr_amx_shape = mr * 64 + tail;
}

/* One AMX product on these tiles, in a function compiled for DP's instruction set:
 * mr rows of A (from a, `stride` bytes apart) against the B tiles of one or two
 * panels (from b0 and b1; np of them), kbytes bytes of each row, 64 at a time and
 * then the tail, DP the tile instruction (_tile_dpbusd, _tile_dpbf16ps); the sums,
 * 16 32-bit values a row and panel, go to out, `out_stride` bytes a row. */
#define FR_AMX_SUMS(DP, mr, a, stride, b0, b1, np, kbytes, out, out_stride)     \
    do {                                                                       \
        const char *fr_a = (const char *)(a), *fr_b0 = (const char *)(b0);     \
        const char *fr_b1 = (const char *)(b1);                                \
        const long fr_full = (kbytes) / 64 * 64;                               \
        const int fr_tail = (int)((kbytes) - fr_full);                         \
        fr_amx_configure(mr, fr_tail);                                         \
        _tile_zero(0);                                                         \
        _tile_zero(1);                                                         \
        for (long k = 0; k < fr_full; k += 64)                                 \
            FR_AMX_STEP(DP, 2, 4, 5, k, stride, np);                           \
        if (fr_tail)                                                           \
            FR_AMX_STEP(DP, 3, 6, 7, fr_full, stride, np);                     \
        _tile_stored(0, (char *)(out), out_stride);                            \
        if ((np) > 1)                                                          \
            _tile_stored(1, (char *)(out) + 64, out_stride);                   \
    } while (0)

/* 64 bytes of K (or the tail) from byte k: A tile TA, the panels' B tiles TB0, TB1
 * (a group of 64 bytes holds 16 columns' bytes k .. k + 3, so byte k of K starts
 * 16 k into a panel). */
#define FR_AMX_STEP(DP, TA, TB0, TB1, k, stride, np)                           \
    do {                                                                       \
        _tile_loadd(TA, fr_a + (k), stride);                                   \
        _tile_loadd(TB0, fr_b0 + (k) * 16, 64);                                \
        DP(0, TA, TB0);                                                        \
        if ((np) > 1) {                                                        \
            _tile_loadd(TB1, fr_b1 + (k) * 16, 64);                            \
            DP(1, TA, TB1);                                                    \
        }                                                                      \
    } while (0)

/* Gives the tiles back at the end of a product, so the thread carries no AMX state. */
FR_AMX_TILES static void fr_amx_done(void)
{
    if (fr_amx_shape >= 0)
        _tile_release();
    fr_amx_shape = -1;
}
#undef FR_AMX_TILES
#endif

#endif /* FASTRNN_AMX_H */
