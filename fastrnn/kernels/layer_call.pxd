# One layer direction's kernel call, as every cell's time loop sees it: the
# configuration the Python layer chooses (LayerConfig), the work buffers it
# implies (their sizes are said here, not in Python), and the arguments of
# the forward and backward jobs (Forward, Backward), one struct for every
# cell: a field a cell does not use is NULL or zero.

from cython cimport floating
from fastrnn.kernels.packed cimport FR_PANEL_F32, FR_PANEL_F64, uses_packs
from fastrnn.kernels.products cimport WEIGHTS_FLOAT, reduced_pack_bytes
from fastrnn.kernels.sequence cimport GradArgs, Packs
from fastrnn.kernels.threads cimport fr_barrier


cdef enum:
    CELL_RNN = 0
    CELL_LSTM = 1
    CELL_GRU = 2


# The input projection runs in chunks of time steps holding at most this many
# gate values (512 KiB of float32), each just before the steps that read it,
# so that they find their gates in cache and inference needs memory
# independent of T (docs/DECISIONS.md).
cdef enum:
    CHUNK_ELEMENTS = 1 << 17
# A chunk also spans at least D / (2B) steps, within CHUNK_ELEMENTS_MAX gate values
# (16 MiB of float32): each chunk reads all of W_ih, so where the batch is small and the
# input wide, short chunks would read it more often than the steps write their gates.
cdef enum:
    CHUNK_ELEMENTS_MAX = 1 << 22


cdef struct LayerConfig:
    int cell               # CELL_RNN, CELL_LSTM or CELL_GRU
    int itemsize           # 4 (float32) or 8 (float64)
    int T, B, D, H
    bint reverse           # the direction runs from the last step to the first
    bint training          # a forward that keeps its activations for backward
    bint relu              # RNN: relu, else tanh
    bint reset_after       # GRU: torch's (r multiplies W_hn h + b_hn), else reset-before
    bint peephole          # LSTM: peepholes [p_i p_f p_o] (3, H)
    int packing            # fastrnn/kernels/packed.pxd PACK_WHEN_WORTH, PACK_NOW or PACKED
    int nthreads           # threads the call may use
    int chunk_elements     # bound on a projection chunk's gate values (0: CHUNK_ELEMENTS)
    int units_rows         # a forward of at most this many rows shares its steps by
                           # hidden units (fastrnn/kernels/sequence.pxd time_loop_threads)
    int weights            # WEIGHTS_FLOAT, WEIGHTS_INT8 or WEIGHTS_BF16 (float32
                           # inference, packed: fastrnn/kernels/products.pxd)
    # derived by configure()
    int G                  # gate columns of W_ih and W_hh: H, 4H or 3H
    int ldg                # row stride of the gates buffer (the GRU keeps a 4th block)
    int chunk              # steps per input projection
    bint packed            # the forward multiplies from packed weights


cdef inline int gate_blocks(int cell) noexcept nogil:
    return 4 if cell == CELL_LSTM else (3 if cell == CELL_GRU else 1)


cdef inline void configure(LayerConfig* c) noexcept nogil:
    """Set the derived fields of c from the others."""
    c.G = gate_blocks(c.cell) * c.H
    c.ldg = c.G if c.cell != CELL_GRU else 4 * c.H
    cdef long per_step = <long>c.B * c.ldg
    cdef long bound = c.chunk_elements if c.chunk_elements > 0 else CHUNK_ELEMENTS
    cdef long steps = bound // (per_step if per_step > 1 else 1)
    cdef long wide = (c.D + 2 * c.B - 1) // (2 * c.B)
    if c.chunk_elements <= 0 and steps < wide:
        steps = min(wide, CHUNK_ELEMENTS_MAX // (per_step if per_step > 1 else 1))
    c.chunk = <int>(steps if steps < c.T else c.T)
    if c.chunk < 1:
        c.chunk = 1
    c.packed = uses_packs(c.packing, c.T * c.B)


cdef inline long packed_size(const LayerConfig* c, long N, long K) noexcept nogil:
    """Numbers (of the layer's dtype) in an N x K matrix packed in panels of whole
    output columns: int8 packs hold their bytes in float32 numbers."""
    if c.weights != WEIGHTS_FLOAT:
        return reduced_pack_bytes(c.weights, N, K) // 4
    cdef long nr = FR_PANEL_F32 if c.itemsize == 4 else FR_PANEL_F64
    return (N + nr - 1) // nr * nr * K


cdef inline bint keeps_activations(const LayerConfig* c) noexcept nogil:
    """Whether a forward saves its gates (and the LSTM its cells) for backward: a
    training call of a cell whose backward reads them (the RNN's reads only y)."""
    return c.training and c.cell != CELL_RNN


cdef inline bint splits_backward(int cell) noexcept nogil:
    """Whether the cell's single-sequence backward loop may be shared by hidden units."""
    return cell == CELL_LSTM


# The buffers of a call, by role, in the order the entry points take them
# (fastrnn/kernels/recurrent.pyx); a size 0 means the cell or the call needs none.
cdef enum:
    # training forward: kept for backward
    SAVED_GATES, SAVED_CELLS, N_SAVED
cdef enum:
    # forward: the call's own
    WORK_GATES, WORK_CELLS, WORK_GH, WORK_BIAS, N_WORK
cdef enum:
    # forward: the weights packed (a FrozenLayer keeps them)
    PACK_WIH, PACK_WHH, N_PACKS
cdef enum:
    # backward: the call's own
    BWD_DGI, BWD_DGH, BWD_WHHT, BWD_WIHT, BWD_XP, BWD_HP, BWD_HXP, N_BWD


cdef inline void forward_sizes(const LayerConfig* c, long* saved, long* work,
                               long* packs) noexcept nogil:
    """Numbers in each buffer of a forward call (roles above)."""
    cdef long TB = <long>c.T * c.B, H = c.H, gates = <long>c.ldg * c.B
    cdef bint lstm = c.cell == CELL_LSTM, gru = c.cell == CELL_GRU
    cdef bint keeps = keeps_activations(c)
    saved[SAVED_GATES] = TB * c.ldg if keeps else 0
    saved[SAVED_CELLS] = TB * H if keeps and lstm else 0
    work[WORK_GATES] = 0 if keeps else c.chunk * gates
    work[WORK_CELLS] = c.B * H if lstm and not keeps else 0
    work[WORK_GH] = c.B * 3 * H if gru else 0
    work[WORK_BIAS] = c.G + (H if gru else 0)     # the folded bias, and b_hn
    packs[PACK_WIH] = packed_size(c, c.G, c.D) if c.packed else 0
    if not c.packed:
        packs[PACK_WHH] = 0
    elif gru and not c.reset_after:     # W_h{r,z} and W_hn in panels of their own
        packs[PACK_WHH] = packed_size(c, 2 * H, H) + packed_size(c, H, H)
    else:
        packs[PACK_WHH] = packed_size(c, c.G, H)


cdef inline void backward_sizes(const LayerConfig* c, long* work) noexcept nogil:
    """Numbers in each buffer of a backward call (roles above)."""
    cdef long TB = <long>c.T * c.B, H = c.H, G = c.G
    cdef bint two_sides = c.cell == CELL_GRU and c.reset_after  # dGi and dGh differ
    cdef bint hx = c.cell == CELL_GRU and not c.reset_after    # r * h_prev, for dW_hn
    work[BWD_DGI] = TB * G
    work[BWD_DGH] = TB * G if two_sides else 0
    work[BWD_WHHT] = packed_size(c, H, G)
    work[BWD_WIHT] = packed_size(c, c.D, G)
    # the weight gradients' right operands, packed (fastrnn/kernels/sequence.pxd GradArgs)
    work[BWD_XP] = packed_size(c, c.D, TB)
    work[BWD_HP] = packed_size(c, H, TB)
    work[BWD_HXP] = packed_size(c, H, TB) if hx else 0


cdef struct Forward:
    # One direction's forward over the whole sequence (fastrnn/kernels/time_loop.pxd).
    LayerConfig c
    int ldy
    bint all_steps         # gates holds every step (training), else one chunk's
    bint keep_cells        # LSTM: cells holds every step's c (training), else one
    bint split_units       # a single sequence shared by hidden units (UnitStage)
    const int* active      # rows covering each step (fastrnn/kernels/sequence.pxd StepRows), or NULL
    const void* w_ih       # (G, D)
    const void* w_hh       # (G, H)
    const void* x          # (T, B, D)
    const void* wih_p      # W_ih packed (N = G, K = D)
    const void* whh_p      # W_hh packed (N = G, K = H); GRU reset-before: rows [0, 2H)
    const void* whn_p      # GRU reset-before: W_hn (rows [2H, 3H)) packed on its own
    const void* bias       # (G): the bias folded into the input side
    const void* b_hn       # GRU (H): the bias inside the reset product
    const void* peep       # LSTM [p_i p_f p_o] (3, H), or NULL
    const void* h0         # (B, H)
    const void* c0         # LSTM (B, H)
    void* y                # &y[0, 0, y_off], row stride ldy
    void* gates            # (T or chunk, B, ldg): projection, then activations
    void* cells            # LSTM (T or 1, B, H)
    void* gh               # GRU (B, 3H): the recurrent product
    void* h_n              # (B, H)
    void* c_n              # LSTM (B, H)
    Packs packs            # the weights to pack first (none for short calls or a plan)
    fr_barrier barrier


cdef struct Backward:
    # One direction's backward through time (fastrnn/kernels/time_loop.pxd).
    LayerConfig c
    int ldy
    int Kh                 # columns of dG_h that multiply W_hh into dh_{t-1}
    bint dh_accumulate     # that product adds to dh (the GRU's pass writes part of it)
    const void* whhT_p     # W_hh^T packed (N = H, K = G)
    const void* h0
    const void* c0
    const void* y          # &y[0, 0, y_off]
    const void* dy         # &dy[0, 0, y_off]
    const void* gates      # saved activations (T, B, ldg)
    const void* cells      # LSTM saved cells (T, B, H)
    const void* peep       # LSTM (3, H), or NULL
    void* dpeep            # LSTM (3, H), added to; with peep
    void* dh               # (B, H): dh_n in, dh0 out
    void* dc               # LSTM (B, H): dc_n in, dc0 out
    void* dgi              # (T, B, G) input-side gate gradients
    void* dgh              # (T, B, G) hidden-side ones (== dgi but for the GRU)
    GradArgs grads
    Packs packs            # W_hh^T and W_ih^T, packed first
    fr_barrier barrier


cdef inline const floating* state_before(int t_prev, const floating* seq, int B, int ld,
                                         const floating* state0) noexcept nogil:
    """Row 0 of the state a step starts from: step t_prev's rows of seq (B rows of
    stride ld a step), or state0 when t_prev < 0 (the first step)."""
    return seq + <size_t>t_prev * B * ld if t_prev >= 0 else state0
