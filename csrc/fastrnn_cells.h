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
#else
#define FR_CLONES
#endif

/* Every extension includes all passes but calls only its own cell's. */
#if defined(__GNUC__)
#define FR_KERNEL static __attribute__((unused)) FR_CLONES
#else
#define FR_KERNEL static
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

#define REAL float
#define FR_FN(name) fr_##name##_f32
#define SIGMOID fr_sigmoidf
#define TANH fr_tanhf
#include "cells_impl.h"
#undef REAL
#undef FR_FN
#undef SIGMOID
#undef TANH

#define REAL double
#define FR_FN(name) fr_##name##_f64
#define SIGMOID fr_sigmoid
#define TANH fr_tanh
#include "cells_impl.h"
#undef REAL
#undef FR_FN
#undef SIGMOID
#undef TANH

#endif /* FASTRNN_CELLS_H */
