"""fastrnn.Stepper (layer.stepper()): one time step per call, the state kept inside.

Stepping through a sequence must give what one call of the layer on the whole sequence
gives (within the dtype's tolerance; the one-step kernels may sum in another order), and
the stepper must behave as a stream object: its own copy of the parameters, its own state,
reset(), clear errors.
"""

import threading

import numpy as np
import pytest

import fastrnn
from fastrnn.layers import base as _base
from fastrnn.kernels import threads as _threads
from conftest import CELLS, DTYPES, as_parts, make_layer, rng_for, tol

D, H, T = 5, 6, 7

VARIANTS = [(cell, {}) for cell in CELLS] + [("gru", dict(reset_after=False)),
                                             ("lstm", dict(peephole=True))]


def variant_id(v):
    cell, kw = v
    return cell + "".join(f"-{k}={val}" for k, val in kw.items())


def random_state(rng, layer, B, dtype):
    shape = (layer.num_layers, H) if B is None else (layer.num_layers, B, H)
    parts = tuple(rng.standard_normal(shape).astype(dtype)
                  for _ in range(2 if layer._has_cell else 1))
    return parts if layer._has_cell else parts[0]


def steps(step, x, B):
    """Feed x (T, D) or (T, B, D) step by step; stack the outputs."""
    return np.stack([step(x[t]) for t in range(x.shape[0])])


@pytest.mark.parametrize("B", [None, 1, 3])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_steps_equal_one_call(variant, dtype, num_layers, B):
    cell, kw = variant
    rng = rng_for("stepper", variant_id(variant), np.dtype(dtype).name, num_layers, B)
    layer = make_layer(cell, D, H, num_layers, dtype=dtype, seed=3, **kw)
    x = rng.standard_normal((T, D) if B is None else (T, B, D)).astype(dtype)
    state0 = random_state(rng, layer, B, dtype)
    y, state_n = layer(x, state0)
    step = layer.stepper(state0, batch_size=B)
    y_steps = steps(step, x, B)
    np.testing.assert_allclose(y_steps, y, **tol(dtype))
    for a, b in zip(as_parts(step.state), as_parts(state_n)):
        np.testing.assert_allclose(a, b, **tol(dtype))
    assert y_steps.dtype == np.dtype(dtype)


def test_reset_state_and_snapshot():
    rng = np.random.default_rng(1)
    layer = fastrnn.LSTM(D, H, num_layers=2, seed=0)
    x = rng.standard_normal((T, D)).astype(np.float32)
    step = fastrnn.Stepper(layer)
    first = steps(step, x, None)
    # the state property is a copy
    h, c = step.state
    h += 100.0
    assert not np.allclose(step.state[0], h)
    # the parameters were copied when the stepper was made
    for v in layer.params.values():
        v += 1.0
    step.reset()
    np.testing.assert_array_equal(steps(step, x, None), first)
    # reset to a given state: the same as the layer from that state
    s0 = (rng.standard_normal((2, H)).astype(np.float32),
          rng.standard_normal((2, H)).astype(np.float32))
    step.reset(s0)
    fresh = fastrnn.LSTM(D, H, num_layers=2, seed=0)
    np.testing.assert_allclose(steps(step, x, None), fresh(x, s0)[0], **tol(np.float32))


def test_outputs_are_new_arrays_and_inputs_untouched():
    layer = fastrnn.GRU(D, H, seed=0)
    step = layer.stepper(batch_size=2)
    x = np.ones((2, D), np.float32)
    saved = x.copy()
    y1 = step(x)
    y2 = step(x)
    assert not np.shares_memory(y1, y2)
    assert not np.array_equal(y1, y2)      # the state moved on between the calls
    np.testing.assert_array_equal(x, saved)


def test_inputs_of_other_dtypes_and_layouts_are_converted():
    layer = fastrnn.RNN(D, H, seed=0, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((3, D))
    a, b = layer.stepper(batch_size=3), layer.stepper(batch_size=3)
    np.testing.assert_array_equal(a(x), b(np.asfortranarray(x)))
    np.testing.assert_array_equal(a(x.tolist()), b(x))
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(a(x32), b(x32.astype(np.float64)))


@pytest.mark.parametrize("cell, B, Hs", [("lstm", 1, 128), ("gru", 1, 128), ("rnn_tanh", 1, 128),
                                         ("lstm", 5, 24), ("gru", 5, 24)])
def test_threaded_kernels(cell, B, Hs, monkeypatch, restore_threads):
    """The plan keeps each layer's thread split (the batch-1 split by hidden units
    included): stepping on 2 threads equals stepping on 1 and the whole call."""
    monkeypatch.setattr(_base, "_THREADED_MIN_FLOPS", 0)
    layer = make_layer(cell, 16, Hs, 2, dtype=np.float64, seed=4)
    x = np.random.default_rng(3).standard_normal((T, B, 16))
    results = []
    for n in (1, 2):
        _threads.set_num_threads(n)
        results.append(steps(layer.stepper(batch_size=B), x, B))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[1], layer(x)[0], **tol(np.float64))


def test_steppers_in_threads():
    """One stepper per thread, all at once, each equal to its sequential run."""
    layer = fastrnn.LSTM(D, H, num_layers=2, seed=5)
    xs = [np.random.default_rng(i).standard_normal((40, D)).astype(np.float32) for i in range(6)]
    expected = [layer(x)[0] for x in xs]
    results = [None] * len(xs)

    def work(i):
        results[i] = steps(layer.stepper(), xs[i], None)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, **tol(np.float32))


def test_bad_arguments():
    with pytest.raises(ValueError, match="layer: a bidirectional layer"):
        fastrnn.LSTM(D, H, bidirectional=True).stepper()
    with pytest.raises(ValueError, match="layer: a reverse layer"):
        fastrnn.GRU(D, H, reverse=True).stepper()
    with pytest.raises(TypeError, match="layer: expected a fastrnn"):
        fastrnn.Stepper("lstm")
    with pytest.raises(ValueError, match="batch_size"):
        fastrnn.RNN(D, H).stepper(batch_size=0)
    with pytest.raises(ValueError, match="state0"):
        fastrnn.RNN(D, H).stepper(np.zeros((1, 2, H)))        # unbatched: (1, H)
    step = fastrnn.LSTM(D, H).stepper(batch_size=2)
    with pytest.raises(ValueError, match=r"x: expected shape \(2, 5\)"):
        step(np.zeros((3, D), np.float32))
    with pytest.raises(TypeError, match="x: expected real numbers"):
        step(np.zeros((2, D), complex))
    with pytest.raises(TypeError, match=r"state0: expected a pair \(h, c\)"):
        step.reset((np.zeros((1, 2, H)),))                   # LSTM: a pair
    single = fastrnn.LSTM(D, H).stepper()
    with pytest.raises(ValueError, match=r"x: expected shape \(5,\)"):
        single(np.zeros((1, D), np.float32))
    assert "batch_size=2" in repr(step)
