/*
 * fastrnn bfloat16 weight products for inference: plain C, no Python API.
 *
 * Weights are rounded once to bfloat16 (round to nearest even: the top 16 bits of
 * a float32), half the bytes of float32; each product rounds the rows of A to
 * bfloat16 too, as the AVX-512 BF16 instruction takes them.  Products of two
 * bfloat16 numbers are exact in float32, and every path sums them in one order:
 * for each output, over the pairs of k in turn, the odd k's product then the
 * even one's, each added with one rounding (what vdpbf16ps does), from 0; then
 *   C[m, n] = C0[m, n] + sum     (C0 = C when accumulating, the bias, or 0).
 * So these paths agree bitwise, apart from vdpbf16ps flushing subnormal numbers to
 * zero, which the others do not.  AMX-BF16 is the exception: its tiles sum the same
 * exact products in an order of their own (each output's order fixed, whatever the
 * rows, columns or threads of the call), so its results differ from the others by
 * roundings of the sum (fr_bf16_sums_in_order), and it flushes subnormals too.
 *
 * Paths, chosen once from what the CPU has (fr_bf16_path):
 *   AMX         AMX-BF16 tdpbf16ps on tiles of up to 16 rows x 32 k against 16
 *               pairs of k of a panel (fastrnn_amx.h), for every number of rows.
 *   AVX512BF16  vdpbf16ps: two products into each float32 lane.
 *   AVX512      the bfloat16 pairs widened to float32 in registers, two FMAs; where
 *               the CPU runs vdpbf16ps at under FR_BF16_DOT_SLOW of its FMA rate
 *               (as Intel's cores do), this path is the faster one and is chosen.
 *   AVX2        the same widening on 256-bit vectors.
 *   PORTABLE    plain C with fmaf, for any x86-64 and as the tests' forced path.
 * The widening paths take the rounded rows of A as float32 (their low 16 bits 0),
 * so that a broadcast is a plain load.
 *
 * Pack layout (fr_bf16_pack_bytes of N x K): panels of FR_BF16_NR output columns,
 * each Kp / 2 groups of 64 bytes holding bf16(W[p*16 + i][2g]) and
 * bf16(W[p*16 + i][2g + 1]) in the low and high halves of 32-bit word i of group
 * g (Kp = K rounded up to 2, zeros past N and K).
 */
#ifndef FASTRNN_BF16_H
#define FASTRNN_BF16_H

#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include "fastrnn_amx.h"
#include "fastrnn_paths.h"
#include "fastrnn_probe.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FR_BF16_X86 1
#else
#define FR_BF16_X86 0
#endif

#define FR_BF16_NR 16
/* Rows of A rounded at a time: at most FR_BF16_MB, in FR_BF16_ABUF bytes of stack
 * (one row of FR_BF16_MAX_K float32 at least). */
#define FR_BF16_ABUF 131072
#define FR_BF16_MB 256
#define FR_BF16_MAX_K (FR_BF16_ABUF / 4)
/* vdpbf16ps counts as slow below this fraction of the FMA's instruction rate: the
 * widened path spends two FMAs and a little more on what it does in one. */
#define FR_BF16_DOT_SLOW 0.4

enum {
    FR_BF16_PORTABLE, FR_BF16_AVX2, FR_BF16_AVX512, FR_BF16_AVX512BF16, FR_BF16_AMX,
    FR_BF16_PATHS
};

static inline long fr_bf16_np(long N) { return (N + FR_BF16_NR - 1) / FR_BF16_NR * FR_BF16_NR; }
static inline long fr_bf16_kp(long K) { return (K + 1) & ~1L; }

/* Bytes of an N x K pack (a multiple of 64). */
static inline long fr_bf16_pack_bytes(long N, long K)
{
    return fr_bf16_np(N) * fr_bf16_kp(K) * 2;
}

/* ---------------------------------------------------------------- paths */

static inline int fr_bf16_supported(int path)
{
#if FR_BF16_X86
    __builtin_cpu_init();
    if (path == FR_BF16_AMX)
        return fr_bf16_supported(FR_BF16_AVX512BF16) && __builtin_cpu_supports("amx-tile")
            && __builtin_cpu_supports("amx-bf16") && fr_amx_permitted();
    if (path == FR_BF16_AVX512BF16)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
    if (path == FR_BF16_AVX512)
        return __builtin_cpu_supports("avx512f");
    if (path == FR_BF16_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return path == FR_BF16_PORTABLE;
}

#if FR_BF16_X86
/* The machine probe's FMA chains (fastrnn_probe.h) with vdpbf16ps in the FMA's
 * place: FR_PROBE_CHAINS accumulators advanced `rounds` times. */
__attribute__((target("avx512f,avx512bf16"))) static float fr_bf16_probe_dot(long rounds)
{
    __m512 acc[FR_PROBE_CHAINS];
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3a833a83); /* bf16 1e-3, twice */
    for (int c = 0; c < FR_PROBE_CHAINS; ++c)
        acc[c] = _mm512_set1_ps((float)(c + 1));
    for (long r = 0; r < rounds; ++r)
        for (int c = 0; c < FR_PROBE_CHAINS; ++c)
            acc[c] = _mm512_dpbf16_ps(acc[c], x, x);
    for (int c = 1; c < FR_PROBE_CHAINS; ++c)
        acc[0] = _mm512_add_ps(acc[0], acc[c]);
    return _mm512_reduce_add_ps(acc[0]);
}

static double fr_bf16_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* vdpbf16ps's instruction rate over the FMA's on this core: the fastest of a few
 * interleaved timings of each (about a millisecond in all). */
static double fr_bf16_dot_rate(void)
{
    volatile float sink = 0.0f;
    float fma_sink;
    double dot = 1e30, fma = 1e30;
    for (int trial = 0; trial < 6; ++trial) {
        double t0 = fr_bf16_seconds();
        sink += fr_bf16_probe_dot(2000);
        double t1 = fr_bf16_seconds();
        fr_probe_fma_avx512(2000, &fma_sink);
        sink += fma_sink;
        double t2 = fr_bf16_seconds();
        dot = t1 - t0 < dot ? t1 - t0 : dot;
        fma = t2 - t1 < fma ? t2 - t1 : fma;
    }
    (void)sink;
    return dot > 0.0 ? fma / dot : 1.0;
}
#endif

/* Whether the best path may be `path`: vdpbf16ps only where it is not slow. */
static int fr_bf16_preferred(int path)
{
#if FR_BF16_X86
    if (path == FR_BF16_AVX512BF16)
        return fr_bf16_dot_rate() >= FR_BF16_DOT_SLOW;
#endif
    (void)path;
    return 1;
}

/* Whether path sums in the order the header gives (all but AMX). */
static inline int fr_bf16_sums_in_order(int path)
{
    return path != FR_BF16_AMX;
}

static int fr_bf16_path_now = -1;

static inline int fr_bf16_path(void)
{
    return fr_path_now(&fr_bf16_path_now, FR_BF16_PATHS, fr_bf16_supported,
                       fr_bf16_preferred);
}

/* Run path (tests force the portable ones); -1 goes back to the best. Returns the
 * path now in force, unchanged when this CPU lacks the one asked for. */
static inline int fr_bf16_set_path(int path)
{
    return fr_path_set(&fr_bf16_path_now, path, FR_BF16_PATHS, fr_bf16_supported,
                       fr_bf16_preferred);
}

static inline const char *fr_bf16_path_name(int path)
{
    static const char *names[] = {"portable C", "AVX2 (widened to float32)",
                                  "AVX-512 (widened to float32)",
                                  "AVX-512 BF16 (vdpbf16ps)", "AMX-BF16 (tdpbf16ps)"};
    return path >= 0 && path < FR_BF16_PATHS ? names[path] : "?";
}

/* ------------------------------------------------------------- rounding */

/* float32 -> bfloat16, round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t fr_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float fr_bf16_widen(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* Round and pack columns [c0, c1) of W (N x K, element (n, k) at W[n*sn + k*sk]);
 * c0 a multiple of FR_BF16_NR, c1 <= N (c1 == N: also the zero columns after N). */
static inline void fr_bf16_pack_cols(long N, long K, const float *W, long sn, long sk,
                                     void *pack, long c0, long c1)
{
    const long np = fr_bf16_np(N), kp = fr_bf16_kp(K);
    uint16_t *panels = (uint16_t *)pack;
    const long end = c1 >= N ? np : c1;
    for (long n = c0; n < end; ++n) {
        uint16_t *col = panels + (n / FR_BF16_NR) * kp * FR_BF16_NR + (n % FR_BF16_NR) * 2;
        for (long k = 0; k < kp; ++k)
            col[(k / 2) * 32 + k % 2] = n < N && k < K ? fr_bf16_round(W[n * sn + k * sk]) : 0;
    }
}

/* A row rounded to bfloat16, as bfloat16 (q) or as float32 (f); zeros up to Kp. */
static void fr_bf16_round_row(long K, const float *x, uint16_t *q)
{
    long k = 0;
    for (; k < K; ++k)
        q[k] = fr_bf16_round(x[k]);
    for (; k < fr_bf16_kp(K); ++k)
        q[k] = 0;
}

static void fr_bf16_round_row_f32(long K, const float *x, float *f)
{
    long k = 0;
    for (; k < K; ++k)
        f[k] = fr_bf16_widen(fr_bf16_round(x[k]));
    for (; k < fr_bf16_kp(K); ++k)
        f[k] = 0.0f;
}

/* -------------------------------------------------------------- the paths */

/* A row's float32 sums for up to FR_BF16_PANELS panels of output columns. */
#define FR_BF16_PANELS 4
typedef float fr_bf16_sums[FR_BF16_PANELS * FR_BF16_NR];

/* Each path's rows(mr, np, kp, a, panel, acc): rows [0, mr) of A (a: Kp values a
 * row, bfloat16 or float32 as the path takes them) against np panels from panel. */
static void fr_bf16_rows_portable(int mr, int np, long kp, const void *a,
                                  const uint16_t *panel, fr_bf16_sums *acc)
{
    (void)np;
    for (int r = 0; r < mr; ++r) {
        const float *x = (const float *)a + r * kp;
        for (int i = 0; i < FR_BF16_NR; ++i) {
            float s = 0.0f;
            for (long g = 0; g < kp / 2; ++g) {
                const uint16_t *w = panel + g * 32 + 2 * i;
                s = fmaf(x[2 * g + 1], fr_bf16_widen(w[1]), s);
                s = fmaf(x[2 * g], fr_bf16_widen(w[0]), s);
            }
            acc[r][i] = s;
        }
    }
}

#if FR_BF16_X86
/* mr rows against np panels (1-2 rows against at most 4, 2 x 2 at the most,
 * or 3-4 rows against one: about what AVX2's 16 registers hold), the pairs
 * widened to float32, half a panel per vector. */
__attribute__((target("avx2,fma"), always_inline)) static inline void fr_bf16_tile_avx2(
    const int mr, const int np, long kp, const float *x, const uint16_t *panel,
    fr_bf16_sums *acc)
{
    __m256 s[4][8];
    for (int r = 0; r < mr; ++r)
        for (int v = 0; v < 2 * np; ++v)
            s[r][v] = _mm256_setzero_ps();
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    const size_t pstride = (size_t)kp * FR_BF16_NR;
    for (long g = 0; g < kp / 2; ++g) {
        if (mr <= 2 || np > 1) {
            /* few rows, up to 4 panels: each vector of weights widened just
             * before its sums, two registers for it rather than two for each
             * of the tile's 8 */
            __m256 a_even[2], a_odd[2];
            for (int r = 0; r < mr; ++r) {
                a_even[r] = _mm256_broadcast_ss(x + r * kp + 2 * g);
                a_odd[r] = _mm256_broadcast_ss(x + r * kp + 2 * g + 1);
            }
            for (int v = 0; v < 2 * np; ++v) {
                const __m256i w = _mm256_loadu_si256(
                    (const __m256i *)(panel + (v / 2) * pstride + g * 32 + (v % 2) * 16));
                const __m256 even = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
                const __m256 odd = _mm256_castsi256_ps(_mm256_and_si256(w, high));
                for (int r = 0; r < mr; ++r)
                    s[r][v] = _mm256_fmadd_ps(a_even[r], even,
                                              _mm256_fmadd_ps(a_odd[r], odd, s[r][v]));
            }
            continue;
        }
        /* 3-4 rows against one panel: its two vectors widened once for all */
        __m256 even[2], odd[2];
        for (int v = 0; v < 2; ++v) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(panel + g * 32 + v * 16));
            even[v] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
            odd[v] = _mm256_castsi256_ps(_mm256_and_si256(w, high));
        }
        for (int r = 0; r < mr; ++r) {
            const __m256 a_even = _mm256_broadcast_ss(x + r * kp + 2 * g);
            const __m256 a_odd = _mm256_broadcast_ss(x + r * kp + 2 * g + 1);
            for (int v = 0; v < 2; ++v)
                s[r][v] = _mm256_fmadd_ps(a_even, even[v],
                                          _mm256_fmadd_ps(a_odd, odd[v], s[r][v]));
        }
    }
    for (int r = 0; r < mr; ++r)
        for (int v = 0; v < 2 * np; ++v)
            _mm256_storeu_ps(acc[r] + v * 8, s[r][v]);
}

/* Up to 4 rows against one panel, 2 rows against 2 or one row against 4: 8
 * chains of sums, as many as AVX2's two FMA pipes need to cover their latency
 * (one row against 2 panels waited on its 4 chains).  Other shapes in pieces
 * of those, panel by panel. */
__attribute__((target("avx2,fma"))) static void fr_bf16_rows_avx2(
    int mr, int np, long kp, const void *a, const uint16_t *panel, fr_bf16_sums *acc)
{
    const float *x = (const float *)a;
    switch (mr * 8 + np) {
    case 1 * 8 + 4: fr_bf16_tile_avx2(1, 4, kp, x, panel, acc); return;
    case 1 * 8 + 3: fr_bf16_tile_avx2(1, 3, kp, x, panel, acc); return;
    case 1 * 8 + 2: fr_bf16_tile_avx2(1, 2, kp, x, panel, acc); return;
    case 1 * 8 + 1: fr_bf16_tile_avx2(1, 1, kp, x, panel, acc); return;
    case 2 * 8 + 2: fr_bf16_tile_avx2(2, 2, kp, x, panel, acc); return;
    case 2 * 8 + 1: fr_bf16_tile_avx2(2, 1, kp, x, panel, acc); return;
    case 3 * 8 + 1: fr_bf16_tile_avx2(3, 1, kp, x, panel, acc); return;
    case 4 * 8 + 1: fr_bf16_tile_avx2(4, 1, kp, x, panel, acc); return;
    default: break;
    }
    const int step = mr <= 2 ? 2 : 1;     /* panels per piece */
    for (int p = 0; p < np; p += step) {
        const int n = np - p < step ? np - p : step;
        fr_bf16_sums part[4];
        fr_bf16_rows_avx2(mr, n, kp, a, panel + p * (size_t)kp * FR_BF16_NR, part);
        for (int r = 0; r < mr; ++r)
            memcpy(acc[r] + p * FR_BF16_NR, part[r], sizeof(float) * FR_BF16_NR * n);
    }
}

/* The AVX-512 tiles: mr rows against np panels, each output one chain of sums in
 * k's order, so a tile needs mr x np chains to cover the latency of its adds: the
 * rows functions below give few rows more panels. */

/* mr rows (at most 6) against np panels (at most 4, 2 with 5-6 rows), the pairs
 * widened to float32; sums into acc's columns from col0. */
__attribute__((target("avx512f"), always_inline)) static inline void fr_bf16_tile_wide(
    const int mr, const int np, long kp, const float *x, const uint16_t *panel,
    fr_bf16_sums *acc, int col0)
{
    __m512 s[6][FR_BF16_PANELS];
    for (int r = 0; r < mr; ++r)
        for (int p = 0; p < np; ++p)
            s[r][p] = _mm512_setzero_ps();
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    const size_t pstride = (size_t)kp * FR_BF16_NR;
    for (long g = 0; g < kp / 2; ++g) {
        __m512 even[FR_BF16_PANELS], odd[FR_BF16_PANELS];
        for (int p = 0; p < np; ++p) {
            const __m512i w = _mm512_loadu_si512(panel + p * pstride + g * 32);
            even[p] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
            odd[p] = _mm512_castsi512_ps(_mm512_and_si512(w, high));
        }
        for (int r = 0; r < mr; ++r) {
            const __m512 a_even = _mm512_set1_ps(x[r * kp + 2 * g]);
            const __m512 a_odd = _mm512_set1_ps(x[r * kp + 2 * g + 1]);
            for (int p = 0; p < np; ++p)
                s[r][p] = _mm512_fmadd_ps(a_even, even[p],
                                          _mm512_fmadd_ps(a_odd, odd[p], s[r][p]));
        }
    }
    for (int r = 0; r < mr; ++r)
        for (int p = 0; p < np; ++p)
            _mm512_storeu_ps(acc[r] + col0 + p * FR_BF16_NR, s[r][p]);
}

#define FR_BF16_AVX512 __attribute__((target("avx512f,avx512bf16")))

/* The same with vdpbf16ps on the rows of A as bfloat16. */
FR_BF16_AVX512 __attribute__((always_inline)) static inline void fr_bf16_tile_dot(
    const int mr, const int np, long kp, const uint16_t *qa, const uint16_t *panel,
    fr_bf16_sums *acc, int col0)
{
    __m512 s[6][FR_BF16_PANELS];
    for (int r = 0; r < mr; ++r)
        for (int p = 0; p < np; ++p)
            s[r][p] = _mm512_setzero_ps();
    const size_t pstride = (size_t)kp * FR_BF16_NR;
    for (long g = 0; g < kp / 2; ++g) {
        __m512bh w[FR_BF16_PANELS];
        for (int p = 0; p < np; ++p)
            w[p] = (__m512bh)_mm512_loadu_si512(panel + p * pstride + g * 32);
        for (int r = 0; r < mr; ++r) {
            int32_t pair;
            memcpy(&pair, qa + r * kp + 2 * g, 4);
            const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
            for (int p = 0; p < np; ++p)
                s[r][p] = _mm512_dpbf16_ps(s[r][p], a, w[p]);
        }
    }
    for (int r = 0; r < mr; ++r)
        for (int p = 0; p < np; ++p)
            _mm512_storeu_ps(acc[r] + col0 + p * FR_BF16_NR, s[r][p]);
}

/* rows(mr, np, ...) over a tile of each shape compiled on its own (constant mr and
 * np): up to 4 rows take all np panels at once; 5-6 rows take them 2 at a time,
 * as 4 panels would not stay in registers. */
#define FR_BF16_ROWS_OF(NAME, TILE, ATYPE, TARGET)                                  \
    TARGET static void NAME(int mr, int np, long kp, const void *a,                 \
                            const uint16_t *panel, fr_bf16_sums *acc)               \
    {                                                                               \
        const ATYPE *x = (const ATYPE *)a;                                          \
        const size_t pstride = (size_t)kp * FR_BF16_NR;                             \
        for (int p0 = 0; p0 < np; p0 += mr > 4 ? 2 : 4) {                           \
            const int n = mr > 4 && np - p0 > 2 ? 2 : np - p0;                      \
            const uint16_t *w = panel + p0 * pstride;                               \
            const int c0 = p0 * FR_BF16_NR;                                         \
            switch (mr * 8 + n) {                                                   \
            FR_BF16_TILE_CASES(TILE)                                                \
            }                                                                       \
        }                                                                           \
    }
#define FR_BF16_CASE(TILE, R, P) case R * 8 + P: TILE(R, P, kp, x, w, acc, c0); break;
#define FR_BF16_TILE_CASES(TILE)                                                         \
    FR_BF16_CASE(TILE, 1, 1) FR_BF16_CASE(TILE, 1, 2) FR_BF16_CASE(TILE, 1, 3)           \
    FR_BF16_CASE(TILE, 1, 4) FR_BF16_CASE(TILE, 2, 1) FR_BF16_CASE(TILE, 2, 2)           \
    FR_BF16_CASE(TILE, 2, 3) FR_BF16_CASE(TILE, 2, 4) FR_BF16_CASE(TILE, 3, 1)           \
    FR_BF16_CASE(TILE, 3, 2) FR_BF16_CASE(TILE, 3, 3) FR_BF16_CASE(TILE, 3, 4)           \
    FR_BF16_CASE(TILE, 4, 1) FR_BF16_CASE(TILE, 4, 2) FR_BF16_CASE(TILE, 4, 3)           \
    FR_BF16_CASE(TILE, 4, 4) FR_BF16_CASE(TILE, 5, 1) FR_BF16_CASE(TILE, 5, 2)           \
    FR_BF16_CASE(TILE, 6, 1) FR_BF16_CASE(TILE, 6, 2)

FR_BF16_ROWS_OF(fr_bf16_rows_wide, fr_bf16_tile_wide, float, __attribute__((target("avx512f"))))
FR_BF16_ROWS_OF(fr_bf16_rows_dot, fr_bf16_tile_dot, uint16_t, FR_BF16_AVX512)
#undef FR_BF16_TILE_CASES
#undef FR_BF16_CASE

#define FR_BF16_AMX_TARGET __attribute__((target("avx512f,avx512bf16,amx-tile,amx-bf16")))

/* Up to 16 rows against up to 2 panels: 32 k (64 bytes) at a time, then the tail
 * of K. */
FR_BF16_AMX_TARGET static void fr_bf16_rows_amx(int mr, int np, long kp, const void *a,
                                                const uint16_t *panel, fr_bf16_sums *acc)
{
    FR_AMX_SUMS(_tile_dpbf16ps, mr, a, kp * 2, panel, panel + (size_t)kp * FR_BF16_NR, np,
                kp * 2, acc[0], sizeof(fr_bf16_sums));
}
#undef FR_BF16_AMX_TARGET
#undef FR_BF16_ROWS_OF
#undef FR_BF16_AVX512
#endif

/* ----------------------------------------------------------- the product */

typedef struct {
    int rows_max, panels_max;
    int a_bf16; /* rows of A as bfloat16 (else float32) */
    void (*rows)(int mr, int np, long kp, const void *a, const uint16_t *panel,
                 fr_bf16_sums *acc);
    void (*done)(void); /* at the end of a product, or NULL */
} fr_bf16_kernels;

static inline fr_bf16_kernels fr_bf16_kernels_of(int path)
{
#if FR_BF16_X86
    if (path == FR_BF16_AMX)
        return (fr_bf16_kernels){FR_AMX_ROWS, 2, 1, fr_bf16_rows_amx, fr_amx_done};
    if (path == FR_BF16_AVX512BF16)
        return (fr_bf16_kernels){6, FR_BF16_PANELS, 1, fr_bf16_rows_dot, NULL};
    if (path == FR_BF16_AVX512)
        return (fr_bf16_kernels){6, FR_BF16_PANELS, 0, fr_bf16_rows_wide, NULL};
    if (path == FR_BF16_AVX2)
        return (fr_bf16_kernels){4, 4, 0, fr_bf16_rows_avx2, NULL};
#endif
    (void)path;
    return (fr_bf16_kernels){6, 1, 0, fr_bf16_rows_portable, NULL};
}

/* For each block q < nblocks and n in [q*ldb + j0, q*ldb + j1) (j0 a multiple of
 * FR_BF16_NR; j1 too, or the end of its block):
 *   C[m, n] = C0 + sum_k bf16(A[m, k]) bf16(W[n, k])   for m < M,
 * summed as the header says, C0 = C[m, n] (accumulate), bias[n], or 0; A
 * row-major with row stride lda, C with ldc; Wb the pack of W (N x K,
 * K <= FR_BF16_MAX_K). */
static void fr_bf16_gemm(int M, int K, const float *A, long lda, const void *Wb, int N,
                         int nblocks, int ldb, int j0, int j1, float *C, long ldc,
                         int accumulate, const float *bias)
{
    (void)N;
    const fr_bf16_kernels kern = fr_bf16_kernels_of(fr_bf16_path());
    const long kp = fr_bf16_kp(K);
    const uint16_t *panels = (const uint16_t *)Wb;
    union {
        uint16_t h[FR_BF16_ABUF / 2];
        float f[FR_BF16_ABUF / 4];
    } rows_of_a __attribute__((aligned(64)));
    fr_bf16_sums acc[FR_AMX_ROWS] __attribute__((aligned(64)));
    const long a_size = kern.a_bf16 ? 2 : 4;
    long mb = FR_BF16_ABUF / a_size / kp;
    mb = mb < 1 ? 1 : (mb > FR_BF16_MB ? FR_BF16_MB : mb);
    for (long m0 = 0; m0 < M; m0 += mb) {
        const int rows = (int)(M - m0 < mb ? M - m0 : mb);
        for (int r = 0; r < rows; ++r) {
            if (kern.a_bf16)
                fr_bf16_round_row(K, A + (m0 + r) * lda, rows_of_a.h + r * kp);
            else
                fr_bf16_round_row_f32(K, A + (m0 + r) * lda, rows_of_a.f + r * kp);
        }
        for (int q = 0; q < nblocks; ++q) {
            const long n_end = (long)q * ldb + j1;
            for (long n = (long)q * ldb + j0; n < n_end;) {
                const uint16_t *panel = panels + (n / FR_BF16_NR) * kp * FR_BF16_NR;
                const long left = (n_end - n + FR_BF16_NR - 1) / FR_BF16_NR;
                const int np = (int)(left < kern.panels_max ? left : kern.panels_max);
                const int cols = (int)(n_end - n < np * FR_BF16_NR ? n_end - n
                                                                    : np * FR_BF16_NR);
                for (int r0 = 0; r0 < rows; r0 += kern.rows_max) {
                    const int mr = rows - r0 < kern.rows_max ? rows - r0 : kern.rows_max;
                    const char *a = (const char *)rows_of_a.h + r0 * kp * a_size;
                    kern.rows(mr, np, kp, a, panel, acc);
                    for (int r = 0; r < mr; ++r) {
                        float *c = C + (m0 + r0 + r) * ldc + n;
                        for (int i = 0; i < cols; ++i)
                            c[i] = (accumulate ? c[i] : (bias ? bias[n + i] : 0.0f))
                                + acc[r][i];
                    }
                }
                n += cols;
            }
        }
    }
    if (kern.done)
        kern.done();
}

#endif /* FASTRNN_BF16_H */
