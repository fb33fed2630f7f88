# The LSTM's steps, for the time loops of fastrnn/kernels/time_loop.pxd.
#
# Per step: gates_t = (x_t W_ih^T + b, from the chunk's projection) +
# h_{t-1} W_hh^T, then one fused C pass (csrc/cells_impl.h) forms
# [i f g o], c_t and h_t.  Backward: one fused pass turns dh, dc and the
# saved activations into dG_t; the loop then forms dh_{t-1} = dG_t W_hh.
# Peepholes (ONNX's P, Gers & Schmidhuber) are element-wise: the passes take
# [p_i p_f p_o] (3, H) and add p_i * c_{t-1}, p_f * c_{t-1} to the i, f
# pre-activations and p_o * c_t to o's; their gradients are sums over all
# steps, taken after backward's time loop by hidden units.

from cython cimport floating
from fastrnn.kernels.cells cimport lstm_peep_grads, lstm_step_bwd, lstm_step_fwd
from fastrnn.kernels.layer_call cimport Backward, Forward, state_before
from fastrnn.kernels.products cimport weights_product, weights_product_blocks
from fastrnn.kernels.sequence cimport BackStage, StepRows, copy_rows, step_rows
from fastrnn.kernels.threads cimport split_range


cdef inline floating* lstm_cell_at(Forward* a, floating* _, int t) noexcept nogil:
    """Row 0 of step t's cells: every step's are kept in training, else one."""
    return <floating*>a.cells + (<size_t>t * a.c.B * a.c.H if a.keep_cells else 0)


cdef inline void lstm_forward_rows(Forward* a, floating* _, int t, int gt0, int lo, int hi,
                                   int t_prev) noexcept nogil:
    """Step t for batch rows [lo, hi), from step t_prev's state (t_prev < 0: the
    initial state); the gates buffer starts at step gt0."""
    cdef int B = a.c.B, H = a.c.H, G = a.c.G
    cdef int ld_prev = a.ldy if t_prev >= 0 else H
    cdef const floating* h_prev = state_before(t_prev, <const floating*>a.y, B, a.ldy,
                                               <const floating*>a.h0)
    cdef const floating* c_prev = <const floating*>a.c0
    if t_prev >= 0:
        c_prev = lstm_cell_at(a, _, t_prev)
    cdef floating* g = <floating*>a.gates + (<size_t>(t - gt0) * B + lo) * G
    weights_product(a.c.weights, a.c.packed, hi - lo, G, H, h_prev + <size_t>lo * ld_prev,
                    ld_prev, <const floating*>a.w_hh, a.whh_p, g, G, True)
    lstm_step_fwd(hi - lo, H, 0, H, g, c_prev + <size_t>lo * H,
                  lstm_cell_at(a, _, t) + <size_t>lo * H,
                  <floating*>a.y + (<size_t>t * B + lo) * a.ldy, a.ldy,
                  <const floating*>a.peep)


cdef inline void lstm_final_rows(Forward* a, floating* _, int t, int lo, int hi) noexcept nogil:
    """Rows [lo, hi) take their last step at t: c_n from their cell."""
    copy_rows(hi - lo, a.c.H, lstm_cell_at(a, _, t) + <size_t>lo * a.c.H, a.c.H,
              <floating*>a.c_n + <size_t>lo * a.c.H, a.c.H)


cdef inline void lstm_forward_units(Forward* a, floating* _, int sub, int t, int gt0, int lo,
                                    int hi, int t_prev, int j0, int j1) noexcept nogil:
    """Step t for batch rows [lo, hi) and hidden units [j0, j1), from step t_prev's
    state (t_prev < 0: the initial state): their rows of all four gate blocks, then
    their cells."""
    cdef int B = a.c.B, H = a.c.H, G = a.c.G
    cdef int ld_prev = a.ldy if t_prev >= 0 else H
    cdef const floating* h_prev = state_before(t_prev, <const floating*>a.y, B, a.ldy,
                                               <const floating*>a.h0) + <size_t>lo * ld_prev
    cdef const floating* c_prev = <const floating*>a.c0
    if t_prev >= 0:
        c_prev = lstm_cell_at(a, _, t_prev)
    cdef floating* g = <floating*>a.gates + (<size_t>(t - gt0) * B + lo) * G
    weights_product_blocks(a.c.weights, hi - lo, H, h_prev, ld_prev, a.whh_p, 4, H, j0, j1, g,
                           G, True)
    lstm_step_fwd(hi - lo, H, j0, j1, g, c_prev + <size_t>lo * H,
                  lstm_cell_at(a, _, t) + <size_t>lo * H,
                  <floating*>a.y + (<size_t>t * B + lo) * a.ldy, a.ldy, <const floating*>a.peep)


cdef inline void lstm_final_units(Forward* a, floating* _, int t, int b, int j0,
                                  int j1) noexcept nogil:
    """Row b's last step is t: units [j0, j1) of its c_n."""
    cdef int H = a.c.H
    copy_rows(1, j1 - j0, lstm_cell_at(a, _, t) + <size_t>b * H + j0, H,
              <floating*>a.c_n + <size_t>b * H + j0, H)


cdef inline const floating* lstm_saved_cells(Backward* a, floating* _, int t) noexcept nogil:
    return <const floating*>a.cells + <size_t>t * a.c.B * a.c.H


cdef inline void lstm_backward_rows(Backward* a, floating* _, int t, int lo, int hi,
                                    int t_prev) noexcept nogil:
    """Element-wise backward of step t for batch rows [lo, hi), which started from
    step t_prev's state (t_prev < 0: the initial state)."""
    cdef int B = a.c.B, H = a.c.H, G = a.c.G
    cdef size_t row = <size_t>t * B + lo
    cdef const floating* c_prev = <const floating*>a.c0
    if t_prev >= 0:
        c_prev = lstm_saved_cells(a, _, t_prev)
    lstm_step_bwd(hi - lo, H, 0, H, <const floating*>a.gates + row * G,
                  <const floating*>a.cells + row * H, c_prev + <size_t>lo * H,
                  <const floating*>a.dy + row * a.ldy, a.ldy, <floating*>a.dh + <size_t>lo * H,
                  <floating*>a.dc + <size_t>lo * H, <floating*>a.dgi + row * G,
                  <const floating*>a.peep)


cdef inline void lstm_backward_units(Backward* a, floating* _, const BackStage* u, int j0,
                                     int j1) noexcept nogil:
    """The element-wise backward of step u.t for every row and hidden units [j0, j1)
    (dh_t already formed)."""
    cdef int B = a.c.B, H = a.c.H, G = a.c.G
    cdef size_t row = <size_t>u.t * B
    cdef const floating* c_prev = <const floating*>a.c0
    if u.t_prev >= 0:
        c_prev = lstm_saved_cells(a, _, u.t_prev)
    lstm_step_bwd(B, H, j0, j1, <const floating*>a.gates + row * G,
                  lstm_saved_cells(a, _, u.t), c_prev,
                  <const floating*>a.dy + row * a.ldy, a.ldy,
                  <floating*>a.dh, <floating*>a.dc, <floating*>a.dgi + row * G,
                  <const floating*>a.peep)


cdef inline void lstm_peep_grads_task(Backward* a, floating* _, int tid, int nt) noexcept nogil:
    """This task's hidden units of the peephole gradients, summed over steps in
    time order (so the result does not depend on the split):
    dp_i += sum d_i c_{t-1},  dp_f += sum d_f c_{t-1},  dp_o += sum d_o c_t,
    over the rows that ran each step (see StepRows)."""
    cdef int T = a.c.T, B = a.c.B, H = a.c.H, G = a.c.G, j0, j1, t
    cdef const floating* cells = <const floating*>a.cells
    cdef const floating* dgates = <const floating*>a.dgi
    cdef StepRows r
    cdef size_t row
    split_range(H, tid, nt, &j0, &j1)
    if j1 <= j0:
        return
    for t in range(T):
        step_rows(a.grads.active, T, B, a.c.reverse, t, 0, B, &r)
        row = <size_t>t * B
        if r.cont > 0:        # c_{t-1} from step t_prev
            lstm_peep_grads(r.cont, H, j0, j1, dgates + row * G,
                            cells + <size_t>r.t_prev * B * H, cells + row * H,
                            <floating*>a.dpeep)
        if r.end > r.cont:    # first steps: from c0
            row += r.cont
            lstm_peep_grads(r.end - r.cont, H, j0, j1, dgates + row * G,
                            <const floating*>a.c0 + <size_t>r.cont * H, cells + row * H,
                            <floating*>a.dpeep)
