# The one place fastrnn reaches BLAS (scipy.linalg.cython_blas, Fortran,
# column-major).  Kernels think in row-major matrices; these inline helpers
# translate, so no kernel spells out a transposition trick itself.
#
# A row-major matrix A[M, K] with row stride lda is, to Fortran, the
# column-major matrix A^T (K x M) with leading dimension lda.
#
# Single-row products (M == 1, the batch-1 latency case) go to GEMV: OpenBLAS
# re-packs the weight matrix on every GEMM call, which for one row costs more
# than the product itself.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void _gemm(char ta, char tb, int m, int n, int k, floating alpha,
                       const floating* a, int lda, const floating* b, int ldb,
                       floating beta, floating* c, int ldc) noexcept nogil:
    if floating is float:
        sgemm(&ta, &tb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb, &beta, c, &ldc)


cdef inline void _gemv(char ta, int m, int n, floating alpha, const floating* a, int lda,
                       const floating* x, floating beta, floating* y) noexcept nogil:
    cdef int one = 1
    if floating is float:
        sgemv(&ta, &m, &n, &alpha, <float*>a, &lda, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&ta, &m, &n, &alpha, <double*>a, &lda, <double*>x, &one, &beta, y, &one)


cdef inline void mm_nt(int M, int N, int K, const floating* A, int lda,
                       const floating* B, int ldb, floating beta,
                       floating* C, int ldc) noexcept nogil:
    """C[M, N] = A[M, K] @ B[N, K]^T + beta * C   (row-major)."""
    if M == 1:
        _gemv(c'T', K, N, <floating>1, B, ldb, A, beta, C)
    else:
        _gemm(c'T', c'N', N, M, K, <floating>1, B, ldb, A, lda, beta, C, ldc)


cdef inline void mm_nn(int M, int N, int K, const floating* A, int lda,
                       const floating* B, int ldb, floating beta,
                       floating* C, int ldc) noexcept nogil:
    """C[M, N] = A[M, K] @ B[K, N] + beta * C   (row-major)."""
    if M == 1:
        _gemv(c'N', N, K, <floating>1, B, ldb, A, beta, C)
    else:
        _gemm(c'N', c'N', N, M, K, <floating>1, B, ldb, A, lda, beta, C, ldc)


cdef inline void mm_tn(int M, int N, int K, const floating* A, int lda,
                       const floating* B, int ldb, floating beta,
                       floating* C, int ldc) noexcept nogil:
    """C[M, N] = A[K, M]^T @ B[K, N] + beta * C   (row-major)."""
    _gemm(c'N', c'T', N, M, K, <floating>1, B, ldb, A, lda, beta, C, ldc)
