"""reverse=True layers: every layer's single direction runs from the last time step to the first.

Checked against the NumPy reference (forward, backward, every parameter gradient, every cell,
float32 and float64) and against torch, whose unidirectional layer on the time-flipped input
gives the time-flipped output of a reverse layer with the same weights.
"""

import numpy as np
import pytest

import fastrnn
from conftest import (CELLS, DTYPES, assert_close, assert_grads_close, make_dy, make_layer,
                      make_state, make_x, reference_run, rng_for, seed_for)

D, H = 5, 6


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_reverse_matches_reference(cell, dtype, num_layers, batch_first):
    layer = make_layer(cell, D, H, num_layers, reverse=True, batch_first=batch_first,
                       dtype=dtype, seed=seed_for(cell, num_layers))
    rng = rng_for("reverse", cell, dtype, num_layers, batch_first)
    T, B = 5, 3
    x, s0 = make_x(rng, layer, T, B), make_state(rng, layer, B)
    dy, dsn = make_dy(rng, layer, T, B), make_state(rng, layer, B)
    ref = reference_run(layer, x, s0, dy, dsn)
    y, s_n = layer(x, s0)
    assert_close(y, ref["y"], dtype, "call y")
    assert_close(s_n, ref["state_n"], dtype, "call state_n")
    y, s_n, cache = layer.forward(x, s0)
    assert_close(y, ref["y"], dtype, "forward y")
    dx, ds0 = layer.backward(dy, cache, dsn)
    assert_close(dx, ref["dx"], dtype, "dx")
    assert_close(ds0, ref["dstate0"], dtype, "dstate0")
    assert_grads_close(layer.grads, ref["grads"], dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_reverse_matches_torch_on_flipped_time(cell):
    torch = pytest.importorskip("torch")
    from test_torch_parity import torch_module

    layer = make_layer(cell, D, H, 2, reverse=True, dtype=np.float64, seed=seed_for(cell))
    forward_twin = make_layer(cell, D, H, 2, dtype=np.float64)
    forward_twin.load_state_dict(layer.state_dict())
    mod = torch_module(forward_twin)      # torch has no reverse-only layer: flip time instead
    x = make_x(rng_for("flip", cell), layer, 6, 2)
    y, s_n = layer(x)
    with torch.no_grad():
        y_t, s_t = mod(torch.flip(torch.from_numpy(x), dims=[0]))
    assert_close(y, torch.flip(y_t, dims=[0]).numpy(), np.float64, "y")
    expected_state = tuple(s.numpy() for s in s_t) if cell == "lstm" else s_t.numpy()
    assert_close(s_n, expected_state, np.float64, "state_n")


@pytest.mark.parametrize("cell", CELLS)
def test_reverse_config(cell):
    layer = make_layer(cell, D, H, 2, reverse=True, seed=0)
    assert layer.reverse is True
    assert "reverse=True" in repr(layer)
    assert "reverse" not in repr(make_layer(cell, D, H, seed=0))
    assert sorted(layer.params) == sorted(make_layer(cell, D, H, 2, seed=0).params)
    with pytest.raises(ValueError, match="reverse"):
        make_layer(cell, D, H, reverse=True, bidirectional=True)


def test_reference_rejects_reverse_bidirectional():
    layer = fastrnn.GRU(D, H, bidirectional=True, dtype=np.float64, seed=0)
    with pytest.raises(ValueError, match="reverse"):
        fastrnn.reference.forward("gru", layer.params, np.zeros((2, 1, D)), bidirectional=True,
                                  reverse=True)
