/*
 * Body of the packed-weight GEMM, instantiated by fastrnn_gemm.h with
 *   REAL, FR_FN(x)  as in cells_impl.h
 *   VEC             a 64-byte GCC vector of REAL (NR lanes)
 *   NR              lanes per VEC: 16 for float, 8 for double
 * No include guard on purpose: this file is included once per REAL.
 *
 * Why: each recurrent step multiplies a few rows (the batch) by the same
 * weight matrix.  A BLAS GEMM re-packs that matrix on every call, which for
 * small batches costs as much as the product.  Packing it once per sequence
 * into panels of NR output columns lets every step stream the panels
 * straight into registers.
 *
 * Packed layout: panel p, k-th row holds W[p*NR + i][k] for i < NR (zero
 * past N), so Wp[(p*K + k)*NR + i].
 */

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

/* Pack the N x K matrix with element (n, k) at W[n*sn + k*sk] into panels.
 * sn, sk let one routine pack W (sn = K, sk = 1) or its transpose. */
FR_KERNEL void FR_FN(pack_panels)(int N, int K, const REAL *restrict W, long sn, long sk,
                                  REAL *restrict Wp)
{
    int panels = (N + NR - 1) / NR;
    for (int p = 0; p < panels; ++p)
        for (int k = 0; k < K; ++k) {
            REAL *dst = Wp + ((size_t)p * K + k) * NR;
            for (int i = 0; i < NR; ++i) {
                int n = p * NR + i;
                dst[i] = n < N ? W[n * sn + k * sk] : 0;
            }
        }
}

/* Add (or write, when !accumulate) acc into ncols <= NR outputs of C, which
 * lie at stride scn (1: one row of C; otherwise a column of a transposed C). */
static inline __attribute__((always_inline)) void FR_FN(put)(REAL *c, long scn, VEC acc,
                                                            int ncols, int accumulate)
{
    if (ncols == NR && scn == 1) {
        FR_FN(vstore)(c, accumulate ? FR_FN(vload)(c) + acc : acc);
    } else {
        for (int i = 0; i < ncols; ++i)
            c[i * scn] = accumulate ? c[i * scn] + acc[i] : acc[i];
    }
}

/* MR rows of A times one panel: MR independent accumulators.  MR is a
 * compile-time constant at every call site, so the loops unroll and the
 * accumulators live in registers.  A's element (r, k) is at A[r*sam + k*sak]. */
static inline __attribute__((always_inline)) void FR_FN(tile_rows)(
    const int MR, int K, const REAL *A, long sam, long sak, const REAL *wp,
    REAL *C, long scm, long scn, int ncols, int accumulate)
{
    VEC acc[6] = {{0}};
    for (int k = 0; k < K; ++k) {
        VEC w = FR_FN(vload)(wp + (size_t)k * NR);
        const REAL *a = A + k * sak;
        for (int r = 0; r < MR; ++r)
            acc[r] += a[r * sam] * w;
    }
    for (int r = 0; r < MR; ++r)
        FR_FN(put)(C + r * scm, scn, acc[r], ncols, accumulate);
}

/* One row of A times four panels: four accumulators, so a single row (the
 * batch-1 case) is not held up by the latency of one FMA chain. */
static inline __attribute__((always_inline)) void FR_FN(tile_panels4)(
    int K, const REAL *a, long sak, const REAL *wp, size_t pstride, REAL *c, long scn,
    int accumulate)
{
    VEC acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0};
    for (int k = 0; k < K; ++k) {
        const REAL *w = wp + (size_t)k * NR;
        REAL ak = a[k * sak];
        acc0 += ak * FR_FN(vload)(w);
        acc1 += ak * FR_FN(vload)(w + pstride);
        acc2 += ak * FR_FN(vload)(w + 2 * pstride);
        acc3 += ak * FR_FN(vload)(w + 3 * pstride);
    }
    FR_FN(put)(c, scn, acc0, NR, accumulate);
    FR_FN(put)(c + NR * scn, scn, acc1, NR, accumulate);
    FR_FN(put)(c + 2 * NR * scn, scn, acc2, NR, accumulate);
    FR_FN(put)(c + 3 * NR * scn, scn, acc3, NR, accumulate);
}

#define FR_TILE(mr) FR_FN(tile_rows)(mr, K, A + m * sam, sam, sak, wp, c + m * scm, scm, scn, \
                                     ncols, accumulate)

/* C[m, n] (+)= sum_k A[m, k] W[n, k]  for m < M and n in [n0, n1), W packed.
 *
 *   A element (m, k) at A[m*sam + k*sak]: row-major A has (sam, sak) = (lda, 1);
 *     a transposed operand has (1, lda).
 *   Wp: panels of kpanel rows (K <= kpanel; a packed operand may be used for a
 *     leading range of its rows), n0 on a panel boundary.
 *   C element (m, n) at C[m*scm + n*scn]: row-major C has (ldc, 1); (1, ldc)
 *     writes the transpose.
 *
 * NumPy: C[:, n0:n1] = (C[:, n0:n1] if accumulate else 0) + A @ W[n0:n1].T */
FR_KERNEL void FR_FN(packed_gemm)(int M, int n0, int n1, int K, const REAL *restrict A,
                                  long sam, long sak, const REAL *restrict Wp, int kpanel,
                                  REAL *restrict C, long scm, long scn, int accumulate)
{
    const size_t pstride = (size_t)kpanel * NR;
    int p = n0 / NR, p_end = (n1 + NR - 1) / NR;
    if (M == 1) {
        for (; p + 4 <= p_end && (p + 4) * NR <= n1; p += 4)
            FR_FN(tile_panels4)(K, A, sak, Wp + p * pstride, pstride, C + p * NR * scn, scn,
                                accumulate);
    }
    for (; p < p_end; ++p) {
        const REAL *wp = Wp + p * pstride;
        int ncols = n1 - p * NR < NR ? n1 - p * NR : NR;
        REAL *c = C + p * NR * scn;
        long m = 0;
        for (; m + 6 <= M; m += 6)
            FR_TILE(6);
        switch (M - m) {
        case 5: FR_TILE(5); break;
        case 4: FR_TILE(4); break;
        case 3: FR_TILE(3); break;
        case 2: FR_TILE(2); break;
        case 1: FR_TILE(1); break;
        default: break;
        }
    }
}

#undef FR_TILE
