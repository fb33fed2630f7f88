"""Vanilla RNN kernels (tanh or relu): one layer and one direction per call,
forward over the whole sequence and backward through time.  The Python
layer (fastrnn/rnn.py) validates and allocates; these trust their arguments.

Per step: pre_t = (x_t W_ih^T + b, hoisted into one GEMM per chunk)
+ h_{t-1} W_hh^T (one BLAS call), then h_t = act(pre_t) in one C pass.
Backward needs only the outputs h_t: tanh' = 1 - h^2, relu' = [h > 0].
"""

from cython cimport floating
from fastrnn._blas cimport mm_nn, mm_nt
from fastrnn._cells cimport rnn_step_bwd, rnn_step_fwd
from fastrnn._seq cimport chunk_bounds, copy_rows, param_grads, project_inputs


def rnn_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                const floating[:, ::1] w_hh, const floating[::1] bias,
                const floating[:, ::1] h0, floating[:, :, ::1] y, int y_off,
                floating[:, :, ::1] pre, floating[:, ::1] h_n, bint relu, bint reverse):
    """Run one direction of an RNN layer over x (T, B, D).

    Writes h_t into y[t, :, y_off:y_off+H] and the last state into h_n.
    pre (Tc, B, H) is the work buffer for Tc time steps; bias is b_ih + b_hh.
    """
    cdef int T = x.shape[0], B = x.shape[1], D = x.shape[2]
    cdef int H = w_hh.shape[1], ldy = y.shape[2], chunk = pre.shape[0]
    cdef int k, s, t, t0, t1, ld_prev = H
    cdef const floating* h_prev = &h0[0, 0]
    cdef floating* p
    with nogil:
        for k in range((T + chunk - 1) // chunk):
            chunk_bounds(k, chunk, T, reverse, &t0, &t1)
            project_inputs((t1 - t0) * B, H, D, &x[t0, 0, 0], &w_ih[0, 0], &bias[0],
                           &pre[0, 0, 0], H)
            for s in range(t1 - t0):
                t = t1 - 1 - s if reverse else t0 + s
                p = &pre[t - t0, 0, 0]
                mm_nt(B, H, H, h_prev, ld_prev, &w_hh[0, 0], H, <floating>1, p, H)
                rnn_step_fwd(B, H, p, &y[t, 0, y_off], ldy, relu)
                h_prev = &y[t, 0, y_off]
                ld_prev = ldy
        copy_rows(B, H, h_prev, ld_prev, &h_n[0, 0], H)


def rnn_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                 const floating[:, :, ::1] y, const floating[:, :, ::1] dy, int y_off,
                 floating[:, ::1] dh, floating[:, :, ::1] dpre,
                 floating[:, :, ::1] dx, bint dx_accumulate,
                 floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                 floating[::1] db_ih, floating[::1] db_hh, bint relu, bint reverse):
    """Backward through time of rnn_forward.

    dy[:, :, y_off:y_off+H] is the gradient of this direction's output;
    dh (B, H) holds dh_n on entry and dh0 on return; dpre (T, B, H) is work.
    dx is written (or added to, when dx_accumulate); dw_*, db_* are added to.
    """
    cdef int T = x.shape[0], B = x.shape[1], D = x.shape[2]
    cdef int H = w_hh.shape[1], ldy = y.shape[2]
    cdef int s, t
    with nogil:
        for s in range(T):
            t = s if reverse else T - 1 - s      # backward visits time against the forward order
            rnn_step_bwd(B, H, &y[t, 0, y_off], ldy, &dy[t, 0, y_off], ldy, &dh[0, 0],
                         &dpre[t, 0, 0], relu)
            # dh_{t-1} = dpre_t W_hh
            mm_nn(B, H, H, &dpre[t, 0, 0], H, &w_hh[0, 0], H, <floating>0, &dh[0, 0], H)
        param_grads(T, B, D, H, H, &x[0, 0, 0], &h0[0, 0], &y[0, 0, y_off], ldy,
                    &dpre[0, 0, 0], &dpre[0, 0, 0], H, &w_ih[0, 0],
                    &dx[0, 0, 0], dx_accumulate, &dw_ih[0, 0], &dw_hh[0, 0],
                    &db_ih[0], &db_hh[0], reverse)
