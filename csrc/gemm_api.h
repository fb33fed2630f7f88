/*
 * The packed GEMM's public entry points for one REAL, instantiated by
 * fastrnn_gemm.h with
 *   REAL, FR_FN(x)   the public names (fr_x_f32, fr_x_f64)
 *   FR_WIDE(x)       gemm_impl.h computing with one 64-byte vector a panel row
 *   FR_HALF(x)       gemm_impl.h computing with two 32-byte vectors a panel row
 * No include guard on purpose: this file is included once per REAL.
 *
 * Each calls the instantiation its CPU class runs (fr_gemm_half_vectors).
 * Both read and write the same packed layout and sum every output in the
 * same order, so they give the same bits and share packed operands.  The
 * arguments are those of gemm_impl.h's functions of the same names.
 */

#define FR_DISPATCH(name, ...)                                                        \
    do {                                                                              \
        if (fr_gemm_half_vectors())                                                   \
            FR_HALF(name)(__VA_ARGS__);                                               \
        else                                                                          \
            FR_WIDE(name)(__VA_ARGS__);                                               \
    } while (0)

static inline __attribute__((unused)) void FR_FN(rowdot)(int N, int K, const REAL *W,
                                                        int ldw, const REAL *x, REAL *y,
                                                        int accumulate)
{
    FR_DISPATCH(rowdot, N, K, W, ldw, x, y, accumulate);
}

static inline __attribute__((unused)) void FR_FN(pack_rows)(int n0, int n1, int K,
                                                           const REAL *W, long ldw, REAL *Wp,
                                                           long kpanel)
{
    FR_DISPATCH(pack_rows, n0, n1, K, W, ldw, Wp, kpanel);
}

static inline __attribute__((unused)) void FR_FN(pack_panels)(int N, int K, const REAL *W,
                                                             long sn, long sk, REAL *Wp)
{
    FR_DISPATCH(pack_panels, N, K, W, sn, sk, Wp);
}

static inline __attribute__((unused)) void FR_FN(packed_gemm)(
    int M, int n0, int n1, int K, const REAL *A, long sam, long sak, const REAL *Wp,
    int kpanel, REAL *C, long scm, long scn, int accumulate, const REAL *bias)
{
    FR_DISPATCH(packed_gemm, M, n0, n1, K, A, sam, sak, Wp, kpanel, C, scm, scn,
                accumulate, bias);
}

static inline __attribute__((unused)) void FR_FN(packed_gemm_pair)(
    int M, int K, const REAL *A, long sak, const REAL *Wp1, int n1, REAL *C1, long ldc1,
    const REAL *Wp2, int n2, REAL *C2, long ldc2, int kpanel, int accumulate)
{
    FR_DISPATCH(packed_gemm_pair, M, K, A, sak, Wp1, n1, C1, ldc1, Wp2, n2, C2, ldc2,
                kpanel, accumulate);
}

static inline __attribute__((unused)) void FR_FN(packed_gemv_blocks)(
    int K, const REAL *x, const REAL *Wp, int kpanel, int nblocks, int ldb, int j0, int j1,
    REAL *y, int accumulate)
{
    FR_DISPATCH(packed_gemv_blocks, K, x, Wp, kpanel, nblocks, ldb, j0, j1, y, accumulate);
}

static inline __attribute__((unused)) void FR_FN(rnn_gemv_step)(
    int K, const REAL *h_prev, const REAL *Wp, int kpanel, int j0, int j1, REAL *pre,
    REAL *h, int relu)
{
    FR_DISPATCH(rnn_gemv_step, K, h_prev, Wp, kpanel, j0, j1, pre, h, relu);
}

#undef FR_DISPATCH
