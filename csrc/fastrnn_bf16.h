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
 * So the paths agree bitwise, apart from vdpbf16ps flushing subnormal numbers to
 * zero, which the others do not.
 *
 * Paths, chosen once from what the CPU has (fr_bf16_path):
 *   AVX512BF16  vdpbf16ps: two products into each float32 lane.
 *   AVX2        the bfloat16 pairs widened to float32 in registers, two FMAs.
 *   PORTABLE    plain C with fmaf, for any x86-64 and as the tests' forced path.
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
#include "fastrnn_paths.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FR_BF16_X86 1
#else
#define FR_BF16_X86 0
#endif

#define FR_BF16_NR 16
/* Rows of A rounded at a time: at most FR_BF16_MB, in FR_BF16_ABUF bytes of stack. */
#define FR_BF16_ABUF 65536
#define FR_BF16_MB 256
#define FR_BF16_MAX_K (FR_BF16_ABUF / 2)

enum { FR_BF16_PORTABLE, FR_BF16_AVX2, FR_BF16_AVX512BF16, FR_BF16_PATHS };

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
    if (path == FR_BF16_AVX512BF16)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
    if (path == FR_BF16_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return path == FR_BF16_PORTABLE;
}

static int fr_bf16_path_now = -1;

static inline int fr_bf16_path(void)
{
    return fr_path_now(&fr_bf16_path_now, FR_BF16_PATHS, fr_bf16_supported);
}

/* Run path (tests force the portable ones); -1 goes back to the best. Returns the
 * path now in force, unchanged when this CPU lacks the one asked for. */
static inline int fr_bf16_set_path(int path)
{
    return fr_path_set(&fr_bf16_path_now, path, FR_BF16_PATHS, fr_bf16_supported);
}

static inline const char *fr_bf16_path_name(int path)
{
    static const char *names[] = {"portable C", "AVX2 (widened to float32)",
                                  "AVX-512 BF16 (vdpbf16ps)"};
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

static void fr_bf16_round_row(long K, const float *x, uint16_t *q)
{
    long k = 0;
    for (; k < K; ++k)
        q[k] = fr_bf16_round(x[k]);
    for (; k < fr_bf16_kp(K); ++k)
        q[k] = 0;
}

/* -------------------------------------------------------------- the paths */

/* A row's float32 sums for up to two panels of output columns. */
typedef float fr_bf16_sums[2 * FR_BF16_NR];

static void fr_bf16_rows_portable(int mr, int np, long kp, const uint16_t *qa,
                                  const uint16_t *panel, fr_bf16_sums *acc)
{
    (void)np;
    for (int r = 0; r < mr; ++r) {
        const uint16_t *a = qa + r * kp;
        for (int i = 0; i < FR_BF16_NR; ++i) {
            float s = 0.0f;
            for (long g = 0; g < kp / 2; ++g) {
                const uint16_t *w = panel + g * 32 + 2 * i;
                s = fmaf(fr_bf16_widen(a[2 * g + 1]), fr_bf16_widen(w[1]), s);
                s = fmaf(fr_bf16_widen(a[2 * g]), fr_bf16_widen(w[0]), s);
            }
            acc[r][i] = s;
        }
    }
}

#if FR_BF16_X86
/* Up to 4 rows against one panel, the pairs widened to float32. */
__attribute__((target("avx2,fma"))) static void fr_bf16_rows_avx2(
    int mr, int np, long kp, const uint16_t *qa, const uint16_t *panel, fr_bf16_sums *acc)
{
    (void)np;
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    __m256 lo[4], hi[4];
    for (int r = 0; r < 4; ++r)
        lo[r] = hi[r] = _mm256_setzero_ps();
    for (long g = 0; g < kp / 2; ++g) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(panel + g * 32));
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(panel + g * 32 + 16));
        const __m256 w0_even = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
        const __m256 w0_odd = _mm256_castsi256_ps(_mm256_and_si256(w0, high));
        const __m256 w1_even = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
        const __m256 w1_odd = _mm256_castsi256_ps(_mm256_and_si256(w1, high));
        for (int r = 0; r < mr; ++r) {
            const __m256 a_even = _mm256_set1_ps(fr_bf16_widen(qa[r * kp + 2 * g]));
            const __m256 a_odd = _mm256_set1_ps(fr_bf16_widen(qa[r * kp + 2 * g + 1]));
            lo[r] = _mm256_fmadd_ps(a_even, w0_even, _mm256_fmadd_ps(a_odd, w0_odd, lo[r]));
            hi[r] = _mm256_fmadd_ps(a_even, w1_even, _mm256_fmadd_ps(a_odd, w1_odd, hi[r]));
        }
    }
    for (int r = 0; r < mr; ++r) {
        _mm256_storeu_ps(acc[r], lo[r]);
        _mm256_storeu_ps(acc[r] + 8, hi[r]);
    }
}

#define FR_BF16_AVX512 __attribute__((target("avx512f,avx512bf16")))

FR_BF16_AVX512 __attribute__((always_inline)) static inline void fr_bf16_tile_512(
    const int mr, const int np, long kp, const uint16_t *qa, const uint16_t *panel,
    fr_bf16_sums *acc)
{
    __m512 s[6][2];
    for (int r = 0; r < mr; ++r)
        s[r][0] = s[r][1] = _mm512_setzero_ps();
    const size_t pstride = (size_t)kp * FR_BF16_NR;
    for (long g = 0; g < kp / 2; ++g) {
        const __m512bh w0 = (__m512bh)_mm512_loadu_si512(panel + g * 32);
        const __m512bh w1 = np > 1 ? (__m512bh)_mm512_loadu_si512(panel + pstride + g * 32)
                                   : w0;
        for (int r = 0; r < mr; ++r) {
            int32_t pair;
            memcpy(&pair, qa + r * kp + 2 * g, 4);
            const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
            s[r][0] = _mm512_dpbf16_ps(s[r][0], a, w0);
            if (np > 1)
                s[r][1] = _mm512_dpbf16_ps(s[r][1], a, w1);
        }
    }
    for (int r = 0; r < mr; ++r)
        for (int p = 0; p < np; ++p)
            _mm512_storeu_ps(acc[r] + p * FR_BF16_NR, s[r][p]);
}

FR_BF16_AVX512 static void fr_bf16_rows_512(int mr, int np, long kp, const uint16_t *qa,
                                            const uint16_t *panel, fr_bf16_sums *acc)
{
#define FR_BF16_CASE(R)                                                   \
    case R:                                                               \
        if (np > 1) fr_bf16_tile_512(R, 2, kp, qa, panel, acc);           \
        else fr_bf16_tile_512(R, 1, kp, qa, panel, acc);                  \
        break;
    switch (mr) {
    FR_BF16_CASE(6) FR_BF16_CASE(5) FR_BF16_CASE(4) FR_BF16_CASE(3) FR_BF16_CASE(2)
    FR_BF16_CASE(1)
    }
#undef FR_BF16_CASE
}
#undef FR_BF16_AVX512
#endif

/* ----------------------------------------------------------- the product */

typedef struct {
    int rows_max, panels_max;
    void (*rows)(int mr, int np, long kp, const uint16_t *qa, const uint16_t *panel,
                 fr_bf16_sums *acc);
} fr_bf16_kernels;

static inline fr_bf16_kernels fr_bf16_kernels_of(int path)
{
#if FR_BF16_X86
    if (path == FR_BF16_AVX512BF16)
        return (fr_bf16_kernels){6, 2, fr_bf16_rows_512};
    if (path == FR_BF16_AVX2)
        return (fr_bf16_kernels){4, 1, fr_bf16_rows_avx2};
#endif
    (void)path;
    return (fr_bf16_kernels){6, 1, fr_bf16_rows_portable};
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
    uint16_t qa[FR_BF16_ABUF / 2] __attribute__((aligned(64)));
    fr_bf16_sums acc[6] __attribute__((aligned(64)));
    long mb = FR_BF16_ABUF / 2 / kp;
    mb = mb < 1 ? 1 : (mb > FR_BF16_MB ? FR_BF16_MB : mb);
    for (long m0 = 0; m0 < M; m0 += mb) {
        const int rows = (int)(M - m0 < mb ? M - m0 : mb);
        for (int r = 0; r < rows; ++r)
            fr_bf16_round_row(K, A + (m0 + r) * lda, qa + r * kp);
        for (int q = 0; q < nblocks; ++q) {
            const long n_end = (long)q * ldb + j1;
            for (long n = (long)q * ldb + j0; n < n_end;) {
                const uint16_t *panel = panels + (n / FR_BF16_NR) * kp * FR_BF16_NR;
                const int np = kern.panels_max > 1 && n + FR_BF16_NR < n_end ? 2 : 1;
                const int cols = (int)(n_end - n < np * FR_BF16_NR ? n_end - n
                                                                    : np * FR_BF16_NR);
                for (int r0 = 0; r0 < rows; r0 += kern.rows_max) {
                    const int mr = rows - r0 < kern.rows_max ? rows - r0 : kern.rows_max;
                    kern.rows(mr, np, kp, qa + r0 * kp, panel, acc);
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
}

#endif /* FASTRNN_BF16_H */
