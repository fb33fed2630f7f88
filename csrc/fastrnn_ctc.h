/*
 * The CTC recursion's rows in log space (fastrnn/kernels/ctc.pyx): plain C, no
 * Python API.  A row of alpha (or beta) at step t depends only on the row at
 * t - 1 (t + 1), so each row is one branch-free pass over the extended target
 * that GCC vectorises: three-term log-sum-exps built on fastrnn's inline exp
 * (csrc/fastrnn_math.h) and an inline log for the range they need.  Double keeps
 * libm (as the cells do: float64 is the accuracy dtype).
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

static inline double fr_ctc_lse3(double a, double b, double c)
{
    double m = a > b ? a : b;
    m = m > c ? m : c;
    if (m == -INFINITY)
        return m;
    return m + log(exp(a - m) + exp(b - m) + exp(c - m));
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
        gamma[s] = x > -64.0 ? exp(x) : 0.0;
    }
}

#endif
