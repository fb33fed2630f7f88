"""GRU kernels (torch's formulation, reset gate applied to W_hn h + b_hn, or
with reset_after false the original one, n = tanh(W_in x + W_hn (r * h) + b)):
one layer and one direction per call, forward over the whole sequence and
backward through time.  The Python layer (fastrnn/gru.py) validates and
allocates; these trust their arguments.

Per step: the input side [x_r x_z x_n] comes from one GEMM per chunk of
steps (biases b_ir+b_hr, b_iz+b_hz, b_in folded in); gh = h_{t-1} W_hh^T is
one product with the packed weights; one fused C pass forms r, z, n and h.
b_hn stays apart because r multiplies it.  Threads split the time loop by
batch rows, or a single sequence by hidden units, and the projection as in
fastrnn/_lstm.pyx.

Reset-before: every bias folds into the input side, and a step is the
product for the r, z blocks, a pass that forms r and r * h_{t-1}, the
product (r * h_{t-1}) W_hn^T, then the pass for z, n and h (a single
sequence split by units runs these as two stages, for all of r * h).
The 4th block of a gates row keeps r * h_{t-1}, which dW_hn pairs with.
"""

from cython cimport floating
from fastrnn._cells cimport (gru_rb_step_bwd_r, gru_rb_step_bwd_zn, gru_rb_step_fwd,
                             gru_rb_step_reset, gru_step_bwd, gru_step_fwd)
from fastrnn._packed cimport (matmul_nt, packed_gemm, packed_gemv_blocks,
                              panel_width, uses_packs, PACK_WHEN_WORTH, PACKED)
from fastrnn._seq cimport (GradArgs, Packs, StepRows, UnitStage,
                           add_pack, chunk_bounds, copy_rows, time_loop_threads, gates_t0,
                           final_or_past_end, pack_or_project, packs_task,
                           param_grads_task, end_chunk, project_chunk, projects_own_rows,
                           set_transposed,
                           split_batch, step_rows, unit_range, unit_stage, unit_stages,
                           zero_rows)
from fastrnn._plan cimport StepPlan, run_or_plan
from fastrnn._threads cimport (barrier_wait, fr_barrier, fr_part_fn, fr_task_fn, run_parallel,
                              split_range)


cdef struct Forward:
    int T, B, D, H, ldy, chunk   # chunk: steps per input projection
    bint all_steps         # gates holds every step (training), else one chunk's
    bint reverse, split_units
    bint packed            # weights packed (else used as they are: short calls)
    const int* active      # rows covering each step (fastrnn/_seq.pxd StepRows), or NULL
    bint reset_after       # torch's GRU; else reset-before
    const void* w_ih
    const void* w_hh
    const void* x          # (T, B, D)
    const void* wih_p      # W_ih packed (N = 3H, K = D)
    const void* whh_p      # W_hh packed (N = 3H, K = H); reset-before: rows [0, 2H) only
    const void* whn_p      # reset-before: W_hn (rows [2H, 3H)) packed on its own
    const void* bias_x     # (3H) bias folded into the input side
    const void* b_hn       # (H)
    const void* h0
    void* y                # &y[0, 0, y_off], row stride ldy
    void* gates            # (chunk, B, 4H)
    void* gh               # (B, 3H)
    void* h_n
    Packs packs            # the weights to pack first (none for short calls or a plan)
    fr_barrier barrier


cdef inline void forward_units_part(Forward* a, floating* _, long stage, int part,
                                    int nparts) noexcept nogil:
    """Batch 1: one part of one stage (fastrnn/_seq.pxd UnitStage); reset-before
    has two stages per step, reset-after one."""
    cdef int T = a.T, D = a.D, H = a.H, ldy = a.ldy
    cdef floating* y = <floating*>a.y
    cdef floating* gh = <floating*>a.gh
    cdef const floating* h_prev
    cdef floating* g
    cdef int j0, j1, t, gt0
    cdef UnitStage u
    unit_stage(stage, T, a.chunk, 1 if a.reset_after else 2, a.packs.count > 0, a.reverse,
               a.active, &u)
    unit_range(H, panel_width(_), part, nparts, &j0, &j1)
    gt0 = gates_t0(a.all_steps, u.t0)
    if pack_or_project(&u, &a.packs, 3, H, D, <const floating*>a.x, <const floating*>a.wih_p,
                       <const floating*>a.bias_x,
                       <floating*>a.gates + <size_t>(u.t0 - gt0) * 4 * H, 4 * H, j0, j1):
        return
    if final_or_past_end(&u, a.active, y, ldy, <floating*>a.h_n, H, j0, j1):
        return
    t = u.t
    h_prev = <const floating*>a.h0 if u.t_prev < 0 else y + <size_t>u.t_prev * ldy
    g = <floating*>a.gates + <size_t>(t - gt0) * 4 * H
    if u.sub == 0:
        packed_gemv_blocks(H, h_prev, <const floating*>a.whh_p, H,   # its units of each
                           3 if a.reset_after else 2, H, j0, j1, gh, False)  # gate block
        if a.reset_after:
            gru_step_fwd(1, H, j0, j1, g, gh, <const floating*>a.b_hn, h_prev, H,
                         y + <size_t>t * ldy, ldy)
        else:
            gru_rb_step_reset(1, H, j0, j1, g, gh, h_prev, H)
            return     # the n product needs all of r * h_{t-1}: the next stage
    else:
        packed_gemv_blocks(H, g + 3 * H, <const floating*>a.whn_p, H, 1, H, j0, j1,
                           gh + 2 * H, False)
        gru_rb_step_fwd(1, H, j0, j1, g, gh, h_prev, H, y + <size_t>t * ldy, ldy)


cdef void forward_units_f32(void* a, long stage, int part, int nparts) noexcept nogil:
    forward_units_part(<Forward*>a, <float*>NULL, stage, part, nparts)


cdef void forward_units_f64(void* a, long stage, int part, int nparts) noexcept nogil:
    forward_units_part(<Forward*>a, <double*>NULL, stage, part, nparts)


cdef inline void forward_rows(Forward* a, floating* _, int t, int gt0, int lo, int hi,
                              const floating* h_prev, int ld_prev) noexcept nogil:
    """Step t for batch rows [lo, hi), from states whose row 0 is at h_prev; the
    gates buffer starts at step gt0."""
    cdef int B = a.B, H = a.H, n = hi - lo
    cdef floating* gh = <floating*>a.gh + <size_t>lo * 3 * H
    cdef floating* g = <floating*>a.gates + (<size_t>(t - gt0) * B + lo) * 4 * H
    cdef floating* h = <floating*>a.y + (<size_t>t * B + lo) * a.ldy
    h_prev += <size_t>lo * ld_prev
    # reset-before: the r, z blocks only, W_hn's product needs r first
    matmul_nt(a.packed, n, 3 * H if a.reset_after else 2 * H, H, h_prev, ld_prev,
              <const floating*>a.w_hh, <const floating*>a.whh_p, gh, 3 * H, False)
    if a.reset_after:
        gru_step_fwd(n, H, 0, H, g, gh, <const floating*>a.b_hn, h_prev, ld_prev, h, a.ldy)
    else:
        gru_rb_step_reset(n, H, 0, H, g, gh, h_prev, ld_prev)
        matmul_nt(a.packed, n, H, H, g + 3 * H, 4 * H,
                  <const floating*>a.w_hh + <size_t>2 * H * H, <const floating*>a.whn_p,
                  gh + 2 * H, 3 * H, False)
        gru_rb_step_fwd(n, H, 0, H, g, gh, h_prev, ld_prev, h, a.ldy)


cdef inline void forward_task(Forward* a, floating* _, int tid, int nt) noexcept nogil:
    if a.packs.count > 0:    # every weight packed before any product reads it
        packs_task(&a.packs, _, tid, nt)
        barrier_wait(&a.barrier)
    cdef int T = a.T, B = a.B, D = a.D, H = a.H, ldy = a.ldy
    cdef floating* y = <floating*>a.y
    cdef int b0, b1, k, s, t, t0, t1, gt0
    cdef StepRows r
    split_batch(a.active, T, B, tid, nt, &b0, &b1)
    cdef bint own_rows = projects_own_rows(B, nt)
    for k in range((T + a.chunk - 1) // a.chunk):
        chunk_bounds(k, a.chunk, T, a.reverse, &t0, &t1)
        gt0 = gates_t0(a.all_steps, t0)
        project_chunk(own_rows, t0, t1, B, b0, b1, 3 * H, D, <const floating*>a.x, a.packed,
                      <const floating*>a.w_ih, <const floating*>a.wih_p,
                      <const floating*>a.bias_x,
                      <floating*>a.gates + <size_t>(t0 - gt0) * B * 4 * H, 4 * H, tid, nt,
                      &a.barrier)
        for s in range(t1 - t0 if b1 > b0 else 0):
            t = t1 - 1 - s if a.reverse else t0 + s
            step_rows(a.active, T, B, a.reverse, t, b0, b1, &r)
            if r.cont > b0:      # from step t_prev's h
                forward_rows(a, _, t, gt0, b0, r.cont, y + <size_t>r.t_prev * B * ldy, ldy)
            if r.end > r.cont:   # first steps: from h0
                forward_rows(a, _, t, gt0, r.cont, r.end, <const floating*>a.h0, H)
            copy_rows(r.end - r.fin, H, y + (<size_t>t * B + r.fin) * ldy, ldy,
                      <floating*>a.h_n + <size_t>r.fin * H, H)
            zero_rows(b1 - r.end, H, y + (<size_t>t * B + r.end) * ldy, ldy)
            if not a.reset_after:   # saved r * h_{t-1}, which dW_hn sums over every row
                zero_rows(b1 - r.end, H,
                          <floating*>a.gates + (<size_t>(t - gt0) * B + r.end) * 4 * H + 3 * H,
                          4 * H)
        end_chunk(own_rows, &a.barrier)


cdef void forward_task_f32(void* a, int tid, int nt) noexcept nogil:
    forward_task(<Forward*>a, <float*>NULL, tid, nt)


cdef void forward_task_f64(void* a, int tid, int nt) noexcept nogil:
    forward_task(<Forward*>a, <double*>NULL, tid, nt)


def gru_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                const floating[:, ::1] w_hh, const floating[::1] bias_x,
                const floating[::1] b_hn, const floating[:, ::1] h0,
                floating[:, :, ::1] y, int y_off, floating[:, :, ::1] gates,
                floating[:, ::1] gh, floating[:, ::1] h_n,
                floating[::1] wih_packed, floating[::1] whh_packed, int nthreads,
                bint reverse, const int[::1] active, bint reset_after=True,
                StepPlan plan=None, int plan_layer=0, int chunk=0,
                int packing=PACK_WHEN_WORTH):
    """Run one direction of a GRU layer over x (T, B, D) on up to nthreads threads.

    Writes h_t into y[t, :, y_off:y_off+H] and the last state into h_n.
    active: variable lengths, as in fastrnn._lstm.lstm_forward.
    gates (Tc, B, 4H) is the work buffer for Tc time steps; with Tc == T
    (training) it keeps the activations [r z n hn] of every step
    ([r z n r*h_prev] when not reset_after).  chunk: steps per input projection
    (0: gates.shape[0]), as in fastrnn._lstm.lstm_forward.  gh (B, 3H) is work, as are
    wih_packed, whh_packed (packed_size(3H, D), packed_size(3H, H); when not
    reset_after packed_size(2H, H) + packed_size(H, H)).  bias_x (3H) is the
    bias folded into the input side (every bias when not reset_after, and
    b_hn is then unused).  packing: as in fastrnn._lstm.lstm_forward.
    With plan (fastrnn._plan.StepPlan), nothing runs: the arguments, weights
    packed, become layer plan_layer of the plan, which keeps the arrays alive.
    """
    cdef Forward a
    cdef int H = w_hh.shape[1]
    a.T, a.B, a.D, a.H = x.shape[0], x.shape[1], x.shape[2], H
    a.ldy, a.reverse = y.shape[2], reverse
    a.chunk = chunk if 0 < chunk < gates.shape[0] else gates.shape[0]
    a.all_steps = gates.shape[0] >= a.T
    a.x, a.bias_x, a.b_hn, a.h0 = &x[0, 0, 0], &bias_x[0], &b_hn[0], &h0[0, 0]
    a.wih_p, a.whh_p = &wih_packed[0], &whh_packed[0]
    a.w_ih, a.w_hh = &w_ih[0, 0], &w_hh[0, 0]
    a.packed = uses_packs(packing, a.T * a.B) or plan is not None   # a plan packs once
    a.y, a.gates, a.gh, a.h_n = &y[0, 0, y_off], &gates[0, 0, 0], &gh[0, 0], &h_n[0, 0]
    a.active = &active[0] if active.shape[0] > 0 else NULL
    a.reset_after = reset_after
    cdef int nr = panel_width(&wih_packed[0])
    a.whn_p = NULL
    if a.packed and not reset_after:   # after the r, z blocks' whole panels
        a.whn_p = &whh_packed[0] + <size_t>((2 * H + nr - 1) // nr) * nr * H
    cdef fr_task_fn task = forward_task_f32 if floating is float else forward_task_f64
    nthreads = time_loop_threads(a.B, H, nthreads, a.packed, nr, &a.split_units)
    a.packs.count = 0
    if a.packed and packing != PACKED:
        add_pack(&a.packs, 3 * H, a.D, &w_ih[0, 0], a.D, 1, &wih_packed[0])
        add_pack(&a.packs, 3 * H if reset_after else 2 * H, H, &w_hh[0, 0], H, 1,
                 &whh_packed[0])
        if not reset_after:
            add_pack(&a.packs, H, H, &w_hh[2 * H, 0], H, 1, <floating*>a.whn_p)
    cdef fr_part_fn units = NULL
    if a.split_units:
        units = forward_units_f32 if floating is float else forward_units_f64
    run_or_plan(plan, plan_layer, &a, sizeof(Forward), &a.barrier, &a.packs, &wih_packed[0],
                task, nthreads, units, unit_stages(a.T, a.chunk, 1 if reset_after else 2, a.packs.count > 0))
    if plan is not None:
        plan.keep += [x, w_ih, w_hh, bias_x, b_hn, h0, y, gates, gh, h_n, wih_packed, whh_packed]


cdef struct Backward:
    int T, B, H, ldy
    bint reverse, reset_after
    const void* whhT_p     # W_hh^T packed (N = H, K = 3H)
    const void* h0
    const void* y          # &y[0, 0, y_off]
    const void* dy         # &dy[0, 0, y_off]
    const void* gates      # saved [r z n hn] (T, B, 4H)
    void* dh               # (B, H): dh_n in, dh0 out
    void* dgi              # (T, B, 3H)
    void* dgh              # (T, B, 3H)
    GradArgs grads
    Packs packs            # W_hh^T and W_ih^T, packed first
    fr_barrier barrier


cdef inline void backward_rows(Backward* a, floating* _, int t, int lo, int hi,
                               const floating* h_prev, int ld_prev) noexcept nogil:
    """Element-wise backward of step t for batch rows [lo, hi), whose h_{t-1}
    has its row 0 at h_prev."""
    cdef int H = a.H, n = hi - lo, nr = panel_width(_)
    cdef size_t row = <size_t>t * a.B + lo
    cdef const floating* g = <const floating*>a.gates + row * 4 * H
    cdef const floating* dy = <const floating*>a.dy + row * a.ldy
    cdef floating* dh = <floating*>a.dh + <size_t>lo * H
    cdef floating* dgh = <floating*>a.dgh + row * 3 * H
    h_prev += <size_t>lo * ld_prev
    if a.reset_after:
        gru_step_bwd(n, H, g, h_prev, ld_prev, dy, a.ldy, dh, <floating*>a.dgi + row * 3 * H,
                     dgh)
    else:   # dgh is dgi; d(r * h_{t-1}) = d_n W_hn goes through its r block
        gru_rb_step_bwd_zn(n, H, g, h_prev, ld_prev, dy, a.ldy, dh, dgh)
        packed_gemm(n, H, H, dgh + 2 * H, 3 * H, <const floating*>a.whhT_p + <size_t>2 * H * nr,
                    3 * H, dgh, 3 * H, False)
        gru_rb_step_bwd_r(n, H, g, h_prev, ld_prev, dh, dgh)


cdef inline void backward_task(Backward* a, floating* _, int tid, int nt) noexcept nogil:
    cdef int T = a.T, B = a.B, H = a.H, ldy = a.ldy
    cdef floating* dgh = <floating*>a.dgh
    cdef int b0, b1, s, t
    cdef StepRows r
    cdef int G_h = 3 * H if a.reset_after else 2 * H   # blocks of W_hh in dh's product
    packs_task(&a.packs, _, tid, nt)
    barrier_wait(&a.barrier)
    split_batch(a.grads.active, T, B, tid, nt, &b0, &b1)
    for s in range(T if b1 > b0 else 0):
        t = s if a.reverse else T - 1 - s   # backward visits time against the forward order
        step_rows(a.grads.active, T, B, a.reverse, t, b0, b1, &r)
        if r.cont > b0:      # h_{t-1} from step t_prev
            backward_rows(a, _, t, b0, r.cont,
                          <const floating*>a.y + <size_t>r.t_prev * B * ldy, ldy)
        if r.end > r.cont:   # first steps: from h0
            backward_rows(a, _, t, r.cont, r.end, <const floating*>a.h0, H)
        if r.end > b0:
            # dh_{t-1} = dh_t * z (+ d(r h) * r) + dGh_t W_hh (only W_h{r,z} for reset-before)
            packed_gemm(r.end - b0, H, G_h, dgh + (<size_t>t * B + b0) * 3 * H, 3 * H,
                        <const floating*>a.whhT_p, 3 * H, <floating*>a.dh + <size_t>b0 * H, H,
                        True)
        # rows past their sequence's end have no gradient (weight gradients sum all rows)
        zero_rows(b1 - r.end, 3 * H, dgh + (<size_t>t * B + r.end) * 3 * H, 3 * H)
        if a.dgi != a.dgh:   # reset-before has one buffer for both
            zero_rows(b1 - r.end, 3 * H, <floating*>a.dgi + (<size_t>t * B + r.end) * 3 * H,
                      3 * H)
    barrier_wait(&a.barrier)    # every row of dGi, dGh is needed below
    param_grads_task(&a.grads, _, tid, nt, &a.barrier)


cdef void backward_task_f32(void* a, int tid, int nt) noexcept nogil:
    backward_task(<Backward*>a, <float*>NULL, tid, nt)


cdef void backward_task_f64(void* a, int tid, int nt) noexcept nogil:
    backward_task(<Backward*>a, <double*>NULL, tid, nt)


def gru_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                 const floating[:, :, ::1] y, const floating[:, :, ::1] dy, int y_off,
                 const floating[:, :, ::1] gates, floating[:, ::1] dh,
                 floating[:, :, ::1] dgi, floating[:, :, ::1] dgh,
                 floating[:, :, ::1] dx, bint dx_accumulate,
                 floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                 floating[::1] db_ih, floating[::1] db_hh,
                 floating[::1] whhT_packed, floating[::1] wihT_packed,
                 floating[::1] dgi_packed, floating[::1] dgh_packed,
                 floating[::1] transposed, int nthreads, bint reverse,
                 const int[::1] active, bint reset_after=True):
    """Backward through time of gru_forward (saved gates of a training run),
    with the same active (variable lengths) as the forward call.

    dy[:, :, y_off:y_off+H] is the gradient of this direction's output;
    dh (B, H) holds dh_n on entry and dh0 on return.  dgi, dgh (T, B, 3H) are
    work: the input-side and hidden-side gate gradients, which differ in the
    n block (d_n versus d_n * r).  dx is written (or added to, when
    dx_accumulate); dw_*, db_* are added to.  Also work: whhT_packed
    (packed_size(H, 3H)), wihT_packed (packed_size(D, 3H)), dgi_packed and
    dgh_packed (packed_size(3H, T*B)); transposed (T*B*(D+H), or T*B*(D+2H)
    when not reset_after: X, H_prev and r * h_prev transposed for the weight
    gradients).

    When not reset_after the gates are [r z n r*h_prev], the two sides'
    gradients are equal: pass dgh = dgi (the same array); dgh_packed then
    holds the n block's gradients packed (packed_size(H, T*B)), which dW_hn
    pairs with r * h_prev.
    """
    cdef Backward a
    cdef int T = x.shape[0], B = x.shape[1], D = x.shape[2], H = w_hh.shape[1]
    a.T, a.B, a.H, a.ldy, a.reverse = T, B, H, y.shape[2], reverse
    a.whhT_p, a.h0, a.y, a.dy = &whhT_packed[0], &h0[0, 0], &y[0, 0, y_off], &dy[0, 0, y_off]
    a.gates, a.dh, a.dgi, a.dgh = &gates[0, 0, 0], &dh[0, 0], &dgi[0, 0, 0], &dgh[0, 0, 0]
    a.grads.T, a.grads.B, a.grads.D, a.grads.H, a.grads.G = T, B, D, H, 3 * H
    a.grads.ldy, a.grads.reverse, a.grads.dx_accumulate = y.shape[2], reverse, dx_accumulate
    a.grads.x, a.grads.h0, a.grads.y = &x[0, 0, 0], &h0[0, 0], &y[0, 0, y_off]
    a.grads.active = &active[0] if active.shape[0] > 0 else NULL
    a.grads.dgi, a.grads.dgh = &dgi[0, 0, 0], &dgh[0, 0, 0]
    a.grads.wihT = &wihT_packed[0]
    a.grads.dgi_packed, a.grads.dgh_packed = &dgi_packed[0], &dgh_packed[0]
    a.grads.dx, a.grads.dw_ih, a.grads.dw_hh = &dx[0, 0, 0], &dw_ih[0, 0], &dw_hh[0, 0]
    a.grads.db_ih, a.grads.db_hh = &db_ih[0], &db_hh[0]
    a.reset_after = reset_after
    a.grads.G_prev = 3 * H if reset_after else 2 * H
    a.grads.hx, a.grads.ldhx, a.grads.hx_packed = &gates[0, 0, 3 * H], 4 * H, &dgh_packed[0]
    set_transposed(&a.grads, &transposed[0])
    cdef fr_task_fn task = backward_task_f32 if floating is float else backward_task_f64
    a.packs.count = 0
    add_pack(&a.packs, H, 3 * H, &w_hh[0, 0], 1, H, &whhT_packed[0])
    add_pack(&a.packs, D, 3 * H, &w_ih[0, 0], 1, D, &wihT_packed[0])
    with nogil:
        run_parallel(nthreads, task, &a, &a.barrier)
