/*
 * fastrnn scalar activations: plain C, no Python API.
 *
 * float:  sigmoid and tanh are built on a branch-free exp (range reduction to
 *         |r| <= ln2/2, a degree-7 polynomial, scaling by 2^n through the
 *         exponent bits).  Written so GCC vectorises loops that call them;
 *         absolute error is a few float epsilons (measured in
 *         tests/test_activations.py against libm in double precision).
 *         1 / d comes from a division, or where the code runs with FMAs, from
 *         four Newton steps (fr_recipf_fma), at most one ulp away: a divide
 *         instruction is slow next to the rest of sigmoid and tanh.
 * double: libm.  Float64 is the accuracy dtype (1e-10 against the reference),
 *         so it keeps the correctly-rounded-ish library functions.
 */
#ifndef FASTRNN_MATH_H
#define FASTRNN_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for x in [-87.3, 88.7] (2^n a normal float): range reduction to
 * |r| <= ln2/2, then the polynomial and the scaling; no clamp (see below). */
static inline float fr_expf_unclamped(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;        /* ln2 with 8 trailing zero bits, so n*ln2_hi is exact */
    const float ln2_lo = 1.42860682030941723212e-6f; /* ln2 - ln2_hi */
    const float round_magic = 12582912.0f;          /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * log2e + round_magic) - round_magic;
    float r = x - n * ln2_hi - n * ln2_lo;
    /* Taylor series of e^r to degree 7: remainder below 6e-9 relative for |r| <= 0.347. */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;        /* 2^n as a float, n in [-126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* exp(x) for x in [-87, 87]; inputs outside are clamped, which is harmless for
 * sigmoid and tanh because both have saturated long before the clamp. */
static inline float fr_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 87.0f ? 87.0f : x;     /* so 1 / (1 + e^x) stays a normal float, never a denormal */
    return fr_expf_unclamped(x);
}

/* exp(x) for x <= 0 (a logit minus its row's maximum), 0 below -87, NaN for
 * NaN: one clamp where fr_expf has two, and the -inf case folded into it.
 * Where fr_expf gives about 1.6e-38 this gives 0, which never changes a sum
 * of such terms that includes exp(0) = 1. */
static inline float fr_expf_nonpos(float x)
{
    const float e = fr_expf_unclamped(x < -87.0f ? -87.0f : x);
    return x < -87.0f ? 0.0f : e;
}

/* 1 / d for d >= 1 (a normal float whose reciprocal is normal) without a divide:
 * a first guess from the exponent bits (within 13% of 1 / d), then four Newton
 * steps r += r * (1 - d r), each with two FMAs.  The error squares at each step,
 * and with the residual exact (an FMA) the last step gives the float nearest
 * 1 / d, as the division does, but where d lies just below a power of two (about
 * 0.3% of sigmoid's and tanh's inputs): there it is one ulp low.  Only for code
 * compiled with FMAs: elsewhere fmaf is a slow library call. */
static inline float fr_recipf_fma(float d)
{
    uint32_t bits;
    memcpy(&bits, &d, sizeof bits);
    bits = 0x7EF311C3u - bits;
    float r;
    memcpy(&r, &bits, sizeof r);
    r = fmaf(r, fmaf(-d, r, 1.0f), r);
    r = fmaf(r, fmaf(-d, r, 1.0f), r);
    r = fmaf(r, fmaf(-d, r, 1.0f), r);
    r = fmaf(r, fmaf(-d, r, 1.0f), r);
    return r;
}

static inline float fr_sigmoidf(float x) { return 1.0f / (1.0f + fr_expf(-x)); }

/* tanh(x) = 1 - 2 / (e^{2x} + 1): saturates to +-1 without overflow. */
static inline float fr_tanhf(float x) { return 1.0f - 2.0f / (fr_expf(2.0f * x) + 1.0f); }

/* The same with fr_recipf_fma for the divisions. */
static inline float fr_sigmoidf_fma(float x) { return fr_recipf_fma(1.0f + fr_expf(-x)); }
static inline float fr_tanhf_fma(float x)
{
    return 1.0f - 2.0f * fr_recipf_fma(fr_expf(2.0f * x) + 1.0f);
}

static inline double fr_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double fr_tanh(double x) { return tanh(x); }

#endif /* FASTRNN_MATH_H */
