"""fastrnn.dask: inference over a dask array chunked along the batch, on a cluster of worker
processes, against a single-process run of the same layer."""

import os

import numpy as np
import pytest

distributed = pytest.importorskip("dask.distributed")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import fastrnn                      # noqa: E402
import fastrnn.dask                 # noqa: E402
from conftest import CELLS, assert_close, make_layer, rng_for   # noqa: E402


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """Two single-threaded worker processes on this machine, closed after the module."""
    scratch = str(tmp_path_factory.mktemp("dask"))      # not the shared /tmp/dask-scratch-space
    with dask.config.set({"temporary-directory": scratch}), \
            distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                     host="127.0.0.1", dashboard_address=None,
                                     local_directory=scratch, silence_logs=40) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def trained_layer(cell, **kwargs):
    layer = make_layer(cell, 6, 8, 2, seed=5, **kwargs)
    rng = rng_for("dask", cell)
    for v in layer.params.values():
        v[...] = rng.uniform(-0.5, 0.5, v.shape)
    return layer


def worker_pids(client):
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2
    return pids


@pytest.mark.parametrize("cell", CELLS)
def test_cluster_matches_single_process(client, cell):
    batch_first = cell in ("gru", "rnn_relu")
    layer = trained_layer(cell, batch_first=batch_first, bidirectional=cell == "lstm")
    B, T = 90, 12
    x_np = rng_for("x", cell).standard_normal((B, T, 6) if batch_first else (T, B, 6))
    b_axis = 0 if batch_first else 1
    chunks = [5, 5, 6]
    chunks[b_axis] = 25                                 # 4 chunks along B, 2 along T
    x = da.from_array(x_np, chunks=tuple(chunks))
    y = fastrnn.dask.run(layer, x)
    expected_chunks = [(T,), (T,), (layer.num_directions * 8,)]
    expected_chunks[b_axis] = (25, 25, 25, 15)
    assert y.chunks == tuple(expected_chunks)
    assert y.dtype == layer.dtype
    y_cluster = client.compute(y).result()
    y_single, _ = layer(x_np)
    assert_close(y_cluster, y_single, layer.dtype, "y", rtol=0, atol=1e-6)
    assert os.getpid() not in worker_pids(client)    # the work ran in other processes


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cluster_returns_final_states(client, cell):
    layer = trained_layer(cell, dtype=np.float64)
    x_np = rng_for("state", cell).standard_normal((9, 70, 6))
    x = da.from_array(x_np, chunks=(9, 20, 6))
    y, state = fastrnn.dask.run(layer, x, return_state=True)
    parts = state if cell == "lstm" else (state,)
    for p in parts:
        assert p.chunks == ((2,), (20, 20, 20, 10), (8,))
    y_cluster, *parts_cluster = client.gather(client.compute([y, *parts]))
    y_single, state_single = layer(x_np)
    assert_close(y_cluster, y_single, np.float64, "y", rtol=0, atol=1e-12)
    state_cluster = tuple(parts_cluster) if cell == "lstm" else parts_cluster[0]
    assert_close(state_cluster, state_single, np.float64, "state_n", rtol=0, atol=1e-12)


def test_layer_is_snapshotted_when_run_is_called():
    layer = trained_layer("gru")
    x_np = rng_for("snap").standard_normal((4, 10, 6))
    expected, _ = layer(x_np)
    y = fastrnn.dask.run(layer, da.from_array(x_np, chunks=(4, 5, 6)))
    for v in layer.params.values():
        v += 1.0
    assert_close(y.compute(scheduler="sync"), expected, np.float32, "y", rtol=0, atol=0)


def test_bad_arguments():
    layer = fastrnn.LSTM(6, 8)
    with pytest.raises(TypeError, match="x: expected a dask array"):
        fastrnn.dask.run(layer, np.zeros((3, 2, 6)))
    with pytest.raises(TypeError, match="layer: expected a fastrnn"):
        fastrnn.dask.run("lstm", da.zeros((3, 2, 6)))
    with pytest.raises(ValueError, match="x: expected a 3-D dask array"):
        fastrnn.dask.run(layer, da.zeros((3, 6)))
    with pytest.raises(ValueError, match="feature size D = 6"):
        fastrnn.dask.run(layer, da.zeros((3, 2, 5)))
    with pytest.raises(TypeError, match="real numbers"):
        fastrnn.dask.run(layer, da.zeros((3, 2, 6), dtype=complex))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cluster_with_lengths(client, cell, batch_first):
    """Sequences of different lengths padded to one T: each chunk passes its own lengths,
    and results match one single-process call with the whole batch's lengths."""
    layer = trained_layer(cell, batch_first=batch_first, bidirectional=True)
    B, T = 50, 9
    rng = rng_for("lengths", cell, batch_first)
    x_np = rng.standard_normal((B, T, 6) if batch_first else (T, B, 6))
    lengths = rng.integers(1, T + 1, size=B)
    chunks = (15, T, 6) if batch_first else (T, 15, 6)
    x = da.from_array(x_np, chunks=chunks)
    y, state = fastrnn.dask.run(layer, x, lengths=da.from_array(lengths, chunks=20),
                                return_state=True)
    y_only = fastrnn.dask.run(layer, x, lengths=lengths)        # a NumPy lengths works too
    parts = state if cell == "lstm" else (state,)
    y_cluster, y_only_cluster, *parts_cluster = client.gather(client.compute([y, y_only,
                                                                              *parts]))
    y_single, state_single = layer(x_np, lengths=lengths)
    assert_close(y_cluster, y_single, layer.dtype, "y", rtol=0, atol=1e-6)
    assert_close(y_only_cluster, y_single, layer.dtype, "y", rtol=0, atol=1e-6)
    state_cluster = tuple(parts_cluster) if cell == "lstm" else parts_cluster[0]
    assert_close(state_cluster, state_single, layer.dtype, "state_n", rtol=0, atol=1e-6)


def test_bad_lengths():
    layer = fastrnn.GRU(6, 8)
    x = da.zeros((3, 4, 6), chunks=(3, 2, 6))
    with pytest.raises(ValueError, match=r"lengths: expected shape \(4,\)"):
        fastrnn.dask.run(layer, x, lengths=[3, 3, 3])
    with pytest.raises(TypeError, match="lengths: expected integers"):
        fastrnn.dask.run(layer, x, lengths=[3.0, 3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match=r"lengths: each length must be in 1\.\.T"):
        fastrnn.dask.run(layer, x, lengths=[3, 4, 3, 3]).compute(scheduler="sync")
