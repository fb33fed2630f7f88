"""Streaming: a sequence fed in consecutive chunks, each call given the state the previous one
returned, gives the outputs, final state and (through backward) the gradients of one call on
the whole sequence.  Holds for unidirectional stacks; a reverse direction needs the future, so
bidirectional layers cannot be streamed (checked below, and said in the README).
"""

import numpy as np
import pytest

from conftest import (CELLS, DTYPES, assert_close, assert_grads_close, make_dy, make_layer,
                      make_state, make_x, reference_run, rng_for)

D, H, T = 3, 5, 7
SPLITS = {"1+3+2+1": [1, 3, 2, 1], "steps": [1] * T, "6+1": [6, 1]}
LAYOUTS = ["time_major", "batch_first", "unbatched"]


def time_axis(layer, x):
    return 1 if (layer.batch_first and np.ndim(x) == 3) else 0


def cut(layer, a, sizes):
    """Split a sequence (in the layer's layout) into consecutive chunks of these lengths."""
    return np.split(a, np.cumsum(sizes)[:-1], axis=time_axis(layer, a))


def setup(cell, dtype, num_layers, layout, B=3):
    layer = make_layer(cell, D, H, num_layers, batch_first=layout == "batch_first",
                       dtype=dtype, seed=7)
    rng = rng_for("stream", cell, np.dtype(dtype).name, num_layers, layout)
    for v in layer.params.values():      # biases away from the init range too
        v[...] = rng.uniform(-0.6, 0.6, v.shape)
    B = None if layout == "unbatched" else B
    return layer, rng, make_x(rng, layer, T, B), make_state(rng, layer, B), B


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_inference_in_chunks_equals_one_call(cell, dtype, num_layers, layout, split):
    layer, rng, x, state0, B = setup(cell, dtype, num_layers, layout)
    ys, state = [], state0
    for chunk in cut(layer, x, SPLITS[split]):
        y, state = layer(chunk, state)
        ys.append(y)
    y_stream = np.concatenate(ys, axis=time_axis(layer, x))
    gold = reference_run(layer, x, state0, backward=False)     # float64 reference, one call
    assert_close(y_stream, gold["y"], dtype, "y")
    assert_close(state, gold["state_n"], dtype, "state_n")
    y_whole, state_whole = layer(x, state0)
    assert_close(y_stream, y_whole, dtype, "y vs one call")
    assert_close(state, state_whole, dtype, "state_n vs one call")


@pytest.mark.parametrize("split", ["1+3+2+1", "steps"])
@pytest.mark.parametrize("layout", ["time_major", "batch_first"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_training_in_chunks_equals_one_call(cell, dtype, num_layers, layout, split):
    """Forward chunk by chunk, then backward from the last chunk to the first, passing each
    chunk's dstate0 as the previous chunk's dstate_n: full backpropagation through time."""
    layer, rng, x, state0, B = setup(cell, dtype, num_layers, layout)
    dy = make_dy(rng, layer, T, B)
    dstate_n = make_state(rng, layer, B)
    chunks_x, chunks_dy = cut(layer, x, SPLITS[split]), cut(layer, dy, SPLITS[split])
    caches, ys, state = [], [], state0
    for chunk in chunks_x:
        y, state, cache = layer.forward(chunk, state)
        ys.append(y)
        caches.append(cache)
    layer.zero_grad()
    dxs, dstate = [], dstate_n
    for cache, g in zip(reversed(caches), reversed(chunks_dy)):
        dx, dstate = layer.backward(g, cache, dstate)
        dxs.append(dx)
    axis = time_axis(layer, x)
    gold = reference_run(layer, x, state0, dy, dstate_n)
    assert_close(np.concatenate(ys, axis=axis), gold["y"], dtype, "y")
    assert_close(state, gold["state_n"], dtype, "state_n")
    assert_close(np.concatenate(dxs[::-1], axis=axis), gold["dx"], dtype, "dx")
    assert_close(dstate, gold["dstate0"], dtype, "dstate0")
    assert_grads_close(layer.grads, gold["grads"], dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_one_step_loop_with_batch_one(cell):
    """The service loop: one (T=1, B=1) call per incoming frame, state carried across calls."""
    layer, rng, x, state0, _ = setup(cell, np.float32, 2, "batch_first", B=1)
    state, ys = None, []
    for t in range(T):
        y, state = layer(x[:, t:t + 1], state)
        assert y.shape == (1, 1, H)
        ys.append(y)
    gold = reference_run(layer, x, None, backward=False)
    assert_close(np.concatenate(ys, axis=1), gold["y"], np.float32, "y")
    assert_close(state, gold["state_n"], np.float32, "state_n")


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_layers_do_not_stream(cell):
    """The reverse direction of a chunk starts from its own end, not the sequence's: chunked
    calls of a bidirectional layer differ from one call (so the README says: don't)."""
    layer = make_layer(cell, D, H, 1, bidirectional=True, dtype=np.float64, seed=3)
    rng = rng_for("bidir", cell)
    x = make_x(rng, layer, T, 2)
    y_whole, _ = layer(x)
    ys, state = [], None
    for chunk in np.split(x, [3]):
        y, state = layer(chunk, state)
        ys.append(y)
    y_stream = np.concatenate(ys)
    forward_half, reverse_half = slice(0, H), slice(H, 2 * H)
    np.testing.assert_allclose(y_stream[..., forward_half], y_whole[..., forward_half],
                               rtol=1e-12, atol=1e-12)
    assert np.abs(y_stream[:3, :, reverse_half] - y_whole[:3, :, reverse_half]).max() > 1e-3
