/*
 * fastrnn int8 weight products for inference: plain C, no Python API.
 *
 * Weights are quantized once, symmetrically per output row n (per gate row):
 *   sw[n] = max_k |W[n, k]| / 127,   qw[n, k] = rint(W[n, k] * (127 / max_k |W[n, k]|))
 * and each product's activations dynamically per row m of A, the same way:
 *   sa[m] = max_k |A[m, k]| / 127,   qa[m, k] = rint(A[m, k] * (127 / max_k |A[m, k]|))
 * (a row of zeros has scale 0; a row holding inf or NaN has scale NaN, so its
 * outputs are NaN, as a float product's would be).  The sums are exact in int32
 * (|qa|, |qw| <= 127 and K <= FR_Q8_MAX_K, so no sum can overflow), and the
 * dequantization is one fused multiply-add per output:
 *   C[m, n] = fma((float)sum_k qa[m, k] qw[n, k], sa[m] * sw[n], C0[m, n])
 * with C0 = C (accumulate), the bias, or 0.  Every path below computes the same
 * integers and the same fma, so they agree bitwise with each other and whatever
 * the split between threads.
 *
 * Paths, chosen once from what the CPU has (fr_q8_path):
 *   AMX      AMX-INT8 tdpbusd on tiles of up to 16 rows x 64 k against 16 groups
 *            of a panel (one B tile), VNNI512's operands and correction; fewer
 *            than FR_Q8_AMX_MIN_ROWS rows take the VNNI512 tiles.
 *   VNNI512  AVX-512 VNNI vpdpbusd: u8 x s8, 4 products into each int32 lane.  It
 *            takes unsigned activations, so they go in as qa + 128 and the
 *            columns' sums 128 * sum_k qw[n, k] (kept in the pack) come off after.
 *   AVXVNNI  AVX-VNNI's 256-bit vpdpbusd (Intel client cores without AVX-512, and
 *            AMD Zen 5), the same offset and correction as VNNI512 on half vectors.
 *   AVX2     vpmaddubsw then vpmaddwd.  vpmaddubsw adds pairs of u8 x s8 products
 *            into int16 with saturation; it gets |qa| and qw * sign(qa), so each
 *            pair is at most 2 * 127 * 127 = 32258 < 32767 and never saturates.
 *   PORTABLE plain C over int32, for any x86-64 and as the tests' forced path.
 *
 * Pack layout (fr_q8_pack_bytes of N x K): float sw[Np]; int32 colsum[Np]; then
 * int8 panels of FR_Q8_NR output columns, each Kp / 4 groups of 64 bytes holding
 * qw[p*16 + i][4g .. 4g + 3] at byte 4i of group g (Np = N rounded up to 16,
 * Kp = K rounded up to 4, zeros past N and K).
 */
#ifndef FASTRNN_Q8_H
#define FASTRNN_Q8_H

#include <math.h>
#include <float.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "fastrnn_amx.h"
#include "fastrnn_paths.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FR_Q8_X86 1
#else
#define FR_Q8_X86 0
#endif

#define FR_Q8_NR 16
#define FR_Q8_MAX_K 65536
/* Rows of A quantized at a time, in a buffer on the stack of this many bytes. */
#define FR_Q8_ABUF 65536

enum { FR_Q8_PORTABLE, FR_Q8_AVX2, FR_Q8_AVXVNNI, FR_Q8_VNNI512, FR_Q8_AMX, FR_Q8_PATHS };

static inline long fr_q8_np(long N) { return (N + FR_Q8_NR - 1) / FR_Q8_NR * FR_Q8_NR; }
static inline long fr_q8_kp(long K) { return (K + 3) & ~3L; }

/* Bytes of an N x K pack (a multiple of 4, and of 64 past the scales). */
static inline long fr_q8_pack_bytes(long N, long K)
{
    return fr_q8_np(N) * (8 + fr_q8_kp(K));
}

static inline const float *fr_q8_scales(const void *pack) { return (const float *)pack; }
static inline const int32_t *fr_q8_colsums(const void *pack, long N)
{
    return (const int32_t *)((const char *)pack + 4 * fr_q8_np(N));
}
static inline const int8_t *fr_q8_panels(const void *pack, long N)
{
    return (const int8_t *)((const char *)pack + 8 * fr_q8_np(N));
}

/* ---------------------------------------------------------------- paths */

static inline int fr_q8_supported(int path)
{
#if FR_Q8_X86
    __builtin_cpu_init();
    if (path == FR_Q8_AMX)
        return fr_q8_supported(FR_Q8_VNNI512) && __builtin_cpu_supports("amx-tile")
            && __builtin_cpu_supports("amx-int8") && fr_amx_permitted();
    if (path == FR_Q8_VNNI512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512vnni");
    if (path == FR_Q8_AVXVNNI)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
            && __builtin_cpu_supports("avxvnni");
    if (path == FR_Q8_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return path == FR_Q8_PORTABLE;
}

static int fr_q8_path_now = -1;

static inline int fr_q8_path(void)
{
    return fr_path_now(&fr_q8_path_now, FR_Q8_PATHS, fr_q8_supported, NULL);
}

/* Run path (tests force the portable ones); -1 goes back to the best. Returns the
 * path now in force, unchanged when this CPU lacks the one asked for. */
static inline int fr_q8_set_path(int path)
{
    return fr_path_set(&fr_q8_path_now, path, FR_Q8_PATHS, fr_q8_supported, NULL);
}

static inline const char *fr_q8_path_name(int path)
{
    static const char *names[] = {"portable C", "AVX2 (vpmaddubsw)",
                                  "AVX-VNNI (256-bit vpdpbusd)", "AVX-512 VNNI (vpdpbusd)",
                                  "AMX-INT8 (tdpbusd)"};
    return path >= 0 && path < FR_Q8_PATHS ? names[path] : "?";
}

/* ------------------------------------------------------------ quantizing */

/* One row's symmetric scale: 0 for zeros, NaN when it holds inf or NaN. */
static inline float fr_q8_row_scale(long K, const float *x, long sx, float *inv)
{
    float amax = 0.0f;
    int bad = 0;
    for (long k = 0; k < K; ++k) {
        float a = fabsf(x[k * sx]);
        bad |= !(a <= FLT_MAX);
        amax = a > amax ? a : amax;
    }
    if (bad) {
        *inv = 0.0f;
        return NAN;
    }
    *inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    return amax / 127.0f;
}

static inline int fr_q8_round(float v)
{
    long q = lrintf(v);
    return (int)(q > 127 ? 127 : (q < -127 ? -127 : q));
}

/* Quantize and pack columns [c0, c1) of W (N x K, element (n, k) at
 * W[n*sn + k*sk]) into pack; c0 a multiple of FR_Q8_NR, c1 <= N (with c1 == N
 * also the zero columns that pad the last panel).  k past K packs as zeros. */
static inline void fr_q8_pack_cols(long N, long K, const float *W, long sn, long sk,
                                   void *pack, long c0, long c1)
{
    const long np = fr_q8_np(N), kp = fr_q8_kp(K);
    float *scale = (float *)pack;
    int32_t *colsum = (int32_t *)((char *)pack + 4 * np);
    int8_t *panels = (int8_t *)((char *)pack + 8 * np);
    const long end = c1 >= N ? np : c1;
    for (long n = c0; n < end; ++n) {
        int8_t *col = panels + (n / FR_Q8_NR) * kp * FR_Q8_NR + (n % FR_Q8_NR) * 4;
        float inv = 0.0f;
        int32_t sum = 0;
        scale[n] = n < N ? fr_q8_row_scale(K, W + n * sn, sk, &inv) : 0.0f;
        for (long k = 0; k < kp; ++k) {
            int q = n < N && k < K ? fr_q8_round(W[n * sn + k * sk] * inv) : 0;
            col[(k / 4) * 64 + k % 4] = (int8_t)q;
            sum += q;
        }
        colsum[n] = sum;
    }
}

/* Group g of a quantized row: its 4 bytes at 4g as one int32, to broadcast. */
static inline int32_t fr_q8_group(const uint8_t *row, long g)
{
    int32_t a4;
    memcpy(&a4, row + 4 * g, 4);
    return a4;
}

/* A row's int32 sums for up to two panels of output columns; a call of a path's
 * `rows` fills up to FR_Q8_ROWS_MAX of them. */
typedef int32_t fr_q8_sums[2 * FR_Q8_NR];
#define FR_Q8_ROWS_MAX 16

/* ------------------------------------------------------ the portable path */

/* Row x quantized into q (Kp bytes, zeros past K) plus offset; returns its scale. */
static inline __attribute__((always_inline)) float fr_q8_quantize_row(
    long K, const float *x, uint8_t *q, int offset)
{
    float inv;
    const float s = fr_q8_row_scale(K, x, 1, &inv);
    long k = 0;
    for (; k < K; ++k)
        q[k] = (uint8_t)(fr_q8_round(x[k] * inv) + offset);
    for (; k < fr_q8_kp(K); ++k)
        q[k] = (uint8_t)offset;
    return s;
}

static float fr_q8_quantize_portable(long K, const float *x, uint8_t *q)
{
    return fr_q8_quantize_row(K, x, q, 0);
}

static void fr_q8_rows_portable(int mr, long kp, const uint8_t *qa, const int8_t *panel,
                                const int32_t *colsum, fr_q8_sums *acc)
{
    (void)colsum;
    for (int r = 0; r < mr; ++r) {
        const int8_t *a = (const int8_t *)(qa + r * kp);
        for (int i = 0; i < FR_Q8_NR; ++i)
            acc[r][i] = 0;
        for (long g = 0; g < kp / 4; ++g)
            for (int i = 0; i < FR_Q8_NR; ++i) {
                const int8_t *w = panel + g * 64 + 4 * i;
                acc[r][i] += a[4 * g] * w[0] + a[4 * g + 1] * w[1] + a[4 * g + 2] * w[2]
                    + a[4 * g + 3] * w[3];
            }
    }
}

/* The outputs of one row from its sums: cols columns from n. */
static void fr_q8_store_portable(const int32_t *acc, int cols, float sa, const float *sw,
                                 float *c, int accumulate, const float *bias)
{
    for (int i = 0; i < cols; ++i) {
        const float c0 = accumulate ? c[i] : (bias ? bias[i] : 0.0f);
        c[i] = fmaf((float)acc[i], sa * sw[i], c0);
    }
}

#if FR_Q8_X86
/* ---------------------------------------------------------- the AVX2 path */

__attribute__((target("avx2,fma"))) static float fr_q8_quantize_avx2(
    long K, const float *x, uint8_t *q)
{
    return fr_q8_quantize_row(K, x, q, 0);
}

/* mr rows (a compile-time constant at each call, so that the sums stay in
 * registers: with mr a variable, every row after the first added into memory)
 * against one panel. */
__attribute__((target("avx2,fma"))) __attribute__((always_inline)) static inline void
fr_q8_tile_avx2(const int mr, long kp, const uint8_t *qa, const int8_t *panel,
                fr_q8_sums *acc)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i lo[4], hi[4];
    for (int r = 0; r < mr; ++r)
        lo[r] = hi[r] = _mm256_setzero_si256();
    for (long g = 0; g < kp / 4; ++g) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(panel + g * 64));
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(panel + g * 64 + 32));
        for (int r = 0; r < mr; ++r) {
            const __m256i a = _mm256_set1_epi32(fr_q8_group(qa + r * kp, g));
            const __m256i ua = _mm256_abs_epi8(a);
            lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(
                _mm256_maddubs_epi16(ua, _mm256_sign_epi8(w0, a)), ones));
            hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(
                _mm256_maddubs_epi16(ua, _mm256_sign_epi8(w1, a)), ones));
        }
    }
    for (int r = 0; r < mr; ++r) {
        _mm256_storeu_si256((__m256i *)acc[r], lo[r]);
        _mm256_storeu_si256((__m256i *)(acc[r] + 8), hi[r]);
    }
}

/* Up to 4 rows against one panel. */
__attribute__((target("avx2,fma"))) static void fr_q8_rows_avx2(
    int mr, long kp, const uint8_t *qa, const int8_t *panel, const int32_t *colsum,
    fr_q8_sums *acc)
{
    (void)colsum;
    switch (mr) {
    case 4: fr_q8_tile_avx2(4, kp, qa, panel, acc); break;
    case 3: fr_q8_tile_avx2(3, kp, qa, panel, acc); break;
    case 2: fr_q8_tile_avx2(2, kp, qa, panel, acc); break;
    case 1: fr_q8_tile_avx2(1, kp, qa, panel, acc); break;
    }
}

__attribute__((target("avx2,fma"))) static void fr_q8_store_avx2(
    const int32_t *acc, int cols, float sa, const float *sw, float *c, int accumulate,
    const float *bias)
{
    int i = 0;
    const __m256 s = _mm256_set1_ps(sa);
    for (; i + 8 <= cols; i += 8) {
        const __m256 c0 = accumulate ? _mm256_loadu_ps(c + i)
            : (bias ? _mm256_loadu_ps(bias + i) : _mm256_setzero_ps());
        const __m256 v = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(acc + i)));
        _mm256_storeu_ps(c + i, _mm256_fmadd_ps(v, _mm256_mul_ps(s, _mm256_loadu_ps(sw + i)),
                                                c0));
    }
    for (; i < cols; ++i) {
        const float c0 = accumulate ? c[i] : (bias ? bias[i] : 0.0f);
        c[i] = fmaf((float)acc[i], sa * sw[i], c0);
    }
}

/* ------------------------------------------------------- the AVX-VNNI path */

#define FR_Q8_AVXVNNI_TARGET __attribute__((target("avx2,fma,avxvnni")))

FR_Q8_AVXVNNI_TARGET static float fr_q8_quantize_avxvnni(long K, const float *x, uint8_t *q)
{
    return fr_q8_quantize_row(K, x, q, 128);
}

/* mr rows against one panel, its 16 columns as two 256-bit halves: 12 sums, two
 * weight vectors and a broadcast fill 15 of AVX2's 16 registers. */
FR_Q8_AVXVNNI_TARGET __attribute__((always_inline)) static inline void fr_q8_tile_avxvnni(
    const int mr, long kp, const uint8_t *qa, const int8_t *panel, const int32_t *colsum,
    fr_q8_sums *acc)
{
    __m256i lo[6], hi[6];
    for (int r = 0; r < mr; ++r)
        lo[r] = hi[r] = _mm256_setzero_si256();
    for (long g = 0; g < kp / 4; ++g) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(panel + g * 64));
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(panel + g * 64 + 32));
        for (int r = 0; r < mr; ++r) {
            const __m256i a = _mm256_set1_epi32(fr_q8_group(qa + r * kp, g));
            lo[r] = _mm256_dpbusd_avx_epi32(lo[r], a, w0);
            hi[r] = _mm256_dpbusd_avx_epi32(hi[r], a, w1);
        }
    }
    const __m256i off_lo = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)colsum), 7);
    const __m256i off_hi = _mm256_slli_epi32(
        _mm256_loadu_si256((const __m256i *)(colsum + 8)), 7);
    for (int r = 0; r < mr; ++r) {
        _mm256_storeu_si256((__m256i *)acc[r], _mm256_sub_epi32(lo[r], off_lo));
        _mm256_storeu_si256((__m256i *)(acc[r] + 8), _mm256_sub_epi32(hi[r], off_hi));
    }
}

/* Up to 6 rows against one panel. */
FR_Q8_AVXVNNI_TARGET static void fr_q8_rows_avxvnni(int mr, int np, long kp, const uint8_t *qa,
                                                    const int8_t *panel, const int32_t *colsum,
                                                    fr_q8_sums *acc)
{
    (void)np;
    switch (mr) {
    case 6: fr_q8_tile_avxvnni(6, kp, qa, panel, colsum, acc); break;
    case 5: fr_q8_tile_avxvnni(5, kp, qa, panel, colsum, acc); break;
    case 4: fr_q8_tile_avxvnni(4, kp, qa, panel, colsum, acc); break;
    case 3: fr_q8_tile_avxvnni(3, kp, qa, panel, colsum, acc); break;
    case 2: fr_q8_tile_avxvnni(2, kp, qa, panel, colsum, acc); break;
    case 1: fr_q8_tile_avxvnni(1, kp, qa, panel, colsum, acc); break;
    }
}
#undef FR_Q8_AVXVNNI_TARGET

/* ------------------------------------------------------- the VNNI512 path */

#define FR_Q8_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

FR_Q8_AVX512 static float fr_q8_quantize_vnni(long K, const float *x, uint8_t *q)
{
    __m512 amax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    const __m512 big = _mm512_set1_ps(FLT_MAX);
    long k = 0;
    for (; k < K; k += 16) {
        const __mmask16 live = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
        const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(live, x + k));
        bad |= _mm512_mask_cmp_ps_mask(live, a, big, _CMP_NLE_UQ);
        amax = _mm512_max_ps(amax, a);
    }
    const float m = _mm512_reduce_max_ps(amax);
    if (bad) {
        memset(q, 128, (size_t)fr_q8_kp(K));
        return NAN;
    }
    const __m512 inv = _mm512_set1_ps(m > 0.0f ? 127.0f / m : 0.0f);
    const __m512i lim = _mm512_set1_epi32(127), off = _mm512_set1_epi32(128);
    for (k = 0; k < fr_q8_kp(K); k += 16) {
        const long n = fr_q8_kp(K) - k < 16 ? fr_q8_kp(K) - k : 16;
        const __mmask16 live = K - k >= 16 ? 0xffff
            : (K > k ? (__mmask16)((1u << (K - k)) - 1) : 0);
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(live, x + k), inv));
        v = _mm512_add_epi32(_mm512_max_epi32(_mm512_min_epi32(v, lim),
                                              _mm512_sub_epi32(_mm512_setzero_si512(), lim)),
                             off);
        _mm_mask_storeu_epi8(q + k, (__mmask16)((1u << n) - 1), _mm512_cvtepi32_epi8(v));
    }
    return m / 127.0f;
}

/* mr rows against np panels (np 1 or 2), the sums corrected for the offset 128. */
FR_Q8_AVX512 __attribute__((always_inline)) static inline void fr_q8_tile_vnni(
    const int mr, const int np, long kp, const uint8_t *qa, const int8_t *panel,
    const int32_t *colsum, fr_q8_sums *acc)
{
    __m512i s[6][2];
    for (int r = 0; r < mr; ++r)
        s[r][0] = s[r][1] = _mm512_setzero_si512();
    const size_t pstride = (size_t)kp * FR_Q8_NR;
    for (long g = 0; g < kp / 4; ++g) {
        const __m512i w0 = _mm512_loadu_si512(panel + g * 64);
        const __m512i w1 = np > 1 ? _mm512_loadu_si512(panel + pstride + g * 64) : w0;
        for (int r = 0; r < mr; ++r) {
            const __m512i a = _mm512_set1_epi32(fr_q8_group(qa + r * kp, g));
            s[r][0] = _mm512_dpbusd_epi32(s[r][0], a, w0);
            if (np > 1)
                s[r][1] = _mm512_dpbusd_epi32(s[r][1], a, w1);
        }
    }
    for (int p = 0; p < np; ++p) {
        const __m512i off = _mm512_slli_epi32(_mm512_loadu_si512(colsum + p * FR_Q8_NR), 7);
        for (int r = 0; r < mr; ++r)
            _mm512_storeu_si512(acc[r] + p * FR_Q8_NR, _mm512_sub_epi32(s[r][p], off));
    }
}

/* Up to 6 rows against np panels. */
FR_Q8_AVX512 static void fr_q8_rows_vnni(int mr, int np, long kp, const uint8_t *qa,
                                         const int8_t *panel, const int32_t *colsum,
                                         fr_q8_sums *acc)
{
#define FR_Q8_CASE(R)                                                          \
    case R:                                                                    \
        if (np > 1) fr_q8_tile_vnni(R, 2, kp, qa, panel, colsum, acc);         \
        else fr_q8_tile_vnni(R, 1, kp, qa, panel, colsum, acc);                \
        break;
    switch (mr) {
    FR_Q8_CASE(6) FR_Q8_CASE(5) FR_Q8_CASE(4) FR_Q8_CASE(3) FR_Q8_CASE(2) FR_Q8_CASE(1)
    }
#undef FR_Q8_CASE
}

FR_Q8_AVX512 static void fr_q8_store_vnni(const int32_t *acc, int cols, float sa,
                                          const float *sw, float *c, int accumulate,
                                          const float *bias)
{
    const __m512 s = _mm512_set1_ps(sa);
    for (int i = 0; i < cols; i += 16) {
        const __mmask16 live = cols - i >= 16 ? 0xffff : (__mmask16)((1u << (cols - i)) - 1);
        const __m512 c0 = accumulate ? _mm512_maskz_loadu_ps(live, c + i)
            : (bias ? _mm512_maskz_loadu_ps(live, bias + i) : _mm512_setzero_ps());
        const __m512 v = _mm512_cvtepi32_ps(_mm512_loadu_si512(acc + i));
        _mm512_mask_storeu_ps(c + i, live, _mm512_fmadd_ps(
            v, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(live, sw + i)), c0));
    }
}
#undef FR_Q8_AVX512

/* ----------------------------------------------------------- the AMX path */

/* Fewer rows than this go through the VNNI512 tiles: an AMX product costs about
 * as much for one row as for sixteen. */
#define FR_Q8_AMX_MIN_ROWS 8

#define FR_Q8_AMX                                                              \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))

/* Up to 16 rows against np panels: 64 k at a time, u8 x s8 into int32 tiles,
 * the same integers as VNNI512 (same offset and correction). */
FR_Q8_AMX static void fr_q8_rows_amx(int mr, int np, long kp, const uint8_t *qa,
                                     const int8_t *panel, const int32_t *colsum,
                                     fr_q8_sums *acc)
{
    if (mr < FR_Q8_AMX_MIN_ROWS) {
        for (int r0 = 0; r0 < mr; r0 += 6)
            fr_q8_rows_vnni(mr - r0 < 6 ? mr - r0 : 6, np, kp, qa + r0 * kp, panel, colsum,
                            acc + r0);
        return;
    }
    FR_AMX_SUMS(_tile_dpbusd, mr, qa, kp, panel, panel + (size_t)kp * FR_Q8_NR, np, kp,
                acc[0], sizeof(fr_q8_sums));
    for (int p = 0; p < np; ++p) {
        const __m512i off = _mm512_slli_epi32(_mm512_loadu_si512(colsum + p * FR_Q8_NR), 7);
        for (int r = 0; r < mr; ++r) {
            int32_t *a = acc[r] + p * FR_Q8_NR;
            _mm512_storeu_si512(a, _mm512_sub_epi32(_mm512_loadu_si512(a), off));
        }
    }
}

#undef FR_Q8_AMX
#endif

/* ----------------------------------------------------------- the product */

typedef struct {
    float (*quantize)(long K, const float *x, uint8_t *q);
    int rows_max;          /* rows a call of `rows` takes */
    int panels_max;        /* panels a call of `rows` takes */
    void (*rows)(int mr, int np, long kp, const uint8_t *qa, const int8_t *panel,
                 const int32_t *colsum, fr_q8_sums *acc);
    void (*store)(const int32_t *acc, int cols, float sa, const float *sw, float *c,
                  int accumulate, const float *bias);
    void (*done)(void);    /* at the end of a product, or NULL */
} fr_q8_kernels;

static void fr_q8_rows_portable_np(int mr, int np, long kp, const uint8_t *qa,
                                   const int8_t *panel, const int32_t *colsum, fr_q8_sums *acc)
{
    (void)np;
    fr_q8_rows_portable(mr, kp, qa, panel, colsum, acc);
}

#if FR_Q8_X86
static void fr_q8_rows_avx2_np(int mr, int np, long kp, const uint8_t *qa,
                               const int8_t *panel, const int32_t *colsum, fr_q8_sums *acc)
{
    (void)np;
    fr_q8_rows_avx2(mr, kp, qa, panel, colsum, acc);
}
#endif

static inline fr_q8_kernels fr_q8_kernels_of(int path)
{
#if FR_Q8_X86
    if (path == FR_Q8_AMX)
        return (fr_q8_kernels){fr_q8_quantize_vnni, FR_Q8_ROWS_MAX, 2, fr_q8_rows_amx,
                               fr_q8_store_vnni, fr_amx_done};
    if (path == FR_Q8_VNNI512)
        return (fr_q8_kernels){fr_q8_quantize_vnni, 6, 2, fr_q8_rows_vnni, fr_q8_store_vnni,
                               NULL};
    if (path == FR_Q8_AVXVNNI)
        return (fr_q8_kernels){fr_q8_quantize_avxvnni, 6, 1, fr_q8_rows_avxvnni,
                               fr_q8_store_avx2, NULL};
    if (path == FR_Q8_AVX2)
        return (fr_q8_kernels){fr_q8_quantize_avx2, 4, 1, fr_q8_rows_avx2_np, fr_q8_store_avx2,
                               NULL};
#endif
    (void)path;
    return (fr_q8_kernels){fr_q8_quantize_portable, 6, 1, fr_q8_rows_portable_np,
                           fr_q8_store_portable, NULL};
}

/* Rows of A quantized at a time: at most this many, in FR_Q8_ABUF bytes. */
#define FR_Q8_MB 256

/* For each block q < nblocks and n in [q*ldb + j0, q*ldb + j1) (j0 a multiple of
 * FR_Q8_NR; j1 too, or the end of its block):
 *   C[m, n] = fma(sum_k qa[m, k] qw[n, k], sa[m] * sw[n], C0)   for m < M,
 * C0 = C[m, n] (accumulate), bias[n], or 0; A row-major with row stride lda,
 * C with row stride ldc; Wq the pack of W (N x K, K <= FR_Q8_MAX_K).  Rows of A
 * are quantized a block at a time into a buffer on the stack, and each panel
 * then passes over all of the block's rows from L1. */
static void fr_q8_gemm(int M, int K, const float *A, long lda, const void *Wq, int N,
                       int nblocks, int ldb, int j0, int j1, float *C, long ldc,
                       int accumulate, const float *bias)
{
    const int path = fr_q8_path();
    const fr_q8_kernels kern = fr_q8_kernels_of(path);
    const long kp = fr_q8_kp(K);
    const float *sw = fr_q8_scales(Wq);
    const int32_t *colsum = fr_q8_colsums(Wq, N);
    const int8_t *panels = fr_q8_panels(Wq, N);
    uint8_t qa[FR_Q8_ABUF] __attribute__((aligned(64)));
    float sa[FR_Q8_MB];
    fr_q8_sums acc[FR_Q8_ROWS_MAX] __attribute__((aligned(64)));
    long mb = FR_Q8_ABUF / kp;
    mb = mb < 1 ? 1 : (mb > FR_Q8_MB ? FR_Q8_MB : mb);
    for (long m0 = 0; m0 < M; m0 += mb) {
        const int rows = (int)(M - m0 < mb ? M - m0 : mb);
        for (int r = 0; r < rows; ++r)
            sa[r] = kern.quantize(K, A + (m0 + r) * lda, qa + r * kp);
        for (int q = 0; q < nblocks; ++q) {
            const long n_end = (long)q * ldb + j1;
            for (long n = (long)q * ldb + j0; n < n_end;) {
                const int8_t *panel = panels + (n / FR_Q8_NR) * kp * FR_Q8_NR;
                const int np = kern.panels_max > 1 && n + FR_Q8_NR < n_end ? 2 : 1;
                const int cols = (int)(n_end - n < np * FR_Q8_NR ? n_end - n
                                                                  : np * FR_Q8_NR);
                for (int r0 = 0; r0 < rows; r0 += kern.rows_max) {
                    const int mr = rows - r0 < kern.rows_max ? rows - r0 : kern.rows_max;
                    kern.rows(mr, np, kp, qa + r0 * kp, panel, colsum + n, acc);
                    for (int r = 0; r < mr; ++r)
                        kern.store(acc[r], cols, sa[r0 + r], sw + n,
                                   C + (m0 + r0 + r) * ldc + n, accumulate,
                                   bias ? bias + n : NULL);
                }
                n += cols;
            }
        }
    }
    if (kern.done)
        kern.done();
}

#endif /* FASTRNN_Q8_H */
