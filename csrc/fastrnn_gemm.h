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

/* Whether this CPU holds a 64-byte vector in one register (AVX-512), which
 * picks the GEMM's register tile; asked once. */
static inline int fr_wide_vectors(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static int wide = -1;    /* threads racing on the first call store the same value */
    int w = __atomic_load_n(&wide, __ATOMIC_RELAXED);
    if (w < 0) {
        __builtin_cpu_init();
        w = __builtin_cpu_supports("avx512f") ? 1 : 0;
        __atomic_store_n(&wide, w, __ATOMIC_RELAXED);
    }
    return w;
#else
    return 0;
#endif
}

typedef float fr_vec_f32 __attribute__((vector_size(64)));
typedef double fr_vec_f64 __attribute__((vector_size(64)));
/* lane indices for __builtin_shuffle: integers as wide as the vectors' elements */
typedef int fr_ivec_f32 __attribute__((vector_size(64)));
typedef long long fr_ivec_f64 __attribute__((vector_size(64)));

#define REAL float
#define FR_FN(name) fr_##name##_f32
#define VEC fr_vec_f32
#define IVEC fr_ivec_f32
#define NR FR_PANEL_F32
#include "gemm_impl.h"
#undef REAL
#undef FR_FN
#undef VEC
#undef IVEC
#undef NR

#define REAL double
#define FR_FN(name) fr_##name##_f64
#define VEC fr_vec_f64
#define IVEC fr_ivec_f64
#define NR FR_PANEL_F64
#include "gemm_impl.h"
#undef REAL
#undef FR_FN
#undef VEC
#undef IVEC
#undef NR

#endif /* FASTRNN_GEMM_H */
