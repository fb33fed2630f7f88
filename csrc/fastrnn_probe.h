/*
 * fastrnn machine probes: plain C, no Python API.
 *
 * What the machine can do at best, for the benchmark's rooflines: the
 * floating-point rate of independent fused multiply-add chains on the
 * widest vector unit the CPU has, and the rate at which one thread reads
 * a buffer that one level of the memory hierarchy holds.  The caller times
 * the calls (the probes only run a fixed amount of work) and turns counts
 * into rates.
 */
#ifndef FASTRNN_PROBE_H
#define FASTRNN_PROBE_H

#include <stddef.h>

/* Chains: enough independent accumulators to cover an FMA's latency on
 * every unit (4 cycles x 2 pipes on current x86 cores), but few enough to
 * stay in the registers of the widest unit (32 with AVX-512, 16 with AVX2). */
#define FR_PROBE_CHAINS 12

typedef float fr_v16 __attribute__((vector_size(64)));
typedef float fr_v8 __attribute__((vector_size(32)));
typedef float fr_v4 __attribute__((vector_size(16)));
/* The same, read from any float address (unaligned loads) */
typedef float fr_v16u __attribute__((vector_size(64), aligned(4)));
typedef float fr_v8u __attribute__((vector_size(32), aligned(4)));
typedef float fr_v4u __attribute__((vector_size(16), aligned(4)));

/* The body of one FMA probe over a vector type V of L floats: FR_PROBE_CHAINS
 * chains of acc = acc * m + a, `rounds` times; the sum of the chains goes to
 * *sink so the compiler keeps the work.  Flops: 2 * L * FR_PROBE_CHAINS * rounds. */
#define FR_PROBE_FMA_BODY(V, L)                                               \
    V acc[FR_PROBE_CHAINS], m, a;                                             \
    for (int l = 0; l < (L); l++) { m[l] = 0.999999f; a[l] = 1e-7f; }        \
    for (int c = 0; c < FR_PROBE_CHAINS; c++)                                 \
        for (int l = 0; l < (L); l++) acc[c][l] = (float)(c + 1);            \
    for (long r = 0; r < rounds; r++) {                                       \
        _Pragma("GCC unroll 12")                                              \
        for (int c = 0; c < FR_PROBE_CHAINS; c++) acc[c] = acc[c] * m + a;    \
    }                                                                         \
    float s = 0;                                                              \
    for (int c = 0; c < FR_PROBE_CHAINS; c++)                                 \
        for (int l = 0; l < (L); l++) s += acc[c][l];                         \
    *sink = s;

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
__attribute__((target("avx512f,fma"))) static void fr_probe_fma_avx512(long rounds, float *sink)
{ FR_PROBE_FMA_BODY(fr_v16, 16) }

__attribute__((target("avx2,fma"))) static void fr_probe_fma_avx2(long rounds, float *sink)
{ FR_PROBE_FMA_BODY(fr_v8, 8) }
#endif

static void fr_probe_fma_base(long rounds, float *sink) { FR_PROBE_FMA_BODY(fr_v4, 4) }

/* Floats per vector of the unit fr_probe_fma uses on this CPU (16, 8 or 4), and
 * whether it fuses the multiply and the add. */
static int fr_probe_lanes(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    if (__builtin_cpu_supports("avx512f")) return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
#endif
    return 4;
}

/* Run the FMA probe for `rounds` rounds on the calling thread; returns the
 * floating-point operations done (a multiply and an add per lane and chain). */
static double fr_probe_fma(long rounds, float *sink)
{
    const int lanes = fr_probe_lanes();
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    if (lanes == 16) fr_probe_fma_avx512(rounds, sink);
    else if (lanes == 8) fr_probe_fma_avx2(rounds, sink);
    else
#endif
    fr_probe_fma_base(rounds, sink);
    return 2.0 * lanes * FR_PROBE_CHAINS * (double)rounds;
}

/* The body of one read probe over a vector type V of L floats: n floats of x
 * read `passes` times into eight independent accumulators (the adds never wait
 * on one another); their sum goes to *sink. */
#define FR_PROBE_READ_BODY(V, VU, L)                                          \
    V acc[8];                                                                 \
    for (int k = 0; k < 8; k++) for (int l = 0; l < (L); l++) acc[k][l] = 0;  \
    for (long p = 0; p < passes; p++)                                         \
        for (size_t i = 0; i < n; i += 8 * (L)) {                             \
            const VU *v = (const VU *)(x + i);                                \
            for (int k = 0; k < 8; k++) acc[k] += v[k];                       \
        }                                                                     \
    float s = 0;                                                              \
    for (int k = 0; k < 8; k++) for (int l = 0; l < (L); l++) s += acc[k][l]; \
    *sink = s;

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
__attribute__((target("avx512f"))) static void fr_probe_read_avx512(
    const float *x, size_t n, long passes, float *sink)
{ FR_PROBE_READ_BODY(fr_v16, fr_v16u, 16) }

__attribute__((target("avx2"))) static void fr_probe_read_avx2(
    const float *x, size_t n, long passes, float *sink)
{ FR_PROBE_READ_BODY(fr_v8, fr_v8u, 8) }
#endif

static void fr_probe_read_base(const float *x, size_t n, long passes, float *sink)
{ FR_PROBE_READ_BODY(fr_v4, fr_v4u, 4) }

/* Read n floats of x (best 64-byte aligned; n a multiple of FR_PROBE_READ_BLOCK)
 * `passes` times with the widest loads the CPU has; returns the bytes read. */
#define FR_PROBE_READ_BLOCK 128

static double fr_probe_read(const float *x, size_t n, long passes, float *sink)
{
    const int lanes = fr_probe_lanes();
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    if (lanes == 16) fr_probe_read_avx512(x, n, passes, sink);
    else if (lanes == 8) fr_probe_read_avx2(x, n, passes, sink);
    else
#endif
    fr_probe_read_base(x, n, passes, sink);
    return (double)passes * (double)n * sizeof(float);
}

#endif /* FASTRNN_PROBE_H */
