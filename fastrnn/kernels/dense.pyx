"""Linear (dense) layer forward and backward on fastrnn's packed GEMM (kernels/packed.pxd).

    forward:   Y = X W^T + b                         (M rows, W is N x K)
    backward:  dX = dY W,  dW += dY^T X,  db += sum_m dY[m]

Every output element sums in a fixed order, and the threads split whole
panels of output columns or whole rows, so results never depend on the
thread count.  The Python side (fastrnn.layers.linear) validates and
allocates every array, packed buffers included (sizes: pack_size).
"""

from cython cimport floating

from fastrnn.kernels.packed cimport (FR_PANEL_F32, FR_PANEL_F64, matmul_nt, pack_panels,
                                     packed_gemm, packed_gemm_bias, packed_gemm_ex,
                                     transpose, worth_packing)
from fastrnn.kernels.threads cimport barrier_wait, fr_barrier, run_parallel, split_range


# Columns of dY per block of the weight gradient: a block of dY^T (128 x T*B)
# stays in L2 between its transpose, its product and its column sums.
cdef enum:
    DW_BLOCK = 128


def dw_work_size(int M, int nthreads):
    """Elements of backward()'s dyT work buffer for M rows and nthreads threads."""
    return <long>DW_BLOCK * M * max(1, nthreads)


def panel(itemsize):
    """Output columns per packed panel for elements of itemsize bytes."""
    return FR_PANEL_F32 if itemsize == 4 else FR_PANEL_F64


def pack_size(int N, int K, int itemsize):
    """Elements of the buffer that holds an N x K operand packed (panels zero-padded)."""
    cdef long nr = panel(itemsize)
    return (N + nr - 1) // nr * nr * K


def packs_forward(int M):
    """Whether forward() with M rows multiplies from packed weights (else straight from W)."""
    return worth_packing(M)


cdef struct Job:
    int M, N, K
    bint f64, has_bias, pack, packed
    const void* x      # M x K
    const void* w      # N x K
    const void* b      # N
    void* y            # M x N (forward)
    const void* dy     # M x N (backward)
    void* wp           # packed W (forward), packed W^T (backward)
    void* xp           # packed X^T (backward)
    void* dx           # M x K, NULL: not wanted
    void* dw           # N x K, accumulated
    void* dyT          # backward's blocks of dY^T, DW_BLOCK x M per task
    void* db           # N, accumulated; NULL without bias
    fr_barrier barrier


cdef void panel_range(int n, int nr, int tid, int nthreads, int* lo, int* hi) noexcept nogil:
    """Columns [lo, hi) of n: task tid's share of whole panels of nr columns."""
    cdef int p0, p1
    split_range((n + nr - 1) // nr, tid, nthreads, &p0, &p1)
    lo[0] = p0 * nr
    hi[0] = p1 * nr if p1 * nr < n else n


cdef void forward_part(Job* j, const floating* x, const floating* w, const floating* b,
                       floating* y, floating* wp, int tid, int nthreads) noexcept nogil:
    cdef int nr = FR_PANEL_F32 if floating is float else FR_PANEL_F64
    cdef int n0, n1, m, n
    cdef size_t K = j.K, N = j.N
    panel_range(j.N, nr, tid, nthreads, &n0, &n1)
    if n1 <= n0:
        return
    if not j.pack:        # too few rows to repay packing: row dot products from W
        matmul_nt(False, j.M, n1 - n0, j.K, x, j.K, w + n0 * K, NULL, y + n0, j.N, False)
        if j.has_bias:
            for m in range(j.M):
                for n in range(n0, n1):
                    y[m * N + n] += b[n]
        return
    # each task packs the panels it multiplies by: no barrier needed
    if not j.packed:
        pack_panels(n1 - n0, j.K, w + n0 * K, j.K, 1, wp + n0 * K)
    if j.has_bias:
        packed_gemm_bias(j.M, n0, n1, j.K, x, j.K, wp, j.K, b, y, j.N)
    else:
        packed_gemm_ex(j.M, n0, n1, j.K, x, j.K, 1, wp, j.K, y, j.N, 1, False)


cdef void forward_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef Job* j = <Job*>ctx
    if j.f64:
        forward_part(j, <const double*>j.x, <const double*>j.w, <const double*>j.b,
                     <double*>j.y, <double*>j.wp, tid, nthreads)
    else:
        forward_part(j, <const float*>j.x, <const float*>j.w, <const float*>j.b,
                     <float*>j.y, <float*>j.wp, tid, nthreads)


cdef void backward_part(Job* j, const floating* x, const floating* w, const floating* dy,
                        floating* wtp, floating* xtp, floating* dx, floating* dw,
                        floating* db, int tid, int nthreads) noexcept nogil:
    cdef int nr = FR_PANEL_F32 if floating is float else FR_PANEL_F64
    cdef int k0, k1, m0, m1, n0, n1, m, n, c
    cdef size_t K = j.K, N = j.N, M = j.M
    # 1. pack W^T (K x N: panels of dX's columns) and X^T (K x M: panels of dW's
    #    columns), each task its own panels; then wait for all of them
    panel_range(j.K, nr, tid, nthreads, &k0, &k1)
    if k1 > k0:
        if dx != NULL:
            pack_panels(k1 - k0, j.N, w + k0, 1, j.K, wtp + <size_t>k0 * N)
        pack_panels(k1 - k0, j.M, x + k0, 1, j.K, xtp + <size_t>k0 * M)
    barrier_wait(&j.barrier)
    # 2. dX = dY W on this task's rows
    if dx != NULL:
        split_range(j.M, tid, nthreads, &m0, &m1)
        if m1 > m0:
            packed_gemm(m1 - m0, j.K, j.N, dy + m0 * N, j.N, wtp, j.N, dx + m0 * K, j.K, False)
    # 3. dW += dY^T X on this task's rows of dW, in blocks of DW_BLOCK columns of dY:
    #    each block transposed into the task's own buffer (so the product reads it
    #    row by row), multiplied while it is in cache, then its column sums to db
    cdef floating* dyT = <floating*>j.dyT + <size_t>tid * DW_BLOCK * M
    cdef int c0, c1
    split_range((j.N + DW_BLOCK - 1) // DW_BLOCK, tid, nthreads, &n0, &n1)
    for c in range(n0, n1):
        c0 = c * DW_BLOCK
        c1 = c0 + DW_BLOCK if c0 + DW_BLOCK < j.N else j.N
        transpose(j.M, c1 - c0, dy + c0, j.N, dyT, j.M)
        packed_gemm(c1 - c0, j.K, j.M, dyT, j.M, xtp, j.M, dw + <size_t>c0 * K, j.K, True)
        if db != NULL:
            for m in range(j.M):
                for n in range(c0, c1):
                    db[n] += dy[m * N + n]


cdef void backward_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef Job* j = <Job*>ctx
    if j.f64:
        backward_part(j, <const double*>j.x, <const double*>j.w, <const double*>j.dy,
                      <double*>j.wp, <double*>j.xp, <double*>j.dx, <double*>j.dw,
                      <double*>j.db, tid, nthreads)
    else:
        backward_part(j, <const float*>j.x, <const float*>j.w, <const float*>j.dy,
                      <float*>j.wp, <float*>j.xp, <float*>j.dx, <float*>j.dw,
                      <float*>j.db, tid, nthreads)


def forward(const floating[:, ::1] x, const floating[:, ::1] w, const floating[::1] b,
            floating[:, ::1] y, floating[::1] wp, int nthreads, bint packed=False):
    """y = x w^T (+ b when b has elements); wp: pack_size(N, K) work elements,
    used when packs_forward(M): packed says it holds w packed already (kept)."""
    cdef Job j
    j.M, j.K, j.N = <int>x.shape[0], <int>x.shape[1], <int>w.shape[0]
    if j.M == 0:
        return
    j.f64 = floating is double
    j.has_bias = b.shape[0] > 0
    j.pack = worth_packing(j.M)
    j.packed = packed
    j.x, j.w, j.y = &x[0, 0], &w[0, 0], &y[0, 0]
    j.b = &b[0] if j.has_bias else NULL
    j.wp = &wp[0] if j.pack else NULL
    with nogil:
        run_parallel(nthreads, forward_task, &j, &j.barrier)


def backward(const floating[:, ::1] x, const floating[:, ::1] w, const floating[:, ::1] dy,
             floating[:, ::1] dx, floating[:, ::1] dw, floating[::1] db,
             floating[::1] wtp, floating[::1] xtp, floating[::1] dyT, int nthreads):
    """dx = dy w (dx with no rows: not wanted), dw += dy^T x, db += column sums of dy
    (db with no elements: no bias); wtp: pack_size(K, N), xtp: pack_size(K, M),
    dyT: dw_work_size(M, nthreads) elements."""
    cdef Job j
    j.M, j.K, j.N = <int>x.shape[0], <int>x.shape[1], <int>w.shape[0]
    if j.M == 0:
        return
    j.f64 = floating is double
    j.x, j.w, j.dy = &x[0, 0], &w[0, 0], &dy[0, 0]
    j.dx = &dx[0, 0] if dx.shape[0] > 0 else NULL
    j.wp = &wtp[0] if dx.shape[0] > 0 else NULL
    j.xp, j.dw, j.dyT = &xtp[0], &dw[0, 0], &dyT[0]
    j.db = &db[0] if db.shape[0] > 0 else NULL
    with nogil:
        run_parallel(nthreads, backward_task, &j, &j.barrier)
