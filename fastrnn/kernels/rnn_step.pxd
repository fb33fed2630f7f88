# The vanilla RNN's steps (tanh or relu), for the time loops of
# fastrnn/kernels/time_loop.pxd.
#
# Per step: pre_t = (x_t W_ih^T + b, from the chunk's projection)
# + h_{t-1} W_hh^T, then h_t = act(pre_t) in one C pass; a single row does
# the product and the activation in one pass (rnn_gemv_step).  Backward
# needs only the outputs h_t: tanh' = 1 - h^2, relu' = [h > 0].

from cython cimport floating
from fastrnn.kernels.cells cimport rnn_step_bwd, rnn_step_fwd
from fastrnn.kernels.layer_call cimport Backward, Forward, state_before
from fastrnn.kernels.packed cimport rnn_gemv_step
from fastrnn.kernels.products cimport WEIGHTS_FLOAT, weights_product, weights_product_blocks


cdef inline void rnn_forward_rows(Forward* a, floating* _, int t, int gt0, int lo, int hi,
                                  int t_prev) noexcept nogil:
    """Step t for batch rows [lo, hi), from step t_prev's state (t_prev < 0: the
    initial state); the pre-activation buffer starts at step gt0."""
    cdef int B = a.c.B, H = a.c.H
    cdef int ld_prev = a.ldy if t_prev >= 0 else H
    cdef const floating* h_prev = state_before(t_prev, <const floating*>a.y, B, a.ldy,
                                               <const floating*>a.h0) + <size_t>lo * ld_prev
    cdef floating* p = <floating*>a.gates + (<size_t>(t - gt0) * B + lo) * H
    cdef floating* h = <floating*>a.y + (<size_t>t * B + lo) * a.ldy
    if a.c.packed and hi - lo == 1 and a.c.weights == WEIGHTS_FLOAT:
        # a single row: product and activation in one pass
        rnn_gemv_step(H, h_prev, <const floating*>a.whh_p, H, 0, H, p, h, a.c.relu)
        return
    weights_product(a.c.weights, a.c.packed, hi - lo, H, H, h_prev, ld_prev,
                    <const floating*>a.w_hh, a.whh_p, p, H, True)
    rnn_step_fwd(hi - lo, H, p, h, a.ldy, a.c.relu)


cdef inline void rnn_forward_units(Forward* a, floating* _, int sub, int t, int gt0, int lo,
                                   int hi, int t_prev, int j0, int j1) noexcept nogil:
    """Step t for batch rows [lo, hi) and hidden units [j0, j1), from step t_prev's
    state (t_prev < 0: the initial state)."""
    cdef int B = a.c.B, H = a.c.H, b
    cdef int ld_prev = a.ldy if t_prev >= 0 else H
    cdef const floating* h_prev = state_before(t_prev, <const floating*>a.y, B, a.ldy,
                                               <const floating*>a.h0) + <size_t>lo * ld_prev
    cdef floating* p = <floating*>a.gates + (<size_t>(t - gt0) * B + lo) * H
    cdef floating* h = <floating*>a.y + (<size_t>t * B + lo) * a.ldy
    if hi - lo == 1 and a.c.weights == WEIGHTS_FLOAT:    # product and activation in one pass
        rnn_gemv_step(H, h_prev, <const floating*>a.whh_p, H, j0, j1, p, h, a.c.relu)
        return
    weights_product_blocks(a.c.weights, hi - lo, H, h_prev, ld_prev, a.whh_p, 1, H, j0, j1, p,
                           H, True)
    for b in range(hi - lo):
        rnn_step_fwd(1, j1 - j0, p + <size_t>b * H + j0, h + <size_t>b * a.ldy + j0, a.ldy,
                     a.c.relu)


cdef inline void rnn_backward_rows(Backward* a, floating* _, int t, int lo, int hi,
                                   int t_prev) noexcept nogil:
    """Element-wise backward of step t for batch rows [lo, hi): only h_t is needed,
    wherever h_{t-1} came from."""
    cdef size_t row = <size_t>t * a.c.B + lo
    rnn_step_bwd(hi - lo, a.c.H, <const floating*>a.y + row * a.ldy, a.ldy,
                 <const floating*>a.dy + row * a.ldy, a.ldy,
                 <floating*>a.dh + <size_t>lo * a.c.H, <floating*>a.dgi + row * a.c.H, a.c.relu)
