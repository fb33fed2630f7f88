# Sequence-level pieces shared by every cell's kernels: the hoisted input
# projection before the time loop and the weight-gradient GEMMs after it.
# Pointers are to the first element of row-major blocks; ld* are row strides.

from cython cimport floating
from fastrnn._blas cimport mm_nn, mm_nt, mm_tn
from fastrnn._cells cimport colsum_add, fill_rows


cdef inline void project_inputs(int rows, int G, int D, const floating* x,
                                const floating* w_ih, const floating* bias,
                                floating* out, int ldo) noexcept nogil:
    """out[:rows, :G] = x[:rows] @ w_ih^T + bias, all time steps of a chunk in one GEMM."""
    fill_rows(rows, G, bias, out, ldo)
    mm_nt(rows, G, D, x, D, w_ih, D, <floating>1, out, ldo)


cdef inline void copy_rows(int rows, int cols, const floating* src, int lds,
                           floating* dst, int ldd) noexcept nogil:
    """dst[:rows, :cols] = src[:rows, :cols]."""
    cdef int b, j
    for b in range(rows):
        for j in range(cols):
            dst[<size_t>b * ldd + j] = src[<size_t>b * lds + j]


cdef inline void chunk_bounds(int k, int chunk, int T, bint reverse,
                              int* t0, int* t1) noexcept nogil:
    """Time steps [t0, t1) of the k-th chunk in processing order (from the end when reverse)."""
    if reverse:
        t1[0] = T - k * chunk
        t0[0] = t1[0] - chunk if t1[0] > chunk else 0
    else:
        t0[0] = k * chunk
        t1[0] = t0[0] + chunk if t0[0] + chunk < T else T


cdef inline void param_grads(int T, int B, int D, int H, int G,
                             const floating* x, const floating* h0,
                             const floating* y, int ldy,
                             const floating* dgi, const floating* dgh, int ldg,
                             const floating* w_ih, floating* dx, bint dx_accumulate,
                             floating* dw_ih, floating* dw_hh,
                             floating* db_ih, floating* db_hh, bint reverse) noexcept nogil:
    """Gradients that need no time loop, each one GEMM with K = T*B:

    dW_ih += dGi^T X,  dW_hh += dGh^T H_prev,  dX (+)= dGi W_ih,
    db_ih += sum_rows dGi,  db_hh += sum_rows dGh.

    dgi/dgh are the input- and hidden-side gate gradients (the same array
    except for GRU); H_prev is the direction's output y shifted by one step
    in its direction of time, with h0 at the first step.
    """
    cdef int TB = T * B
    cdef int first = T - 1 if reverse else 0   # the step whose h_prev is h0
    mm_tn(G, D, TB, dgi, ldg, x, D, <floating>1, dw_ih, D)
    if T > 1:
        if reverse:      # step t saw h_{t+1}: rows 0..T-2 of dG against y[1:]
            mm_tn(G, H, (T - 1) * B, dgh, ldg, y + <size_t>B * ldy, ldy, <floating>1, dw_hh, H)
        else:            # step t saw h_{t-1}: rows 1..T-1 of dG against y[:-1]
            mm_tn(G, H, (T - 1) * B, dgh + <size_t>B * ldg, ldg, y, ldy, <floating>1, dw_hh, H)
    mm_tn(G, H, B, dgh + <size_t>first * B * ldg, ldg, h0, H, <floating>1, dw_hh, H)
    mm_nn(TB, D, G, dgi, ldg, w_ih, D, <floating>(1 if dx_accumulate else 0), dx, D)
    colsum_add(TB, G, dgi, ldg, db_ih)
    colsum_add(TB, G, dgh, ldg, db_hh)
