/*
 * The GEMM of one REAL, included by fastrnn_gemm.h once per REAL with
 *   REAL       float or double
 *   NR         its panel width (FR_PANEL_F32 or FR_PANEL_F64)
 *   FR_SUFFIX  f32 or f64, the suffix of its names and vector types
 * gemm_impl.h is built twice: a panel row as one 64-byte VEC (the _wide names,
 * cloned for each instruction set) or as two 32-byte ones (_half, compiled for
 * AVX2 alone: only AVX2 CPUs run it); gemm_api.h's public names call the one to
 * run.  No include guard on purpose.
 */

#define FR_GEMM_CAT_(a, b) a##b
#define FR_GEMM_CAT(a, b) FR_GEMM_CAT_(a, b)
#define FR_CELL(name) FR_GEMM_CAT(fr_##name##_, FR_SUFFIX)

#define FR_FN(name) FR_GEMM_CAT(FR_CELL(name), _wide)
#define VEC FR_GEMM_CAT(fr_vec_, FR_SUFFIX)
#define IVEC FR_GEMM_CAT(fr_ivec_, FR_SUFFIX)
#define VL NR
#include "gemm_impl.h"
#undef FR_FN
#undef VEC
#undef IVEC
#undef VL

#define FR_FN(name) FR_GEMM_CAT(FR_CELL(name), _half)
#define VEC FR_GEMM_CAT(fr_hvec_, FR_SUFFIX)
#define IVEC FR_GEMM_CAT(fr_hivec_, FR_SUFFIX)
#define VL (NR / 2)
#pragma push_macro("FR_KERNEL")
#undef FR_KERNEL
#define FR_KERNEL FR_KERNEL_AVX2
#include "gemm_impl.h"
#pragma pop_macro("FR_KERNEL")
#undef FR_FN
#undef VEC
#undef IVEC
#undef VL

#define FR_FN(name) FR_CELL(name)
#define FR_WIDE(name) FR_GEMM_CAT(FR_CELL(name), _wide)
#define FR_HALF(name) FR_GEMM_CAT(FR_CELL(name), _half)
#include "gemm_api.h"
#undef FR_FN
#undef FR_WIDE
#undef FR_HALF

#undef FR_CELL
#undef FR_GEMM_CAT
#undef FR_GEMM_CAT_
