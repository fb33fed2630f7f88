# The forward's weight products, as the time loops ask for them: from the
# weights in float (packed, or as they are for calls too short to pack:
# fastrnn/kernels/packed.pxd), quantized to int8 per output row with the
# activations quantized per row at each product (csrc/fastrnn_q8.h), or rounded
# to bfloat16 with the activations too (csrc/fastrnn_bf16.h).  Which one a call
# runs is its LayerConfig's `weights`; int8 and bfloat16 are for float32
# inference.

from cython cimport floating
from fastrnn.kernels.packed cimport matmul_nt, packed_gemm_bias, packed_gemm_blocks

cdef extern from "fastrnn_q8.h" nogil:
    int FR_Q8_PATHS
    int FR_Q8_MAX_K
    int FR_Q8_NR
    int fr_q8_path()
    int fr_q8_set_path(int path)
    bint fr_q8_supported(int path)
    const char* fr_q8_path_name(int path)
    long fr_q8_pack_bytes(long N, long K)
    void fr_q8_pack_cols(long N, long K, const float* W, long sn, long sk, void* pack,
                         long c0, long c1)
    void fr_q8_gemm(int M, int K, const float* A, long lda, const void* Wq, int N,
                    int nblocks, int ldb, int j0, int j1, float* C, long ldc, int accumulate,
                    const float* bias)

cdef extern from "fastrnn_bf16.h" nogil:
    int FR_BF16_PATHS
    int FR_BF16_MAX_K
    int fr_bf16_path()
    int fr_bf16_set_path(int path)
    bint fr_bf16_supported(int path)
    const char* fr_bf16_path_name(int path)
    bint fr_bf16_sums_in_order(int path)
    long fr_bf16_pack_bytes(long N, long K)
    void fr_bf16_pack_cols(long N, long K, const float* W, long sn, long sk, void* pack,
                           long c0, long c1)
    void fr_bf16_gemm(int M, int K, const float* A, long lda, const void* Wb, int N,
                      int nblocks, int ldb, int j0, int j1, float* C, long ldc,
                      int accumulate, const float* bias)


cdef enum:
    WEIGHTS_FLOAT = 0      # the layer's own dtype
    WEIGHTS_INT8 = 1       # float32 only
    WEIGHTS_BF16 = 2       # float32 only


cdef inline long reduced_pack_bytes(int weights, long N, long K) noexcept nogil:
    """Bytes of the pack of an N x K matrix in int8 or bfloat16."""
    return fr_q8_pack_bytes(N, K) if weights == WEIGHTS_INT8 else fr_bf16_pack_bytes(N, K)


cdef inline void reduced_pack_cols(int weights, long N, long K, const float* W, long sn,
                                   long sk, void* pack, long c0, long c1) noexcept nogil:
    """Columns [c0, c1) of W's int8 or bfloat16 pack (see the headers)."""
    if weights == WEIGHTS_INT8:
        fr_q8_pack_cols(N, K, W, sn, sk, pack, c0, c1)
    else:
        fr_bf16_pack_cols(N, K, W, sn, sk, pack, c0, c1)


cdef inline void reduced_gemm(int weights, int M, int K, const float* A, long lda,
                              const void* Wp, int N, int nblocks, int ldb, int j0, int j1,
                              float* C, long ldc, bint accumulate,
                              const float* bias) noexcept nogil:
    if weights == WEIGHTS_INT8:
        fr_q8_gemm(M, K, A, lda, Wp, N, nblocks, ldb, j0, j1, C, ldc, accumulate, bias)
    else:
        fr_bf16_gemm(M, K, A, lda, Wp, N, nblocks, ldb, j0, j1, C, ldc, accumulate, bias)


cdef inline void weights_product(int weights, bint packed, int M, int N, int K,
                                 const floating* A, int lda, const floating* W,
                                 const void* Wp, floating* C, int ldc,
                                 bint accumulate) noexcept nogil:
    """C[M, N] (+)= A[M, K] @ W[N, K]^T, from W's pack Wp (or from W itself when not
    packed)."""
    if floating is float:
        if weights != WEIGHTS_FLOAT:
            reduced_gemm(weights, M, K, A, lda, Wp, N, 1, N, 0, N, C, ldc, accumulate, NULL)
            return
    matmul_nt(packed, M, N, K, A, lda, W, <const floating*>Wp, C, ldc, accumulate)


cdef inline void weights_product_blocks(int weights, int M, int K, const floating* A, int lda,
                                        const void* Wp, int nblocks, int ldb, int j0, int j1,
                                        floating* C, int ldc, bint accumulate) noexcept nogil:
    """C[m, q*ldb + j] (+)= A[m, :K] . W[q*ldb + j, :K] for m < M, j in [j0, j1) of
    each block q < nblocks (W, nblocks * ldb rows, packed in Wp)."""
    if floating is float:
        if weights != WEIGHTS_FLOAT:
            reduced_gemm(weights, M, K, A, lda, Wp, nblocks * ldb, nblocks, ldb, j0, j1, C,
                         ldc, accumulate, NULL)
            return
    packed_gemm_blocks(M, K, A, lda, <const floating*>Wp, K, nblocks, ldb, j0, j1, C, ldc,
                       accumulate)


cdef inline void weights_product_bias(int weights, int M, int K, const floating* A,
                                      const void* Wp, int nblocks, int ldb, int j0, int j1,
                                      const floating* bias, floating* C,
                                      int ldc) noexcept nogil:
    """C[m, n] = bias[n] + A[m, :K] . W[n, :K] for m < M and n = q*ldb + j, j in
    [j0, j1) of each block q < nblocks (A row-major with K columns; W, nblocks * ldb
    rows, packed in Wp; j0 on a panel boundary)."""
    cdef int q
    if floating is float:
        if weights != WEIGHTS_FLOAT:
            reduced_gemm(weights, M, K, A, K, Wp, nblocks * ldb, nblocks, ldb, j0, j1, C, ldc,
                         False, bias)
            return
    for q in range(nblocks):
        packed_gemm_bias(M, q * ldb + j0, q * ldb + j1, K, A, K, <const floating*>Wp, K, bias,
                         C, ldc)
