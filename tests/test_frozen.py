"""fastrnn.FrozenLayer (layer.frozen()): inference with the weights packed once.

A frozen layer must return what the layer returns: bitwise the same numbers
for calls long enough that the layer packs its weights too (T * B at least
pack_min_rows()), within rounding for shorter ones (the layer then multiplies
from the unpacked weights), and within tolerance of the NumPy reference
always.  It works on its own copy of the parameters, reuses the packs it made
when it was made, and rejects what the layer rejects.
"""

import copy
import pickle

import numpy as np
import pytest

import fastrnn
from fastrnn.layers import base as _base
from fastrnn.kernels import threads as _threads
from fastrnn.runtime.split_choice import SplitChoice
from fastrnn.kernels.elementwise import pack_min_rows
from conftest import (CELLS, DTYPES, as_parts, assert_close, make_layer, make_state, make_x, reference_run,
                      rng_for, tol)

D, H = 5, 6
VARIANTS = [(cell, {}) for cell in CELLS] + [("gru", dict(reset_after=False)),
                                             ("lstm", dict(peephole=True))]
STACKS = {"one": {}, "deep-bidirectional": dict(num_layers=2, bidirectional=True),
          "batch_first": dict(batch_first=True), "reverse": dict(reverse=True)}


def variant_id(v):
    cell, kw = v
    return cell + "".join(f"-{k}={val}" for k, val in kw.items())


def assert_same_outputs(got, expected, bitwise, dtype, what=""):
    """(y, state_n) pairs equal: bitwise, or within the dtype's tolerance."""
    y, s = got
    y_ref, s_ref = expected
    for i, (a, b) in enumerate(zip([y, *as_parts(s)], [y_ref, *as_parts(s_ref)])):
        assert a.shape == b.shape and a.dtype == b.dtype, f"{what} output {i}"
        if bitwise:
            np.testing.assert_array_equal(a, b, err_msg=f"{what} output {i}")
        else:
            np.testing.assert_allclose(a, b, err_msg=f"{what} output {i}", **tol(dtype))


@pytest.mark.parametrize("T, B", [(1, 1), (3, 1), (12, 1), (1, None), (9, None), (8, 5)])
@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_frozen_equals_layer_and_reference(variant, dtype, stack, T, B):
    cell, kw = variant
    rng = rng_for("frozen", variant_id(variant), np.dtype(dtype).name, stack, T, B)
    layer = make_layer(cell, D, H, dtype=dtype, seed=4, **kw, **STACKS[stack])
    frozen = layer.frozen()
    x = make_x(rng, layer, T, B)
    state0 = make_state(rng, layer, B)
    expected = layer(x, state0)
    long_enough = T * (B or 1) >= pack_min_rows()
    for call in range(2):       # the second reads the packs the first left
        got = frozen(x, state0)
        assert_same_outputs(got, expected, long_enough, dtype, f"call {call}")
    ref = reference_run(layer, x, state0, backward=False)
    assert_close(got[0], ref["y"], dtype, "y against the reference")
    assert_close(got[1], ref["state_n"], dtype, "state_n against the reference")


@pytest.mark.parametrize("stack", ["deep-bidirectional", "reverse"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_frozen_with_lengths(cell, stack):
    layer = make_layer(cell, D, H, dtype=np.float64, seed=5, **STACKS[stack])
    rng = rng_for("frozen-lengths", cell)
    x = make_x(rng, layer, 10, 4)
    lengths = np.array([3, 10, 1, 7])
    assert_same_outputs(layer.frozen()(x, None, lengths), layer(x, None, lengths), True,
                        np.float64)


@pytest.mark.parametrize("threads_at_freeze, threads_at_call", [(1, 2), (2, 1), (2, 2)])
@pytest.mark.parametrize("T, B, hidden", [(30, 1, 64), (2, 1, 64), (12, 19, 16), (7, 3, 16)],
                         ids=["split-by-units", "short-split-by-units", "own-rows",
                              "shared-rows"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_frozen_over_thread_counts(cell, T, B, hidden, threads_at_freeze, threads_at_call,
                                   restore_threads, monkeypatch):
    """Packed on one thread count, run on another, in each way a time loop is split
    (threads forced even for these small calls): the packs do not depend on the
    threads that made them.  A split call with T * B < 4 is one only a frozen layer
    makes (a layer does not pack for it): it must equal the frozen layer on one
    thread bitwise, and the layer within rounding."""
    monkeypatch.setattr(_base, "_THREADED_MIN_FLOPS", 0)
    monkeypatch.setattr(_base, "_UNIT_SPLIT_MIN_WEIGHTS", 0)
    monkeypatch.setattr(SplitChoice, "choose", lambda self: True)
    layer = make_layer(cell, 24, hidden, seed=6)
    x = make_x(rng_for("frozen-threads", cell, T, B), layer, T, B)
    _threads.set_num_threads(threads_at_freeze)
    frozen = layer.frozen()
    _threads.set_num_threads(1)
    one_thread = frozen(x)
    _threads.set_num_threads(threads_at_call)
    assert layer._threads(T, B, 24) == threads_at_call
    got = frozen(x)
    assert_same_outputs(got, one_thread, True, np.float32)
    assert_same_outputs(got, layer(x), T * B >= pack_min_rows(), np.float32)


@pytest.mark.parametrize("cell", CELLS)
def test_calls_of_other_shapes_in_turn(cell):
    """Calls of every size, one after another: no call's work overwrites the packs."""
    layer = make_layer(cell, D, H, 2, dtype=np.float64, seed=7)
    frozen = layer.frozen()
    rng = rng_for("frozen-turns", cell)
    for T, B in [(20, 3), (1, 1), (6, None), (2, 2), (40, 1), (3, 0), (3, 7), (20, 3)]:
        x = make_x(rng, layer, T, B)
        assert_same_outputs(frozen(x), layer(x), T * (B or 1) >= pack_min_rows(),
                            np.float64, f"T={T} B={B}")


@pytest.mark.parametrize("cell", CELLS)
def test_frozen_keeps_the_parameters_it_was_made_with(cell):
    layer = make_layer(cell, D, H, dtype=np.float64, seed=8)
    before = make_layer(cell, D, H, dtype=np.float64)
    before.load_state_dict(layer.state_dict())
    frozen = layer.frozen()
    for v in layer.params.values():         # as an optimiser step would, in place
        v += 0.25
    x = make_x(rng_for("frozen-copy", cell), layer, 9, 2)
    assert_same_outputs(frozen(x), before(x), True, np.float64)
    assert not np.array_equal(frozen(x)[0], layer(x)[0])


@pytest.mark.parametrize("cell", CELLS)
def test_products_read_the_packs_made_when_frozen(cell):
    """The weights are packed once: a change to the frozen copy's own weight matrices
    (which nothing public can reach) does not reach a later call's products."""
    layer = make_layer(cell, D, H, dtype=np.float64, seed=9)
    frozen = layer.frozen()
    x = make_x(rng_for("frozen-packs", cell), layer, 6, 2)
    y0, s0 = frozen(x)
    for name, v in frozen._layer.params.items():
        if name.startswith("weight_"):
            v *= -1.0
    assert_same_outputs(frozen(x), (y0, s0), True, np.float64)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_pack_their_own_weights(how):
    layer = fastrnn.GRU(D, H, num_layers=2, bidirectional=True, seed=11)
    frozen = layer.frozen()
    other = copy.deepcopy(frozen) if how == "deepcopy" else pickle.loads(pickle.dumps(frozen))
    x = make_x(rng_for("frozen-copies", how), layer, 7, 3)
    assert_same_outputs(other(x), frozen(x), True, np.float32)
    kept = other._layer._runtime.packs
    assert sorted(kept) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    originals = [id(a) for buffers in frozen._layer._runtime.packs.values() for a in buffers]
    for buffers in kept.values():
        for b in buffers:
            assert b.ctypes.data % 64 == 0, "packs start on a cache line"
            assert id(b) not in originals


def test_inputs_are_not_modified_and_may_be_read_only():
    layer = fastrnn.LSTM(D, H, seed=10)
    rng = rng_for("frozen-inputs")
    x = make_x(rng, layer, 8, 3)
    h0, c0 = make_state(rng, layer, 3)
    copies = [a.copy() for a in (x, h0, c0)]
    for a in (x, h0, c0):
        a.flags.writeable = False
    y, _ = layer.frozen()(x, (h0, c0))
    for a, b in zip((x, h0, c0), copies):
        np.testing.assert_array_equal(a, b)
    assert y.flags.writeable


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match="layer"):
        fastrnn.FrozenLayer(np.zeros((3, 4)))
    frozen = fastrnn.GRU(D, H, seed=0).frozen()
    with pytest.raises(ValueError, match="x"):
        frozen(np.zeros((4, 2, D + 1), np.float32))
    with pytest.raises(ValueError, match="state0"):
        frozen(np.zeros((4, 2, D), np.float32), np.zeros((1, 3, H), np.float32))
    with pytest.raises(ValueError, match="lengths"):
        frozen(np.zeros((4, 2, D), np.float32), None, [5, 1])


def test_attributes_and_repr():
    layer = fastrnn.RNN(D, H, num_layers=2, dtype=np.float64, seed=0)
    frozen = fastrnn.FrozenLayer(layer)
    assert (frozen.input_size, frozen.hidden_size, frozen.dtype) == (D, H, np.float64)
    assert (frozen.num_layers, frozen.bidirectional, frozen.batch_first) == (2, False, False)
    assert repr(frozen) == f"FrozenLayer({layer!r})"
    assert "FrozenLayer" in fastrnn.__all__
