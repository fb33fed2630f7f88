"""Run a layer's inference over data too large for one process, with Dask.

Optional: needs ``dask`` (``pip install "dask[distributed]"`` for a cluster).
``import fastrnn`` never imports Dask; this module imports it only when one of
its functions is called.

The sequences are a dask array chunked along the batch axis; each chunk is an
independent batch of whole sequences, so each is one task that calls the
layer on a NumPy array.  The layer travels to the workers once (it pickles:
its configuration and parameters), as one key of the task graph.  The same
code runs on whatever scheduler is active: threads in this process by
default, a ``dask.distributed.LocalCluster`` of worker processes, or a
cluster of many machines::

    from dask.distributed import Client
    client = Client("scheduler-address:8786")   # a running dask scheduler
    y = fastrnn.dask.run(layer, x).compute()     # or .to_zarr(...), .store(...)

On a real cluster every worker needs the same fastrnn (and NumPy, SciPy)
installed, and large inputs should be read by the workers themselves
(``da.from_zarr``, ``da.from_npy_stack``, ...) rather than sent from the
client's memory.

Why there is no dask.dataframe helper: a sequence is a (T, D) matrix, and a
dataframe row holds scalars.  Stored one row per time step, a sequence spans
rows and partitions, and partitions could not be processed independently (that
is streaming, with the state carried from one partition to the next, a
sequential loop).  Stored one row per sequence with T * D columns, it is an
array in disguise: ``ddf.to_dask_array(lengths=True).reshape(n, T, D)`` and
``run`` do the job without a second code path.
"""

import copy

import numpy as np

from fastrnn.layers.cell_kinds import check_layer
from fastrnn.runtime.lengths import check_lengths_array

__all__ = ["run"]


def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:     # pragma: no cover - depends on the environment
        raise ImportError("fastrnn.dask needs dask: pip install 'dask[distributed]'") from exc
    return dask, da


def _infer_block(block, layer, lengths=None):
    """y of one batch chunk (runs on a worker)."""
    return layer(block, lengths=lengths)[0]


def _infer_block_with_state(block, layer, lengths=None):
    """(y, state_n) of one batch chunk (runs on a worker)."""
    return layer(block, lengths=lengths)


def _lengths_by_chunk(lengths, x, b_axis, da):
    """lengths as a dask array with x's batch chunks (None stays None).

    The values are checked on the workers, by the layer, chunk by chunk."""
    if lengths is None:
        return None
    if isinstance(lengths, da.Array):
        check_lengths_array(lengths, x.shape[b_axis], "a dask array")
    else:
        lengths = np.asarray(lengths)
        check_lengths_array(lengths, x.shape[b_axis])
        lengths = da.from_array(lengths, chunks=-1)
    return lengths.rechunk((x.chunks[b_axis],))


def _check(layer, x, da):
    check_layer(layer)
    if not isinstance(x, da.Array):
        raise TypeError(f"x: expected a dask array (use dask.array.from_array to wrap a NumPy "
                        f"array), got {type(x).__name__}")
    layout = "(B, T, D)" if layer.batch_first else "(T, B, D)"
    if x.ndim != 3:
        raise ValueError(f"x: expected a 3-D dask array {layout} chunked along B, got a "
                         f"{x.ndim}-D array of shape {x.shape}")
    if x.shape[2] != layer.input_size:
        raise ValueError(f"x: expected the last axis to be the feature size D = "
                         f"{layer.input_size}, got shape {x.shape}")
    if np.isnan(x.shape[0]) or np.isnan(x.shape[1]):
        raise ValueError(f"x: chunk sizes must be known, got shape {x.shape}; call "
                         f"x.compute_chunk_sizes() first")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x: expected real numbers, got a dask array of dtype {x.dtype}")


def run(layer, x, *, lengths=None, return_state=False):
    """Run layer's inference over a dask array of sequences, chunk by chunk along the batch.

    Every batch chunk of x is one task: ``layer(chunk)`` on a NumPy array.
    Sequences start from a zero state.  Nothing is computed until the result
    is (``.compute()``, ``.persist()``, ``.to_zarr(...)``).

    Parameters
    ----------
    layer : fastrnn.RNN, fastrnn.LSTM or fastrnn.GRU
        The layer to run.  It is copied when ``run`` is called, so changing
        its parameters afterwards does not change the result.
    x : dask.array.Array
        The sequences, (T, B, D), or (B, T, D) when ``layer.batch_first``;
        chunked along B.  Chunks along T and D are merged first (a sequence
        must be whole in its task).
    lengths : None, or array_like or dask array of B ints in 1..T
        Each sequence's length when x holds sequences padded at the end to a
        common T; as ``layer(x, lengths=...)``, chunk by chunk.
    return_state : bool, default False
        Also return the final state of every sequence.

    Returns
    -------
    y : dask.array.Array
        (T, B, num_dirs * H) or (B, T, num_dirs * H), in ``layer.dtype``, with
        the batch chunks of x.
    state_n : dask.array.Array, or a pair (h_n, c_n) of them for LSTM
        Only with ``return_state``: (num_layers * num_dirs, B, H), with the
        batch chunks of x.

    Raises
    ------
    TypeError
        If layer is not a fastrnn layer, or x is not a dask array of real numbers.
    ValueError
        If x is not 3-D, has the wrong feature size, or unknown chunk sizes;
        if lengths has the wrong shape (its values are checked when the
        chunks run).

    Examples
    --------
    >>> import dask.array as da, fastrnn, fastrnn.dask
    >>> gru = fastrnn.GRU(8, 16, batch_first=True, seed=0)
    >>> x = da.random.default_rng(0).standard_normal((1000, 50, 8), chunks=(250, 50, 8))
    >>> y = fastrnn.dask.run(gru, x)
    >>> y.shape, y.chunks[0]
    ((1000, 50, 16), (250, 250, 250, 250))
    """
    dask, da = _import_dask()
    _check(layer, x, da)
    b_axis = 0 if layer.batch_first else 1
    t_axis = 1 - b_axis
    x = x.rechunk({t_axis: -1, 2: -1})
    lengths = _lengths_by_chunk(lengths, x, b_axis, da)
    width = layer.num_directions * layer.hidden_size
    # One graph key holding a snapshot of the layer, sent once to each worker.
    shipped = dask.delayed(copy.deepcopy(layer), pure=False)
    out_chunks = list(x.chunks)
    out_chunks[2] = (width,)
    if not return_state:
        if lengths is None:
            return x.map_blocks(_infer_block, shipped, dtype=layer.dtype,
                                chunks=tuple(out_chunks), meta=np.empty((0, 0, 0), layer.dtype))
        # x and lengths block by block along the batch ("b"); "f" changes size
        x_index = "btf" if layer.batch_first else "tbf"
        return da.blockwise(_infer_block, x_index, x, x_index, shipped, None, lengths, "b",
                            dtype=layer.dtype, adjust_chunks={"f": width},
                            meta=np.empty((0, 0, 0), layer.dtype))
    # Several outputs per task: one delayed call per chunk, its parts as dask arrays.
    T = x.shape[t_axis]
    rows = layer.num_layers * layer.num_directions
    call = dask.delayed(_infer_block_with_state, pure=True, nout=2)
    ys, states = [], []
    length_blocks = [None] * len(x.chunks[b_axis]) if lengths is None \
        else lengths.to_delayed().ravel()
    for block, B, block_lengths in zip(x.to_delayed().ravel(), x.chunks[b_axis], length_blocks):
        y, state = call(block, shipped, block_lengths)
        y_shape = (B, T, width) if layer.batch_first else (T, B, width)
        ys.append(da.from_delayed(y, y_shape, dtype=layer.dtype,
                                  meta=np.empty((0, 0, 0), layer.dtype)))
        parts = [state[0], state[1]] if layer._has_cell else [state]
        states.append([da.from_delayed(p, (rows, B, layer.hidden_size), dtype=layer.dtype,
                                       meta=np.empty((0, 0, 0), layer.dtype))
                       for p in parts])
    y = da.concatenate(ys, axis=b_axis)
    state_n = [da.concatenate(list(p), axis=1) for p in zip(*states)]
    return y, (tuple(state_n) if layer._has_cell else state_n[0])
