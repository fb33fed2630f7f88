# Sequence-level pieces shared by every cell's kernels: chunking of time,
# the input projection, and the weight gradients after backward's time loop.
# Most run as one task of a parallel job (csrc/fastrnn_pool.h): tid of
# nthreads takes its share and the caller places the barriers.
# Pointers are to the first element of row-major blocks; ld* are row strides.

from cython cimport floating
from fastrnn.kernels.cells cimport colsum_add, fill_rows
from fastrnn.kernels.packed cimport (matmul_nt, pack_panels, pack_rows, packed_gemm,
                                    packed_gemm_ex, packed_gemm_pair, panel_width)
from fastrnn.kernels.products cimport (FR_Q8_NR, WEIGHTS_FLOAT, reduced_pack_cols,
                                       weights_product_bias)
from fastrnn.kernels.threads cimport FR_MAX_PARTS, barrier_wait, fr_barrier, split_range


cdef inline void copy_rows(int rows, int cols, const floating* src, int lds,
                           floating* dst, int ldd) noexcept nogil:
    """dst[:rows, :cols] = src[:rows, :cols]."""
    cdef int b, j
    for b in range(rows):
        for j in range(cols):
            dst[<size_t>b * ldd + j] = src[<size_t>b * lds + j]


cdef inline void zero_rows(int rows, int cols, floating* dst, int ldd) noexcept nogil:
    """dst[:rows, :cols] = 0."""
    cdef int b, j
    for b in range(rows):
        for j in range(cols):
            dst[<size_t>b * ldd + j] = 0


cdef inline int clamp(int v, int lo, int hi) noexcept nogil:
    return lo if v < lo else (hi if v > hi else v)


# Variable-length batches.  The Python layer sorts the batch by length,
# longest first, so the rows whose sequence covers step t are a prefix:
# active[t] of them (active is NULL when every sequence has all T steps).
# A time loop then runs each step on a prefix of its rows and splits that
# prefix by where each row's previous state comes from.
cdef struct StepRows:
    int end       # rows [b0, end) run this step; [end, b1) are past their sequence's end
    int cont      # rows [b0, cont) continue from step t_prev; [cont, end) start from state0
    int fin       # rows [fin, end) take their last step here: their state is final
    int t_prev    # the step before t in the direction of time


cdef inline int rows_at(const int* active, int T, int B, int t) noexcept nogil:
    """Rows whose sequence covers step t (0 outside [0, T))."""
    if t < 0 or t >= T:
        return 0
    return B if active == NULL else active[t]


cdef inline void step_rows(const int* active, int T, int B, bint reverse, int t, int b0,
                           int b1, StepRows* r) noexcept nogil:
    """How the rows [b0, b1) of one task take part in step t (see StepRows)."""
    cdef int n = rows_at(active, T, B, t)
    cdef int t_next = t - 1 if reverse else t + 1
    cdef int n_prev, n_next
    r.t_prev = t + 1 if reverse else t - 1
    # a row runs at both steps when it covers both (prefixes: the smaller count)
    n_prev = rows_at(active, T, B, r.t_prev)
    n_next = rows_at(active, T, B, t_next)
    r.end = clamp(n, b0, b1)
    r.cont = clamp(n_prev if n_prev < n else n, b0, r.end)
    r.fin = clamp(n_next if n_next < n else n, b0, r.end)


cdef inline long long rows_work(const int* active, int T, int b) noexcept nogil:
    """Row-steps that rows [0, b) of a sorted batch run (see StepRows)."""
    cdef long long w = 0
    cdef int t
    for t in range(T):
        w += active[t] if active[t] < b else b
    return w


cdef inline int work_bound(const int* active, int T, int B, int k, int nt) noexcept nogil:
    """Smallest b such that rows [0, b) run at least k/nt of all the row-steps."""
    cdef long long target = (rows_work(active, T, B) * k + nt - 1) // nt
    cdef int lo = 0, hi = B, mid
    while lo < hi:      # rows_work grows with b: every row runs at least one step
        mid = (lo + hi) // 2
        if rows_work(active, T, mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef inline void split_batch(const int* active, int T, int B, int tid, int nt, int* b0,
                             int* b1) noexcept nogil:
    """Task tid's rows [b0, b1) of a time loop over the batch.  With lengths the
    longest rows come first, so equal row counts would load the first task
    most: the rows are split so that each task runs as many row-steps."""
    if active == NULL:
        split_range(B, tid, nt, b0, b1)
        return
    b0[0] = work_bound(active, T, B, tid, nt)
    b1[0] = work_bound(active, T, B, tid + 1, nt)


cdef inline void chunk_bounds(int k, int chunk, int T, bint reverse,
                              int* t0, int* t1) noexcept nogil:
    """Time steps [t0, t1) of the k-th chunk in processing order (from the end when reverse)."""
    if reverse:
        t1[0] = T - k * chunk
        t0[0] = t1[0] - chunk if t1[0] > chunk else 0
    else:
        t0[0] = k * chunk
        t1[0] = t0[0] + chunk if t0[0] + chunk < T else T


cdef inline int gates_t0(bint all_steps, int t0) noexcept nogil:
    """The step whose gates are row 0 of a forward's gates buffer, in the chunk that
    starts at step t0: 0 when the buffer holds every step (training keeps them
    all), else t0 (inference reuses a buffer of one chunk)."""
    return 0 if all_steps else t0


cdef inline int time_loop_threads(int B, int H, int nthreads, bint packed, int nr,
                                  int units_rows, bint* split_units) noexcept nogil:
    """Threads for a time loop (a forward, or an LSTM's backward), and whether
    they share hidden units.

    A batch of at most units_rows rows (the caller's choice: fastrnn/runtime/paths.py)
    is shared by hidden units, in whole panels of nr columns, and only from
    packed weights: each thread then streams only its share of W_hh at every
    step.  Others are split by batch rows (more threads than rows would idle).
    """
    split_units[0] = (B <= units_rows and nthreads > 1 and H % nr == 0 and H >= 2 * nr
                      and packed)
    if split_units[0]:     # one part of each stage per thread (see UnitStage)
        nthreads = nthreads if nthreads < H // nr else H // nr
        return nthreads if nthreads < FR_MAX_PARTS else FR_MAX_PARTS
    return nthreads if nthreads < B else B


# A time loop shared by hidden units runs as a staged job
# (fastrnn.kernels.threads.run_staged): its threads claim parts of each stage
# rather than own a fixed share, so that a thread the OS deschedules does
# not stall the others at every step.  The stages, in order: the weight
# packs (when the call packs), then for each chunk of steps its input
# projection and its steps, each step in per_step stages (GRU reset-before
# needs r * h_{t-1} whole before its n product), and last the copy of the
# final states (h_n may be h0's buffer, which a row's first step reads).
# Part p of nparts owns the same whole panels of hidden units, of every
# row, at every step.
cdef enum:
    STAGE_PACK, STAGE_PROJECT, STAGE_STEP, STAGE_FINAL

cdef struct UnitStage:
    int kind        # STAGE_PACK, STAGE_PROJECT, STAGE_STEP or STAGE_FINAL
    int t0, t1      # the chunk's steps
    int t, sub      # STAGE_STEP: the step and its sub-stage (0 .. per_step-1)


cdef inline int sequence_length(const int* active, int T) noexcept nogil:
    """Steps a single sequence runs (active as in StepRows, with B = 1)."""
    cdef int length = 0
    if active == NULL:
        return T
    while length < T and active[length] > 0:
        length += 1
    return length


cdef inline int last_step(const int* active, int T, int B, bint reverse, int b) noexcept nogil:
    """The step at which row b of a sorted batch takes its last step (see StepRows)."""
    cdef int length = 0
    if reverse:
        return 0
    while length < T and rows_at(active, T, B, length) > b:
        length += 1
    return length - 1


cdef inline long unit_stages(int T, int chunk, int per_step, bint packs) noexcept nogil:
    """How many stages a forward shared by hidden units has (see UnitStage)."""
    return (1 if packs else 0) + (T + chunk - 1) // chunk + <long>T * per_step + 1


cdef inline void unit_stage(long stage, int T, int chunk, int per_step, bint packs,
                            bint reverse, UnitStage* u) noexcept nogil:
    """What stage `stage` of a forward shared by hidden units does (see UnitStage)."""
    cdef long per_chunk = 1 + <long>chunk * per_step, r
    cdef int i
    u.t0 = u.t1 = u.t = u.sub = 0
    if packs:
        if stage == 0:
            u.kind = STAGE_PACK
            return
        stage -= 1
    if stage == unit_stages(T, chunk, per_step, False) - 1:
        u.kind = STAGE_FINAL
        return
    chunk_bounds(<int>(stage // per_chunk), chunk, T, reverse, &u.t0, &u.t1)
    r = stage % per_chunk
    if r == 0:
        u.kind = STAGE_PROJECT
        return
    u.kind = STAGE_STEP
    i, u.sub = <int>((r - 1) // per_step), <int>((r - 1) % per_step)
    u.t = u.t1 - 1 - i if reverse else u.t0 + i


cdef inline void unit_range(int H, int nr, int part, int nparts, int* j0, int* j1) noexcept nogil:
    """Hidden units [j0, j1) of part `part`: whole panels of nr units."""
    cdef int u0, u1
    split_range(H // nr, part, nparts, &u0, &u1)
    j0[0], j1[0] = u0 * nr, u1 * nr


# A backward shared by hidden units (a single sequence, or a batch without
# lengths: every row then runs every step) is a staged job as well.  Its stages: the weight packs; one stage per step, against the
# forward's order of time, in which each part first takes its units of
# dh_t = dG_{t+1} W_hh from the whole of the previous stage's dG, then its
# units of the element-wise backward (writing dG_t); the final stage, dh0
# from the first step's dG and the packing of dG; and last the weight
# gradients, shared out as in param_grads_task.
cdef enum:
    STAGE_GRADS = STAGE_FINAL + 1

cdef struct BackStage:
    int kind        # STAGE_PACK, STAGE_STEP, STAGE_FINAL or STAGE_GRADS
    int t           # STAGE_STEP: the step; STAGE_FINAL: the sequence's first step
                    # in its direction of time, or -1 when it has none
    bint runs       # STAGE_STEP: step t lies within the sequence (else dG_t = 0)
    int t_next      # STAGE_STEP: the step after t, whose dG gives dh_t, or -1: dh_n
    int t_prev      # STAGE_STEP: the step before t, whose c is c_{t-1}, or -1: c0


cdef inline long back_stages(int T) noexcept nogil:
    """How many stages a single sequence's backward has (see BackStage)."""
    return <long>T + 3


cdef inline int step_or_none(const int* active, int T, int t) noexcept nogil:
    """t if the single sequence runs step t, else -1."""
    return t if rows_at(active, T, 1, t) > 0 else -1


cdef inline void back_stage(long stage, int T, bint reverse, const int* active,
                            BackStage* u) noexcept nogil:
    """What stage `stage` of a single sequence's backward does (see BackStage);
    active as in StepRows, with B = 1."""
    cdef int length
    u.t = u.t_next = u.t_prev = -1
    u.runs = False
    if stage == 0:
        u.kind = STAGE_PACK
    elif stage == T + 1:
        u.kind = STAGE_FINAL
        length = sequence_length(active, T)
        u.t = (length - 1 if reverse else 0) if length > 0 else -1
    elif stage == T + 2:
        u.kind = STAGE_GRADS
    else:
        u.kind = STAGE_STEP
        u.t = <int>(stage - 1) if reverse else T - <int>stage
        u.runs = rows_at(active, T, 1, u.t) > 0
        u.t_next = step_or_none(active, T, u.t - 1 if reverse else u.t + 1)
        u.t_prev = step_or_none(active, T, u.t + 1 if reverse else u.t - 1)


cdef inline void project_rows(int rows, int G, int D, const floating* x, bint packed,
                              int weights, const floating* w_ih, const void* wih_packed,
                              const floating* bias, floating* out, int ldo) noexcept nogil:
    """out[:rows, :G] = x[:rows] @ W_ih^T + bias (x has D columns), from W_ih packed
    (when packed, as weights says: fastrnn/kernels/products.pxd) or as it is."""
    if rows <= 0:
        return
    if packed:
        weights_product_bias(weights, rows, D, x, wih_packed, 1, G, 0, G, bias, out, ldo)
    else:
        fill_rows(rows, G, bias, out, ldo)
        matmul_nt(False, rows, G, D, x, D, w_ih, <const floating*>wih_packed, out, ldo, True)


# A time loop split by batch rows reads, at each step, only its own rows of
# the projection.  With at least OWN_ROWS_MIN rows a task, each task projects
# its own rows just before its steps: no task then waits for another between
# a chunk's projection and its steps, nor before the next chunk's projection
# overwrites the buffer, and the gates its steps read were written on its own
# core.  With fewer rows a step's product is too small to make good use of
# the weights it streams from L2, so the tasks share the chunk's projection
# by rows of the chunk instead, with a barrier after it and one after the
# chunk's steps (docs/DECISIONS.md, "own-rows projection").
cdef enum:
    OWN_ROWS_MIN = 8


cdef inline bint projects_own_rows(int B, int nthreads) noexcept nogil:
    """Whether each task of a time loop over B batch rows projects its own rows
    (project_chunk)."""
    return B >= OWN_ROWS_MIN * nthreads


cdef inline void project_chunk(bint own_rows, int t0, int t1, int B, int b0, int b1, int G,
                               int D, const floating* x, bint packed, int weights,
                               const floating* w_ih, const void* wih_packed, const floating* bias,
                               floating* out, int ldo, int tid, int nthreads,
                               fr_barrier* barrier) noexcept nogil:
    """The input projection of steps [t0, t1) that task tid of a time loop over
    batch rows [b0, b1) needs before it runs them: for each step t and row b,
    out[(t - t0) * B + b] = x[t * B + b] @ W_ih^T + bias (x is (T * B, D), out
    the chunk's first gates row).

    own_rows (projects_own_rows): the task projects rows [b0, b1) itself.
    Else the tasks share all the chunk's rows and wait for one another, and
    must wait again after the chunk's steps (end_chunk).  Every output is the
    same sum in the same order whichever task computes it, so neither way
    changes a result."""
    cdef int t, r0, r1
    if not own_rows:
        split_range((t1 - t0) * B, tid, nthreads, &r0, &r1)
        project_rows(r1 - r0, G, D, x + (<size_t>t0 * B + r0) * D, packed, weights, w_ih,
                     wih_packed, bias, out + <size_t>r0 * ldo, ldo)
        barrier_wait(barrier)
    elif b0 == 0 and b1 == B:   # the chunk's rows are contiguous: one product
        project_rows((t1 - t0) * B, G, D, x + <size_t>t0 * B * D, packed, weights, w_ih,
                     wih_packed, bias, out, ldo)
    else:
        for t in range(t0, t1):
            project_rows(b1 - b0, G, D, x + (<size_t>t * B + b0) * D, packed, weights, w_ih,
                         wih_packed, bias, out + (<size_t>(t - t0) * B + b0) * ldo, ldo)


cdef inline void end_chunk(bint own_rows, fr_barrier* barrier) noexcept nogil:
    """After a task's steps of a chunk: with a shared projection (project_chunk),
    wait until every task is done with the buffer the next chunk overwrites."""
    if not own_rows:
        barrier_wait(barrier)


cdef inline void pack_task(int N, int K, const floating* W, long sn, long sk,
                           floating* Wp, int tid, int nthreads,
                           int weights=0) noexcept nogil:
    """This task's share (whole panels) of pack_panels(N, K, W, sn, sk, Wp), or of W
    quantized to int8 or rounded to bfloat16 (reduced_pack_cols: float32 only)."""
    cdef int nr = FR_Q8_NR if weights != WEIGHTS_FLOAT else panel_width(W)
    cdef int q0, q1, n0, n1
    split_range((N + nr - 1) // nr, tid, nthreads, &q0, &q1)
    n0 = q0 * nr
    n1 = q1 * nr if q1 * nr < N else N
    if n1 <= n0:
        return
    if weights != WEIGHTS_FLOAT:
        if floating is float:
            reduced_pack_cols(weights, N, K, W, sn, sk, Wp, n0, n1)
    else:
        pack_panels(n1 - n0, K, W + n0 * sn, sn, sk, Wp + <size_t>n0 * K)


# The weight matrices a kernel call packs before its products read them.
# Packing is a pass over every weight per call, so the tasks share it out
# by panels rather than leave it to the calling thread while the others wait.
cdef enum:
    MAX_PACKS = 3

cdef struct Packs:
    int count
    int weights            # WEIGHTS_FLOAT, or int8 / bfloat16 (fastrnn/kernels/products.pxd)
    int N[MAX_PACKS]
    int K[MAX_PACKS]
    long sn[MAX_PACKS]     # element (n, k) of matrix i at W[i][n*sn[i] + k*sk[i]]
    long sk[MAX_PACKS]
    const void* W[MAX_PACKS]
    void* Wp[MAX_PACKS]


cdef inline void add_pack(Packs* p, int N, int K, const void* W, long sn, long sk,
                          void* Wp) noexcept nogil:
    """Add pack_panels(N, K, W, sn, sk, Wp) to the call's packs."""
    cdef int i = p.count
    p.N[i], p.K[i], p.W[i], p.sn[i], p.sk[i], p.Wp[i] = N, K, W, sn, sk, Wp
    p.count = i + 1


cdef inline void packs_task(Packs* p, floating* _, int tid, int nthreads) noexcept nogil:
    """This task's share of every pack; the caller places the barrier after it."""
    cdef int i
    for i in range(p.count):
        pack_task(p.N[i], p.K[i], <const floating*>p.W[i], p.sn[i], p.sk[i],
                  <floating*>p.Wp[i], tid, nthreads, p.weights)


# A part packs and projects the same units it steps, so the packed weights
# and gate pre-activations that its steps read were written by the thread
# that usually runs it: on a VM whose cores sit far apart, every cache line
# that crosses between them each step costs more than the arithmetic.

cdef inline void packs_units_task(Packs* p, floating* _, int H, int j0, int j1) noexcept nogil:
    """Units [j0, j1) of every gate block (H rows each) of every pack."""
    cdef int i, q, n0
    for i in range(p.count):
        for q in range(p.N[i] // H):
            n0 = q * H
            if p.weights != WEIGHTS_FLOAT:
                if floating is float:
                    reduced_pack_cols(p.weights, p.N[i], p.K[i], <const float*>p.W[i],
                                      p.sn[i], p.sk[i], p.Wp[i], n0 + j0, n0 + j1)
                continue
            pack_panels(j1 - j0, p.K[i], <const floating*>p.W[i] + (n0 + j0) * p.sn[i],
                        p.sn[i], p.sk[i], <floating*>p.Wp[i] + <size_t>(n0 + j0) * p.K[i])


cdef inline void project_units_task(int rows, int nblocks, int H, int D, const floating* x,
                                    int weights, const void* wih_p, const floating* bias,
                                    floating* out, int ldo, int j0, int j1) noexcept nogil:
    """Units [j0, j1) of each of the nblocks gate blocks of out[:rows] =
    x[:rows] @ W_ih^T + bias, from W_ih packed (D rows per panel)."""
    weights_product_bias(weights, rows, D, x, wih_p, nblocks, H, j0, j1, bias, out, ldo)


cdef inline bint pack_or_project(const UnitStage* u, Packs* packs, int nblocks, int B, int H,
                                 int D, const floating* x, int weights, const void* wih_p,
                                 const floating* bias, floating* chunk_out, int ldo, int j0,
                                 int j1) noexcept nogil:
    """Do units [j0, j1) of stage u if it packs the weights or projects a chunk of B
    rows a step (into chunk_out, the gates row of the chunk's first step); return
    whether it did."""
    if u.kind == STAGE_PACK:
        packs_units_task(packs, chunk_out, H, j0, j1)
        return True
    if u.kind == STAGE_PROJECT:
        project_units_task((u.t1 - u.t0) * B, nblocks, H, D, x + <size_t>u.t0 * B * D, weights,
                           wih_p,
                           bias, chunk_out, ldo, j0, j1)
        return True
    return False


cdef struct GradArgs:
    # Everything the weight gradients of one layer direction need (void* so
    # one struct serves float and double; see param_grads_task).
    int T, B, D, H, G, ldy
    bint reverse, dx_accumulate
    const int* active     # rows covering each step (see StepRows), or NULL
    const void* x         # (T*B, D) layer input
    const void* h0        # (B, H)
    const void* y         # this direction's outputs, row stride ldy
    const void* dgi       # (T*B, G) input-side gate gradients
    const void* dgh       # (T*B, G) hidden-side ones (== dgi except for GRU)
    const void* wihT      # W_ih^T packed: N = D, K = G
    void* dx              # (T*B, D)
    void* dw_ih           # (G, D), added to
    void* dw_hh           # (G, H), added to
    void* db_ih           # (G,), added to; NULL for a layer without biases
    void* db_hh           # (G,), added to; NULL with db_ih
    # dW_hh rows [0, G_prev) pair with H_prev, the others [G_prev, G) with
    # hx (T*B rows of stride ldhx): for GRU reset-before the n block's
    # product reads r * h_prev.  G_prev == G: all pair with H_prev.
    int G_prev, ldhx
    const void* hx
    # Work: the weight gradients' right operands in panels of their columns,
    # T*B rows each (docs/DECISIONS.md): X (N = D), H_prev (N = H) and, when
    # G_prev < G, hx (N = H).  The gate gradients are read where they lie.
    void* xp
    void* hp
    void* hxp


cdef inline void param_grads_task(GradArgs* a, floating* _, int tid, int nthreads,
                                  fr_barrier* barrier) noexcept nogil:
    """This task's share of the gradients that need no time loop:

    dW_ih += dGi^T X,  dW_hh += dGh^T H_prev (rows from G_prev: dGh^T hx),
    dX (+)= dGi W_ih,
    db_ih += sum_rows dGi,  db_hh += sum_rows dGh,

    with H_prev the direction's output y shifted by one step in its direction
    of time and h0 at the first step.  X, H_prev (and hx) are packed first
    (shared out), then each task owns whole rows of the weight gradients and a
    block of rows of dX, so no two tasks write one element and the result
    does not depend on the split.
    """
    param_grads_pack(a, _, tid, nthreads)
    barrier_wait(barrier)
    param_grads_products(a, _, tid, nthreads)


cdef inline void pack_rows_clipped(int rows, int cols, const floating* src, long lds,
                                   floating* dst, long kpanel, int c0, int c1) noexcept nogil:
    """Columns [c0, c1) (clipped to [0, cols); c0 on a panel boundary) of src (rows x
    cols, row-major) into dst's panels of kpanel rows, from the row dst points at."""
    c0 = c0 if c0 > 0 else 0
    c1 = c1 if c1 < cols else cols
    if c1 > c0 and rows > 0:
        pack_rows(c0, c1, rows, src, lds, dst, kpanel)


cdef inline void prev_outputs_packed(GradArgs* a, floating* _, int c0, int c1) noexcept nogil:
    """Columns [c0, c1) of H_prev (T*B, H) into hp's panels: row t*B + b holds the
    state that step t of row b started from, y one step back in the direction of
    time, or h0 at the row's first step."""
    cdef int T = a.T, B = a.B, H = a.H, TB = a.T * a.B, nr = panel_width(_), t, b_lo, b_hi
    cdef const floating* y = <const floating*>a.y
    cdef const floating* h0 = <const floating*>a.h0
    cdef floating* hp = <floating*>a.hp
    if not a.reverse:    # step t saw h_{t-1}: rows [B, TB) are y[:-1]
        pack_rows_clipped(B, H, h0, H, hp, TB, c0, c1)
        pack_rows_clipped(TB - B, H, y, a.ldy, hp + <size_t>B * nr, TB, c0, c1)
        return
    # reverse: step t saw h_{t+1}, the last step h0
    pack_rows_clipped(TB - B, H, y + <size_t>B * a.ldy, a.ldy, hp, TB, c0, c1)
    pack_rows_clipped(B, H, h0, H, hp + <size_t>(TB - B) * nr, TB, c0, c1)
    if a.active != NULL:
        # Over sequences shorter than T the rows that start at step t < T-1
        # saw h0, not y[t+1] (which is padding).
        for t in range(T - 1):
            b_lo, b_hi = a.active[t + 1], a.active[t]
            if b_hi > b_lo:
                pack_rows_clipped(b_hi - b_lo, H, h0 + <size_t>b_lo * H, H,
                                  hp + (<size_t>t * B + b_lo) * nr, TB, c0, c1)


cdef inline void param_grads_pack(GradArgs* a, floating* _, int tid,
                                  int nthreads) noexcept nogil:
    """This task's share of packing the right operands of param_grads_products."""
    cdef int TB = a.T * a.B, D = a.D, H = a.H
    cdef int nr = panel_width(_), q0, q1
    cdef int nx = (D + nr - 1) // nr, nh = (H + nr - 1) // nr
    # the panels: X's, then H_prev's, then hx's
    split_range(nx + nh + (nh if a.G_prev < a.G else 0), tid, nthreads, &q0, &q1)
    pack_rows_clipped(TB, D, <const floating*>a.x, D, <floating*>a.xp, TB, q0 * nr, q1 * nr)
    prev_outputs_packed(a, _, (q0 - nx) * nr, (q1 - nx) * nr)
    if a.G_prev < a.G:
        pack_rows_clipped(TB, H, <const floating*>a.hx, a.ldhx, <floating*>a.hxp, TB,
                          (q0 - nx - nh) * nr, (q1 - nx - nh) * nr)


cdef inline void param_grads_products(GradArgs* a, floating* _, int tid,
                                      int nthreads) noexcept nogil:
    """This task's share of the products of param_grads_task, once every task's
    param_grads_pack is done."""
    cdef int TB = a.T * a.B, G = a.G, D = a.D, H = a.H, Gp = a.G_prev
    cdef const floating* dgi = <const floating*>a.dgi
    cdef const floating* dgh = <const floating*>a.dgh
    cdef floating* dw_ih = <floating*>a.dw_ih
    cdef floating* dw_hh = <floating*>a.dw_hh
    cdef int nr = panel_width(_)
    cdef int q0, q1, n0, n1, r0, r1, n1h, n0x
    split_range((G + nr - 1) // nr, tid, nthreads, &q0, &q1)
    n0 = q0 * nr
    n1 = q1 * nr if q1 * nr < G else G
    n1h = n1 if n1 < Gp else Gp
    n0x = n0 if n0 > Gp else Gp
    # dW[n, :] += sum_tb dG[tb, n] A[tb, :]: the task's rows n of dW, with dG's
    # columns read in place as the rows of the left operand (strides 1 and G)
    # and A packed, so that dW is written along its rows.
    if n1 > n0 and n1h == n1 and dgh == dgi:     # both read one dG: its blocks once
        packed_gemm_pair(n1 - n0, TB, dgi + n0, G, <const floating*>a.xp, D,
                         dw_ih + <size_t>n0 * D, D, <const floating*>a.hp, H,
                         dw_hh + <size_t>n0 * H, H, TB, True)
    else:
        if n1 > n0:
            packed_gemm_ex(n1 - n0, 0, D, TB, dgi + n0, 1, G, <const floating*>a.xp, TB,
                           dw_ih + <size_t>n0 * D, D, 1, True)
        if n1h > n0:
            packed_gemm_ex(n1h - n0, 0, H, TB, dgh + n0, 1, G, <const floating*>a.hp, TB,
                           dw_hh + <size_t>n0 * H, H, 1, True)
    if n1 > n0x:     # dW_hh[G_prev:] += dGh[:, G_prev:]^T hx
        packed_gemm_ex(n1 - n0x, 0, H, TB, dgh + n0x, 1, G, <const floating*>a.hxp, TB,
                       dw_hh + <size_t>n0x * H, H, 1, True)
    if n1 > n0 and a.db_ih != NULL:
        if dgh == dgi:    # one pass over dG for both biases
            colsum_add(TB, n1 - n0, dgi + n0, G, <floating*>a.db_ih + n0,
                       <floating*>a.db_hh + n0)
        else:
            colsum_add(TB, n1 - n0, dgi + n0, G, <floating*>a.db_ih + n0)
            colsum_add(TB, n1 - n0, dgh + n0, G, <floating*>a.db_hh + n0)
    split_range(TB, tid, nthreads, &r0, &r1)
    if r1 > r0:
        packed_gemm(r1 - r0, D, G, dgi + <size_t>r0 * G, G, <const floating*>a.wihT, G,
                    <floating*>a.dx + <size_t>r0 * D, D, a.dx_accumulate)
