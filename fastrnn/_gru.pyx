"""GRU kernels (torch's formulation, reset gate applied to W_hn h + b_hn):
one layer and one direction per call, forward over the whole sequence and
backward through time.  The Python layer (fastrnn/gru.py) validates and
allocates; these trust their arguments.

Per step: the input side [x_r x_z x_n] comes from one GEMM per chunk
(biases b_ir+b_hr, b_iz+b_hz, b_in folded in); gh = h_{t-1} W_hh^T is one BLAS
call; one fused C pass forms r, z, n and h.  b_hn stays apart because r
multiplies it.
"""

from cython cimport floating
from fastrnn._blas cimport mm_nn, mm_nt
from fastrnn._cells cimport gru_step_bwd, gru_step_fwd
from fastrnn._seq cimport chunk_bounds, copy_rows, param_grads, project_inputs


def gru_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                const floating[:, ::1] w_hh, const floating[::1] bias_x,
                const floating[::1] b_hn, const floating[:, ::1] h0,
                floating[:, :, ::1] y, int y_off, floating[:, :, ::1] gates,
                floating[:, ::1] gh, floating[:, ::1] h_n, bint reverse):
    """Run one direction of a GRU layer over x (T, B, D).

    Writes h_t into y[t, :, y_off:y_off+H] and the last state into h_n.
    gates (Tc, B, 4H) is the work buffer for Tc time steps; with Tc == T
    (training) it keeps the activations [r z n hn] of every step.
    gh (B, 3H) is work.  bias_x (3H) is the bias folded into the input side.
    """
    cdef int T = x.shape[0], B = x.shape[1], D = x.shape[2]
    cdef int H = w_hh.shape[1], ldy = y.shape[2], chunk = gates.shape[0]
    cdef int k, s, t, t0, t1, ld_prev = H
    cdef const floating* h_prev = &h0[0, 0]
    cdef floating* g
    with nogil:
        for k in range((T + chunk - 1) // chunk):
            chunk_bounds(k, chunk, T, reverse, &t0, &t1)
            project_inputs((t1 - t0) * B, 3 * H, D, &x[t0, 0, 0], &w_ih[0, 0], &bias_x[0],
                           &gates[0, 0, 0], 4 * H)
            for s in range(t1 - t0):
                t = t1 - 1 - s if reverse else t0 + s
                g = &gates[t - t0, 0, 0]
                mm_nt(B, 3 * H, H, h_prev, ld_prev, &w_hh[0, 0], H, <floating>0, &gh[0, 0], 3 * H)
                gru_step_fwd(B, H, g, &gh[0, 0], &b_hn[0], h_prev, ld_prev, &y[t, 0, y_off], ldy)
                h_prev = &y[t, 0, y_off]
                ld_prev = ldy
        copy_rows(B, H, h_prev, ld_prev, &h_n[0, 0], H)


def gru_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                 const floating[:, :, ::1] y, const floating[:, :, ::1] dy, int y_off,
                 const floating[:, :, ::1] gates, floating[:, ::1] dh,
                 floating[:, :, ::1] dgi, floating[:, :, ::1] dgh,
                 floating[:, :, ::1] dx, bint dx_accumulate,
                 floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                 floating[::1] db_ih, floating[::1] db_hh, bint reverse):
    """Backward through time of gru_forward (saved gates of a training run).

    dy[:, :, y_off:y_off+H] is the gradient of this direction's output;
    dh (B, H) holds dh_n on entry and dh0 on return.  dgi, dgh (T, B, 3H) are
    work: the input-side and hidden-side gate gradients, which differ in the
    n block (d_n versus d_n * r).  dx is written (or added to, when
    dx_accumulate); dw_*, db_* are added to.
    """
    cdef int T = x.shape[0], B = x.shape[1], D = x.shape[2]
    cdef int H = w_hh.shape[1], ldy = y.shape[2]
    cdef int s, t, step = -1 if reverse else 1   # time runs t - step -> t in forward
    cdef int first = T - 1 if reverse else 0     # the step that started from h0
    cdef const floating* h_prev
    cdef int ld_prev
    with nogil:
        for s in range(T):
            t = s if reverse else T - 1 - s      # backward visits time against the forward order
            if t == first:
                h_prev = &h0[0, 0]
                ld_prev = H
            else:
                h_prev = &y[t - step, 0, y_off]
                ld_prev = ldy
            gru_step_bwd(B, H, &gates[t, 0, 0], h_prev, ld_prev, &dy[t, 0, y_off], ldy,
                         &dh[0, 0], &dgi[t, 0, 0], &dgh[t, 0, 0])
            # dh_{t-1} = dh_t * z + dGh_t W_hh
            mm_nn(B, H, 3 * H, &dgh[t, 0, 0], 3 * H, &w_hh[0, 0], H, <floating>1, &dh[0, 0], H)
        param_grads(T, B, D, H, 3 * H, &x[0, 0, 0], &h0[0, 0], &y[0, 0, y_off], ldy,
                    &dgi[0, 0, 0], &dgh[0, 0, 0], 3 * H, &w_ih[0, 0],
                    &dx[0, 0, 0], dx_accumulate, &dw_ih[0, 0], &dw_hh[0, 0],
                    &db_ih[0], &db_hh[0], reverse)
