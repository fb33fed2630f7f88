/*
 * fastrnn per-time-step element-wise passes: plain C, no Python API.
 *
 * Each recurrent step is one packed product followed by one of these fused
 * passes, which apply the gate nonlinearities, update the cell and write h
 * (forward), or turn dh, dc and the saved activations into the gate
 * gradients (backward).  The bodies live in cells_impl.h, written once
 * over REAL and instantiated here for float (_f32) and double (_f64).
 *
 * Layout conventions (row-major, one row per batch element):
 *   gates   B x G*H, gate blocks side by side in torch order;
 *   h, y    B rows of H with a row stride (ld*) because a bidirectional
 *           layer writes both directions into one (T, B, 2H) output.
 */
#ifndef FASTRNN_CELLS_H
#define FASTRNN_CELLS_H

#include <stddef.h>
#include "fastrnn_math.h"

/* One binary that still uses the machine's vector width: GCC compiles the
 * marked functions for AVX-512, AVX2+FMA and baseline x86-64 and picks one
 * at load time.  Elsewhere they compile once for the default target. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && (__GNUC__ >= 11) \
    && !defined(FASTRNN_NO_CLONES)
#define FR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FR_AVX2_ONLY __attribute__((target("arch=x86-64-v3")))
#else
#define FR_CLONES
#define FR_AVX2_ONLY
#endif

/* Every extension includes all passes but calls only its own cell's. */
#if defined(__GNUC__)
#define FR_KERNEL static __attribute__((unused)) FR_CLONES
#define FR_KERNEL_AVX2 static __attribute__((unused)) FR_AVX2_ONLY  /* code only AVX2 CPUs run */
#else
#define FR_KERNEL static
#define FR_KERNEL_AVX2 static
#endif

/* Name of the clone the marked functions run on this CPU (for `fastrnn info`). */
static __attribute__((unused)) const char *fr_simd_target(void)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && (__GNUC__ >= 12) \
    && !defined(FASTRNN_NO_CLONES)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3"))
        return "x86-64-v3 (AVX2, FMA)";
    return "x86-64 baseline (SSE2)";
#else
    return "compiler default (no runtime dispatch)";
#endif
}

/* *slot, computed by read() on the first call: a fact of the CPU, cached for the
 * process.  *slot starts at -1 and read() returns a value >= 0; threads racing on
 * the first call store the same value. */
static inline int fr_read_once(int *slot, int (*read)(void))
{
    int v = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (v < 0) {
        v = read();
        __atomic_store_n(slot, v, __ATOMIC_RELAXED);
    }
    return v;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && (__GNUC__ >= 11) \
    && !defined(FASTRNN_NO_CLONES)
static inline int fr_cpu_is_v3(void)
{
    __builtin_cpu_init();
#if __GNUC__ >= 12
    return __builtin_cpu_supports("x86-64-v3") != 0;
#else
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
        && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("movbe");
#endif
}
#endif

/* Whether the code running now was compiled with FMAs: the x86-64-v3 and v4
 * clones are (the dispatcher picks one of them exactly when the CPU is x86-64-v3),
 * the baseline clone is not, and without clones the compiler's target says. */
static inline int fr_fma_code(void)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && (__GNUC__ >= 11) \
    && !defined(FASTRNN_NO_CLONES)
    static int fused = -1;
    return fr_read_once(&fused, fr_cpu_is_v3);
#elif defined(__FMA__) || defined(__ARM_FEATURE_FMA)
    return 1;
#else
    return 0;
#endif
}

/* Whether the LSTM's forward pass divides by Newton steps (fr_recipf_fma) rather
 * than by the division: only where the code has FMAs, and not on AMD's cores, whose
 * divider keeps up with them; Intel's AVX-512 cores ran the pass 2.5 times as long
 * with divisions (docs/DECISIONS.md).  fr_set_lstm_newton forces a choice for tests
 * (1 Newton where FMAs allow, 0 division, -1 the CPU's own). */
static int fr_lstm_newton_mode = -1;    /* forced by a test, or -1 */

static __attribute__((unused)) void fr_set_lstm_newton(int mode)
{
    __atomic_store_n(&fr_lstm_newton_mode, mode < 0 ? -1 : mode > 0, __ATOMIC_RELAXED);
}

/* The CPU's own choice: Newton steps unless the CPU is AMD's. */
static inline int fr_divider_is_slow(void)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && (__GNUC__ >= 11) \
    && !defined(FASTRNN_NO_CLONES)
    __builtin_cpu_init();
    return !__builtin_cpu_is("amd");
#else
    return 1;
#endif
}

static inline int fr_lstm_newton(void)
{
    static int cpu_choice = -1;
    const int mode = __atomic_load_n(&fr_lstm_newton_mode, __ATOMIC_RELAXED);
    return (mode >= 0 ? mode : fr_read_once(&cpu_choice, fr_divider_is_slow))
        && fr_fma_code();
}

/* float: SIGMOID_N and TANH_N do their divisions as Newton steps where `newton`
 * holds (within an ulp; faster where a pass has many divides and the divider is
 * slow).  The statements of WITH_NEWTON_RECIPROCALS are compiled twice, with
 * fr_fused a constant, and the choice made once before them. */
#define REAL float
#define FR_FN(name) fr_##name##_f32
#define WITH_NEWTON_RECIPROCALS(newton, ...)                                       \
    do {                                                                       \
        if (newton) {                                                          \
            enum { fr_fused = 1 };                                             \
            __VA_ARGS__                                                        \
        } else {                                                               \
            enum { fr_fused = 0 };                                             \
            __VA_ARGS__                                                        \
        }                                                                      \
    } while (0)
#define SIGMOID fr_sigmoidf
#define TANH fr_tanhf
#define SIGMOID_N(x) (fr_fused ? fr_sigmoidf_fma(x) : fr_sigmoidf(x))
#define TANH_N(x) (fr_fused ? fr_tanhf_fma(x) : fr_tanhf(x))
#include "cells_impl.h"
#undef REAL
#undef FR_FN
#undef WITH_NEWTON_RECIPROCALS
#undef SIGMOID
#undef TANH
#undef SIGMOID_N
#undef TANH_N

#define REAL double
#define FR_FN(name) fr_##name##_f64
#define WITH_NEWTON_RECIPROCALS(newton, ...) do { __VA_ARGS__ } while (0)
#define SIGMOID fr_sigmoid
#define TANH fr_tanh
#define SIGMOID_N fr_sigmoid
#define TANH_N fr_tanh
#include "cells_impl.h"
#undef REAL
#undef FR_FN
#undef WITH_NEWTON_RECIPROCALS
#undef SIGMOID
#undef TANH
#undef SIGMOID_N
#undef TANH_N

#endif /* FASTRNN_CELLS_H */
