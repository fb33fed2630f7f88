# Fused-type front end to the packed-weight GEMM of csrc/fastrnn_gemm.h.
# The right-hand operand W is packed once into panels of panel-width output
# columns (pack_panels); products then stream the panels into registers.

from cython cimport floating

cdef extern from "fastrnn_gemm.h" nogil:
    int FR_PANEL_F32
    int FR_PANEL_F64
    int FR_CLASSES
    int fr_gemm_class()
    void fr_gemm_set_class(int c)
    const char* fr_gemm_machine()
    const char* fr_gemm_tile_name()
    void fr_pack_panels_f32(int N, int K, const float* W, long sn, long sk, float* Wp)
    void fr_pack_panels_f64(int N, int K, const double* W, long sn, long sk, double* Wp)
    void fr_pack_rows_f32(int n0, int n1, int K, const float* W, long ldw, float* Wp,
                          long kpanel)
    void fr_pack_rows_f64(int n0, int n1, int K, const double* W, long ldw, double* Wp,
                          long kpanel)
    void fr_rowdot_f32(int N, int K, const float* W, int ldw, const float* x, float* y,
                       int accumulate)
    void fr_rowdot_f64(int N, int K, const double* W, int ldw, const double* x, double* y,
                       int accumulate)
    void fr_packed_gemm_f32(int M, int n0, int n1, int K, const float* A, long sam, long sak,
                            const float* Wp, int kpanel, float* C, long scm, long scn,
                            int accumulate, const float* bias)
    void fr_packed_gemm_f64(int M, int n0, int n1, int K, const double* A, long sam,
                            long sak, const double* Wp, int kpanel, double* C, long scm,
                            long scn, int accumulate, const double* bias)
    void fr_packed_gemm_pair_f32(int M, int K, const float* A, long sak, const float* Wp1,
                                 int n1, float* C1, long ldc1, const float* Wp2, int n2,
                                 float* C2, long ldc2, int kpanel, int accumulate)
    void fr_packed_gemm_pair_f64(int M, int K, const double* A, long sak, const double* Wp1,
                                 int n1, double* C1, long ldc1, const double* Wp2, int n2,
                                 double* C2, long ldc2, int kpanel, int accumulate)
    void fr_packed_gemv_blocks_f32(int K, const float* x, const float* Wp, int kpanel,
                                   int nblocks, int ldb, int j0, int j1, float* y,
                                   int accumulate)
    void fr_packed_gemv_blocks_f64(int K, const double* x, const double* Wp, int kpanel,
                                   int nblocks, int ldb, int j0, int j1, double* y,
                                   int accumulate)
    void fr_rnn_gemv_step_f32(int K, const float* h_prev, const float* Wp, int kpanel,
                              int j0, int j1, float* pre, float* h, int relu)
    void fr_rnn_gemv_step_f64(int K, const double* h_prev, const double* Wp, int kpanel,
                              int j0, int j1, double* pre, double* h, int relu)


cdef inline int panel_width(const floating* dummy) noexcept nogil:
    return FR_PANEL_F32 if floating is float else FR_PANEL_F64


cdef inline void pack_panels(int N, int K, const floating* W, long sn, long sk,
                             floating* Wp) noexcept nogil:
    """Wp = W (N x K, element (n, k) at W[n*sn + k*sk]) in panels of output columns."""
    if floating is float:
        fr_pack_panels_f32(N, K, W, sn, sk, Wp)
    else:
        fr_pack_panels_f64(N, K, W, sn, sk, Wp)


cdef inline void pack_rows(int n0, int n1, int K, const floating* W, long ldw, floating* Wp,
                           long kpanel) noexcept nogil:
    """Columns [n0, n1) of the K x N row-major W into Wp's panels of kpanel rows, row k
    of W into row k of each (n0 on a panel boundary; see gemm_impl.h)."""
    if floating is float:
        fr_pack_rows_f32(n0, n1, K, W, ldw, Wp, kpanel)
    else:
        fr_pack_rows_f64(n0, n1, K, W, ldw, Wp, kpanel)


cdef inline void packed_gemm_ex(int M, int n0, int n1, int K, const floating* A, long sam,
                                long sak, const floating* Wp, int kpanel, floating* C,
                                long scm, long scn, bint accumulate) noexcept nogil:
    """C[m, n] (+)= sum_k A[m, k] W[n, k] for n in [n0, n1), any strides (see gemm_impl.h)."""
    if floating is float:
        fr_packed_gemm_f32(M, n0, n1, K, A, sam, sak, Wp, kpanel, C, scm, scn, accumulate, NULL)
    else:
        fr_packed_gemm_f64(M, n0, n1, K, A, sam, sak, Wp, kpanel, C, scm, scn, accumulate, NULL)


cdef inline void packed_gemm_pair(int M, int K, const floating* A, long sak,
                                  const floating* Wp1, int n1, floating* C1, long ldc1,
                                  const floating* Wp2, int n2, floating* C2, long ldc2,
                                  int kpanel, bint accumulate) noexcept nogil:
    """C1 (+)= A W1^T and C2 (+)= A W2^T, A's element (m, k) at A[k*sak + m] (given
    transposed), C1 and C2 row-major: two packed_gemm_ex calls' results, with A's
    blocks read once for both (see gemm_impl.h)."""
    if floating is float:
        fr_packed_gemm_pair_f32(M, K, A, sak, Wp1, n1, C1, ldc1, Wp2, n2, C2, ldc2, kpanel,
                                accumulate)
    else:
        fr_packed_gemm_pair_f64(M, K, A, sak, Wp1, n1, C1, ldc1, Wp2, n2, C2, ldc2, kpanel,
                                accumulate)


cdef inline void packed_gemm_bias(int M, int n0, int n1, int K, const floating* A, int lda,
                                  const floating* Wp, int kpanel, const floating* bias,
                                  floating* C, int ldc) noexcept nogil:
    """C[m, n] = bias[n] + sum_k A[m, k] W[n, k] for n in [n0, n1), row-major A and C:
    the bias written with the products' first sums rather than in a pass of its own."""
    if floating is float:
        fr_packed_gemm_f32(M, n0, n1, K, A, lda, 1, Wp, kpanel, C, ldc, 1, False, bias)
    else:
        fr_packed_gemm_f64(M, n0, n1, K, A, lda, 1, Wp, kpanel, C, ldc, 1, False, bias)


cdef inline void packed_gemm(int M, int N, int K, const floating* A, int lda,
                             const floating* Wp, int kpanel, floating* C, int ldc,
                             bint accumulate) noexcept nogil:
    """C[M, N] (+)= A[M, K] @ W^T, row-major A and C, W packed with kpanel rows."""
    packed_gemm_ex(M, 0, N, K, A, lda, 1, Wp, kpanel, C, ldc, 1, accumulate)


cdef inline void packed_gemv_blocks(int K, const floating* x, const floating* Wp, int kpanel,
                                    int nblocks, int ldb, int j0, int j1, floating* y,
                                    bint accumulate) noexcept nogil:
    """y[q*ldb + j] (+)= x[:K] . W[q*ldb + j, :K] for j in [j0, j1) of each block q <
    nblocks: one sequence's share of every gate block (see gemm_impl.h)."""
    if floating is float:
        fr_packed_gemv_blocks_f32(K, x, Wp, kpanel, nblocks, ldb, j0, j1, y, accumulate)
    else:
        fr_packed_gemv_blocks_f64(K, x, Wp, kpanel, nblocks, ldb, j0, j1, y, accumulate)


cdef inline void packed_gemm_blocks(int M, int K, const floating* A, int lda,
                                    const floating* Wp, int kpanel, int nblocks, int ldb,
                                    int j0, int j1, floating* C, int ldc,
                                    bint accumulate) noexcept nogil:
    """C[m, q*ldb + j] (+)= A[m, :K] . W[q*ldb + j, :K] for m < M and j in [j0, j1) of
    each block q < nblocks: a batch's share of every gate block, as packed_gemv_blocks
    for one row.  The sums are packed_gemm's, whatever the row count."""
    cdef int q
    if M == 1:
        packed_gemv_blocks(K, A, Wp, kpanel, nblocks, ldb, j0, j1, C, accumulate)
        return
    for q in range(nblocks):
        packed_gemm_ex(M, q * ldb + j0, q * ldb + j1, K, A, lda, 1, Wp, kpanel, C, ldc, 1,
                       accumulate)


# Calls with fewer rows (T * B) than this multiply straight from the
# row-major weights instead of packing them first: packing costs about three
# passes over the weights, a product from unpacked weights one per row.
cdef enum:
    PACK_MIN_ROWS = 4


cdef inline bint worth_packing(int rows) noexcept nogil:
    return rows >= PACK_MIN_ROWS


# The forward kernels' packing argument: where a call's packed weights come
# from.  A layer packs at every call, since its weights may have changed
# since the last; a fastrnn.FrozenLayer packs once and keeps the buffers.
cdef enum:
    PACK_WHEN_WORTH = 0    # pack when the call has PACK_MIN_ROWS rows, else use W as it is
    PACK_NOW = 1           # pack whatever the call's size (the caller keeps the buffers)
    PACKED = 2             # the buffers already hold the weights packed: pack nothing


cdef inline bint uses_packs(int packing, int rows) noexcept nogil:
    """Whether a forward call of rows (T * B) rows multiplies from packed weights."""
    return packing != PACK_WHEN_WORTH or worth_packing(rows)


cdef inline void matmul_nt(bint packed, int M, int N, int K, const floating* A, int lda,
                           const floating* W, const floating* Wp, floating* C, int ldc,
                           bint accumulate) noexcept nogil:
    """C[M, N] (+)= A[M, K] @ W[N, K]^T: from Wp (W packed, K rows per panel) when
    packed, else row by row from W itself (row-major, K columns)."""
    cdef int m
    if packed:
        packed_gemm(M, N, K, A, lda, Wp, K, C, ldc, accumulate)
    elif floating is float:
        for m in range(M):
            fr_rowdot_f32(N, K, W, K, A + <size_t>m * lda, C + <size_t>m * ldc, accumulate)
    else:
        for m in range(M):
            fr_rowdot_f64(N, K, W, K, A + <size_t>m * lda, C + <size_t>m * ldc, accumulate)


cdef inline void rnn_gemv_step(int K, const floating* h_prev, const floating* Wp, int kpanel,
                               int j0, int j1, floating* pre, floating* h,
                               bint relu) noexcept nogil:
    """A single sequence's vanilla RNN step for the hidden units [j0, j1) (j0 on a
    panel boundary), product and activation in one pass:
    pre[j] += W_hh[j] . h_prev, h[j] = act(pre[j])."""
    if floating is float:
        fr_rnn_gemv_step_f32(K, h_prev, Wp, kpanel, j0, j1, pre, h, relu)
    else:
        fr_rnn_gemv_step_f64(K, h_prev, Wp, kpanel, j0, j1, pre, h, relu)
