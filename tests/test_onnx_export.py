"""layer.to_onnx against ONNX Runtime, and back through fastrnn.onnx.load.

A random layer (biases too) is written with to_onnx; ONNX Runtime runs the file on random
input and initial state and must give the layer's output and final states.  Loading the same
file gives one layer per stacked layer, which run one after the other must agree as well.
"""

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import fastrnn  # noqa: E402
from conftest import (as_parts, assert_close, make_layer, make_state, make_x,  # noqa: E402
                      ort_run, rng_for)

F32 = np.float32
D, H, T, B = 3, 4, 5, 2

CONFIGS = [dict(), dict(num_layers=2, bidirectional=True), dict(num_layers=3, batch_first=True),
           dict(reverse=True, bias=False), dict(num_layers=2, reverse=True, batch_first=True),
           dict(num_layers=2, bidirectional=True, bias=False, batch_first=True)]


def random_layer(cell, key, **config):
    layer = make_layer(cell, D, H, **config)
    rng = rng_for("params", cell, *key)
    for p in layer.params.values():       # biases far from zero, so a lost bias shows
        p[...] = rng.uniform(-0.7, 0.7, p.shape)
    return layer


def check_export(layer, tmp_path, key, initial_state=True):
    path = tmp_path / "layer.onnx"
    layer.to_onnx(path, initial_state=initial_state)
    rng = rng_for("io", *key)
    x = make_x(rng, layer, T, B)
    state0 = make_state(rng, layer, B) if initial_state else None
    feed = {"x": x}
    if initial_state:
        feed.update(zip(["h0", "c0"], as_parts(state0)))
    y_ort, *states_ort = ort_run(path, feed)
    y, state_n = layer(x, state0)
    assert np.abs(y).max() > 0.1
    assert_close(y, y_ort, layer.dtype, "y")
    assert_close(as_parts(state_n), tuple(states_ort), layer.dtype, "state_n")

    # back: the file's nodes as fastrnn layers, chained through the same time-major arrays
    loaded = fastrnn.onnx.load(path)
    assert len(loaded) == layer.num_layers
    z = x.transpose(1, 0, 2) if layer.batch_first else x
    for i, part in enumerate(loaded):
        n = layer.num_directions
        s0 = None if state0 is None else tuple(s[i * n:(i + 1) * n] for s in as_parts(state0))
        assert not part.batch_first and part.reverse == layer.reverse
        z, _ = part(z, None if s0 is None else s0 if len(s0) == 2 else s0[0])
    assert_close(z.transpose(1, 0, 2) if layer.batch_first else z, y, layer.dtype,
                 "y of the loaded layers")


@pytest.mark.parametrize("config", CONFIGS,
                         ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()) or "plain")
@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_export_runs_in_onnxruntime(cell, config, tmp_path):
    layer = random_layer(cell, (str(config),), **config)
    check_export(layer, tmp_path, (cell, str(config)))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_export_without_initial_state(cell, tmp_path):
    layer = random_layer(cell, ("nostate",), num_layers=2, bidirectional=True)
    check_export(layer, tmp_path, (cell, "nostate"), initial_state=False)


def test_float64_export_loads_back_exactly(tmp_path):
    layer = random_layer("lstm", ("f64",), num_layers=2, bidirectional=True, dtype=np.float64)
    layer.to_onnx(tmp_path / "m.onnx")
    first, second = fastrnn.onnx.load(tmp_path / "m.onnx")
    assert first.dtype == second.dtype == np.float64
    for part, index in ((first, 0), (second, 1)):
        for name, value in part.params.items():
            np.testing.assert_array_equal(value, layer.params[name.replace("_l0",
                                                                           f"_l{index}")])


@pytest.mark.parametrize("config", [dict(), dict(num_layers=2, bidirectional=True)],
                         ids=["plain", "L2-bi"])
@pytest.mark.parametrize("variant", ["gru_reset_before", "lstm_peephole"])
def test_variants_export_runs_in_onnxruntime(variant, config, tmp_path):
    cell, option = (("gru", dict(reset_after=False)) if variant == "gru_reset_before"
                    else ("lstm", dict(peephole=True)))
    layer = random_layer(cell, (variant, str(config)), **option, **config)
    check_export(layer, tmp_path, (variant, str(config)))


@pytest.mark.parametrize("config", [dict(num_layers=2, bidirectional=True),
                                    dict(reverse=True, batch_first=True),
                                    dict(num_layers=2, batch_first=True)],
                         ids=["2-layer-bidirectional", "reverse-batch-first", "2-layer-bf"])
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_export_with_lengths(cell, config, tmp_path):
    """to_onnx(lengths=True): ONNX Runtime fed the same lengths gives layer(x, lengths=...)."""
    key = ("lengths", cell, *sorted(config.items()))
    layer = random_layer(cell, key, **config)
    path = tmp_path / "layer.onnx"
    layer.to_onnx(path, initial_state=True, lengths=True)
    rng = rng_for("io", *key)
    x = make_x(rng, layer, T, B)
    state0 = make_state(rng, layer, B)
    lengths = np.array([3, 1], np.int32)[:B]
    feed = {"x": x, "lengths": lengths, "h0": as_parts(state0)[0]}
    if cell == "lstm":
        feed["c0"] = state0[1]
    got = ort_run(path, feed)
    y, state_n = layer(x, state0, lengths=lengths)
    assert_close(got[0], y, F32, "y")
    for a, b in zip(got[1:], as_parts(state_n)):
        assert_close(a, b, F32, "state_n")
