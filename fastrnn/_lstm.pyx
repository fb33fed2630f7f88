"""LSTM kernels: one layer and one direction per call, forward over the whole
sequence and backward through time.  The Python layer (fastrnn/lstm.py)
validates and allocates; these trust their arguments.

Per step: gates_t = (x_t W_ih^T + b, hoisted out of the loop: computed for
a chunk of steps before them) + h_{t-1} W_hh^T, then one fused C pass
(csrc/cells_impl.h).  The weights are packed once per call
(csrc/gemm_impl.h).  Work is split over fastrnn's threads: the time loop by
batch rows (sequences are independent, so the loop needs no barrier per
step; each thread projects its own rows when it has enough, else they share
each chunk's projection: see project_chunk in fastrnn/_seq.pxd), or for a
single sequence by hidden units (each part of a step computes all four
gates of its units and updates their cells; the threads claim the parts,
and a step starts when every part of the one before is done: see UnitStage
in fastrnn/_seq.pxd).  Backward splits a single sequence the same way
(BackStage): each part takes its units of dh_t from the whole dG of the
step after, then its units of dG_t.

Peepholes (ONNX's P, Gers & Schmidhuber) are element-wise: the fused passes
take [p_i p_f p_o] (3, H) and add p_i * c_{t-1}, p_f * c_{t-1} to the i, f
pre-activations and p_o * c_t to o's; their gradients are sums over all
steps, taken after backward's time loop by hidden units.
"""

from cython cimport floating
from fastrnn._cells cimport lstm_peep_grads, lstm_step_bwd, lstm_step_fwd
from fastrnn._packed cimport (matmul_nt, packed_gemm, packed_gemm_ex, packed_gemv_blocks,
                              panel_width, uses_packs, PACK_WHEN_WORTH, PACKED)
from fastrnn._seq cimport (STAGE_FINAL, STAGE_PACK, STAGE_STEP, BackStage, GradArgs, Packs,
                           StepRows, UnitStage, add_pack, back_stage, back_stages,
                           chunk_bounds, copy_rows, time_loop_threads, gates_t0,
                           final_or_past_end, pack_or_project, packs_task, param_grads_pack,
                           param_grads_products, param_grads_task, end_chunk, project_chunk,
                           projects_own_rows,
                           set_transposed,
                           split_batch, step_rows, unit_range, unit_stage, unit_stages,
                           zero_rows)
from fastrnn._plan cimport StepPlan, run_or_plan
from fastrnn._threads cimport (barrier_wait, fr_barrier, fr_part_fn, fr_task_fn, run_parallel,
                              run_staged, split_range)


cdef struct Forward:
    int T, B, D, H, ldy, chunk   # chunk: steps per input projection
    bint all_steps         # gates holds every step (training), else one chunk's
    bint reverse, keep_cells, split_units
    bint packed            # weights packed (else used as they are: short calls)
    const int* active      # rows covering each step (fastrnn/_seq.pxd StepRows), or NULL
    const void* w_ih
    const void* w_hh
    const void* x          # (T, B, D)
    const void* wih_p      # W_ih packed (N = 4H, K = D)
    const void* whh_p      # W_hh packed (N = 4H, K = H)
    const void* bias       # b_ih + b_hh
    const void* peep       # [p_i p_f p_o] (3, H), or NULL: no peepholes
    const void* h0
    const void* c0
    void* y                # &y[0, 0, y_off], row stride ldy
    void* gates            # (chunk, B, 4H)
    void* cells            # (T, B, H) or (1, B, H)
    void* h_n
    void* c_n
    Packs packs            # the weights to pack first (none for short calls or a plan)
    fr_barrier barrier


cdef inline void forward_units_part(Forward* a, floating* _, long stage, int part,
                                    int nparts) noexcept nogil:
    """Batch 1: one part of one stage (fastrnn/_seq.pxd UnitStage)."""
    cdef int T = a.T, D = a.D, H = a.H, G = 4 * a.H, ldy = a.ldy
    cdef floating* y = <floating*>a.y
    cdef floating* cells = <floating*>a.cells
    cdef const floating* h_prev
    cdef const floating* c_prev
    cdef floating* g
    cdef floating* c
    cdef int j0, j1, t, gt0
    cdef UnitStage u
    unit_stage(stage, T, a.chunk, 1, a.packs.count > 0, a.reverse, a.active, &u)
    unit_range(H, panel_width(_), part, nparts, &j0, &j1)
    gt0 = gates_t0(a.all_steps, u.t0)
    if pack_or_project(&u, &a.packs, 4, H, D, <const floating*>a.x, <const floating*>a.wih_p,
                       <const floating*>a.bias, <floating*>a.gates + <size_t>(u.t0 - gt0) * G,
                       G, j0, j1):
        return
    t = u.t
    c = cells + <size_t>t * H if a.keep_cells else cells    # step t's cell
    if u.kind == STAGE_FINAL:
        copy_rows(1, j1 - j0, c + j0, H, <floating*>a.c_n + j0, H)
    if final_or_past_end(&u, a.active, y, ldy, <floating*>a.h_n, H, j0, j1):
        return
    if u.t_prev < 0:
        h_prev, c_prev = <const floating*>a.h0, <const floating*>a.c0
    else:
        h_prev = y + <size_t>u.t_prev * ldy
        c_prev = cells + <size_t>u.t_prev * H if a.keep_cells else cells
    g = <floating*>a.gates + <size_t>(t - gt0) * G
    packed_gemv_blocks(H, h_prev, <const floating*>a.whh_p, H, 4, H, j0, j1, g, True)
    lstm_step_fwd(1, H, j0, j1, g, c_prev, c, y + <size_t>t * ldy, ldy,
                  <const floating*>a.peep)


cdef void forward_units_f32(void* a, long stage, int part, int nparts) noexcept nogil:
    forward_units_part(<Forward*>a, <float*>NULL, stage, part, nparts)


cdef void forward_units_f64(void* a, long stage, int part, int nparts) noexcept nogil:
    forward_units_part(<Forward*>a, <double*>NULL, stage, part, nparts)


cdef inline void forward_rows(Forward* a, floating* _, int t, int gt0, int lo, int hi,
                              const floating* h_prev, int ld_prev,
                              const floating* c_prev) noexcept nogil:
    """Step t for batch rows [lo, hi), from states whose row 0 is at h_prev, c_prev;
    the gates buffer starts at step gt0."""
    cdef int B = a.B, H = a.H, G = 4 * a.H
    cdef floating* g = <floating*>a.gates + (<size_t>(t - gt0) * B + lo) * G
    cdef floating* c
    matmul_nt(a.packed, hi - lo, G, H, h_prev + <size_t>lo * ld_prev, ld_prev,
              <const floating*>a.w_hh, <const floating*>a.whh_p, g, G, True)
    if a.keep_cells:
        c = <floating*>a.cells + (<size_t>t * B + lo) * H
    else:
        c = <floating*>a.cells + <size_t>lo * H
    lstm_step_fwd(hi - lo, H, 0, H, g, c_prev + <size_t>lo * H, c,
                  <floating*>a.y + (<size_t>t * B + lo) * a.ldy, a.ldy, <const floating*>a.peep)


cdef inline void forward_task(Forward* a, floating* _, int tid, int nt) noexcept nogil:
    if a.packs.count > 0:    # every weight packed before any product reads it
        packs_task(&a.packs, _, tid, nt)
        barrier_wait(&a.barrier)
    cdef int T = a.T, B = a.B, D = a.D, H = a.H, G = 4 * a.H, ldy = a.ldy
    cdef const floating* x = <const floating*>a.x
    cdef floating* y = <floating*>a.y
    cdef floating* cells = <floating*>a.cells
    cdef int b0, b1, k, s, t, t0, t1, gt0
    cdef StepRows r
    cdef size_t t_cells
    split_batch(a.active, T, B, tid, nt, &b0, &b1)
    cdef bint own_rows = projects_own_rows(B, nt)
    for k in range((T + a.chunk - 1) // a.chunk):
        chunk_bounds(k, a.chunk, T, a.reverse, &t0, &t1)
        gt0 = gates_t0(a.all_steps, t0)
        project_chunk(own_rows, t0, t1, B, b0, b1, G, D, x, a.packed,
                      <const floating*>a.w_ih, <const floating*>a.wih_p,
                      <const floating*>a.bias, <floating*>a.gates + <size_t>(t0 - gt0) * B * G,
                      G, tid, nt, &a.barrier)
        for s in range(t1 - t0 if b1 > b0 else 0):
            t = t1 - 1 - s if a.reverse else t0 + s
            step_rows(a.active, T, B, a.reverse, t, b0, b1, &r)
            if r.cont > b0:      # from step t_prev's h and c
                forward_rows(a, _, t, gt0, b0, r.cont, y + <size_t>r.t_prev * B * ldy, ldy,
                             cells + <size_t>r.t_prev * B * H if a.keep_cells else cells)
            if r.end > r.cont:   # first steps: from h0, c0
                forward_rows(a, _, t, gt0, r.cont, r.end, <const floating*>a.h0, H,
                             <const floating*>a.c0)
            t_cells = <size_t>t * B if a.keep_cells else 0
            copy_rows(r.end - r.fin, H, y + (<size_t>t * B + r.fin) * ldy, ldy,
                      <floating*>a.h_n + <size_t>r.fin * H, H)
            copy_rows(r.end - r.fin, H, cells + (t_cells + r.fin) * H, H,
                      <floating*>a.c_n + <size_t>r.fin * H, H)
            zero_rows(b1 - r.end, H, y + (<size_t>t * B + r.end) * ldy, ldy)
        end_chunk(own_rows, &a.barrier)


cdef void forward_task_f32(void* a, int tid, int nt) noexcept nogil:
    forward_task(<Forward*>a, <float*>NULL, tid, nt)


cdef void forward_task_f64(void* a, int tid, int nt) noexcept nogil:
    forward_task(<Forward*>a, <double*>NULL, tid, nt)


def lstm_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[::1] bias,
                 const floating[:, ::1] h0, const floating[:, ::1] c0,
                 floating[:, :, ::1] y, int y_off, floating[:, :, ::1] gates,
                 floating[:, :, ::1] cells, floating[:, ::1] h_n, floating[:, ::1] c_n,
                 floating[::1] wih_packed, floating[::1] whh_packed, int nthreads,
                 bint reverse, const int[::1] active, const floating[:, ::1] peephole=None,
                 StepPlan plan=None, int plan_layer=0, int chunk=0,
                 int packing=PACK_WHEN_WORTH):
    """Run one direction of an LSTM layer over x (T, B, D) on up to nthreads threads.

    Writes h_t into y[t, :, y_off:y_off+H], the last state into h_n, c_n.
    active (T) is empty when every sequence has T steps; else the batch is
    sorted by length, longest first, active[t] rows cover step t, each row
    ends (or, reverse, starts) at its own last step and y is zero past it.
    gates (Tc, B, 4H) is the work buffer of Tc time steps; cells is (T, B, H)
    to keep every c_t (training: then Tc == T and gates keeps the
    activations [i f g o]) or (1, B, H) to update c in place (inference).
    chunk: steps per input projection (0: gates.shape[0]); in training, projecting
    a chunk just before its steps keeps its gates in cache.
    bias is b_ih + b_hh.  wih_packed, whh_packed are work for the packed
    weights (packed_size(4H, D) and packed_size(4H, H)).  peephole is
    [p_i p_f p_o] (3, H), or None for none.  packing (fastrnn/_packed.pxd):
    PACK_WHEN_WORTH packs the weights into wih_packed, whh_packed when T * B
    has PACK_MIN_ROWS rows; PACK_NOW packs them whatever T * B, for a caller
    that keeps the buffers; PACKED uses the buffers as an earlier call left them.
    With plan (fastrnn._plan.StepPlan), nothing runs: the arguments, weights
    packed, become layer plan_layer of the plan, which keeps the arrays alive.
    """
    cdef Forward a
    a.peep = NULL
    if peephole is not None:
        a.peep = &peephole[0, 0]
    cdef int H = w_hh.shape[1]
    a.T, a.B, a.D, a.H = x.shape[0], x.shape[1], x.shape[2], H
    a.ldy, a.reverse = y.shape[2], reverse
    a.chunk = chunk if 0 < chunk < gates.shape[0] else gates.shape[0]
    a.all_steps = gates.shape[0] >= a.T
    a.keep_cells = cells.shape[0] == a.T
    a.x, a.bias, a.h0, a.c0 = &x[0, 0, 0], &bias[0], &h0[0, 0], &c0[0, 0]
    a.wih_p, a.whh_p = &wih_packed[0], &whh_packed[0]
    a.w_ih, a.w_hh = &w_ih[0, 0], &w_hh[0, 0]
    a.packed = uses_packs(packing, a.T * a.B) or plan is not None   # a plan packs once
    a.y, a.gates, a.cells = &y[0, 0, y_off], &gates[0, 0, 0], &cells[0, 0, 0]
    a.h_n, a.c_n = &h_n[0, 0], &c_n[0, 0]
    a.active = &active[0] if active.shape[0] > 0 else NULL
    cdef fr_task_fn task = forward_task_f32 if floating is float else forward_task_f64
    cdef fr_part_fn units = NULL
    nthreads = time_loop_threads(a.B, H, nthreads, a.packed, panel_width(&wih_packed[0]),
                                 &a.split_units)
    a.packs.count = 0
    if a.packed and packing != PACKED:
        add_pack(&a.packs, 4 * H, a.D, &w_ih[0, 0], a.D, 1, &wih_packed[0])
        add_pack(&a.packs, 4 * H, H, &w_hh[0, 0], H, 1, &whh_packed[0])
    if a.split_units:
        units = forward_units_f32 if floating is float else forward_units_f64
    run_or_plan(plan, plan_layer, &a, sizeof(Forward), &a.barrier, &a.packs, &wih_packed[0],
                task, nthreads, units, unit_stages(a.T, a.chunk, 1, a.packs.count > 0))
    if plan is not None:
        plan.keep += [x, w_ih, w_hh, bias, h0, c0, y, gates, cells, h_n, c_n, wih_packed, whh_packed, peephole]


cdef struct Backward:
    int T, B, H, ldy
    bint reverse
    const void* whhT_p     # W_hh^T packed (N = H, K = 4H)
    const void* c0
    const void* peep       # [p_i p_f p_o] (3, H), or NULL
    void* dpeep            # (3, H), added to; with peep
    const void* dy         # &dy[0, 0, y_off], row stride ldy
    const void* gates      # saved activations (T, B, 4H)
    const void* cells      # saved cells (T, B, H)
    void* dh               # (B, H): dh_n in, dh0 out
    void* dc               # (B, H): dc_n in, dc0 out
    void* dgates           # (T, B, 4H)
    GradArgs grads
    Packs packs            # W_hh^T and W_ih^T, packed first
    fr_barrier barrier


cdef inline void backward_rows(Backward* a, floating* _, int t, int lo, int hi,
                               const floating* c_prev) noexcept nogil:
    """Element-wise backward of step t for batch rows [lo, hi), whose c_{t-1}
    has its row 0 at c_prev."""
    cdef int B = a.B, H = a.H, G = 4 * a.H
    cdef size_t row = <size_t>t * B + lo
    lstm_step_bwd(hi - lo, H, 0, H, <const floating*>a.gates + row * G,
                  <const floating*>a.cells + row * H, c_prev + <size_t>lo * H,
                  <const floating*>a.dy + row * a.ldy, a.ldy, <floating*>a.dh + <size_t>lo * H,
                  <floating*>a.dc + <size_t>lo * H, <floating*>a.dgates + row * G,
                  <const floating*>a.peep)


cdef inline void backward_task(Backward* a, floating* _, int tid, int nt) noexcept nogil:
    cdef int T = a.T, B = a.B, H = a.H, G = 4 * a.H
    cdef floating* dgates = <floating*>a.dgates
    cdef int b0, b1, s, t
    cdef StepRows r
    packs_task(&a.packs, _, tid, nt)
    barrier_wait(&a.barrier)
    split_batch(a.grads.active, T, B, tid, nt, &b0, &b1)
    for s in range(T if b1 > b0 else 0):
        t = s if a.reverse else T - 1 - s   # backward visits time against the forward order
        step_rows(a.grads.active, T, B, a.reverse, t, b0, b1, &r)
        if r.cont > b0:      # c_{t-1} from step t_prev
            backward_rows(a, _, t, b0, r.cont,
                          <const floating*>a.cells + <size_t>r.t_prev * B * H)
        if r.end > r.cont:   # first steps: from c0
            backward_rows(a, _, t, r.cont, r.end, <const floating*>a.c0)
        if r.end > b0:       # dh_{t-1} = dG_t W_hh
            packed_gemm(r.end - b0, H, G, dgates + (<size_t>t * B + b0) * G, G,
                        <const floating*>a.whhT_p, G, <floating*>a.dh + <size_t>b0 * H, H,
                        False)
        # rows past their sequence's end have no gradient (weight gradients sum all rows)
        zero_rows(b1 - r.end, G, dgates + (<size_t>t * B + r.end) * G, G)
    barrier_wait(&a.barrier)    # every row of dG is needed below
    param_grads_task(&a.grads, _, tid, nt, &a.barrier)
    if a.peep != NULL:
        peep_grads_task(a, _, tid, nt)


cdef inline void dh_units(Backward* a, floating* _, int t, int j0, int j1) noexcept nogil:
    """Batch 1: units [j0, j1) of dh = dG_t W_hh (dG_t whole, from every part)."""
    cdef int G = 4 * a.H
    packed_gemm_ex(1, j0, j1, G, <const floating*>a.dgates + <size_t>t * G, G, 1,
                   <const floating*>a.whhT_p, G, <floating*>a.dh, a.H, 1, False)


cdef inline void backward_units_part(Backward* a, floating* _, long stage, int part,
                                     int nparts) noexcept nogil:
    """Batch 1: one part of one stage of backward (fastrnn/_seq.pxd BackStage).
    Part p owns the same hidden units [j0, j1) at every step: their dh_t, dc
    and dG_t columns in each gate block."""
    cdef int T = a.T, H = a.H, G = 4 * a.H, j0, j1, q
    cdef floating* dgates = <floating*>a.dgates
    cdef const floating* cells = <const floating*>a.cells
    cdef const floating* c_prev
    cdef BackStage u
    back_stage(stage, T, a.reverse, a.grads.active, &u)
    unit_range(H, panel_width(_), part, nparts, &j0, &j1)
    if u.kind == STAGE_PACK:        # W_hh^T by units (the panels this part reads), W_ih^T
        packs_task(&a.packs, _, part, nparts)
    elif u.kind == STAGE_STEP and not u.runs:    # past the sequence's end: no gradient
        for q in range(4):
            zero_rows(1, j1 - j0, dgates + <size_t>u.t * G + q * H + j0, G)
    elif u.kind == STAGE_STEP:
        if u.t_next >= 0:           # dh_t = dG_{t+1} W_hh; else dh_n as given
            dh_units(a, _, u.t_next, j0, j1)
        c_prev = cells + <size_t>u.t_prev * H if u.t_prev >= 0 else <const floating*>a.c0
        lstm_step_bwd(1, H, j0, j1, <const floating*>a.gates + <size_t>u.t * G,
                      cells + <size_t>u.t * H, c_prev,
                      <const floating*>a.dy + <size_t>u.t * a.ldy, a.ldy,
                      <floating*>a.dh, <floating*>a.dc, dgates + <size_t>u.t * G,
                      <const floating*>a.peep)
    elif u.kind == STAGE_FINAL:
        if u.t >= 0:                # dh0 = dG_first W_hh
            dh_units(a, _, u.t, j0, j1)
        param_grads_pack(&a.grads, _, part, nparts)
    else:                           # STAGE_GRADS
        param_grads_products(&a.grads, _, part, nparts)
        if a.peep != NULL:
            peep_grads_task(a, _, part, nparts)


cdef void backward_units_f32(void* a, long stage, int part, int nparts) noexcept nogil:
    backward_units_part(<Backward*>a, <float*>NULL, stage, part, nparts)


cdef void backward_units_f64(void* a, long stage, int part, int nparts) noexcept nogil:
    backward_units_part(<Backward*>a, <double*>NULL, stage, part, nparts)


cdef inline void peep_grads_task(Backward* a, floating* _, int tid, int nt) noexcept nogil:
    """This task's hidden units of the peephole gradients, summed over steps in
    time order (so the result does not depend on the split):
    dp_i += sum d_i c_{t-1},  dp_f += sum d_f c_{t-1},  dp_o += sum d_o c_t,
    over the rows that ran each step (see StepRows)."""
    cdef int T = a.T, B = a.B, H = a.H, G = 4 * a.H, j0, j1, t
    cdef const floating* cells = <const floating*>a.cells
    cdef const floating* dgates = <const floating*>a.dgates
    cdef StepRows r
    cdef size_t row
    split_range(H, tid, nt, &j0, &j1)
    if j1 <= j0:
        return
    for t in range(T):
        step_rows(a.grads.active, T, B, a.reverse, t, 0, B, &r)
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


cdef void backward_task_f32(void* a, int tid, int nt) noexcept nogil:
    backward_task(<Backward*>a, <float*>NULL, tid, nt)


cdef void backward_task_f64(void* a, int tid, int nt) noexcept nogil:
    backward_task(<Backward*>a, <double*>NULL, tid, nt)


def lstm_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                  const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                  const floating[:, ::1] c0, const floating[:, :, ::1] y,
                  const floating[:, :, ::1] dy, int y_off,
                  const floating[:, :, ::1] gates, const floating[:, :, ::1] cells,
                  floating[:, ::1] dh, floating[:, ::1] dc, floating[:, :, ::1] dgates,
                  floating[:, :, ::1] dx, bint dx_accumulate,
                  floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                  floating[::1] db_ih, floating[::1] db_hh,
                  floating[::1] whhT_packed, floating[::1] wihT_packed,
                  floating[::1] dg_packed, floating[::1] transposed, int nthreads,
                  bint reverse, const int[::1] active, const floating[:, ::1] peephole=None,
                  floating[:, ::1] dpeephole=None, bint split_units=True):
    """Backward through time of lstm_forward (saved gates and cells of a training run),
    with the same active (variable lengths) as the forward call.

    dy[:, :, y_off:y_off+H] is the gradient of this direction's output.
    dh, dc (B, H) hold dh_n, dc_n on entry and dh0, dc0 on return.  dx is
    written (or added to, when dx_accumulate); dw_*, db_* are added to.
    Work: dgates (T, B, 4H); whhT_packed (packed_size(H, 4H)); wihT_packed
    (packed_size(D, 4H)); dg_packed (packed_size(4H, T*B)); transposed
    (T*B*(D+H): X and H_prev transposed for the weight gradients).  peephole (3, H)
    or None as in lstm_forward; with it dpeephole (3, H) is added to.
    split_units: whether threads may share a single sequence's time loop by
    hidden units (else it runs on one thread and they share the rest).
    """
    cdef Backward a
    a.peep = a.dpeep = NULL
    if peephole is not None:
        a.peep = &peephole[0, 0]
        a.dpeep = &dpeephole[0, 0]
    cdef int T = x.shape[0], B = x.shape[1], D = x.shape[2], H = w_hh.shape[1]
    a.T, a.B, a.H, a.ldy, a.reverse = T, B, H, y.shape[2], reverse
    a.whhT_p, a.c0, a.dy = &whhT_packed[0], &c0[0, 0], &dy[0, 0, y_off]
    a.gates, a.cells = &gates[0, 0, 0], &cells[0, 0, 0]
    a.dh, a.dc, a.dgates = &dh[0, 0], &dc[0, 0], &dgates[0, 0, 0]
    a.grads.T, a.grads.B, a.grads.D, a.grads.H, a.grads.G = T, B, D, H, 4 * H
    a.grads.ldy, a.grads.reverse, a.grads.dx_accumulate = y.shape[2], reverse, dx_accumulate
    a.grads.x, a.grads.h0, a.grads.y = &x[0, 0, 0], &h0[0, 0], &y[0, 0, y_off]
    a.grads.active = &active[0] if active.shape[0] > 0 else NULL
    a.grads.dgi = a.grads.dgh = &dgates[0, 0, 0]
    a.grads.wihT = &wihT_packed[0]
    a.grads.dgi_packed = a.grads.dgh_packed = &dg_packed[0]
    a.grads.dx, a.grads.dw_ih, a.grads.dw_hh = &dx[0, 0, 0], &dw_ih[0, 0], &dw_hh[0, 0]
    a.grads.db_ih, a.grads.db_hh = &db_ih[0], &db_hh[0]
    a.grads.G_prev = 4 * H     # every column of dW_hh pairs with h_{t-1}
    set_transposed(&a.grads, &transposed[0])
    cdef fr_task_fn task = backward_task_f32 if floating is float else backward_task_f64
    cdef fr_part_fn units = backward_units_f32 if floating is float else backward_units_f64
    a.packs.count = 0
    add_pack(&a.packs, H, 4 * H, &w_hh[0, 0], 1, H, &whhT_packed[0])
    add_pack(&a.packs, D, 4 * H, &w_ih[0, 0], 1, D, &wihT_packed[0])
    # A single sequence's time loop is shared by hidden units, as in forward;
    # otherwise by batch rows (at B = 1, only the weight gradients are shared).
    cdef bint by_units
    cdef int nparts = time_loop_threads(B, H, nthreads, True, panel_width(&dgates[0, 0, 0]),
                                        &by_units)
    with nogil:
        if by_units and split_units:
            run_staged(nparts, units, &a, back_stages(T), nparts)
        else:
            run_parallel(nthreads, task, &a, &a.barrier)
