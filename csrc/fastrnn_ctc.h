/*
 * The CTC recursion's rows in log space (fastrnn/kernels/ctc.pyx): plain C, no
 * Python API.  A row of alpha (or beta) at step t depends only on the row at
 * t - 1 (t + 1), so each row is one branch-free pass over the extended target
 * that GCC vectorises: three-term log-sum-exps built on fastrnn's inline exp
 * (csrc/fastrnn_math.h) and an inline log for the range they need; double has its
 * own inline exp and log here, to a couple of ulps (libm's do not vectorise).
 *
 * Rows are padded with two cells of -inf on the side the recursion reads past
 * the ends (alpha: before s = 0; beta: after s = P - 1); skip[s] is 0 where the
 * three-way transition is allowed and -inf where it is not.
 */
#ifndef FASTRNN_CTC_H
#define FASTRNN_CTC_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "fastrnn_math.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && (__GNUC__ >= 11) \
    && !defined(FASTRNN_NO_CLONES)
#define FR_CTC_KERNEL static __attribute__((unused)) \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FR_CTC_KERNEL static
#endif

/* log(z) for z in [1, 3] (and finite, NaN-free for any positive normal z):
 * z = 2^e m with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(u), u = (m - 1) / (m + 1),
 * |u| <= 0.172, by its series to u^9 (the first term left out is below 1e-9). */
static inline float fr_ctc_logf(float z)
{
    int32_t bits;
    memcpy(&bits, &z, sizeof bits);
    int32_t e = ((bits >> 23) & 0xff) - 127;
    bits = (bits & 0x007fffff) | 0x3f800000;          /* m in [1, 2) */
    float m;
    memcpy(&m, &bits, sizeof m);
    int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e = big ? e + 1 : e;
    float u = (m - 1.0f) / (m + 1.0f);
    float u2 = u * u;
    float p = 1.0f / 9.0f;
    p = p * u2 + 1.0f / 7.0f;
    p = p * u2 + 1.0f / 5.0f;
    p = p * u2 + 1.0f / 3.0f;
    p = p * u2 + 1.0f;
    return (float)e * 0.693147180559945309f + 2.0f * u * p;
}

/* log(e^a + e^b + e^c); -inf when all three are.  Subtracting the largest keeps
 * the sum in [1, 3]. */
static inline float fr_ctc_lse3f(float a, float b, float c)
{
    float m = a > b ? a : b;
    m = m > c ? m : c;
    float mm = m == -INFINITY ? 0.0f : m;      /* no -inf - -inf */
    float r = mm + fr_ctc_logf(fr_expf(a - mm) + fr_expf(b - mm) + fr_expf(c - mm));
    return m == -INFINITY ? -INFINITY : r;
}

/* exp(x) for x <= 0 (a little above 0 too), inputs under -708 taken as -708 (e^-708
 * is nothing next to the largest term, 1): x = n ln2 + r, |r| <= ln2 / 2, e^r by its
 * Taylor series to r^13 (the first term left out is below 5e-18), 2^n through the
 * exponent bits. */
static inline double fr_ctc_exp(double x)
{
    const double log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01;   /* trailing zeros: n*ln2_hi exact */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double round_magic = 6755399441055744.0;      /* 1.5 * 2^52 */
    x = x < -708.0 ? -708.0 : x;
    double n = (x * log2e + round_magic) - round_magic;
    double r = x - n * ln2_hi - n * ln2_lo;
    double p = 1.0 / 6227020800.0;                       /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t bits = ((int64_t)n + 1023) << 52;           /* 2^n, n in [-1022, 1] */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* log(z) for z in [1, 3], as fr_ctc_logf with the series of atanh to u^23 (the first
 * term left out is below 1e-18). */
static inline double fr_ctc_log(double z)
{
    int64_t bits;
    memcpy(&bits, &z, sizeof bits);
    int64_t e = ((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL;   /* m in [1, 2) */
    double m;
    memcpy(&m, &bits, sizeof m);
    int big = m > 1.4142135623730951;
    m = big ? 0.5 * m : m;
    e = big ? e + 1 : e;
    double u = (m - 1.0) / (m + 1.0);
    double u2 = u * u;
    double p = 1.0 / 23.0;
    p = p * u2 + 1.0 / 21.0;
    p = p * u2 + 1.0 / 19.0;
    p = p * u2 + 1.0 / 17.0;
    p = p * u2 + 1.0 / 15.0;
    p = p * u2 + 1.0 / 13.0;
    p = p * u2 + 1.0 / 11.0;
    p = p * u2 + 1.0 / 9.0;
    p = p * u2 + 1.0 / 7.0;
    p = p * u2 + 1.0 / 5.0;
    p = p * u2 + 1.0 / 3.0;
    p = p * u2 + 1.0;
    return (double)e * 0.69314718055994530942 + 2.0 * u * p;
}

static inline double fr_ctc_lse3(double a, double b, double c)
{
    double m = a > b ? a : b;
    m = m > c ? m : c;
    double mm = m == -INFINITY ? 0.0 : m;      /* no -inf - -inf */
    double r = mm + fr_ctc_log(fr_ctc_exp(a - mm) + fr_ctc_exp(b - mm) + fr_ctc_exp(c - mm));
    return m == -INFINITY ? -INFINITY : r;
}

/* One row of alpha: cur[s] = ye[s] + lse(prev[s], prev[s-1], prev[s-2] + skip[s]),
 * s < P; prev[-1] and prev[-2] are -inf. */
FR_CTC_KERNEL void fr_ctc_alpha_row_f32(int P, const float *restrict prev,
                                        const float *restrict skip, const float *restrict ye,
                                        float *restrict cur)
{
    for (ptrdiff_t s = 0; s < P; s++)
        cur[s] = ye[s] + fr_ctc_lse3f(prev[s], prev[s - 1], prev[s - 2] + skip[s]);
}

FR_CTC_KERNEL void fr_ctc_alpha_row_f64(int P, const double *restrict prev,
                                        const double *restrict skip, const double *restrict ye,
                                        double *restrict cur)
{
    for (ptrdiff_t s = 0; s < P; s++)
        cur[s] = ye[s] + fr_ctc_lse3(prev[s], prev[s - 1], prev[s - 2] + skip[s]);
}

/* One row of beta and the posteriors of its states:
 * rest = lse(next[s], next[s+1], next[s+2] + skip2[s]) (skip2[s]: the move s -> s + 2),
 * cur[s] = ye[s] + rest, gamma[s] = exp(alpha[s] + rest - ll) (0 under e^-32 / e^-64);
 * next[P] and next[P+1] are -inf. */
FR_CTC_KERNEL void fr_ctc_beta_row_f32(int P, const float *restrict next,
                                       const float *restrict skip2, const float *restrict ye,
                                       const float *restrict alpha, float ll,
                                       float *restrict cur, float *restrict gamma)
{
    for (ptrdiff_t s = 0; s < P; s++) {
        float rest = fr_ctc_lse3f(next[s], next[s + 1], next[s + 2] + skip2[s]);
        cur[s] = ye[s] + rest;
        float x = alpha[s] + rest - ll;
        float e = fr_expf(x);              /* computed for every lane, then chosen */
        gamma[s] = x > -32.0f ? e : 0.0f;
    }
}

FR_CTC_KERNEL void fr_ctc_beta_row_f64(int P, const double *restrict next,
                                       const double *restrict skip2, const double *restrict ye,
                                       const double *restrict alpha, double ll,
                                       double *restrict cur, double *restrict gamma)
{
    for (ptrdiff_t s = 0; s < P; s++) {
        double rest = fr_ctc_lse3(next[s], next[s + 1], next[s + 2] + skip2[s]);
        cur[s] = ye[s] + rest;
        double x = alpha[s] + rest - ll;
        double e = fr_ctc_exp(x);          /* computed for every lane, then chosen */
        gamma[s] = x > -64.0 ? e : 0.0;
    }
}

#endif
