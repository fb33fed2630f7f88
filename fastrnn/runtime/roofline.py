"""The roofline of a recurrent layer call: the least time the machine's limits allow.

A call does two kinds of work that cannot go faster than the machine's limits
(``fastrnn.runtime.machine.limits()``):

- its products: ``2 T B G H (D + H)`` floating-point operations forward (G gate blocks of H
  units: 1 for RNN, 3 for GRU, 4 for LSTM); training does them three times (forward,
  the gradients of the inputs and state, the weight gradients). At best they run at the FMA
  peak of all threads (half the float32 rate for float64);
- its reads of the recurrent weights: every step reads all of ``W_hh`` (``G H H`` numbers),
  once forward and once more backward, because step t needs h_{t-1}. At best the threads
  share the rows of ``W_hh``, so each streams its share from the fastest level that holds
  it: L1 or L2 when the share fits a core's own cache, L3 when the whole fits the shared L3,
  DRAM otherwise, at the rate all threads read that level together.

The roofline time is the larger of the two; the call is compute-bound or bandwidth-bound as
one or the other is larger. A measured time's roofline fraction, ``roofline / measured``, is
1 for a kernel that runs at the machine's limit. Input projections, element-wise passes and
activation traffic are left out: they are small next to either limit at the sizes where
that limit binds, and leaving them out keeps the fraction an upper bound that no kernel can
pass.
"""

from fastrnn.layers.cell_kinds import BY_KEY

# A share of the weights is taken to stay in a cache level when it fills at most this part
# of the level (the rest holds activations, the stack, code).
_CACHE_FILL = 0.75


def flops(cell, T, B, D, H, training=False):
    """Floating-point operations of the products of one single-layer call."""
    forward = 2 * T * B * BY_KEY[cell].gate_count * H * (D + H)
    return 3 * forward if training else forward


def weight_bytes(cell, H, itemsize):
    """Bytes of one direction's recurrent weights W_hh."""
    return BY_KEY[cell].gate_count * H * H * itemsize


def weight_level(nbytes, caches, threads):
    """The fastest level that holds nbytes of weights shared by rows between threads."""
    share = nbytes / max(1, threads)
    if share <= _CACHE_FILL * caches["L1"]:
        return "L1"
    if share <= _CACHE_FILL * caches["L2"]:
        return "L2"
    if nbytes <= _CACHE_FILL * caches["L3"]:
        return "L3"
    return "DRAM"


def roofline(cell, T, B, D, H, *, itemsize=4, training=False, limits=None):
    """The least time of one single-layer, one-direction call on this machine.

    Parameters
    ----------
    cell : str
        A cell key of ``fastrnn.layers.cell_kinds`` ("lstm", "gru", "rnn_tanh", ...).
    T, B, D, H : int
        Steps, batch, input size, hidden size.
    itemsize : int
        4 for float32, 8 for float64.
    training : bool
        Forward and backward through time, rather than inference.
    limits : dict, optional
        ``fastrnn.runtime.machine.limits()`` (measured on first use when not given).

    Returns
    -------
    dict
        ``seconds`` = max(``compute_seconds``, ``bandwidth_seconds``), where
        ``compute_seconds`` = flops / (FMA peak of all threads, halved for float64) and
        ``bandwidth_seconds`` = (1 or 2) * T * bytes(W_hh) / (read rate of ``level``);
        ``bound`` is "compute" or the level's name; also ``flops`` and ``bytes``.
    """
    if limits is None:
        from fastrnn.runtime.machine import limits as measure
        limits = measure()
    work = flops(cell, T, B, D, H, training)
    peak = limits["fma_gflops_all"] * 1e9 * (4 / itemsize)
    w = weight_bytes(cell, H, itemsize)
    level = weight_level(w, limits["caches"], limits["threads"])
    nbytes = (2 if training else 1) * T * w
    compute = work / peak
    bandwidth = nbytes / (limits["read_gbs_all"][level] * 1e9)
    return {"seconds": max(compute, bandwidth), "compute_seconds": compute,
            "bandwidth_seconds": bandwidth, "bound": "compute" if compute >= bandwidth else level,
            "level": level, "flops": work, "bytes": nbytes}
