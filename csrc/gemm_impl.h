/*
 * Body of the packed-weight GEMM, instantiated by fastrnn_gemm.h with
 *   REAL, FR_FN(x)  as in cells_impl.h
 *   NR              the panel width: 16 for float, 8 for double (64 bytes)
 *   FR_CELL(x)      the name of fastrnn_cells.h's pass x for REAL
 *   VEC             a GCC vector of VL REALs, the vector the code computes in
 *   IVEC            a GCC vector of VL integers as wide as REAL (lane indices)
 *   VL              VEC's lanes: NR (one vector a panel row), or NR / 2 for
 *                   CPUs whose registers hold only half of one (AVX2)
 * No include guard on purpose: this file is included once per REAL and VEC.
 *
 * Why: each recurrent step multiplies a few rows (the batch) by the same
 * weight matrix.  A BLAS GEMM re-packs that matrix on every call, which for
 * small batches costs as much as the product.  Packing it once per sequence
 * into panels of NR output columns lets every step stream the panels
 * straight into registers.
 *
 * Packed layout: panel p, k-th row holds W[p*NR + i][k] for i < NR (zero
 * past N), so Wp[(p*K + k)*NR + i].
 *
 * Why VL: a 64-byte GCC vector on a CPU without 64-byte registers has no
 * machine mode, so GCC keeps every such variable in memory and each FMA
 * loads and stores its accumulator.  fastrnn_gemm.h instantiates this file
 * with 64-byte and with 32-byte VECs and calls the one the CPU's class runs
 * (docs/DECISIONS.md).
 */

#define NV (NR / VL)    /* VECs per panel row */

/* Load/store one VEC from memory of any alignment. */
static inline __attribute__((always_inline)) VEC FR_FN(vload)(const REAL *p)
{
    VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void FR_FN(vstore)(REAL *p, VEC v)
{
    memcpy(p, &v, sizeof v);
}

/* y[n] (+)= sum_k W[n*ldw + k] x[k] for n < N, straight from row-major W:
 * for calls with too few rows (T * B) to repay packing W, such as one step
 * of a stream.  Four rows at a time, each a vector accumulator over k.
 * NumPy: y = (y if accumulate else 0) + W[:N, :K] @ x */
static inline __attribute__((always_inline)) void FR_FN(rowdot_rows)(
    const int R, int K, const REAL *W, int ldw, const REAL *x, REAL *y, int accumulate)
{
    /* R rows (a compile-time constant at each call, so the R accumulators
     * stay in registers) dotted with x. */
    VEC acc[4 * NV];
#pragma GCC unroll 64    /* as in tile() */
    for (int i = 0; i < 4 * NV; ++i)
        acc[i] = (VEC){0};
    REAL tail[4] = {0, 0, 0, 0};
    int k = 0;
    for (; k + NR <= K; k += NR)
        for (int v = 0; v < NV; ++v) {
            VEC xv = FR_FN(vload)(x + k + v * VL);
            for (int r = 0; r < R; ++r)
                acc[r * NV + v] += FR_FN(vload)(W + (size_t)r * ldw + k + v * VL) * xv;
        }
    for (; k < K; ++k)
        for (int r = 0; r < R; ++r)
            tail[r] += W[(size_t)r * ldw + k] * x[k];
    for (int r = 0; r < R; ++r) {
        /* the lanes read from a copy: read from acc at a variable lane, acc
         * lived in memory */
        REAL lanes[NR], sum = tail[r];
        for (int v = 0; v < NV; ++v)
            FR_FN(vstore)(lanes + v * VL, acc[r * NV + v]);
        for (int i = 0; i < NR; ++i)     /* lane i sums the terms k = i mod NR, on any VL */
            sum += lanes[i];
        y[r] = accumulate ? y[r] + sum : sum;
    }
}

FR_KERNEL void FR_FN(rowdot)(int N, int K, const REAL *restrict W, int ldw,
                             const REAL *restrict x, REAL *restrict y, int accumulate)
{
    int n = 0;
    for (; n + 4 <= N; n += 4)
        FR_FN(rowdot_rows)(4, K, W + (size_t)n * ldw, ldw, x, y + n, accumulate);
    switch (N - n) {
    case 3: FR_FN(rowdot_rows)(3, K, W + (size_t)n * ldw, ldw, x, y + n, accumulate); break;
    case 2: FR_FN(rowdot_rows)(2, K, W + (size_t)n * ldw, ldw, x, y + n, accumulate); break;
    case 1: FR_FN(rowdot_rows)(1, K, W + (size_t)n * ldw, ldw, x, y + n, accumulate); break;
    default: break;
    }
}

/* Transpose the VL x VL block held as VL row vectors: r[i][j] <- r[j][i].
 * The stage of distance d swaps bit d of the row and the column index: rows
 * i and i + d (bit d of i clear) trade the lanes whose bit d differs from
 * their row's, selecting from the pair (a, b) = (r[i], r[i+d]):
 *   r[i][L]     = L & d ? b[L - d] : a[L]
 *   r[i + d][L] = L & d ? b[L]     : a[L + d]
 * After every d all index bits are swapped.  One two-register permute per
 * row and stage (log2(VL) stages) instead of VL * VL scalar moves.  The
 * loops unroll, so every shuffle's lanes are constants from which the
 * compiler picks cheaper instructions than a general permute where one
 * fits (unpacks), which shuffles built at run time would not allow
 * (docs/DECISIONS.md). */
static inline __attribute__((always_inline)) void FR_FN(transpose_block)(VEC r[VL])
{
#pragma GCC unroll 8
    for (int d = VL / 2; d >= 1; d /= 2) {
        IVEC lo, hi;
#pragma GCC unroll 16
        for (int L = 0; L < VL; ++L) {
            lo[L] = L & d ? VL + L - d : L;
            hi[L] = L & d ? VL + L : L + d;
        }
#pragma GCC unroll 16
        for (int i = 0; i < VL; ++i)
            if (!(i & d)) {
                VEC a = r[i], b = r[i + d];
                r[i] = __builtin_shuffle(a, b, lo);
                r[i + d] = __builtin_shuffle(a, b, hi);
            }
    }
}

/* dst[c*ldd + r] = src[r*lds + c] for r < rows and c < cols: the transpose,
 * by VL x VL blocks turned in registers, the edges element by element.  VL
 * rows of src at a time across all its columns, so that each row is read in
 * one run, and the next VL rows asked for meanwhile: a large src (the gate
 * gradients, for packed_gemm's copy of a transposed A) is far off.
 * NumPy: dst[:cols, :rows] = src[:rows, :cols].T */
static inline __attribute__((always_inline)) void FR_FN(transpose_blocks)(
    int rows, int cols, const REAL *restrict src, long lds, REAL *restrict dst, long ldd)
{
    const int fr = rows - rows % VL, fc = cols - cols % VL;
    for (int r = 0; r < fr; r += VL)
        for (int c = 0; c < fc; c += VL) {
            VEC v[VL];
            if (r + 2 * VL <= rows)
                for (int i = 0; i < VL; ++i)
                    __builtin_prefetch(src + (size_t)(r + VL + i) * lds + c, 0, 3);
            for (int i = 0; i < VL; ++i)
                v[i] = FR_FN(vload)(src + (size_t)(r + i) * lds + c);
            FR_FN(transpose_block)(v);
            for (int j = 0; j < VL; ++j)
                FR_FN(vstore)(dst + (size_t)(c + j) * ldd + r, v[j]);
        }
    for (int r = fr; r < rows; ++r)
        for (int c = 0; c < fc; ++c)
            dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
    for (int c = fc; c < cols; ++c)
        for (int r = 0; r < rows; ++r)
            dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}

/* Columns [n0, n1) of the K x N row-major matrix W (row k at W + k*ldw) into
 * the panels of Wp, which hold kpanel rows each: row k of W becomes row k of
 * every panel it reaches, so a caller can fill a panel's rows from several
 * sources (Wp offset by k0 * NR for rows from k0).  n0 is on a panel boundary;
 * a last panel past n1 is padded with zeros.  pack_panels packs its
 * sn = 1 operands (W^T in these terms) through this, with kpanel = K. */
FR_KERNEL void FR_FN(pack_rows)(int n0, int n1, int K, const REAL *restrict W, long ldw,
                                REAL *restrict Wp, long kpanel)
{
    for (int p = n0 / NR; p * NR < n1; ++p) {
        const int c0 = p * NR, cols = n1 - c0 < NR ? n1 - c0 : NR;
        const REAL *src = W + c0;
        REAL *dst = Wp + (size_t)p * kpanel * NR;
        if (cols == NR) {
            for (int k = 0; k < K; ++k)
                for (int v = 0; v < NV; ++v)
                    FR_FN(vstore)(dst + (size_t)k * NR + v * VL,
                                  FR_FN(vload)(src + (size_t)k * ldw + v * VL));
            continue;
        }
        for (int k = 0; k < K; ++k)
            for (int i = 0; i < NR; ++i)
                dst[(size_t)k * NR + i] = i < cols ? src[(size_t)k * ldw + i] : 0;
    }
}

/* Pack the N x K matrix with element (n, k) at W[n*sn + k*sk] into panels.
 * sn, sk let one routine pack W (sn = K, sk = 1) or its transpose.  A
 * transposed W (sn = 1: a panel's NR columns are contiguous) goes to
 * pack_rows, by plain vector copies.  Otherwise full panels of a row-major W
 * (sk = 1: a panel's NR rows are contiguous in k) are transposed into place
 * (VL x VL blocks turned in registers), and the rest (a last panel past N, or
 * other strides) goes element by element. */
FR_KERNEL void FR_FN(pack_panels)(int N, int K, const REAL *restrict W, long sn, long sk,
                                  REAL *restrict Wp)
{
    if (sn == 1) {
        FR_FN(pack_rows)(0, N, K, W, sk, Wp, K);
        return;
    }
    int panels = (N + NR - 1) / NR;
    for (int p = 0; p < panels; ++p) {
        const int n0 = p * NR, rows = N - n0 < NR ? N - n0 : NR;
        const REAL *src = W + (size_t)n0 * sn;
        REAL *dst = Wp + (size_t)p * K * NR;
        if (rows == NR && sk == 1) {     /* dst[k*NR + i] = src[i*sn + k] */
            FR_FN(transpose_blocks)(NR, K, src, sn, dst, NR);
            continue;
        }
        for (int k = 0; k < K; ++k)
            for (int i = 0; i < NR; ++i)
                dst[(size_t)k * NR + i] = i < rows ? src[i * sn + k * sk] : 0;
    }
}

/* Add (or write, when !accumulate) acc into ncols <= VL outputs of C, which
 * lie at stride scn (1: one row of C; otherwise a column of a transposed C).
 * With a bias (only where scn == 1; NULL for none) a write is acc + bias:
 * the same sum as writing the bias first and adding acc to it, one pass
 * over C fewer (see packed_gemm_bias). */
static inline __attribute__((always_inline)) void FR_FN(put)(REAL *c, long scn, VEC acc,
                                                            int ncols, int accumulate,
                                                            const REAL *bias)
{
    if (ncols == VL && scn == 1) {
        if (accumulate)
            acc += FR_FN(vload)(c);
        else if (bias)
            acc += FR_FN(vload)(bias);
        FR_FN(vstore)(c, acc);
    } else {
        for (int i = 0; i < ncols; ++i)
            c[i * scn] = accumulate ? c[i * scn] + acc[i] : (bias ? acc[i] + bias[i] : acc[i]);
    }
}

/* put for the NV VECs of one panel row, acc[0..NV): its ncols <= NR outputs. */
static inline __attribute__((always_inline)) void FR_FN(put_panel)(REAL *c, long scn,
                                                                  const VEC *acc, int ncols,
                                                                  int accumulate,
                                                                  const REAL *bias)
{
    for (int v = 0; v < NV && v * VL < ncols; ++v)
        FR_FN(put)(c + v * VL * scn, scn, acc[v], ncols - v * VL < VL ? ncols - v * VL : VL,
                   accumulate, bias ? bias + v * VL : NULL);
}

/* MR rows of A times NP consecutive panels: MR*NP*NV independent accumulators
 * (enough FMA chains in flight to hide the FMA latency, few enough to stay in
 * registers: fastrnn_gemm.h fr_gemm_rules picks the tile per machine).  MR and NP are compile-time constants at every call
 * site, so the loops unroll.  A's element (r, k) is at A[r*sam + k*sak];
 * panel j starts pstride after panel j - 1; bias (or NULL) is that of the
 * first panel's first column. */
static inline __attribute__((always_inline)) void FR_FN(tile)(
    const int MR, const int NP, int K, const REAL *A, long sam, long sak, const REAL *wp,
    size_t pstride, REAL *C, long scm, long scn, int ncols_last, int accumulate,
    const REAL *bias)
{
    VEC acc[MR * NP * NV];    /* sized by the tile: a larger array was zeroed through memory */
#pragma GCC unroll 64    /* else GCC makes the loop a memset, and acc lives in memory */
    for (int i = 0; i < MR * NP * NV; ++i)
        acc[i] = (VEC){0};
    /* Ask for the tile's lines of C now: in a large product they are far off
     * (L3 or DRAM), and their fetch for writing then overlaps the K loop
     * instead of stalling the stores at its end. */
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NP; ++j)
            __builtin_prefetch(C + r * scm + j * NR * scn, 1, 3);
    /* Unrolled: the loop's own counter and pointer updates otherwise take issue
     * slots from the FMAs' ports once in every 24 FMAs (docs/DECISIONS.md). */
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k) {
        const REAL *a = A + k * sak;
#if NV == 1    /* the loop as it was before the half build: written over NV, GCC
                  allocated the 64-byte tiles' registers worse (docs/DECISIONS.md) */
        for (int j = 0; j < NP; ++j) {
            VEC w = FR_FN(vload)(wp + j * pstride + (size_t)k * NR);
            for (int r = 0; r < MR; ++r)
                acc[r * NP + j] += a[r * sam] * w;
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NP; ++j)
            FR_FN(put)(C + r * scm + j * NR * scn, scn, acc[r * NP + j],
                       j == NP - 1 ? ncols_last : NR, accumulate, bias ? bias + j * NR : NULL);
#else    /* the same sums, each panel row in NV VECs */
        for (int j = 0; j < NP; ++j) {
            VEC w[NV];
            for (int v = 0; v < NV; ++v)
                w[v] = FR_FN(vload)(wp + j * pstride + (size_t)k * NR + v * VL);
            for (int r = 0; r < MR; ++r)
                for (int v = 0; v < NV; ++v)
                    acc[(r * NP + j) * NV + v] += a[r * sam] * w[v];
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NP; ++j)
            FR_FN(put_panel)(C + r * scm + j * NR * scn, scn, &acc[(r * NP + j) * NV],
                             j == NP - 1 ? ncols_last : NR, accumulate,
                             bias ? bias + j * NR : NULL);
#endif
}

/* The full-row tiles as functions of their own: inlined into the product's
 * loops, their K loop lost registers to the loops around it and reloaded its
 * strides from the stack at every k. */
#define FR_TILE_FN(MR, NP)                                                            \
    FR_KERNEL __attribute__((noinline)) void FR_FN(tile_##MR##x##NP)(                 \
        int K, const REAL *A, long sam, long sak, const REAL *wp, size_t pstride,      \
        REAL *C, long scm, long scn, int ncols_last, int accumulate, const REAL *bias)  \
    {                                                                                 \
        FR_FN(tile)(MR, NP, K, A, sam, sak, wp, pstride, C, scm, scn, ncols_last,     \
                    accumulate, bias);                                                \
    }
FR_TILE_FN(6, 4)
FR_TILE_FN(4, 6)
FR_TILE_FN(6, 2)
FR_TILE_FN(4, 2)
FR_TILE_FN(6, 1)
FR_TILE_FN(4, 1)
#undef FR_TILE_FN

#define FR_TILE(mr, np) FR_FN(tile)(mr, np, K, A + m * sam, sam, sak, wp, pstride, \
                                      c + m * scm, scm, scn, ncols_last, accumulate, \
                                      bias ? bias + p * NR : NULL)

/* One row of NP panels given by their own pointers (wp[j], out[j], and
 * bias[j] unless bias is NULL; the last panel has ncols_last outputs): the
 * accumulation order per output is that of tile(), k by k, so a product
 * split this way equals packed_gemm's bit for bit.  Pointers rather than
 * tile()'s offsets from one panel keep the inner loop free of reloads
 * (docs/DECISIONS.md). */
static inline __attribute__((always_inline)) void FR_FN(gemv_tile)(
    const int NP, int K, const REAL *x, const REAL *const *wp, REAL *const *out,
    const REAL *const *bias, int ncols_last, int accumulate)
{
    VEC acc[NP * NV];
#pragma GCC unroll 64    /* as in tile() */
    for (int j = 0; j < NP * NV; ++j)
        acc[j] = (VEC){0};
#if NV == 1
    for (int k = 0; k < K; ++k)
        for (int j = 0; j < NP; ++j)
            acc[j] += x[k] * FR_FN(vload)(wp[j] + (size_t)k * NR);
    for (int j = 0; j < NP; ++j)
        FR_FN(put)(out[j], 1, acc[j], j == NP - 1 ? ncols_last : NR, accumulate,
                   bias ? bias[j] : NULL);
#else
    for (int k = 0; k < K; ++k)
        for (int j = 0; j < NP; ++j)
            for (int v = 0; v < NV; ++v)
                acc[j * NV + v] += x[k] * FR_FN(vload)(wp[j] + (size_t)k * NR + v * VL);
    for (int j = 0; j < NP; ++j)
        FR_FN(put_panel)(out[j], 1, &acc[j * NV], j == NP - 1 ? ncols_last : NR, accumulate,
                         bias ? bias[j] : NULL);
#endif
}

/* gemv_tile for np <= 4 panels, np known only at run time. */
static inline __attribute__((always_inline)) void FR_FN(gemv_tiles)(
    int np, int K, const REAL *x, const REAL *const *wp, REAL *const *out,
    const REAL *const *bias, int ncols_last, int accumulate)
{
    switch (np) {
    case 4: FR_FN(gemv_tile)(4, K, x, wp, out, bias, ncols_last, accumulate); break;
    case 3: FR_FN(gemv_tile)(3, K, x, wp, out, bias, ncols_last, accumulate); break;
    case 2: FR_FN(gemv_tile)(2, K, x, wp, out, bias, ncols_last, accumulate); break;
    default: FR_FN(gemv_tile)(1, K, x, wp, out, bias, ncols_last, accumulate); break;
    }
}

/* A single row of A against the panels [n0, n1) (C one row, scn = 1; bias
 * as in packed_gemm_block), four panels at a time as in packed_gemm_block's
 * 1 x 4 tiles. */
static inline __attribute__((always_inline)) void FR_FN(gemv_row)(
    int n0, int n1, int K, const REAL *x, const REAL *Wp, size_t pstride, REAL *C,
    int accumulate, const REAL *bias)
{
    for (int p = n0 / NR, p_end = (n1 + NR - 1) / NR; p < p_end; p += 4) {
        const REAL *wp[4], *b[4];
        REAL *out[4];
        const int np = p_end - p < 4 ? p_end - p : 4;
        const int ncols_last = n1 - (p + np - 1) * NR < NR ? n1 - (p + np - 1) * NR : NR;
        for (int j = 0; j < np; ++j) {
            wp[j] = Wp + (size_t)(p + j) * pstride;
            out[j] = C + (size_t)(p + j) * NR;
            b[j] = bias ? bias + (size_t)(p + j) * NR : NULL;
        }
        FR_FN(gemv_tiles)(np, K, x, wp, out, bias ? b : NULL, ncols_last, accumulate);
    }
}

/* C[m, n] (+)= sum_k A[m, k] W[n, k]  for m < M and n in [n0, n1), W packed.
 *
 *   A element (m, k) at A[m*sam + k*sak]: row-major A has (sam, sak) = (lda, 1);
 *     a transposed operand has (1, lda).
 *   Wp: panels of kpanel rows (K <= kpanel; a packed operand may be used for a
 *     leading range of its rows), n0 on a panel boundary.
 *   C element (m, n) at C[m*scm + n*scn]: row-major C has (ldc, 1); (1, ldc)
 *     writes the transpose.
 *
 * Rows go in blocks of the machine's register tile (fastrnn_gemm.h
 * fr_gemm_rules: 6 rows against 4 panels or 4 against 6, 4 against 2, or 6 against 1); the
 * last 1 to 5 rows take several panels at once (1x4, 2x4, 3x2, 4x2, 5x1; with
 * half-panel VECs 1x4, 2x2 and one panel for 3 to 5) so that they keep about
 * as many accumulators busy as a full block.
 *
 *   bias: NULL, or (with scn = 1 and !accumulate) the row bias[n] that C
 *     starts from: C[m, n] = bias[n] + sum_k ...
 *
 * NumPy: C[:, n0:n1] = (C[:, n0:n1] if accumulate else bias[n0:n1] or 0) + A @ W[n0:n1].T */
static inline __attribute__((always_inline)) void FR_FN(packed_gemm_block)(
    int M, int n0, int n1, int K, const REAL *restrict A,
                                  long sam, long sak, const REAL *restrict Wp, int kpanel,
                                  REAL *restrict C, long scm, long scn, int accumulate,
                                  const REAL *restrict bias)
{
    const size_t pstride = (size_t)kpanel * NR;
    const int p_end = (n1 + NR - 1) / NR;
    if (M == 1 && sak == 1 && scn == 1) {
        FR_FN(gemv_row)(n0, n1, K, A, Wp, pstride, C, accumulate, bias);
        return;
    }
    /* Full row blocks in the machine's register tile (fastrnn_gemm.h
     * fr_gemm_rules): MR rows against NP panels at a time, then MR rows
     * against each panel left over. */
    const int tile = fr_gemm_tile(M, (long)K * NR * (long)sizeof(REAL));
    const int mr = tile == FR_TILE_4x2 || tile == FR_TILE_4x6 ? 4 : 6;
    const long full = M - M % mr;
    int p = n0 / NR;
#define FR_FULL_ROWS(MR, NP)                                                          \
    for (; p + NP <= p_end; p += NP) {                                                \
        const REAL *wp = Wp + p * pstride;                                            \
        REAL *c = C + p * NR * scn;                                                   \
        int ncols_last = n1 - (p + NP - 1) * NR < NR ? n1 - (p + NP - 1) * NR : NR;   \
        for (long m = 0; m < full; m += MR)                                           \
            FR_FN(tile_##MR##x##NP)(K, A + m * sam, sam, sak, wp, pstride, c + m * scm,   \
                                    scm, scn, ncols_last, accumulate,                 \
                                    bias ? bias + p * NR : NULL);                     \
    }
    switch (tile) {
    case FR_TILE_6x4: FR_FULL_ROWS(6, 4); FR_FULL_ROWS(6, 2); FR_FULL_ROWS(6, 1); break;
    case FR_TILE_4x6: FR_FULL_ROWS(4, 6); FR_FULL_ROWS(4, 2); FR_FULL_ROWS(4, 1); break;
    case FR_TILE_4x2: FR_FULL_ROWS(4, 2); FR_FULL_ROWS(4, 1); break;
    default: FR_FULL_ROWS(6, 1); break;
    }
#undef FR_FULL_ROWS
    const int rest = (int)(M - full);
    const long m = full;
    p = n0 / NR;
#if NV == 1
    if (rest > 0 && rest <= 4) {                  /* the last rows, several panels at a time */
        const int np = rest <= 2 ? 4 : 2;
        for (; p + np <= p_end; p += np) {
            const REAL *wp = Wp + p * pstride;
            REAL *c = C + p * NR * scn;
            int ncols_last = n1 - (p + np - 1) * NR < NR ? n1 - (p + np - 1) * NR : NR;
            switch (rest) {
            case 4: FR_TILE(4, 2); break;
            case 3: FR_TILE(3, 2); break;
            case 2: FR_TILE(2, 4); break;
            default: FR_TILE(1, 4); break;
            }
        }
    }
#else    /* within AVX2's 16 registers (3 rows x 2 panels spill): 8 VECs of accumulators */
    if (rest > 0 && rest <= 2) {
        const int np = rest == 1 ? 4 : 2;
        for (; p + np <= p_end; p += np) {
            const REAL *wp = Wp + p * pstride;
            REAL *c = C + p * NR * scn;
            int ncols_last = n1 - (p + np - 1) * NR < NR ? n1 - (p + np - 1) * NR : NR;
            if (rest == 2)
                FR_TILE(2, 2);
            else
                FR_TILE(1, 4);
        }
    }
#endif
    for (; rest > 0 && p < p_end; ++p) {          /* what is left, one panel at a time */
        const REAL *wp = Wp + p * pstride;
        REAL *c = C + p * NR * scn;
        int ncols_last = n1 - p * NR < NR ? n1 - p * NR : NR;
        switch (rest) {
        case 5: FR_TILE(5, 1); break;
        case 4: FR_TILE(4, 1); break;
        case 3: FR_TILE(3, 1); break;
        case 2: FR_TILE(2, 1); break;
        default: FR_TILE(1, 1); break;
        }
    }
}

/* C[m, n] (+)= sum_k A[m, k] W[n, k]  for m < M and n in [n0, n1), W packed;
 * arguments as in packed_gemm_block.  Long sums (the weight gradients sum
 * over all T*B rows) go in blocks of FR_KC terms, so the panel's slice (32
 * KiB, L1's size on Zen 4) stays near while every row block passes over it;
 * many rows (dX sums over T*B rows) go in blocks of at most FR_A_BYTES of A,
 * so the block of A stays in L2 while every panel passes over it.  Each
 * block of K adds into C once, so fewer blocks mean fewer passes over a C
 * too large for the caches (FR_KC 512 rather than 256: docs/DECISIONS.md).
 * Each C element sums its K blocks in order, so the split between threads
 * never changes a result. */
#ifndef FR_KC
#define FR_KC 512
#endif
#ifndef FR_A_BYTES
#define FR_A_BYTES (256 * 1024)
#endif
#ifndef FR_AT_BYTES     /* a transposed A's rows, copied: on the stack, 12 rows at the least */
#define FR_AT_BYTES (96 * 1024)
#endif
/* packed_gemm's blocks of K terms and of rows.  a_rows: NULL, or FR_AT_BYTES of
 * work space into which each block of a transposed A (sam == 1) is copied as
 * rows before its products.  Wp2: NULL, or a second packed operand (n2
 * columns, kpanel rows) whose product with the same A goes to C2 (row-major,
 * ldc2), block by block after the first: each block of A is read (or copied)
 * once for both. */
static inline __attribute__((always_inline)) void FR_FN(packed_gemm_blocks)(
    int M, int n0, int n1, int K, const REAL *restrict A, long sam, long sak,
    const REAL *restrict Wp, int kpanel, REAL *restrict C, long scm, long scn,
    int accumulate, const REAL *restrict bias, REAL *restrict a_rows,
    const REAL *restrict Wp2, int n2, REAL *restrict C2, long ldc2)
{
    for (int k0 = 0; k0 < K; k0 += FR_KC) {
        int kb = K - k0 < FR_KC ? K - k0 : FR_KC;
        /* rows per block: a multiple of 12, so that blocks keep the 4- and 6-row tiles */
        long mc = (a_rows ? FR_AT_BYTES : FR_A_BYTES) / ((long)kb * (long)sizeof(REAL)) / 12 * 12;
        mc = mc < 12 ? 12 : mc;
        for (long m0 = 0; m0 < M; m0 += mc) {
            int mb = (int)(M - m0 < mc ? M - m0 : mc);
            const REAL *a = A + m0 * sam + k0 * sak;
            long bsam = sam, bsak = sak;
            if (a_rows) {
                FR_FN(transpose_blocks)(kb, mb, a, sak, a_rows, kb);
                a = a_rows, bsam = kb, bsak = 1;
            }
            FR_FN(packed_gemm_block)(mb, n0, n1, kb, a, bsam, bsak, Wp + (size_t)k0 * NR,
                                     kpanel, C + m0 * scm, scm, scn, accumulate || k0 > 0,
                                     k0 > 0 ? NULL : bias);
            if (Wp2)
                FR_FN(packed_gemm_block)(mb, 0, n2, kb, a, bsam, bsak, Wp2 + (size_t)k0 * NR,
                                         kpanel, C2 + m0 * ldc2, ldc2, 1,
                                         accumulate || k0 > 0, NULL);
        }
    }
}

/* packed_gemm_blocks with a transposed A copied into rows, the copy's work space on
 * this call's stack: a function of its own, so that the products that read A in
 * place (every time step's) do not carry it. */
FR_KERNEL __attribute__((noinline)) void FR_FN(packed_gemm_copied)(
    int M, int n0, int n1, int K, const REAL *restrict A, long sak, const REAL *restrict Wp,
    int kpanel, REAL *restrict C, long scm, long scn, int accumulate,
    const REAL *restrict bias, const REAL *restrict Wp2, int n2, REAL *restrict C2,
    long ldc2)
{
    REAL a_rows[FR_AT_BYTES / sizeof(REAL)] __attribute__((aligned(64)));
    FR_FN(packed_gemm_blocks)(M, n0, n1, K, A, 1, sak, Wp, kpanel, C, scm, scn, accumulate,
                              bias, a_rows, Wp2, n2, C2, ldc2);
}

/* Whether packed_gemm copies A's blocks into rows.  A given transposed (sam ==
 * 1: the weight gradients read the gate gradients in place) has each row's K
 * terms a row of the gradient apart.  Where that distance is a multiple of 256
 * bytes (4H gates with H a power of two), the terms of a row fall into at most
 * 16 of L1's 64 sets, which then hold only a few of them (one set at a
 * multiple of 4 KiB).  Such blocks of A are copied into rows first, a few rows
 * at a time; other strides read A in place, which costs less than the copy. */
static inline int FR_FN(copies_a)(int M, long sam, long sak)
{
    return sam == 1 && sak > 1 && M >= 12 && sak * (long)sizeof(REAL) % 256 == 0;
}

FR_KERNEL void FR_FN(packed_gemm)(int M, int n0, int n1, int K, const REAL *restrict A,
                                  long sam, long sak, const REAL *restrict Wp, int kpanel,
                                  REAL *restrict C, long scm, long scn, int accumulate,
                                  const REAL *restrict bias)
{
    if (K <= 0) {    /* an empty sum: C = bias or 0 (or unchanged when accumulating) */
        FR_FN(packed_gemm_block)(M, n0, n1, 0, A, sam, sak, Wp, kpanel, C, scm, scn,
                                 accumulate, bias);
        return;
    }
    if (FR_FN(copies_a)(M, sam, sak))
        FR_FN(packed_gemm_copied)(M, n0, n1, K, A, sak, Wp, kpanel, C, scm, scn, accumulate,
                                  bias, NULL, 0, NULL, 0);
    else
        FR_FN(packed_gemm_blocks)(M, n0, n1, K, A, sam, sak, Wp, kpanel, C, scm, scn,
                                  accumulate, bias, NULL, NULL, 0, NULL, 0);
}

/* Two products of one left operand given transposed, C1 (+)= A W1^T over W1's
 * n1 columns and C2 (+)= A W2^T over W2's n2 (both packed with kpanel rows, C1
 * and C2 row-major): bit for bit what two packed_gemm calls give, with each
 * block of A read, or copied (see copies_a), once for both.  An RNN's or
 * LSTM's dW_ih and dW_hh, which both read dG.
 * NumPy, with At the K x M array A[k*sak + m]: C1 (+)= At.T @ W1.T, C2 (+)= At.T @ W2.T */
FR_KERNEL void FR_FN(packed_gemm_pair)(int M, int K, const REAL *restrict A, long sak,
                                       const REAL *restrict Wp1, int n1, REAL *restrict C1,
                                       long ldc1, const REAL *restrict Wp2, int n2,
                                       REAL *restrict C2, long ldc2, int kpanel,
                                       int accumulate)
{
    if (K <= 0 || n1 <= 0 || n2 <= 0 || !FR_FN(copies_a)(M, 1, sak)) {
        FR_FN(packed_gemm)(M, 0, n1, K, A, 1, sak, Wp1, kpanel, C1, ldc1, 1, accumulate, NULL);
        FR_FN(packed_gemm)(M, 0, n2, K, A, 1, sak, Wp2, kpanel, C2, ldc2, 1, accumulate, NULL);
        return;
    }
    FR_FN(packed_gemm_copied)(M, 0, n1, K, A, sak, Wp1, kpanel, C1, ldc1, 1, accumulate, NULL,
                              Wp2, n2, C2, ldc2);
}


/* y[q*ldb + n] (+)= sum_k x[k] W[q*ldb + n, k]  for n in [j0, j1) of each of
 * nblocks blocks of ldb output columns (the gate blocks of one recurrent
 * product), W packed with kpanel rows; ldb, j0, j1 multiples of the panel
 * width.  For threads that share one sequence's hidden units: each owns
 * [j0, j1) of every gate, whose panels lie apart in Wp.  Taking them four at
 * a time across the blocks keeps four FMA chains busy even when a thread
 * has only one or two panels per gate, where packed_gemm would have one.
 * Same K blocks and order as packed_gemm, hence the same result.
 * NumPy: for q: y[q*ldb+j0 : q*ldb+j1] (+)= W[q*ldb+j0 : q*ldb+j1, :K] @ x */
FR_KERNEL void FR_FN(packed_gemv_blocks)(int K, const REAL *restrict x,
                                         const REAL *restrict Wp, int kpanel, int nblocks,
                                         int ldb, int j0, int j1, REAL *restrict y,
                                         int accumulate)
{
    const size_t pstride = (size_t)kpanel * NR;
    const int per_block = (j1 - j0) / NR, total = nblocks * per_block;
    for (int k0 = 0; k0 < K || (K <= 0 && k0 == 0); k0 += FR_KC) {
        const int kb = K - k0 < FR_KC ? K - k0 : FR_KC;
        const int acc_k = accumulate || k0 > 0;
        for (int i = 0; i < total; i += 4) {
            const REAL *wp[4];
            REAL *out[4];
            const int np = total - i < 4 ? total - i : 4;
            for (int j = 0; j < np; ++j) {
                int q = (i + j) / per_block, col = q * ldb + j0 + (i + j) % per_block * NR;
                wp[j] = Wp + (size_t)(col / NR) * pstride + (size_t)k0 * NR;
                out[j] = y + col;
            }
            FR_FN(gemv_tiles)(np, kb, x + k0, wp, out, NULL, NR, acc_k);
        }
    }
}

/* A single-sequence vanilla RNN step over the hidden units [j0, j1) (j0 on a
 * panel boundary): pre[j] += sum_k h_prev[k] W[j, k], then h[j] = tanh(pre[j])
 * (or max(pre[j], 0) when relu), four panels at a time (gemv_row, in
 * packed_gemm's K blocks), each group's activation right after its sums.
 * The sums, K blocks and additions are those of packed_gemm with one row,
 * and the activation is rnn_step_fwd's (fastrnn_cells.h) on the group, so
 * the results are the same; one pass saves the second trip through pre and
 * lets a group's activation overlap the next group's sums
 * (docs/DECISIONS.md).
 * NumPy: pre[j0:j1] += W[j0:j1] @ h_prev; h[j0:j1] = np.tanh(pre[j0:j1]) */
FR_KERNEL void FR_FN(rnn_gemv_step)(int K, const REAL *restrict h_prev,
                                    const REAL *restrict Wp, int kpanel, int j0, int j1,
                                    REAL *restrict pre, REAL *restrict h, int relu)
{
    const size_t pstride = (size_t)kpanel * NR;
    for (int n0 = j0; n0 < j1; n0 += 4 * NR) {
        const int n1 = j1 - n0 < 4 * NR ? j1 : n0 + 4 * NR;
        for (int k0 = 0; k0 < K; k0 += FR_KC)
            FR_FN(gemv_row)(n0, n1, K - k0 < FR_KC ? K - k0 : FR_KC, h_prev + k0,
                            Wp + (size_t)k0 * NR, pstride, pre, 1, NULL);
        FR_CELL(rnn_step_fwd)(1, n1 - n0, pre + n0, h + n0, 0, relu);
    }
}

#undef FR_TILE
#undef NV
