"""Linear (dense) layer forward and backward on fastrnn's packed GEMM (kernels/packed.pxd).

    forward:   Y = X W^T + b                         (M rows, W is N x K)
    backward:  dX = dY W,  dW += dY^T X,  db += sum_m dY[m]
    xent_step: the two with softmax cross-entropy between them, dY = dlogits
               formed in place of the logits (forward_xent_backward)

Every output element sums in a fixed order, and the threads split whole
panels of output columns or whole rows, so results never depend on the
thread count.  The Python side (fastrnn.layers.linear) validates and
allocates every array, packed buffers included (sizes: pack_size).
"""

from cython cimport floating
from libc.stdint cimport int64_t

from fastrnn.kernels.packed cimport (FR_PANEL_F32, FR_PANEL_F64, matmul_nt, pack_panels,
                                     packed_gemm, packed_gemm_bias, packed_gemm_ex,
                                     worth_packing)
from fastrnn.kernels.cells cimport colsum_add
from fastrnn.kernels.threads cimport barrier_wait, fr_barrier, run_parallel, split_range


cdef extern from "fastrnn_xent.h" nogil:
    double fr_xent_row_f32(int V, const float* z, int t, float scale, float* g)
    double fr_xent_row_f64(int V, const double* z, int t, double scale, double* g)
    double fr_xent_row_loss_f32(int V, const float* z, int t, float scale)
    double fr_xent_row_loss_f64(int V, const double* z, int t, double scale)


# Columns of dY per block of the weight gradient: a block (T*B x 128) stays in
# L2 between its product and its column sums.
cdef enum:
    DW_BLOCK = 128


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
    cdef int k0, k1, m0, m1
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
    # 3. dW += dY^T X, db += column sums of dY
    weight_grads(j.M, j.N, j.K, dy, xtp, dw, db, tid, nthreads)


cdef void weight_grads(int M, int N, int K, const floating* dy, const floating* xtp,
                       floating* dw, floating* db, int tid, int nthreads) noexcept nogil:
    """dW += dY^T X on this task's rows of dW (xtp: X^T packed), in blocks of DW_BLOCK
    columns of dY, each read in place as the rows of the left operand (strides 1 and
    N), then its column sums to db (NULL: no bias).  Each element sums the rows in
    order, whatever the threads."""
    cdef int c, c0, c1, n0, n1
    split_range((N + DW_BLOCK - 1) // DW_BLOCK, tid, nthreads, &n0, &n1)
    for c in range(n0, n1):
        c0 = c * DW_BLOCK
        c1 = c0 + DW_BLOCK if c0 + DW_BLOCK < N else N
        packed_gemm_ex(c1 - c0, 0, K, M, dy + c0, 1, N, xtp, M, dw + <size_t>c0 * K, K, 1,
                       True)
        if db != NULL:
            colsum_add(M, c1 - c0, dy + c0, N, db + c0)


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
             floating[::1] wtp, floating[::1] xtp, int nthreads):
    """dx = dy w (dx with no rows: not wanted), dw += dy^T x, db += column sums of dy
    (db with no elements: no bias); wtp: pack_size(K, N), xtp: pack_size(K, M)."""
    cdef Job j
    j.M, j.K, j.N = <int>x.shape[0], <int>x.shape[1], <int>w.shape[0]
    if j.M == 0:
        return
    j.f64 = floating is double
    j.x, j.w, j.dy = &x[0, 0], &w[0, 0], &dy[0, 0]
    j.dx = &dx[0, 0] if dx.shape[0] > 0 else NULL
    j.wp = &wtp[0] if dx.shape[0] > 0 else NULL
    j.xp, j.dw = &xtp[0], &dw[0, 0]
    j.db = &db[0] if db.shape[0] > 0 else NULL
    with nogil:
        run_parallel(nthreads, backward_task, &j, &j.barrier)



cdef struct XentStep:
    int M, N, K
    int block_rows       # rows per block of the row pass
    bint f64
    const void* x        # M x K
    const void* w        # N x K
    const void* b        # N, NULL without bias
    const int64_t* targets
    const double* scale
    double* nll          # M
    void* g              # M x N: the logits, then their gradient
    void* wp             # W packed (panels of N)
    void* wtp            # W^T packed (panels of K)
    void* xtp            # X^T packed (panels of K)
    void* dx             # M x K
    void* dw             # N x K, accumulated
    void* db             # N, accumulated; NULL without bias
    fr_barrier barrier


cdef void xent_step_part(XentStep* j, const floating* x, const floating* w, const floating* b,
                         floating* g, floating* wp, floating* wtp, floating* xtp,
                         floating* dx, floating* dw, floating* db, int tid,
                         int nthreads) noexcept nogil:
    cdef int nr = FR_PANEL_F32 if floating is float else FR_PANEL_F64
    cdef int n0, n1, k0, k1, m0, m1, r0, r1, r
    cdef size_t K = j.K, N = j.N, M = j.M
    cdef floating* gb
    cdef floating* z
    # 1. pack W (panels of the logits' columns), W^T (of dX's) and X^T (of dW's),
    #    each task its share; then wait for all of them
    panel_range(j.N, nr, tid, nthreads, &n0, &n1)
    if n1 > n0:
        pack_panels(n1 - n0, j.K, w + n0 * K, j.K, 1, wp + n0 * K)
    panel_range(j.K, nr, tid, nthreads, &k0, &k1)
    if k1 > k0 and dx != NULL:
        pack_panels(k1 - k0, j.N, w + k0, 1, j.K, wtp + <size_t>k0 * N)
        pack_panels(k1 - k0, j.M, x + k0, 1, j.K, xtp + <size_t>k0 * M)
    barrier_wait(&j.barrier)
    # 2. this task's rows, a block at a time: logits = x W^T + b, then each row's
    #    loss and gradient in place, then dX = G W while the block is in cache
    #    (the loss alone: each task's blocks reuse its own block_rows x N of g, which
    #    stays in cache, and the rows' passes write nothing)
    split_range(j.M, tid, nthreads, &m0, &m1)
    r0 = m0
    while r0 < m1:
        r1 = r0 + j.block_rows if r0 + j.block_rows < m1 else m1
        gb = g + r0 * N if dx != NULL else g + <size_t>tid * j.block_rows * N
        if b != NULL:
            packed_gemm_bias(r1 - r0, 0, j.N, j.K, x + r0 * K, j.K, wp, j.K, b, gb, j.N)
        else:
            packed_gemm_ex(r1 - r0, 0, j.N, j.K, x + r0 * K, j.K, 1, wp, j.K, gb, j.N, 1,
                           False)
        for r in range(r0, r1):
            z = gb + (r - r0) * N
            if floating is float:
                if dx == NULL:
                    j.nll[r] = fr_xent_row_loss_f32(j.N, z, <int>j.targets[r],
                                                    <float>j.scale[r])
                else:
                    j.nll[r] = fr_xent_row_f32(j.N, z, <int>j.targets[r], <float>j.scale[r], z)
            else:
                if dx == NULL:
                    j.nll[r] = fr_xent_row_loss_f64(j.N, z, <int>j.targets[r], j.scale[r])
                else:
                    j.nll[r] = fr_xent_row_f64(j.N, z, <int>j.targets[r], j.scale[r], z)
        if dx != NULL:
            packed_gemm(r1 - r0, j.K, j.N, gb, j.N, wtp, j.N, dx + r0 * K, j.K, False)
        r0 = r1
    if dx == NULL:       # the loss only
        return
    barrier_wait(&j.barrier)
    # 3. bad logits anywhere (a NaN loss): leave the parameter gradients as they are
    for r in range(j.M):
        if j.nll[r] != j.nll[r]:
            return
    weight_grads(j.M, j.N, j.K, g, xtp, dw, db, tid, nthreads)


cdef void xent_step_task(void* ctx, int tid, int nthreads) noexcept nogil:
    cdef XentStep* j = <XentStep*>ctx
    if j.f64:
        xent_step_part(j, <const double*>j.x, <const double*>j.w, <const double*>j.b,
                       <double*>j.g, <double*>j.wp, <double*>j.wtp, <double*>j.xtp,
                       <double*>j.dx, <double*>j.dw, <double*>j.db, tid, nthreads)
    else:
        xent_step_part(j, <const float*>j.x, <const float*>j.w, <const float*>j.b,
                       <float*>j.g, <float*>j.wp, <float*>j.wtp, <float*>j.xtp,
                       <float*>j.dx, <float*>j.dw, <float*>j.db, tid, nthreads)


def forward_xent_backward(const floating[:, ::1] x, const floating[:, ::1] w,
                          const floating[::1] b, const int64_t[::1] targets,
                          const double[::1] scale, floating[:, ::1] g, double[::1] nll,
                          floating[:, ::1] dx, floating[:, ::1] dw, floating[::1] db,
                          floating[::1] wp, floating[::1] wtp, floating[::1] xtp,
                          int block_rows, int nthreads):
    """A Linear output layer with softmax cross-entropy, forward and backward in one job:

        g = x w^T + b;  per row n: nll[n] = log sum exp(g_n) - g_n[t_n],
        g_n <- scale[n] * (softmax(g_n) - onehot(t_n));
        dx = g w,  dw += g^T x,  db += column sums of g   (db empty: no bias)

    each as kernels.xent.cross_entropy and backward() compute them.  dw and db
    are left unchanged when a loss is NaN (bad logits).  With dx of no rows,
    only the losses (g is then each task's work space, nthreads * block_rows rows;
    wtp, xtp, dw, db unused).  Each task takes its
    rows block_rows (>= 1) at a time: a block's logits are formed, turned into
    their gradient and multiplied into dx while they are in cache, and the
    packed W and W^T are read once per block.  wp: pack_size(N, K),
    wtp: pack_size(K, N), xtp: pack_size(K, M)."""
    cdef XentStep j
    j.M, j.K, j.N = <int>x.shape[0], <int>x.shape[1], <int>w.shape[0]
    if j.M == 0:
        return
    j.f64 = floating is double
    j.block_rows = block_rows if block_rows > 0 else 1
    if dx.shape[0] == 0 and g.shape[0] < <long>nthreads * j.block_rows:
        raise ValueError(f"g: the loss alone needs nthreads * block_rows = "
                         f"{nthreads * j.block_rows} rows of work space, got {g.shape[0]}")
    if dx.shape[0] > 0 and g.shape[0] < j.M:
        raise ValueError(f"g: expected {j.M} rows, got {g.shape[0]}")
    j.x, j.w, j.g, j.wp = &x[0, 0], &w[0, 0], &g[0, 0], &wp[0]
    j.b = &b[0] if b.shape[0] > 0 else NULL
    j.targets, j.scale, j.nll = &targets[0], &scale[0], &nll[0]
    j.dx = j.dw = j.db = j.wtp = j.xtp = NULL
    if dx.shape[0] > 0:
        j.dx, j.dw, j.wtp, j.xtp = &dx[0, 0], &dw[0, 0], &wtp[0], &xtp[0]
        j.db = &db[0] if b.shape[0] > 0 else NULL
    with nogil:
        run_parallel(nthreads, xent_step_task, &j, &j.barrier)
