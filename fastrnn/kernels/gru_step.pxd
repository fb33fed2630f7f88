# The GRU's steps, for the time loops of fastrnn/kernels/time_loop.pxd: torch's
# formulation, the reset gate applied to W_hn h + b_hn, or with reset_after
# false the original one, n = tanh(W_in x + W_hn (r * h) + b).
#
# Per step: the input side [x_r x_z x_n] comes from the chunk's projection
# (biases b_ir+b_hr, b_iz+b_hz, b_in folded in); gh = h_{t-1} W_hh^T is one
# product; one fused C pass forms r, z, n and h.  b_hn stays apart because
# r multiplies it.  The gates buffer keeps a 4th block: W_hn h + b_hn
# (reset-after) or r * h_{t-1} (reset-before), which backward reads.
#
# Reset-before: every bias folds into the input side, and a step is the
# product for the r, z blocks, a pass that forms r and r * h_{t-1}, the
# product (r * h_{t-1}) W_hn^T, then the pass for z, n and h (a single
# sequence split by units runs these as two sub-stages, for all of r * h).

from cython cimport floating
from fastrnn.kernels.cells cimport (gru_rb_step_bwd_r, gru_rb_step_bwd_zn, gru_rb_step_fwd,
                             gru_rb_step_reset, gru_step_bwd, gru_step_fwd)
from fastrnn.kernels.layer_call cimport Backward, Forward, state_before
from fastrnn.kernels.packed cimport packed_gemm, panel_width
from fastrnn.kernels.products cimport weights_product, weights_product_blocks
from fastrnn.kernels.sequence cimport zero_rows


cdef inline int gru_substeps(Forward* a) noexcept nogil:
    """Sub-stages of a single sequence's step split by units: reset-before needs
    all of r * h_{t-1} before its n product."""
    return 1 if a.c.reset_after else 2


cdef inline void gru_forward_rows(Forward* a, floating* _, int t, int gt0, int lo, int hi,
                                  int t_prev) noexcept nogil:
    """Step t for batch rows [lo, hi), from step t_prev's state (t_prev < 0: the
    initial state); the gates buffer starts at step gt0."""
    cdef int B = a.c.B, H = a.c.H, n = hi - lo, ldg = a.c.ldg
    cdef int ld_prev = a.ldy if t_prev >= 0 else H
    cdef const floating* h_prev = state_before(t_prev, <const floating*>a.y, B, a.ldy,
                                               <const floating*>a.h0) + <size_t>lo * ld_prev
    cdef floating* gh = <floating*>a.gh + <size_t>lo * 3 * H
    cdef floating* g = <floating*>a.gates + (<size_t>(t - gt0) * B + lo) * ldg
    cdef floating* h = <floating*>a.y + (<size_t>t * B + lo) * a.ldy
    # reset-before: the r, z blocks only, W_hn's product needs r first
    weights_product(a.c.weights, a.c.packed, n, 3 * H if a.c.reset_after else 2 * H, H,
                    h_prev, ld_prev, <const floating*>a.w_hh, a.whh_p, gh, 3 * H, False)
    if a.c.reset_after:
        gru_step_fwd(n, H, 0, H, g, gh, <const floating*>a.b_hn, h_prev, ld_prev, h, a.ldy)
    else:
        gru_rb_step_reset(n, H, 0, H, g, gh, h_prev, ld_prev)
        weights_product(a.c.weights, a.c.packed, n, H, H, g + 3 * H, ldg,
                        <const floating*>a.w_hh + <size_t>2 * H * H, a.whn_p, gh + 2 * H,
                        3 * H, False)
        gru_rb_step_fwd(n, H, 0, H, g, gh, h_prev, ld_prev, h, a.ldy)


cdef inline void gru_past_end_rows(Forward* a, floating* _, int t, int gt0, int lo,
                                   int hi) noexcept nogil:
    """Rows [lo, hi) are past their sequence's end at step t: reset-before zeroes
    their saved r * h_{t-1}, which dW_hn sums over every row."""
    if not a.c.reset_after:
        zero_rows(hi - lo, a.c.H,
                  <floating*>a.gates + (<size_t>(t - gt0) * a.c.B + lo) * a.c.ldg + 3 * a.c.H,
                  a.c.ldg)


cdef inline void gru_past_end_units(Forward* a, floating* _, int t, int gt0, int lo, int hi,
                                    int j0, int j1) noexcept nogil:
    """gru_past_end_rows for hidden units [j0, j1)."""
    if not a.c.reset_after:
        zero_rows(hi - lo, j1 - j0, <floating*>a.gates
                  + (<size_t>(t - gt0) * a.c.B + lo) * a.c.ldg + 3 * a.c.H + j0, a.c.ldg)


cdef inline void gru_forward_units(Forward* a, floating* _, int sub, int t, int gt0, int lo,
                                   int hi, int t_prev, int j0, int j1) noexcept nogil:
    """Sub-stage sub of step t for batch rows [lo, hi) and hidden units [j0, j1), from
    step t_prev's state (t_prev < 0: the initial state)."""
    cdef int B = a.c.B, H = a.c.H, n = hi - lo, ldg = a.c.ldg
    cdef int ld_prev = a.ldy if t_prev >= 0 else H
    cdef const floating* h_prev = state_before(t_prev, <const floating*>a.y, B, a.ldy,
                                               <const floating*>a.h0) + <size_t>lo * ld_prev
    cdef floating* gh = <floating*>a.gh + <size_t>lo * 3 * H
    cdef floating* g = <floating*>a.gates + (<size_t>(t - gt0) * B + lo) * ldg
    cdef floating* h = <floating*>a.y + (<size_t>t * B + lo) * a.ldy
    if sub == 0:          # its units of each gate block (reset-before: r and z only)
        weights_product_blocks(a.c.weights, n, H, h_prev, ld_prev, a.whh_p,
                               3 if a.c.reset_after else 2, H, j0, j1, gh, 3 * H, False)
        if a.c.reset_after:
            gru_step_fwd(n, H, j0, j1, g, gh, <const floating*>a.b_hn, h_prev, ld_prev, h,
                         a.ldy)
        else:
            gru_rb_step_reset(n, H, j0, j1, g, gh, h_prev, ld_prev)
    else:                 # reset-before: every unit's r * h_{t-1} is ready
        weights_product_blocks(a.c.weights, n, H, g + 3 * H, ldg, a.whn_p, 1, H, j0, j1,
                               gh + 2 * H, 3 * H, False)
        gru_rb_step_fwd(n, H, j0, j1, g, gh, h_prev, ld_prev, h, a.ldy)


cdef inline void gru_backward_rows(Backward* a, floating* _, int t, int lo, int hi,
                                   int t_prev) noexcept nogil:
    """Element-wise backward of step t for batch rows [lo, hi), which started from
    step t_prev's state (t_prev < 0: the initial state)."""
    cdef int B = a.c.B, H = a.c.H, n = hi - lo, nr = panel_width(_)
    cdef int ld_prev = a.ldy if t_prev >= 0 else H
    cdef const floating* h_prev = state_before(t_prev, <const floating*>a.y, B, a.ldy,
                                               <const floating*>a.h0) + <size_t>lo * ld_prev
    cdef size_t row = <size_t>t * B + lo
    cdef const floating* g = <const floating*>a.gates + row * 4 * H
    cdef const floating* dy = <const floating*>a.dy + row * a.ldy
    cdef floating* dh = <floating*>a.dh + <size_t>lo * H
    cdef floating* dgh = <floating*>a.dgh + row * 3 * H
    if a.c.reset_after:
        gru_step_bwd(n, H, g, h_prev, ld_prev, dy, a.ldy, dh, <floating*>a.dgi + row * 3 * H,
                     dgh)
    else:   # dgh is dgi; d(r * h_{t-1}) = d_n W_hn goes through its r block
        gru_rb_step_bwd_zn(n, H, g, h_prev, ld_prev, dy, a.ldy, dh, dgh)
        packed_gemm(n, H, H, dgh + 2 * H, 3 * H, <const floating*>a.whhT_p + <size_t>2 * H * nr,
                    3 * H, dgh, 3 * H, False)
        gru_rb_step_bwd_r(n, H, g, h_prev, ld_prev, dh, dgh)
