"""LSTM kernels: one layer and one direction per call, forward over the whole
sequence and backward through time.  The Python layer (fastrnn/lstm.py)
validates and allocates; these trust their arguments.

Per step: gates_t = (x_t W_ih^T + b, hoisted into one GEMM per chunk)
+ h_{t-1} W_hh^T (one BLAS call), then one fused C pass (csrc/cells_impl.h).
"""

from cython cimport floating
from fastrnn._blas cimport mm_nn, mm_nt
from fastrnn._cells cimport lstm_step_bwd, lstm_step_fwd
from fastrnn._seq cimport chunk_bounds, copy_rows, param_grads, project_inputs


def lstm_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[::1] bias,
                 const floating[:, ::1] h0, const floating[:, ::1] c0,
                 floating[:, :, ::1] y, int y_off, floating[:, :, ::1] gates,
                 floating[:, :, ::1] cells, floating[:, ::1] h_n, floating[:, ::1] c_n,
                 bint reverse):
    """Run one direction of an LSTM layer over x (T, B, D).

    Writes h_t into y[t, :, y_off:y_off+H], the last state into h_n, c_n.
    gates (Tc, B, 4H) is the work buffer of Tc time steps; cells is (T, B, H)
    to keep every c_t (training: then Tc == T and gates keeps the
    activations [i f g o]) or (1, B, H) to update c in place (inference).
    bias is b_ih + b_hh.
    """
    cdef int T = x.shape[0], B = x.shape[1], D = x.shape[2]
    cdef int H = w_hh.shape[1], G = 4 * H, ldy = y.shape[2], chunk = gates.shape[0]
    cdef bint keep_cells = cells.shape[0] == T
    cdef int k, s, t, t0, t1, ld_prev = H
    cdef const floating* h_prev = &h0[0, 0]
    cdef const floating* c_prev = &c0[0, 0]
    cdef floating* c
    cdef floating* g
    with nogil:
        for k in range((T + chunk - 1) // chunk):
            chunk_bounds(k, chunk, T, reverse, &t0, &t1)
            project_inputs((t1 - t0) * B, G, D, &x[t0, 0, 0], &w_ih[0, 0], &bias[0],
                           &gates[0, 0, 0], G)
            for s in range(t1 - t0):
                t = t1 - 1 - s if reverse else t0 + s
                g = &gates[t - t0, 0, 0]
                mm_nt(B, G, H, h_prev, ld_prev, &w_hh[0, 0], H, <floating>1, g, G)
                c = &cells[t, 0, 0] if keep_cells else &cells[0, 0, 0]
                lstm_step_fwd(B, H, g, c_prev, c, &y[t, 0, y_off], ldy)
                h_prev = &y[t, 0, y_off]
                ld_prev = ldy
                c_prev = c
        copy_rows(B, H, h_prev, ld_prev, &h_n[0, 0], H)
        copy_rows(B, H, c_prev, H, &c_n[0, 0], H)


def lstm_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                  const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                  const floating[:, ::1] c0, const floating[:, :, ::1] y,
                  const floating[:, :, ::1] dy, int y_off,
                  const floating[:, :, ::1] gates, const floating[:, :, ::1] cells,
                  floating[:, ::1] dh, floating[:, ::1] dc, floating[:, :, ::1] dgates,
                  floating[:, :, ::1] dx, bint dx_accumulate,
                  floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                  floating[::1] db_ih, floating[::1] db_hh, bint reverse):
    """Backward through time of lstm_forward (saved gates and cells of a training run).

    dy[:, :, y_off:y_off+H] is the gradient of this direction's output.
    dh, dc (B, H) hold dh_n, dc_n on entry and dh0, dc0 on return.
    dgates (T, B, 4H) is work.  dx is written (or added to, when
    dx_accumulate); dw_*, db_* are added to.
    """
    cdef int T = x.shape[0], B = x.shape[1], D = x.shape[2]
    cdef int H = w_hh.shape[1], G = 4 * H, ldy = y.shape[2]
    cdef int s, t, step = -1 if reverse else 1   # time runs t - step -> t in forward
    cdef int first = T - 1 if reverse else 0     # the step that started from c0
    cdef const floating* c_prev
    with nogil:
        for s in range(T):
            t = s if reverse else T - 1 - s      # backward visits time against the forward order
            c_prev = &c0[0, 0] if t == first else &cells[t - step, 0, 0]
            lstm_step_bwd(B, H, &gates[t, 0, 0], &cells[t, 0, 0], c_prev,
                          &dy[t, 0, y_off], ldy, &dh[0, 0], &dc[0, 0], &dgates[t, 0, 0])
            # dh_{t-1} = dG_t W_hh
            mm_nn(B, H, G, &dgates[t, 0, 0], G, &w_hh[0, 0], H, <floating>0, &dh[0, 0], H)
        param_grads(T, B, D, H, G, &x[0, 0, 0], &h0[0, 0], &y[0, 0, y_off], ldy,
                    &dgates[0, 0, 0], &dgates[0, 0, 0], G, &w_ih[0, 0],
                    &dx[0, 0, 0], dx_accumulate, &dw_ih[0, 0], &dw_hh[0, 0],
                    &db_ih[0], &db_hh[0], reverse)
