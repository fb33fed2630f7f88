/*
 * fastrnn packed-weight GEMM for the recurrent product: plain C, no Python
 * API.  GCC vector extensions keep it portable; fastrnn_cells.h's
 * FR_KERNEL compiles it for AVX-512, AVX2+FMA and baseline x86-64.  The
 * body is gemm_impl.h, instantiated for float (_f32) and double (_f64).
 */
#ifndef FASTRNN_GEMM_H
#define FASTRNN_GEMM_H

#include <stddef.h>
#include <string.h>
#include "fastrnn_cells.h"   /* FR_KERNEL, and rnn_step_fwd for rnn_gemv_step */

/* Output columns per packed panel: one 64-byte vector. */
#define FR_PANEL_F32 16
#define FR_PANEL_F64 8

/* The register tiles of the GEMM's full row blocks: MR rows of A times NP
 * panels, MR * NP accumulators (gemm_impl.h tile()).  Which one a machine runs
 * comes from the table below, by instruction set and CPU family, read once:
 * not from conditions inside the kernel.
 *
 *   FR_TILE_6x1  6 accumulators: AVX2's 16 registers hold them when each
 *                64-byte vector takes two; the baseline too.
 *   FR_TILE_4x2  8 accumulators, for AVX-512 cores that issue one 512-bit FMA a
 *                cycle (Zen 4: 4 cycles' latency), while the two panels' K rows
 *                fit half of L1; else 6x1 (docs/DECISIONS.md).
 *   FR_TILE_6x4  24 of AVX-512's 32 registers, for cores that issue two 512-bit
 *                FMAs a cycle (Zen 5, Intel's): 8 chains in flight at the least,
 *                and 4 panel loads and 6 broadcasts per 24 FMAs.
 *   FR_TILE_4x6  the same 24 accumulators as 4 rows x 6 panels, which 6x4 machines
 *                run on fewer than 48 rows that divide by 4 and not by 6: there
 *                the rows 6x4 leaves to a tile of 8 accumulators are a large share
 *                (8 rows: 2 of them; docs/DECISIONS.md). */
enum { FR_TILE_6x1, FR_TILE_4x2, FR_TILE_6x4, FR_TILE_4x6 };

enum { FR_CLASS_BASELINE, FR_CLASS_AVX2, FR_CLASS_AVX512_HALF, FR_CLASS_AVX512_FULL,
       FR_CLASSES };

typedef struct {
    const char *machine;   /* what the class is, for `fastrnn info` */
    int tile;              /* FR_TILE_* of the class's full row blocks */
} fr_gemm_rule;

static const fr_gemm_rule fr_gemm_rules[FR_CLASSES] = {
    [FR_CLASS_BASELINE]    = {"x86-64 baseline", FR_TILE_6x1},
    [FR_CLASS_AVX2]        = {"AVX2, a panel row in two 32-byte vectors", FR_TILE_6x1},
    [FR_CLASS_AVX512_HALF] = {"AVX-512, one 512-bit FMA a cycle (AMD Zen 4)", FR_TILE_4x2},
    [FR_CLASS_AVX512_FULL] = {"AVX-512, two 512-bit FMAs a cycle", FR_TILE_6x4},
};

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#endif
#include <unistd.h>

/* The CPU's class in fr_gemm_rules: its widest vectors, and for AVX-512 whether
 * it is AMD's family 19h (Zen 3 and 4: Zen 4 runs a 512-bit FMA as two halves). */
static inline int fr_cpu_class(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    unsigned eax, ebx, ecx, edx, vendor_ebx = 0, family = 0;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f"))
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
            ? FR_CLASS_AVX2 : FR_CLASS_BASELINE;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx))
        vendor_ebx = ebx;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        family = (eax >> 8) & 0xf;
        if (family == 0xf)
            family += (eax >> 20) & 0xff;
    }
    /* "AuthenticAMD": ebx holds "Auth" */
    if (vendor_ebx == 0x68747541u && family == 0x19)
        return FR_CLASS_AVX512_HALF;
    return FR_CLASS_AVX512_FULL;
#else
    return FR_CLASS_BASELINE;
#endif
}

/* The CPU's own class, read once. */
static inline int fr_cpu_class_once(void)
{
    static int c = -1;
    return fr_read_once(&c, fr_cpu_class);
}

/* The class this process runs: the CPU's, unless a test set another with
 * fr_gemm_set_class (-1: none).  Also the L1 data cache's bytes, read once. */
static int fr_gemm_forced_class = -1;
static long fr_l1_bytes_now = 0;

static inline int fr_gemm_class(void)
{
    const int c = __atomic_load_n(&fr_gemm_forced_class, __ATOMIC_RELAXED);
    return c >= 0 ? c : fr_cpu_class_once();
}

static inline void fr_gemm_set_class(int c)
{
    __atomic_store_n(&fr_gemm_forced_class, c >= 0 && c < FR_CLASSES ? c : -1,
                     __ATOMIC_RELAXED);
}

static inline long fr_l1_bytes(void)
{
    long n = __atomic_load_n(&fr_l1_bytes_now, __ATOMIC_RELAXED);
    if (n <= 0) {
#ifdef _SC_LEVEL1_DCACHE_SIZE
        n = sysconf(_SC_LEVEL1_DCACHE_SIZE);
#endif
        if (n <= 0)
            n = 32 * 1024;     /* what the OS does not say: the smallest of current cores */
        __atomic_store_n(&fr_l1_bytes_now, n, __ATOMIC_RELAXED);
    }
    return n;
}

/* What `fastrnn info` says of the class and its tile. */
static inline const char *fr_gemm_machine(void)
{
    return fr_gemm_rules[fr_gemm_class()].machine;
}

static inline const char *fr_gemm_tile_name(void)
{
    static const char *names[] = {"6 rows x 1 panel",
                                  "4 rows x 2 panels (6 x 1 where two panels overflow half of L1)",
                                  "6 rows x 4 panels (4 x 6 on short products whose rows"
                                  " divide by 4, not 6)"};
    return names[fr_gemm_rules[fr_gemm_class()].tile];
}

/* The tile of a product of M rows whose panels hold panel_bytes (K * NR numbers)
 * each: the class's, with 4x2's bounds (rows by 4, two panels in half of L1) and
 * 6x4 turned to 4x6 on short products where that leaves no rows over and 6x4
 * would. */
static inline int fr_gemm_tile(long M, long panel_bytes)
{
    int tile = fr_gemm_rules[fr_gemm_class()].tile;
    if (tile == FR_TILE_4x2 && !(M % 4 == 0 && 2 * panel_bytes <= fr_l1_bytes() / 2))
        return FR_TILE_6x1;
    if (tile == FR_TILE_6x4 && M < 48 && M % 4 == 0 && M % 6 != 0)
        return FR_TILE_4x6;
    return tile;
}

/* Whether this process computes with half-panel vectors: where 64-byte vectors
 * are no single register (AVX2), GCC would keep them in memory (gemm_impl.h).
 * The half build is compiled for AVX2 alone, so a CPU without AVX2 runs the
 * other even with the AVX2 class forced (the same bits). */
static inline int fr_gemm_half_vectors(void)
{
    return fr_gemm_class() == FR_CLASS_AVX2 && fr_cpu_class_once() >= FR_CLASS_AVX2;
}

typedef float fr_vec_f32 __attribute__((vector_size(64)));
typedef double fr_vec_f64 __attribute__((vector_size(64)));
typedef float fr_hvec_f32 __attribute__((vector_size(32)));
typedef double fr_hvec_f64 __attribute__((vector_size(32)));
/* lane indices for __builtin_shuffle: integers as wide as the vectors' elements */
typedef int fr_ivec_f32 __attribute__((vector_size(64)));
typedef long long fr_ivec_f64 __attribute__((vector_size(64)));
typedef int fr_hivec_f32 __attribute__((vector_size(32)));
typedef long long fr_hivec_f64 __attribute__((vector_size(32)));

/* The GEMM of each REAL (csrc/gemm_real.h): gemm_impl.h built twice, the API over both. */
#define REAL float
#define NR FR_PANEL_F32
#define FR_SUFFIX f32
#include "gemm_real.h"
#undef REAL
#undef NR
#undef FR_SUFFIX

#define REAL double
#define NR FR_PANEL_F64
#define FR_SUFFIX f64
#include "gemm_real.h"
#undef REAL
#undef NR
#undef FR_SUFFIX

#endif /* FASTRNN_GEMM_H */
