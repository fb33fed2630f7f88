# The time loops, once for every cell: forward over a sequence and backward
# through time, each either split by batch rows (a task per thread, run by
# fastrnn.kernels.threads.run_parallel) or, for a single sequence, by hidden units
# (a staged job, run_staged).  What a cell does at a step comes from its
# step functions (fastrnn/kernels/<cell>_step.pxd), chosen by the cell_* switches
# below on the call's cell: a branch on a per-call constant, which costs
# nothing next to a step's product.
#
# Lengths, chunked projection, the packing of the weights, the hand-over
# between threads and the weight gradients live in fastrnn/kernels/sequence.pxd; the
# arguments of a call in fastrnn/kernels/layer_call.pxd.

from cython cimport floating
from fastrnn.kernels.gru_step cimport (gru_backward_rows, gru_forward_rows, gru_forward_units,
                               gru_past_end_rows, gru_past_end_units, gru_substeps)
from fastrnn.kernels.layer_call cimport CELL_GRU, CELL_LSTM, Backward, Forward, gate_blocks
from fastrnn.kernels.lstm_step cimport (lstm_backward_rows, lstm_backward_units, lstm_final_rows,
                                lstm_final_units, lstm_forward_rows, lstm_forward_units,
                                lstm_peep_grads_task)
from fastrnn.kernels.packed cimport packed_gemm, packed_gemm_ex, panel_width
from fastrnn.kernels.rnn_step cimport rnn_backward_rows, rnn_forward_rows, rnn_forward_units
from fastrnn.kernels.sequence cimport (STAGE_FINAL, STAGE_PACK, STAGE_STEP, BackStage, StepRows, UnitStage,
                           back_stage, chunk_bounds, copy_rows, end_chunk, gates_t0,
                           last_step, pack_or_project, packs_task, param_grads_pack,
                           param_grads_products, param_grads_task, project_chunk,
                           projects_own_rows, split_batch, step_rows, unit_range, unit_stage,
                           zero_rows)
from fastrnn.kernels.threads cimport barrier_wait


# ------------------------------------------------------------ cell switches

cdef inline void cell_forward_rows(Forward* a, floating* _, int t, int gt0, int lo, int hi,
                                   int t_prev) noexcept nogil:
    """Step t for batch rows [lo, hi) from step t_prev's state (< 0: state0)."""
    if a.c.cell == CELL_LSTM:
        lstm_forward_rows(a, _, t, gt0, lo, hi, t_prev)
    elif a.c.cell == CELL_GRU:
        gru_forward_rows(a, _, t, gt0, lo, hi, t_prev)
    else:
        rnn_forward_rows(a, _, t, gt0, lo, hi, t_prev)


cdef inline void cell_final_rows(Forward* a, floating* _, int t, int lo, int hi) noexcept nogil:
    """Rows [lo, hi) end at step t: the state beyond h into the final state."""
    if a.c.cell == CELL_LSTM:
        lstm_final_rows(a, _, t, lo, hi)


cdef inline void cell_past_end_rows(Forward* a, floating* _, int t, int gt0, int lo,
                                    int hi) noexcept nogil:
    """Rows [lo, hi) are past their end at step t: clear what else backward reads."""
    if a.c.cell == CELL_GRU:
        gru_past_end_rows(a, _, t, gt0, lo, hi)


cdef inline int cell_substeps(Forward* a) noexcept nogil:
    """Sub-stages of a step of a single sequence split by units."""
    return gru_substeps(a) if a.c.cell == CELL_GRU else 1


cdef inline void cell_forward_units(Forward* a, floating* _, int sub, int t, int gt0, int lo,
                                    int hi, int t_prev, int j0, int j1) noexcept nogil:
    """Sub-stage sub of step t for rows [lo, hi) and hidden units [j0, j1)."""
    if a.c.cell == CELL_LSTM:
        lstm_forward_units(a, _, sub, t, gt0, lo, hi, t_prev, j0, j1)
    elif a.c.cell == CELL_GRU:
        gru_forward_units(a, _, sub, t, gt0, lo, hi, t_prev, j0, j1)
    else:
        rnn_forward_units(a, _, sub, t, gt0, lo, hi, t_prev, j0, j1)


cdef inline void cell_final_units(Forward* a, floating* _, int t, int b, int j0,
                                  int j1) noexcept nogil:
    """Row b ends at step t: units [j0, j1) of the state beyond h."""
    if a.c.cell == CELL_LSTM:
        lstm_final_units(a, _, t, b, j0, j1)


cdef inline void cell_past_end_units(Forward* a, floating* _, int t, int gt0, int lo, int hi,
                                     int j0, int j1) noexcept nogil:
    if a.c.cell == CELL_GRU:
        gru_past_end_units(a, _, t, gt0, lo, hi, j0, j1)


cdef inline void cell_backward_rows(Backward* a, floating* _, int t, int lo, int hi,
                                    int t_prev) noexcept nogil:
    """Element-wise backward of step t for rows [lo, hi) from step t_prev's state."""
    if a.c.cell == CELL_LSTM:
        lstm_backward_rows(a, _, t, lo, hi, t_prev)
    elif a.c.cell == CELL_GRU:
        gru_backward_rows(a, _, t, lo, hi, t_prev)
    else:
        rnn_backward_rows(a, _, t, lo, hi, t_prev)


cdef inline void cell_backward_units(Backward* a, floating* _, const BackStage* u, int j0,
                                     int j1) noexcept nogil:
    """Only cells whose backward splits by units (fastrnn/kernels/layer_call.pxd
    splits_backward) come here."""
    if a.c.cell == CELL_LSTM:
        lstm_backward_units(a, _, u, j0, j1)


cdef inline void cell_extra_grads(Backward* a, floating* _, int tid, int nt) noexcept nogil:
    """This task's share of the gradients of a variant's own parameters."""
    if a.c.cell == CELL_LSTM and a.peep != NULL:
        lstm_peep_grads_task(a, _, tid, nt)


# ------------------------------------------------------------------ forward

cdef inline void forward_task(Forward* a, floating* _, int tid, int nt) noexcept nogil:
    """Task tid of nt of a forward split by batch rows."""
    if a.packs.count > 0:    # every weight packed before any product reads it
        packs_task(&a.packs, _, tid, nt)
        barrier_wait(&a.barrier)
    cdef int T = a.c.T, B = a.c.B, H = a.c.H, ldg = a.c.ldg, ldy = a.ldy
    cdef floating* y = <floating*>a.y
    cdef int b0, b1, k, s, t, t0, t1, gt0
    cdef StepRows r
    split_batch(a.active, T, B, tid, nt, &b0, &b1)
    cdef bint own_rows = projects_own_rows(B, nt)
    for k in range((T + a.c.chunk - 1) // a.c.chunk):
        chunk_bounds(k, a.c.chunk, T, a.c.reverse, &t0, &t1)
        gt0 = gates_t0(a.all_steps, t0)
        project_chunk(own_rows, t0, t1, B, b0, b1, a.c.G, a.c.D, <const floating*>a.x,
                      a.c.packed, a.c.weights, <const floating*>a.w_ih, a.wih_p,
                      <const floating*>a.bias,
                      <floating*>a.gates + <size_t>(t0 - gt0) * B * ldg, ldg, tid, nt,
                      &a.barrier)
        for s in range(t1 - t0 if b1 > b0 else 0):
            t = t1 - 1 - s if a.c.reverse else t0 + s
            step_rows(a.active, T, B, a.c.reverse, t, b0, b1, &r)
            if r.cont > b0:      # from step t_prev's state
                cell_forward_rows(a, _, t, gt0, b0, r.cont, r.t_prev)
            if r.end > r.cont:   # first steps: from the initial state
                cell_forward_rows(a, _, t, gt0, r.cont, r.end, -1)
            copy_rows(r.end - r.fin, H, y + (<size_t>t * B + r.fin) * ldy, ldy,
                      <floating*>a.h_n + <size_t>r.fin * H, H)
            cell_final_rows(a, _, t, r.fin, r.end)
            zero_rows(b1 - r.end, H, y + (<size_t>t * B + r.end) * ldy, ldy)
            cell_past_end_rows(a, _, t, gt0, r.end, b1)
        end_chunk(own_rows, &a.barrier)


cdef inline void forward_units_part(Forward* a, floating* _, long stage, int part,
                                    int nparts) noexcept nogil:
    """A forward shared by hidden units: one part of one stage, all of the batch's
    rows (fastrnn/kernels/sequence.pxd UnitStage)."""
    cdef int T = a.c.T, B = a.c.B, H = a.c.H, j0, j1, gt0, b, t
    cdef floating* y = <floating*>a.y
    cdef UnitStage u
    cdef StepRows r
    unit_stage(stage, T, a.c.chunk, cell_substeps(a), a.packs.count > 0, a.c.reverse, &u)
    unit_range(H, panel_width(_), part, nparts, &j0, &j1)
    gt0 = gates_t0(a.all_steps, u.t0)
    if pack_or_project(&u, &a.packs, gate_blocks(a.c.cell), B, H, a.c.D,
                       <const floating*>a.x, a.c.weights, a.wih_p,
                       <const floating*>a.bias,
                       <floating*>a.gates + <size_t>(u.t0 - gt0) * B * a.c.ldg, a.c.ldg, j0,
                       j1):
        return
    if u.kind == STAGE_FINAL:    # every row's last h (and c) into the final state
        for b in range(B):
            t = last_step(a.active, T, B, a.c.reverse, b)
            copy_rows(1, j1 - j0, y + (<size_t>t * B + b) * a.ldy + j0, H,
                      <floating*>a.h_n + <size_t>b * H + j0, H)
            cell_final_units(a, _, t, b, j0, j1)
        return
    step_rows(a.active, T, B, a.c.reverse, u.t, 0, B, &r)
    if u.sub == 0 and r.end < B:    # rows past their end: zero output
        zero_rows(B - r.end, j1 - j0, y + (<size_t>u.t * B + r.end) * a.ldy + j0, a.ldy)
        cell_past_end_units(a, _, u.t, gt0, r.end, B, j0, j1)
    if r.cont > 0:       # from step t_prev's state
        cell_forward_units(a, _, u.sub, u.t, gt0, 0, r.cont, r.t_prev, j0, j1)
    if r.end > r.cont:   # first steps: from the initial state
        cell_forward_units(a, _, u.sub, u.t, gt0, r.cont, r.end, -1, j0, j1)


# ----------------------------------------------------------------- backward

cdef inline void backward_task(Backward* a, floating* _, int tid, int nt) noexcept nogil:
    """Task tid of nt of a backward split by batch rows, then its share of the
    weight gradients."""
    cdef int T = a.c.T, B = a.c.B, H = a.c.H, G = a.c.G
    cdef floating* dgh = <floating*>a.dgh
    cdef int b0, b1, s, t
    cdef StepRows r
    packs_task(&a.packs, _, tid, nt)
    barrier_wait(&a.barrier)
    split_batch(a.grads.active, T, B, tid, nt, &b0, &b1)
    for s in range(T if b1 > b0 else 0):
        t = s if a.c.reverse else T - 1 - s   # against the forward's order of time
        step_rows(a.grads.active, T, B, a.c.reverse, t, b0, b1, &r)
        if r.cont > b0:      # from step t_prev's state
            cell_backward_rows(a, _, t, b0, r.cont, r.t_prev)
        if r.end > r.cont:   # first steps: from the initial state
            cell_backward_rows(a, _, t, r.cont, r.end, -1)
        if r.end > b0:       # dh_{t-1} (+)= dGh_t W_hh
            packed_gemm(r.end - b0, H, a.Kh, dgh + (<size_t>t * B + b0) * G, G,
                        <const floating*>a.whhT_p, G, <floating*>a.dh + <size_t>b0 * H, H,
                        a.dh_accumulate)
        # rows past their sequence's end have no gradient (weight gradients sum all rows)
        zero_rows(b1 - r.end, G, dgh + (<size_t>t * B + r.end) * G, G)
        if a.dgi != a.dgh:
            zero_rows(b1 - r.end, G, <floating*>a.dgi + (<size_t>t * B + r.end) * G, G)
    barrier_wait(&a.barrier)    # every row of dG is needed below
    param_grads_task(&a.grads, _, tid, nt, &a.barrier)
    cell_extra_grads(a, _, tid, nt)


cdef inline void dh_units(Backward* a, floating* _, int t, int j0, int j1) noexcept nogil:
    """Units [j0, j1) of every row's dh = dGh_t W_hh (dGh_t whole, from every part)."""
    cdef int G = a.c.G, B = a.c.B
    packed_gemm_ex(B, j0, j1, a.Kh, <const floating*>a.dgh + <size_t>t * B * G, G, 1,
                   <const floating*>a.whhT_p, G, <floating*>a.dh, a.c.H, 1, a.dh_accumulate)


cdef inline void backward_units_part(Backward* a, floating* _, long stage, int part,
                                     int nparts) noexcept nogil:
    """One part of one stage of a backward shared by hidden units: a single sequence,
    or a batch without lengths (fastrnn/kernels/sequence.pxd BackStage).  Part p owns
    the same hidden units [j0, j1) of every row at every step: their dh_t, the cell's
    other state and dG_t columns in each gate block."""
    cdef int H = a.c.H, G = a.c.G, j0, j1, q
    cdef BackStage u
    back_stage(stage, a.c.T, a.c.reverse, a.grads.active, &u)
    unit_range(H, panel_width(_), part, nparts, &j0, &j1)
    if u.kind == STAGE_PACK:        # W_hh^T by units (the panels this part reads), W_ih^T
        packs_task(&a.packs, _, part, nparts)
    elif u.kind == STAGE_STEP and not u.runs:    # past the sequence's end: no gradient
        for q in range(G // H):
            zero_rows(a.c.B, j1 - j0, <floating*>a.dgi + <size_t>u.t * a.c.B * G + q * H + j0,
                      G)
    elif u.kind == STAGE_STEP:
        if u.t_next >= 0:           # dh_t = dG_{t+1} W_hh; else dh_n as given
            dh_units(a, _, u.t_next, j0, j1)
        cell_backward_units(a, _, &u, j0, j1)
    elif u.kind == STAGE_FINAL:
        if u.t >= 0:                # dh0 = dG_first W_hh
            dh_units(a, _, u.t, j0, j1)
        param_grads_pack(&a.grads, _, part, nparts)
    else:                           # STAGE_GRADS
        param_grads_products(&a.grads, _, part, nparts)
        cell_extra_grads(a, _, part, nparts)
