"""The recurrent kernels' entry points: one layer and one direction per call,
forward over the whole sequence and backward through time, for every cell.

The Python layer builds a CallConfig (cell, sizes, variant, direction,
training or not, packing, threads), asks it how large each buffer must be,
allocates them and passes them in; these functions check that each array
has the dtype, contiguity and size the configuration needs, bind them into
the job's arguments (fastrnn/kernels/layer_call.pxd) and run the time loop
(fastrnn/kernels/time_loop.pxd) on fastrnn's threads without the GIL.
"""

cimport numpy as cnp
import numpy as np
from cython cimport floating
from libc.string cimport memset

from fastrnn.kernels.cells cimport fr_lstm_newton, fr_set_lstm_newton
from fastrnn.kernels.layer_call cimport (CELL_GRU, CELL_LSTM, CELL_RNN, N_BWD, N_PACKS, N_SAVED,
                                  N_WORK, BWD_DGH, BWD_DGI, BWD_HP, BWD_HXP, BWD_WHHT,
                                  BWD_WIHT, BWD_XP, PACK_WHH, PACK_WIH,
                                  SAVED_CELLS, SAVED_GATES, WORK_BIAS, WORK_CELLS, WORK_GATES,
                                  WORK_GH, Backward, Forward, LayerConfig, backward_sizes,
                                  configure, forward_sizes, keeps_activations, packed_size,
                                  splits_backward)
from fastrnn.kernels.packed cimport (FR_CLASSES, FR_PANEL_F32, FR_PANEL_F64, PACK_NOW,
                                     PACK_WHEN_WORTH, PACKED, fr_gemm_class, fr_gemm_machine,
                                     fr_gemm_set_class, fr_gemm_tile_name)
from fastrnn.kernels.plan cimport StepPlan, run_or_plan
from fastrnn.kernels.products cimport (FR_BF16_MAX_K, FR_BF16_PATHS, FR_Q8_MAX_K, FR_Q8_PATHS,
                                       WEIGHTS_BF16, WEIGHTS_FLOAT, WEIGHTS_INT8,
                                       fr_bf16_path, fr_bf16_path_name, fr_bf16_set_path,
                                       fr_bf16_sums_in_order, fr_bf16_supported, fr_q8_path, fr_q8_path_name,
                                       fr_q8_set_path, fr_q8_supported, reduced_gemm,
                                       reduced_pack_bytes, reduced_pack_cols)
from fastrnn.kernels.sequence cimport add_pack, back_stages, time_loop_threads, unit_stages
from fastrnn.kernels.threads cimport fr_part_fn, fr_task_fn, run_parallel, run_staged
from fastrnn.kernels.time_loop cimport (backward_task, backward_units_part, cell_substeps,
                                 forward_task, forward_units_part)

cnp.import_array()

CELLS = {"RNN": CELL_RNN, "LSTM": CELL_LSTM, "GRU": CELL_GRU}
# whether each cell's single-sequence backward may be shared by hidden units
SPLITS_BACKWARD = {name: bool(splits_backward(cell)) for name, cell in CELLS.items()}
PACKING = {"when_worth": PACK_WHEN_WORTH, "now": PACK_NOW, "packed": PACKED}
WEIGHTS = {"float": WEIGHTS_FLOAT, "int8": WEIGHTS_INT8, "bfloat16": WEIGHTS_BF16}
# the largest D and H each reduced precision takes
MAX_K = {"int8": FR_Q8_MAX_K, "bfloat16": FR_BF16_MAX_K}


# --------------------------------------------------------------- jobs by dtype

cdef void forward_task_f32(void* a, int tid, int nt) noexcept nogil:
    forward_task(<Forward*>a, <float*>NULL, tid, nt)

cdef void forward_task_f64(void* a, int tid, int nt) noexcept nogil:
    forward_task(<Forward*>a, <double*>NULL, tid, nt)

cdef void forward_units_f32(void* a, long stage, int part, int nparts) noexcept nogil:
    forward_units_part(<Forward*>a, <float*>NULL, stage, part, nparts)

cdef void forward_units_f64(void* a, long stage, int part, int nparts) noexcept nogil:
    forward_units_part(<Forward*>a, <double*>NULL, stage, part, nparts)

cdef void backward_task_f32(void* a, int tid, int nt) noexcept nogil:
    backward_task(<Backward*>a, <float*>NULL, tid, nt)

cdef void backward_task_f64(void* a, int tid, int nt) noexcept nogil:
    backward_task(<Backward*>a, <double*>NULL, tid, nt)

cdef void backward_units_f32(void* a, long stage, int part, int nparts) noexcept nogil:
    backward_units_part(<Backward*>a, <float*>NULL, stage, part, nparts)

cdef void backward_units_f64(void* a, long stage, int part, int nparts) noexcept nogil:
    backward_units_part(<Backward*>a, <double*>NULL, stage, part, nparts)


# --------------------------------------------------------------- GEMM tile

def gemm_tile():
    """(machine class, register tile) of the GEMM on this CPU (csrc/fastrnn_gemm.h)."""
    return fr_gemm_machine().decode(), fr_gemm_tile_name().decode()


def _set_gemm_class(int c):
    """Run this module's GEMM with class c of csrc/fastrnn_gemm.h's table, or the CPU's
    own with -1; return the class it ran before.  For tests: every tile sums in the
    same order, so results must not change."""
    cdef int before = fr_gemm_class()
    fr_gemm_set_class(c)
    return before


def _set_lstm_newton(int mode):
    """Make the LSTM forward pass of this module divide by Newton steps (1, where
    the code has FMAs), by the division (0), or as this CPU does by default (-1);
    return whether it used Newton steps before.  For tests: both ways must agree
    with the reference."""
    cdef int before = fr_lstm_newton()
    fr_set_lstm_newton(mode)
    return bool(before)


def reduced_paths(str kind):
    """{name: supported} of the paths of kind's product ("int8" or "bfloat16":
    csrc/fastrnn_q8.h, csrc/fastrnn_bf16.h), in order."""
    if kind == "int8":
        return {fr_q8_path_name(p).decode(): bool(fr_q8_supported(p))
                for p in range(FR_Q8_PATHS)}
    if kind == "bfloat16":
        return {fr_bf16_path_name(p).decode(): bool(fr_bf16_supported(p))
                for p in range(FR_BF16_PATHS)}
    raise ValueError(f"kind: expected 'int8' or 'bfloat16', got {kind!r}")


def reduced_path(str kind):
    """The path of kind's product this process runs: (index, name)."""
    reduced_paths(kind)
    cdef int p = fr_q8_path() if kind == "int8" else fr_bf16_path()
    return p, (fr_q8_path_name(p) if kind == "int8" else fr_bf16_path_name(p)).decode()


def _sums_in_order(str kind, int path):
    """Whether path (an index of reduced_paths(kind)) gives the sums of the order
    csrc/fastrnn_q8.h or csrc/fastrnn_bf16.h defines, bit for bit: every int8 path,
    and every bfloat16 path but AMX-BF16, whose tiles order the sum their own way."""
    if not 0 <= path < len(reduced_paths(kind)):
        raise ValueError(f"path: {path} is not a {kind} path")
    return kind == "int8" or bool(fr_bf16_sums_in_order(path))


def _set_reduced_path(str kind, int path):
    """Run kind's products on path (an index of reduced_paths(kind)), or this CPU's
    best with -1; return the path run before.  For tests: the paths give the same
    numbers.  A path this CPU lacks is a ValueError."""
    paths = list(reduced_paths(kind).values())
    before = reduced_path(kind)[0]
    if path >= len(paths) or (path >= 0 and not paths[path]):
        raise ValueError(f"path: {path} is not a {kind} path this CPU runs "
                         f"({reduced_paths(kind)})")
    if kind == "int8":
        fr_q8_set_path(path)
    else:
        fr_bf16_set_path(path)
    return before


def _reduced_product(str kind, cnp.ndarray[cnp.float32_t, ndim=2, mode="c"] A,
                     cnp.ndarray[cnp.float32_t, ndim=2, mode="c"] W, bias=None):
    """A @ W.T (+ bias) through kind's pack and product ("int8" or "bfloat16"), for
    tests."""
    cdef int weights = WEIGHTS[kind] if kind in MAX_K else -1
    if weights < 0:
        raise ValueError(f"kind: expected 'int8' or 'bfloat16', got {kind!r}")
    cdef int M = A.shape[0], K = A.shape[1], N = W.shape[0]
    if W.shape[1] != K or K > MAX_K[kind]:
        raise ValueError(f"W: expected ({N}, {K}) with K <= {MAX_K[kind]}, got "
                         f"{(<object>W).shape}")
    cdef cnp.ndarray[cnp.float32_t, ndim=1] b
    cdef const float* pb = NULL
    if bias is not None:
        b = np.ascontiguousarray(bias, dtype=np.float32)
        if b.shape[0] != N:
            raise ValueError(f"bias: expected ({N},), got {(<object>b).shape}")
        pb = &b[0]
    cdef cnp.ndarray[cnp.float32_t, ndim=1] pack = np.zeros(
        reduced_pack_bytes(weights, N, K) // 4, np.float32)
    cdef cnp.ndarray[cnp.float32_t, ndim=2] C = np.zeros((M, N), np.float32)
    with nogil:
        reduced_pack_cols(weights, N, K, &W[0, 0], K, 1, &pack[0], 0, N)
        reduced_gemm(weights, M, K, &A[0, 0], K, &pack[0], N, 1, N, 0, N, &C[0, 0], N, False,
                     pb)
    return C


def gemm_classes():
    """How many machine classes the GEMM's table has."""
    return FR_CLASSES


# ------------------------------------------------------------- configuration

cdef class CallConfig:
    """One layer direction's kernel call: what it computes and on how many threads.

    Parameters
    ----------
    cell : int
        CELLS["RNN"], CELLS["LSTM"] or CELLS["GRU"].
    itemsize : int
        4 (float32) or 8 (float64).
    T, B, D, H : int
        Steps, batch rows, input features, hidden units.
    reverse : bool
        The direction runs from the last step to the first.
    training : bool
        A forward that keeps its activations for backward.
    packing : int
        PACKING["when_worth"] packs the weights when T * B is large enough to
        gain from it; "now" packs them whatever the size (into buffers the
        caller keeps, or for a StepPlan); "packed" uses the pack buffers as an
        earlier call left them.
    nthreads : int
        Threads the call may use.
    relu, reset_after, peephole : bool
        The variant: RNN relu (else tanh), GRU reset-after (torch's; else
        reset-before), LSTM peepholes.
    chunk_elements : int
        Bound on the gate values of one chunk of the input projection (0: the
        kernels' own, 512 KiB of float32); smaller bounds test the chunking.
    units_rows : int
        A forward of at most this many batch rows shares each step between its
        threads by hidden units, so that each thread streams only its share of the
        recurrent weights; larger batches are split by rows (default 1: a single
        sequence). fastrnn/runtime/paths.py chooses it from the machine's limits.
    weights : int
        WEIGHTS["float"] multiplies by the weights in the layer's dtype;
        WEIGHTS["int8"] by the weights quantized to int8 per output row, the
        activations quantized per row at each product; WEIGHTS["bfloat16"] by
        the weights and activations rounded to bfloat16 (float32 inference with
        packing "now" or "packed" only; D and H at most MAX_K).

    Attributes
    ----------
    saved_sizes, work_sizes, pack_sizes, backward_sizes : tuple of int
        Numbers in each buffer that forward (saved: kept for backward) and
        backward take, in the order they take them; 0 means none (pass None).
    """

    cdef LayerConfig c
    # the buffer sizes, computed once here for the Python layer and the entry points
    cdef long n_saved[N_SAVED]
    cdef long n_work[N_WORK]
    cdef long n_packs[N_PACKS]
    cdef long n_bwd[N_BWD]
    cdef readonly tuple saved_sizes, work_sizes, pack_sizes

    def __init__(self, int cell, int itemsize, int T, int B, int D, int H, bint reverse,
                 bint training, int packing, int nthreads, bint relu=False,
                 bint reset_after=True, bint peephole=False, int chunk_elements=0,
                 int units_rows=1, int weights=WEIGHTS_FLOAT):
        if cell not in (CELL_RNN, CELL_LSTM, CELL_GRU):
            raise ValueError(f"cell: expected one of {sorted(CELLS.values())}, got {cell}")
        if itemsize not in (4, 8):
            raise ValueError(f"itemsize: expected 4 or 8, got {itemsize}")
        if T < 1 or B < 1 or D < 1 or H < 1 or nthreads < 1:
            raise ValueError(f"T, B, D, H, nthreads: expected positive sizes, got "
                             f"{(T, B, D, H, nthreads)}")
        if packing not in (PACK_WHEN_WORTH, PACK_NOW, PACKED):
            raise ValueError(f"packing: expected one of {sorted(PACKING.values())}, got "
                             f"{packing}")
        if weights not in (WEIGHTS_FLOAT, WEIGHTS_INT8, WEIGHTS_BF16):
            raise ValueError(f"weights: expected one of {sorted(WEIGHTS.values())}, got "
                             f"{weights}")
        cdef int max_k = FR_Q8_MAX_K if weights == WEIGHTS_INT8 else FR_BF16_MAX_K
        if weights != WEIGHTS_FLOAT and (itemsize != 4 or training
                                         or packing == PACK_WHEN_WORTH or max(D, H) > max_k):
            raise ValueError("weights: int8 and bfloat16 need float32 inference, packing "
                             f"'now' or 'packed', and D, H at most {max_k}")
        self.c.weights = weights
        self.c.cell, self.c.itemsize = cell, itemsize
        self.c.T, self.c.B, self.c.D, self.c.H = T, B, D, H
        self.c.reverse, self.c.training = reverse, training
        self.c.relu, self.c.reset_after, self.c.peephole = relu, reset_after, peephole
        self.c.packing, self.c.nthreads = packing, nthreads
        self.c.chunk_elements = chunk_elements
        self.c.units_rows = units_rows
        configure(&self.c)
        forward_sizes(&self.c, self.n_saved, self.n_work, self.n_packs)
        backward_sizes(&self.c, self.n_bwd)
        self.saved_sizes = tuple([self.n_saved[i] for i in range(N_SAVED)])
        self.work_sizes = tuple([self.n_work[i] for i in range(N_WORK)])
        self.pack_sizes = tuple([self.n_packs[i] for i in range(N_PACKS)])

    @property
    def backward_sizes(self):
        return tuple([self.n_bwd[i] for i in range(N_BWD)])

    @property
    def chunk(self):
        """Steps per input projection."""
        return self.c.chunk

    @property
    def packed(self):
        """Whether the forward multiplies from packed weights."""
        return bool(self.c.packed)


# ------------------------------------------------------------ array binding

cdef int bind(object array, int typenum, Py_ssize_t n, bint writable, str what,
              void** out) except -1:
    """out = the data of array, a C-contiguous ndarray of typenum with at least n
    elements (writable if asked); None gives NULL where n is 0."""
    cdef cnp.ndarray a
    if array is None:
        if n > 0:
            raise ValueError(f"{what}: expected an array of {n} numbers, got None")
        out[0] = NULL
        return 0
    if not isinstance(array, cnp.ndarray):
        raise TypeError(f"{what}: expected a NumPy array, got {type(array).__name__}")
    a = <cnp.ndarray>array
    if cnp.PyArray_TYPE(a) != typenum:
        raise TypeError(f"{what}: expected dtype {cnp.PyArray_DescrFromType(typenum)}, "
                        f"got {a.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{what}: expected a C-contiguous array")
    if cnp.PyArray_SIZE(a) < n:
        raise ValueError(f"{what}: expected at least {n} numbers, got {cnp.PyArray_SIZE(a)}")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{what}: expected a writable array")
    out[0] = cnp.PyArray_DATA(a) if n > 0 else NULL
    return 0


cdef int bind_all(tuple arrays, const long* sizes, int n, int typenum, str what,
                  void** out) except -1:
    """bind() each of the n arrays (writable) to its size."""
    if len(arrays) != n:
        raise ValueError(f"{what}: expected {n} buffers, got {len(arrays)}")
    cdef int i
    for i in range(n):
        bind(arrays[i], typenum, sizes[i], True, what, &out[i])
    return 0


cdef int sequence_stride(object y, int H, int T, int B, int y_off, str what) except -1:
    """Row stride of y (T, B, ldy), whose columns [y_off, y_off + H) the call uses."""
    if not isinstance(y, cnp.ndarray) or cnp.PyArray_NDIM(<cnp.ndarray>y) != 3:
        raise ValueError(f"{what}: expected a 3-D array (T, B, features)")
    cdef cnp.ndarray a = <cnp.ndarray>y
    if cnp.PyArray_DIM(a, 0) != T or cnp.PyArray_DIM(a, 1) != B or \
            not 0 <= y_off <= cnp.PyArray_DIM(a, 2) - H:
        raise ValueError(f"{what}: expected shape ({T}, {B}, >= {y_off + H}), got {y.shape}")
    return <int>cnp.PyArray_DIM(a, 2)


cdef inline void fold_bias(floating* out, const floating* b_ih, const floating* b_hh,
                           int n_sum, int n) noexcept nogil:
    """out[:n] = b_ih, plus b_hh on out[:n_sum]; zeros without biases (NULL)."""
    cdef int j
    if b_ih == NULL:
        memset(out, 0, n * sizeof(floating))
        return
    for j in range(n):
        out[j] = b_ih[j] + b_hh[j] if j < n_sum else b_ih[j]


# -------------------------------------------------------------------- forward

def forward(CallConfig cfg, x, y, int y_off, tuple weights, tuple state0, tuple state_n,
            tuple saved, tuple work, tuple packs, active, StepPlan plan=None,
            int plan_layer=0):
    """Run one direction of a layer over x (T, B, D).

    Writes h_t into y[t, :, y_off:y_off+H] and the last state into state_n.
    weights: (w_ih (G, D), w_hh (G, H), b_ih (G) or None, b_hh (G) or None,
    peepholes (3, H) or None).  state0, state_n: (h,) or, for LSTM, (h, c),
    each (B, H).  saved, work, packs: buffers of cfg.saved_sizes (training:
    the activations backward reads, kept by the caller), cfg.work_sizes and
    cfg.pack_sizes (the packed weights; with packing "packed", as an earlier
    call left them).  active (int32, T) is empty when every sequence has T
    steps; else the batch is sorted by length, longest first, active[t] rows
    cover step t, each row ends (or, reverse, starts) at its own last step
    and y is zero past it.  With plan (fastrnn.kernels.plan.StepPlan), nothing runs:
    the call, its weights packed, becomes layer plan_layer of the plan, which
    keeps the arrays alive (cfg needs packing "now").
    """
    cdef Forward a
    a.c = cfg.c
    cdef LayerConfig* c = &a.c
    cdef int T = c.T, B = c.B, D = c.D, H = c.H, G = c.G
    cdef int tn = cnp.NPY_FLOAT32 if c.itemsize == 4 else cnp.NPY_FLOAT64
    cdef bint lstm = c.cell == CELL_LSTM, gru = c.cell == CELL_GRU
    cdef bint keeps = keeps_activations(c)
    cdef long n_bias = G if weights[2] is not None else 0
    cdef void* p_saved[N_SAVED]
    cdef void* p_work[N_WORK]
    cdef void* p_packs[N_PACKS]
    cdef void* b_ih
    cdef void* b_hh
    cdef void* p
    if plan is not None and c.packing != PACK_NOW:
        raise ValueError("cfg: a plan packs its weights once: needs packing 'now'")
    if len(weights) != 5 or len(state0) != (2 if lstm else 1) or len(state_n) != len(state0):
        raise ValueError("weights, state0, state_n: expected 5 weights and one state "
                         "per state array of the cell")
    bind(x, tn, <Py_ssize_t>T * B * D, False, "x", <void**>&a.x)
    a.ldy = sequence_stride(y, H, T, B, y_off, "y")
    bind(y, tn, <Py_ssize_t>T * B * a.ldy, True, "y", &p)
    a.y = <char*>p + <size_t>y_off * c.itemsize
    bind(weights[0], tn, <Py_ssize_t>G * D, False, "w_ih", <void**>&a.w_ih)
    bind(weights[1], tn, <Py_ssize_t>G * H, False, "w_hh", <void**>&a.w_hh)
    bind(weights[2], tn, n_bias, False, "b_ih", &b_ih)
    bind(weights[3], tn, n_bias, False, "b_hh", &b_hh)
    bind(weights[4], tn, 3 * H if c.peephole else 0, False, "peephole", <void**>&a.peep)
    bind(state0[0], tn, <Py_ssize_t>B * H, False, "h0", <void**>&a.h0)
    bind(state_n[0], tn, <Py_ssize_t>B * H, True, "h_n", &a.h_n)
    a.c0 = a.c_n = NULL
    if lstm:
        bind(state0[1], tn, <Py_ssize_t>B * H, False, "c0", <void**>&a.c0)
        bind(state_n[1], tn, <Py_ssize_t>B * H, True, "c_n", &a.c_n)
    bind_all(saved, cfg.n_saved, N_SAVED, tn, "saved", p_saved)
    bind_all(work, cfg.n_work, N_WORK, tn, "work", p_work)
    bind_all(packs, cfg.n_packs, N_PACKS, tn, "packs", p_packs)
    if active is None or len(active) == 0:
        a.active = NULL
    else:
        bind(active, cnp.NPY_INT32, T, False, "active", <void**>&a.active)
    a.gates = p_saved[SAVED_GATES] if keeps else p_work[WORK_GATES]
    a.cells = p_saved[SAVED_CELLS] if keeps else p_work[WORK_CELLS]
    a.gh = p_work[WORK_GH]
    a.all_steps = keeps or c.chunk >= T
    a.keep_cells = lstm and keeps
    a.wih_p, a.whh_p, a.whn_p = p_packs[PACK_WIH], p_packs[PACK_WHH], NULL
    cdef int nr = FR_PANEL_F32 if c.itemsize == 4 else FR_PANEL_F64
    # GRU: b_hr and b_hz fold into the input side; b_hn too for reset-before, else it
    # sits inside r * (...) and is kept apart
    cdef int n_sum = (2 * H if c.reset_after else 3 * H) if gru else G
    a.bias = p_work[WORK_BIAS]
    a.b_hn = <char*>p_work[WORK_BIAS] + <size_t>G * c.itemsize if gru else NULL
    if c.itemsize == 4:
        fold_bias(<float*>a.bias, <const float*>b_ih, <const float*>b_hh, n_sum, G)
        if gru:
            fold_bias(<float*>a.b_hn, <const float*>b_hh + 2 * H if b_hh != NULL else NULL,
                      NULL, 0, H)
    else:
        fold_bias(<double*>a.bias, <const double*>b_ih, <const double*>b_hh, n_sum, G)
        if gru:
            fold_bias(<double*>a.b_hn, <const double*>b_hh + 2 * H if b_hh != NULL else NULL,
                      NULL, 0, H)
    if c.packed and gru and not c.reset_after:   # after the r, z blocks' whole panels
        a.whn_p = <char*>a.whh_p + <size_t>packed_size(c, 2 * H, H) * c.itemsize
    cdef int nthreads = time_loop_threads(B, H, c.nthreads, c.packed, nr, c.units_rows,
                                          &a.split_units)
    a.packs.count = 0
    a.packs.weights = c.weights
    if c.packed and c.packing != PACKED:
        add_pack(&a.packs, G, D, a.w_ih, D, 1, <void*>a.wih_p)
        if gru and not c.reset_after:     # W_h{r,z}, then W_hn on its own
            add_pack(&a.packs, 2 * H, H, a.w_hh, H, 1, <void*>a.whh_p)
            add_pack(&a.packs, H, H, <char*>a.w_hh + <size_t>2 * H * H * c.itemsize, H, 1,
                     <void*>a.whn_p)
        else:
            add_pack(&a.packs, G, H, a.w_hh, H, 1, <void*>a.whh_p)
    cdef long nstages = unit_stages(T, c.chunk, cell_substeps(&a), a.packs.count > 0)
    cdef fr_part_fn units = NULL
    if a.split_units:
        units = forward_units_f32 if c.itemsize == 4 else forward_units_f64
    if c.itemsize == 4:
        run_or_plan(plan, plan_layer, &a, sizeof(Forward), &a.barrier, &a.packs, <float*>NULL,
                    forward_task_f32, nthreads, units, nstages)
    else:
        run_or_plan(plan, plan_layer, &a, sizeof(Forward), &a.barrier, &a.packs,
                    <double*>NULL, forward_task_f64, nthreads, units, nstages)
    if plan is not None:
        plan.keep += [x, y, weights, state0, state_n, saved, work, packs, active]


# ------------------------------------------------------------------- backward

def backward(CallConfig cfg, x, y, dy, int y_off, tuple weights, tuple state0, tuple saved,
             tuple carries, dx, bint dx_accumulate, tuple grads, tuple work, active,
             bint split_units=True):
    """Backward through time of forward (with its saved buffers), with the same
    active (variable lengths) as the forward call.

    dy[:, :, y_off:y_off+H] is the gradient of this direction's output y.
    carries: (dh,) or, for LSTM, (dh, dc), each (B, H): dstate_n on entry,
    dstate0 on return.  dx (T, B, D) is written (or added to, when
    dx_accumulate).  grads: (dw_ih, dw_hh, db_ih or None, db_hh or None,
    dpeepholes or None), added to.  work: buffers of cfg.backward_sizes.
    split_units: whether threads may share a single sequence's time loop by
    hidden units (cells that can; else it runs on one thread and they share
    the rest).
    """
    cdef Backward a
    a.c = cfg.c
    cdef LayerConfig* c = &a.c
    cdef int T = c.T, B = c.B, D = c.D, H = c.H, G = c.G
    cdef int tn = cnp.NPY_FLOAT32 if c.itemsize == 4 else cnp.NPY_FLOAT64
    cdef bint lstm = c.cell == CELL_LSTM, gru = c.cell == CELL_GRU
    cdef long n_bias = G if grads[2] is not None else 0
    cdef void* p_saved[N_SAVED]
    cdef void* p_bwd[N_BWD]
    cdef void* p
    if len(weights) != 5 or len(grads) != 5 or len(state0) != (2 if lstm else 1) or \
            len(carries) != len(state0):
        raise ValueError("weights, grads, state0, carries: expected 5 weights, 5 gradients "
                         "and one state per state array of the cell")
    bind(x, tn, <Py_ssize_t>T * B * D, False, "x", <void**>&a.grads.x)
    a.ldy = sequence_stride(y, H, T, B, y_off, "y")
    if sequence_stride(dy, H, T, B, y_off, "dy") != a.ldy:
        raise ValueError("dy: expected the shape of y")
    bind(y, tn, <Py_ssize_t>T * B * a.ldy, False, "y", &p)
    a.y = <char*>p + <size_t>y_off * c.itemsize
    bind(dy, tn, <Py_ssize_t>T * B * a.ldy, False, "dy", &p)
    a.dy = <char*>p + <size_t>y_off * c.itemsize
    cdef void* w_ih
    cdef void* w_hh
    bind(weights[0], tn, <Py_ssize_t>G * D, False, "w_ih", &w_ih)
    bind(weights[1], tn, <Py_ssize_t>G * H, False, "w_hh", &w_hh)
    bind(weights[4], tn, 3 * H if c.peephole else 0, False, "peephole", <void**>&a.peep)
    bind(state0[0], tn, <Py_ssize_t>B * H, False, "h0", <void**>&a.h0)
    bind(carries[0], tn, <Py_ssize_t>B * H, True, "dh", &a.dh)
    a.c0 = a.dc = NULL
    if lstm:
        bind(state0[1], tn, <Py_ssize_t>B * H, False, "c0", <void**>&a.c0)
        bind(carries[1], tn, <Py_ssize_t>B * H, True, "dc", &a.dc)
    bind_all(saved, cfg.n_saved, N_SAVED, tn, "saved", p_saved)
    bind_all(work, cfg.n_bwd, N_BWD, tn, "work", p_bwd)
    bind(dx, tn, <Py_ssize_t>T * B * D, True, "dx", &a.grads.dx)
    bind(grads[0], tn, <Py_ssize_t>G * D, True, "dw_ih", &a.grads.dw_ih)
    bind(grads[1], tn, <Py_ssize_t>G * H, True, "dw_hh", &a.grads.dw_hh)
    bind(grads[2], tn, n_bias, True, "db_ih", &a.grads.db_ih)
    bind(grads[3], tn, n_bias, True, "db_hh", &a.grads.db_hh)
    bind(grads[4], tn, 3 * H if c.peephole else 0, True, "dpeephole", &a.dpeep)
    if active is None or len(active) == 0:
        a.grads.active = NULL
    else:
        bind(active, cnp.NPY_INT32, T, False, "active", <void**>&a.grads.active)
    a.gates = p_saved[SAVED_GATES]
    a.cells = p_saved[SAVED_CELLS]
    a.dgi = p_bwd[BWD_DGI]
    a.dgh = p_bwd[BWD_DGH] if p_bwd[BWD_DGH] != NULL else a.dgi
    a.whhT_p = p_bwd[BWD_WHHT]
    a.packs.count = 0      # W_hh^T and W_ih^T, packed first
    a.packs.weights = WEIGHTS_FLOAT
    add_pack(&a.packs, H, G, w_hh, 1, H, p_bwd[BWD_WHHT])
    add_pack(&a.packs, D, G, w_ih, 1, D, p_bwd[BWD_WIHT])
    # the hidden side's columns of dG that W_hh multiplies: reset-before's n block
    # reaches h_{t-1} through r * h_{t-1}, inside the step's own pass
    a.Kh = 2 * H if gru and not c.reset_after else G
    a.dh_accumulate = gru            # the GRU's pass writes dh_t * z first
    a.grads.T, a.grads.B, a.grads.D, a.grads.H, a.grads.G = T, B, D, H, G
    a.grads.ldy, a.grads.reverse, a.grads.dx_accumulate = a.ldy, c.reverse, dx_accumulate
    a.grads.h0, a.grads.y = a.h0, a.y
    a.grads.dgi, a.grads.dgh = a.dgi, a.dgh
    a.grads.wihT = p_bwd[BWD_WIHT]
    a.grads.xp, a.grads.hp, a.grads.hxp = p_bwd[BWD_XP], p_bwd[BWD_HP], p_bwd[BWD_HXP]
    a.grads.G_prev = 2 * H if gru and not c.reset_after else G
    a.grads.hx = NULL
    a.grads.ldhx = 0
    if gru and not c.reset_after:    # dW_hn pairs with the saved r * h_prev
        a.grads.hx = <char*>a.gates + <size_t>3 * H * c.itemsize
        a.grads.ldhx = 4 * H
    cdef int nr = FR_PANEL_F32 if c.itemsize == 4 else FR_PANEL_F64
    cdef bint by_units = False
    cdef int nparts = 1
    if splits_backward(c.cell) and split_units:   # batches of rows only without lengths
        nparts = time_loop_threads(B, H, c.nthreads, True, nr,
                                   c.units_rows if a.grads.active == NULL else 1, &by_units)
    cdef fr_task_fn task = backward_task_f32 if c.itemsize == 4 else backward_task_f64
    cdef fr_part_fn units = backward_units_f32 if c.itemsize == 4 else backward_units_f64
    with nogil:
        if by_units:
            run_staged(nparts, units, &a, back_stages(T), nparts)
        else:
            run_parallel(c.nthreads, task, &a, &a.barrier)
