"""Vanilla RNN kernels (tanh or relu): one layer and one direction per call,
forward over the whole sequence and backward through time.  The Python
layer (fastrnn/rnn.py) validates and allocates; these trust their arguments.

Per step: pre_t = (x_t W_ih^T + b, hoisted into one GEMM per chunk of steps)
+ h_{t-1} W_hh^T, then h_t = act(pre_t) in one C pass (a single sequence
does the product and the activation in one pass, rnn_gemv_step).  Backward needs only
the outputs h_t: tanh' = 1 - h^2, relu' = [h > 0].  Threads split the
time loop and the projection as in fastrnn/_lstm.pyx.
"""

from cython cimport floating
from fastrnn._cells cimport rnn_step_bwd, rnn_step_fwd
from fastrnn._packed cimport (matmul_nt, packed_gemm, panel_width, rnn_gemv_step, uses_packs,
                              PACK_WHEN_WORTH, PACKED)
from fastrnn._seq cimport (GradArgs, Packs, StepRows, UnitStage,
                           add_pack, chunk_bounds, copy_rows, time_loop_threads,
                           final_or_past_end, pack_or_project, packs_task,
                           param_grads_task, end_chunk, project_chunk, projects_own_rows,
                           set_transposed,
                           split_batch, step_rows, unit_range, unit_stage, unit_stages,
                           zero_rows)
from fastrnn._plan cimport StepPlan, run_or_plan
from fastrnn._threads cimport (barrier_wait, fr_barrier, fr_part_fn, fr_task_fn, run_parallel,
                              split_range)


cdef struct Forward:
    int T, B, D, H, ldy, chunk
    bint reverse, relu, split_units
    bint packed            # weights packed (else used as they are: short calls)
    const int* active      # rows covering each step (fastrnn/_seq.pxd StepRows), or NULL
    const void* w_ih
    const void* w_hh
    const void* x          # (T, B, D)
    const void* wih_p      # W_ih packed (N = H, K = D)
    const void* whh_p      # W_hh packed (N = H, K = H)
    const void* bias       # b_ih + b_hh
    const void* h0
    void* y                # &y[0, 0, y_off], row stride ldy
    void* pre              # (chunk, B, H)
    void* h_n
    Packs packs            # the weights to pack first (none for short calls or a plan)
    fr_barrier barrier


cdef inline void forward_units_part(Forward* a, floating* _, long stage, int part,
                                    int nparts) noexcept nogil:
    """Batch 1: one part of one stage (fastrnn/_seq.pxd UnitStage)."""
    cdef int T = a.T, D = a.D, H = a.H, ldy = a.ldy
    cdef floating* y = <floating*>a.y
    cdef const floating* h_prev
    cdef floating* p
    cdef int j0, j1, t
    cdef UnitStage u
    unit_stage(stage, T, a.chunk, 1, a.packs.count > 0, a.reverse, a.active, &u)
    unit_range(H, panel_width(_), part, nparts, &j0, &j1)
    if pack_or_project(&u, &a.packs, 1, H, D, <const floating*>a.x, <const floating*>a.wih_p,
                       <const floating*>a.bias, <floating*>a.pre, H, j0, j1):
        return
    if final_or_past_end(&u, a.active, y, ldy, <floating*>a.h_n, H, j0, j1):
        return
    t = u.t
    h_prev = <const floating*>a.h0 if u.t_prev < 0 else y + <size_t>u.t_prev * ldy
    p = <floating*>a.pre + <size_t>(t - u.t0) * H
    rnn_gemv_step(H, h_prev, <const floating*>a.whh_p, H, j0, j1, p, y + <size_t>t * ldy,
                  a.relu)


cdef void forward_units_f32(void* a, long stage, int part, int nparts) noexcept nogil:
    forward_units_part(<Forward*>a, <float*>NULL, stage, part, nparts)


cdef void forward_units_f64(void* a, long stage, int part, int nparts) noexcept nogil:
    forward_units_part(<Forward*>a, <double*>NULL, stage, part, nparts)


cdef inline void forward_rows(Forward* a, floating* _, int t, int t0, int lo, int hi,
                              const floating* h_prev, int ld_prev) noexcept nogil:
    """Step t for batch rows [lo, hi), from states whose row 0 is at h_prev."""
    cdef int B = a.B, H = a.H
    cdef floating* p = <floating*>a.pre + (<size_t>(t - t0) * B + lo) * H
    cdef floating* h = <floating*>a.y + (<size_t>t * B + lo) * a.ldy
    if a.packed and hi - lo == 1:    # a single row: product and activation in one pass
        rnn_gemv_step(H, h_prev + <size_t>lo * ld_prev, <const floating*>a.whh_p, H, 0, H,
                      p, h, a.relu)
        return
    matmul_nt(a.packed, hi - lo, H, H, h_prev + <size_t>lo * ld_prev, ld_prev,
              <const floating*>a.w_hh, <const floating*>a.whh_p, p, H, True)
    rnn_step_fwd(hi - lo, H, p, h, a.ldy, a.relu)


cdef inline void forward_task(Forward* a, floating* _, int tid, int nt) noexcept nogil:
    if a.packs.count > 0:    # every weight packed before any product reads it
        packs_task(&a.packs, _, tid, nt)
        barrier_wait(&a.barrier)
    cdef int T = a.T, B = a.B, D = a.D, H = a.H, ldy = a.ldy
    cdef floating* y = <floating*>a.y
    cdef int b0, b1, k, s, t, t0, t1
    cdef StepRows r
    split_batch(a.active, T, B, tid, nt, &b0, &b1)
    cdef bint own_rows = projects_own_rows(B, nt)
    for k in range((T + a.chunk - 1) // a.chunk):
        chunk_bounds(k, a.chunk, T, a.reverse, &t0, &t1)
        project_chunk(own_rows, t0, t1, B, b0, b1, H, D, <const floating*>a.x, a.packed,
                      <const floating*>a.w_ih, <const floating*>a.wih_p,
                      <const floating*>a.bias, <floating*>a.pre, H, tid, nt, &a.barrier)
        for s in range(t1 - t0 if b1 > b0 else 0):
            t = t1 - 1 - s if a.reverse else t0 + s
            step_rows(a.active, T, B, a.reverse, t, b0, b1, &r)
            if r.cont > b0:      # from step t_prev's h
                forward_rows(a, _, t, t0, b0, r.cont, y + <size_t>r.t_prev * B * ldy, ldy)
            if r.end > r.cont:   # first steps: from h0
                forward_rows(a, _, t, t0, r.cont, r.end, <const floating*>a.h0, H)
            copy_rows(r.end - r.fin, H, y + (<size_t>t * B + r.fin) * ldy, ldy,
                      <floating*>a.h_n + <size_t>r.fin * H, H)
            zero_rows(b1 - r.end, H, y + (<size_t>t * B + r.end) * ldy, ldy)
        end_chunk(own_rows, &a.barrier)


cdef void forward_task_f32(void* a, int tid, int nt) noexcept nogil:
    forward_task(<Forward*>a, <float*>NULL, tid, nt)


cdef void forward_task_f64(void* a, int tid, int nt) noexcept nogil:
    forward_task(<Forward*>a, <double*>NULL, tid, nt)


def rnn_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                const floating[:, ::1] w_hh, const floating[::1] bias,
                const floating[:, ::1] h0, floating[:, :, ::1] y, int y_off,
                floating[:, :, ::1] pre, floating[:, ::1] h_n,
                floating[::1] wih_packed, floating[::1] whh_packed, int nthreads,
                bint relu, bint reverse, const int[::1] active,
                StepPlan plan=None, int plan_layer=0, int packing=PACK_WHEN_WORTH):
    """Run one direction of an RNN layer over x (T, B, D) on up to nthreads threads.

    Writes h_t into y[t, :, y_off:y_off+H] and the last state into h_n.
    active: variable lengths, as in fastrnn._lstm.lstm_forward.
    pre (Tc, B, H) is the work buffer for Tc time steps; bias is b_ih + b_hh.
    wih_packed, whh_packed are work (packed_size(H, D), packed_size(H, H)).
    packing: as in fastrnn._lstm.lstm_forward.
    With plan (fastrnn._plan.StepPlan), nothing runs: the arguments, weights
    packed, become layer plan_layer of the plan, which keeps the arrays alive.
    """
    cdef Forward a
    cdef int H = w_hh.shape[1]
    a.T, a.B, a.D, a.H = x.shape[0], x.shape[1], x.shape[2], H
    a.ldy, a.chunk, a.reverse, a.relu = y.shape[2], pre.shape[0], reverse, relu
    a.x, a.bias, a.h0 = &x[0, 0, 0], &bias[0], &h0[0, 0]
    a.wih_p, a.whh_p = &wih_packed[0], &whh_packed[0]
    a.w_ih, a.w_hh = &w_ih[0, 0], &w_hh[0, 0]
    a.packed = uses_packs(packing, a.T * a.B) or plan is not None   # a plan packs once
    a.y, a.pre, a.h_n = &y[0, 0, y_off], &pre[0, 0, 0], &h_n[0, 0]
    a.active = &active[0] if active.shape[0] > 0 else NULL
    cdef fr_task_fn task = forward_task_f32 if floating is float else forward_task_f64
    nthreads = time_loop_threads(a.B, H, nthreads, a.packed, panel_width(&wih_packed[0]),
                                 &a.split_units)
    a.packs.count = 0
    if a.packed and packing != PACKED:
        add_pack(&a.packs, H, a.D, &w_ih[0, 0], a.D, 1, &wih_packed[0])
        add_pack(&a.packs, H, H, &w_hh[0, 0], H, 1, &whh_packed[0])
    cdef fr_part_fn units = NULL
    if a.split_units:
        units = forward_units_f32 if floating is float else forward_units_f64
    run_or_plan(plan, plan_layer, &a, sizeof(Forward), &a.barrier, &a.packs, &wih_packed[0],
                task, nthreads, units, unit_stages(a.T, a.chunk, 1, a.packs.count > 0))
    if plan is not None:
        plan.keep += [x, w_ih, w_hh, bias, h0, y, pre, h_n, wih_packed, whh_packed]


cdef struct Backward:
    int T, B, H, ldy
    bint reverse, relu
    const void* whhT_p     # W_hh^T packed (N = H, K = H)
    const void* y          # &y[0, 0, y_off]
    const void* dy         # &dy[0, 0, y_off]
    void* dh               # (B, H): dh_n in, dh0 out
    void* dpre             # (T, B, H)
    GradArgs grads
    Packs packs            # W_hh^T and W_ih^T, packed first
    fr_barrier barrier


cdef inline void backward_task(Backward* a, floating* _, int tid, int nt) noexcept nogil:
    cdef int T = a.T, B = a.B, H = a.H, ldy = a.ldy
    cdef floating* dpre = <floating*>a.dpre
    cdef int b0, b1, s, t
    cdef StepRows r
    packs_task(&a.packs, _, tid, nt)
    barrier_wait(&a.barrier)
    split_batch(a.grads.active, T, B, tid, nt, &b0, &b1)
    cdef floating* dh = <floating*>a.dh + <size_t>b0 * H
    cdef size_t row
    for s in range(T if b1 > b0 else 0):
        t = s if a.reverse else T - 1 - s   # backward visits time against the forward order
        step_rows(a.grads.active, T, B, a.reverse, t, b0, b1, &r)
        row = <size_t>t * B + b0
        if r.end > b0:   # only h_t is needed, wherever h_{t-1} came from
            rnn_step_bwd(r.end - b0, H, <const floating*>a.y + row * ldy, ldy,
                         <const floating*>a.dy + row * ldy, ldy, dh, dpre + row * H, a.relu)
            # dh_{t-1} = dpre_t W_hh
            packed_gemm(r.end - b0, H, H, dpre + row * H, H, <const floating*>a.whhT_p, H, dh,
                        H, False)
        # rows past their sequence's end have no gradient (weight gradients sum all rows)
        zero_rows(b1 - r.end, H, dpre + (<size_t>t * B + r.end) * H, H)
    barrier_wait(&a.barrier)    # every row of dpre is needed below
    param_grads_task(&a.grads, _, tid, nt, &a.barrier)


cdef void backward_task_f32(void* a, int tid, int nt) noexcept nogil:
    backward_task(<Backward*>a, <float*>NULL, tid, nt)


cdef void backward_task_f64(void* a, int tid, int nt) noexcept nogil:
    backward_task(<Backward*>a, <double*>NULL, tid, nt)


def rnn_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                 const floating[:, :, ::1] y, const floating[:, :, ::1] dy, int y_off,
                 floating[:, ::1] dh, floating[:, :, ::1] dpre,
                 floating[:, :, ::1] dx, bint dx_accumulate,
                 floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                 floating[::1] db_ih, floating[::1] db_hh,
                 floating[::1] whhT_packed, floating[::1] wihT_packed,
                 floating[::1] dg_packed, floating[::1] transposed, int nthreads, bint relu,
                 bint reverse,
                 const int[::1] active):
    """Backward through time of rnn_forward, with the same active (variable
    lengths) as the forward call.

    dy[:, :, y_off:y_off+H] is the gradient of this direction's output;
    dh (B, H) holds dh_n on entry and dh0 on return.  dx is written (or
    added to, when dx_accumulate); dw_*, db_* are added to.  Work: dpre
    (T, B, H); whhT_packed (packed_size(H, H)); wihT_packed (packed_size(D, H));
    dg_packed (packed_size(H, T*B)); transposed (T*B*(D+H): X and H_prev
    transposed for the weight gradients).
    """
    cdef Backward a
    cdef int T = x.shape[0], B = x.shape[1], D = x.shape[2], H = w_hh.shape[1]
    a.T, a.B, a.H, a.ldy, a.reverse, a.relu = T, B, H, y.shape[2], reverse, relu
    a.whhT_p, a.y, a.dy = &whhT_packed[0], &y[0, 0, y_off], &dy[0, 0, y_off]
    a.dh, a.dpre = &dh[0, 0], &dpre[0, 0, 0]
    a.grads.T, a.grads.B, a.grads.D, a.grads.H, a.grads.G = T, B, D, H, H
    a.grads.ldy, a.grads.reverse, a.grads.dx_accumulate = y.shape[2], reverse, dx_accumulate
    a.grads.x, a.grads.h0, a.grads.y = &x[0, 0, 0], &h0[0, 0], &y[0, 0, y_off]
    a.grads.active = &active[0] if active.shape[0] > 0 else NULL
    a.grads.dgi = a.grads.dgh = &dpre[0, 0, 0]
    a.grads.wihT = &wihT_packed[0]
    a.grads.dgi_packed = a.grads.dgh_packed = &dg_packed[0]
    a.grads.dx, a.grads.dw_ih, a.grads.dw_hh = &dx[0, 0, 0], &dw_ih[0, 0], &dw_hh[0, 0]
    a.grads.db_ih, a.grads.db_hh = &db_ih[0], &db_hh[0]
    a.grads.G_prev = H     # every column of dW_hh pairs with h_{t-1}
    set_transposed(&a.grads, &transposed[0])
    cdef fr_task_fn task = backward_task_f32 if floating is float else backward_task_f64
    a.packs.count = 0
    add_pack(&a.packs, H, H, &w_hh[0, 0], 1, H, &whhT_packed[0])
    add_pack(&a.packs, D, H, &w_ih[0, 0], 1, D, &wihT_packed[0])
    with nogil:
        run_parallel(nthreads, task, &a, &a.barrier)
