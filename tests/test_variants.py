"""The two cell variants: GRU with the reset gate before the product (reset_after=False) and
LSTM with peepholes (peephole=True).

Checked against the loop-based NumPy reference (itself checked by finite differences here):
outputs, final states, dx, dstate0 and every parameter gradient, the peephole ones included,
over dtype x T x B x layers x directions with batch_first, state0, bias and dstate_n spread over
the grid; thread counts (batch rows and the single-sequence split by hidden units) give equal
results; parameters, repr, argument checks, save/load and pickle.
"""

import itertools
import pickle

import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from fastrnn.kernels import threads as _threads
from conftest import (DTYPES, as_parts, assert_close, assert_grads_close, make_dy, make_state,
                      make_x, reference_run, rng_for, seed_for, tol)
from test_layers import check_against_reference
from test_threads import equal_over_threads_and_right

D, H = 5, 6

# name -> (layer class, the variant's constructor keyword, reference mode)
VARIANTS = {
    "gru_reset_before": (fastrnn.GRU, dict(reset_after=False), "gru"),
    "lstm_peephole": (fastrnn.LSTM, dict(peephole=True), "lstm"),
}


def make_variant(name, input_size, hidden_size, num_layers=1, **kwargs):
    cls, option, _ = VARIANTS[name]
    return cls(input_size, hidden_size, num_layers, **option, **kwargs)


def randomize(layer, rng, scale=0.5):
    """Parameters far from a fresh layer's (and different from one another)."""
    for v in layer.params.values():
        v[...] = rng.uniform(-scale, scale, v.shape)


GRID = list(itertools.product(VARIANTS, DTYPES, [1, 5], [1, 3], [1, 2], [False, True]))
# (batch_first, with_state0, bias, dstate_n given), spread over the grid with a stride coprime
# with 16 so that every variant meets each combination.
OPTIONS = list(itertools.product([False, True], [True, False], [True, False], [True, False]))


def _cases():
    for i, (name, dtype, T, B, L, bidir) in enumerate(GRID):
        bf, with_state, bias, with_dsn = OPTIONS[(5 * i) % len(OPTIONS)]
        yield pytest.param(
            name, dtype, T, B, L, bidir, bf, with_state, bias, with_dsn,
            id=(f"{name}-{np.dtype(dtype).name}-T{T}-B{B}-L{L}-{'bi' if bidir else 'uni'}"
                f"-{'bf' if bf else 'tm'}-{'s0' if with_state else 'nos0'}"
                f"-{'bias' if bias else 'nobias'}-{'dsn' if with_dsn else 'nodsn'}"))


@pytest.mark.parametrize("name, dtype, T, B, L, bidir, bf, with_state, bias, with_dsn",
                         list(_cases()))
def test_variant_matches_reference(name, dtype, T, B, L, bidir, bf, with_state, bias,
                                   with_dsn):
    key = ("variant", name, np.dtype(dtype).name, T, B, L, bidir, bf, with_state, bias,
           with_dsn)
    layer = make_variant(name, D, H, L, bias=bias, batch_first=bf, bidirectional=bidir,
                         dtype=dtype, seed=seed_for(*key))
    ref = check_against_reference(layer, T, B, with_state, with_dsn, key)
    if name == "lstm_peephole":
        assert sum("peephole" in k for k in ref["grads"]) == L * (2 if bidir else 1)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_grads_accumulate(name):
    layer = make_variant(name, D, H, 2, bidirectional=True, dtype=np.float64, seed=3)
    rng = rng_for("accumulate", name)
    x = make_x(rng, layer, 4, 2)
    dy = make_dy(rng, layer, 4, 2)
    ref = reference_run(layer, x, None, dy)
    for _ in range(2):
        _, _, cache = layer.forward(x)
        layer.backward(dy, cache)
    assert_grads_close(layer.grads, ref["grads"], np.float64, scale=2.0)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_is_not_the_default_cell(name):
    """The option changes the maths: the default cell on the same weights gives other outputs."""
    layer = make_variant(name, D, H, dtype=np.float64, seed=9)
    cls, option, _ = VARIANTS[name]
    plain = cls(D, H, dtype=np.float64, seed=9)
    plain.load_state_dict({k: v for k, v in layer.params.items() if "peephole" not in k})
    rng = rng_for("differs", name)
    x = rng.standard_normal((5, 3, D))
    state0 = make_state(rng, layer, 3)
    y, _ = layer(x, state0)
    y_plain, _ = plain(x, state0)
    assert np.abs(y - y_plain).max() > 1e-3
    np.testing.assert_allclose(y, reference_run(layer, x, state0, backward=False)["y"],
                               **tol(np.float64))


@pytest.mark.parametrize("name", VARIANTS)
def test_unbatched_input(name):
    layer = make_variant(name, D, H, 2, bidirectional=True, dtype=np.float64, seed=4)
    rng = rng_for("unbatched", name)
    x = rng.standard_normal((4, D))
    state0 = make_state(rng, layer, None)
    dy = rng.standard_normal((4, 2 * H))
    ref = reference_run(layer, x, state0, dy)
    y, state_n, cache = layer.forward(x, state0)
    dx, dstate0 = layer.backward(dy, cache)
    assert_close(y, ref["y"], np.float64, "y")
    assert_close(state_n, ref["state_n"], np.float64, "state_n")
    assert_close(dx, ref["dx"], np.float64, "dx")
    assert_close(dstate0, ref["dstate0"], np.float64, "dstate0")
    assert_grads_close(layer.grads, ref["grads"], np.float64)


# ------------------------------------------------------------------- the reference's backward

EPS = 1e-6


def _reference_loss(mode, variant, params, x, state0, R, S, L, bidir):
    y, state_n, _ = reference.forward(mode, params, x, state0, num_layers=L,
                                      bidirectional=bidir, **variant)
    total = np.sum(y * R)
    for a, s in zip(as_parts(state_n), as_parts(S)):
        total += np.sum(a * s)
    return total


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("L, bidir, bias", [(2, True, True), (1, False, False)])
def test_reference_backward_matches_finite_differences(name, L, bidir, bias):
    """Every entry of dx, dstate0 and every parameter gradient, by central differences."""
    cls, option, mode = VARIANTS[name]
    variant = {"peephole": True} if mode == "lstm" else {"reset_after": False}
    layer = cls(2, 3, L, bidirectional=bidir, bias=bias, dtype=np.float64, seed=8, **option)
    rng = rng_for("fd", name, L, bidir, bias)
    randomize(layer, rng, 0.8)
    params = {k: v.copy() for k, v in layer.params.items()}
    T, B = 3, 2
    x = rng.standard_normal((T, B, 2))
    state0 = make_state(rng, layer, B)
    R = rng.standard_normal((T, B, (2 if bidir else 1) * 3))
    S = make_state(rng, layer, B)
    _, _, cache = reference.forward(mode, params, x, state0, num_layers=L, bidirectional=bidir,
                                    **variant)
    dx, dstate0, grads = reference.backward(R, cache, S)
    assert set(grads) == set(params)

    def loss():
        return _reference_loss(mode, variant, params, x, state0, R, S, L, bidir)

    def numeric(arr):
        out = np.empty_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + EPS
            up = loss()
            arr[idx] = old - EPS
            down = loss()
            arr[idx] = old
            out[idx] = (up - down) / (2 * EPS)
        return out

    np.testing.assert_allclose(dx, numeric(x), rtol=1e-6, atol=1e-8)
    for got, s in zip(as_parts(dstate0), as_parts(state0)):
        np.testing.assert_allclose(got, numeric(s), rtol=1e-6, atol=1e-8)
    for k in params:
        np.testing.assert_allclose(grads[k], numeric(params[k]), rtol=1e-6, atol=1e-8,
                                   err_msg=k)


def test_reference_rejects_variant_options_of_other_cells():
    params = fastrnn.RNN(2, 3, seed=0).params
    x = np.zeros((2, 1, 2))
    with pytest.raises(ValueError, match="peephole"):
        reference.forward("rnn", params, x, peephole=True)
    with pytest.raises(ValueError, match="reset_after"):
        reference.forward("rnn", params, x, reset_after=False)
    lstm = fastrnn.LSTM(2, 3, peephole=True, seed=0)
    with pytest.raises(ValueError, match="weight_peephole_l0"):
        reference.forward("lstm", lstm.params, x)           # present but not asked for
    plain = fastrnn.LSTM(2, 3, seed=0)
    with pytest.raises(ValueError, match="weight_peephole_l0"):
        reference.forward("lstm", plain.params, x, peephole=True)


# ------------------------------------------------------------------------------------ threads


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("B", [1, 5, 7])
@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_does_not_change_results(name, B, dtype, restore_threads):
    # H = 36: 2H is not a whole number of panels, so W_hn's own packing starts a new panel.
    T, Dx, Hx = 37, 40, 36
    layer = make_variant(name, Dx, Hx, 2, bidirectional=True, dtype=dtype, seed=3)
    rng = np.random.default_rng(B)
    x = rng.standard_normal((T, B, Dx))
    dy = rng.standard_normal((T, B, 2 * Hx))
    dsn = make_state(rng, layer, B, np.float64)
    equal_over_threads_and_right(layer, x, dy, dsn)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("Hx", [128, 144])
@pytest.mark.parametrize("dtype", DTYPES)
def test_single_sequence_split_by_hidden_units(name, Hx, dtype, restore_threads, monkeypatch):
    # Batch 1 at H >= 128 splits the hidden units over threads (whole panels, a barrier per
    # step, and for reset-before a second one before the n block's product); small chunks
    # make the projection phase repeat in inference.
    import fastrnn.layers.base as base
    monkeypatch.setattr(base, "_CHUNK_ELEMENTS", 4 * Hx * 9)
    layer = make_variant(name, 12, Hx, 2, bidirectional=True, dtype=dtype, seed=5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 1, 12))
    dy = rng.standard_normal((40, 1, 2 * Hx))
    equal_over_threads_and_right(layer, x, dy, None)


# ------------------------------------------------------------- parameters, repr, arguments


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bidir", [False, True])
def test_peephole_parameters(bias, bidir):
    layer = fastrnn.LSTM(D, H, 2, bias=bias, bidirectional=bidir, peephole=True, seed=2)
    names = []
    for l in range(2):
        for sfx in [""] + (["_reverse"] if bidir else []):
            names += [f"weight_ih_l{l}{sfx}", f"weight_hh_l{l}{sfx}"]
            names += [f"bias_ih_l{l}{sfx}", f"bias_hh_l{l}{sfx}"] if bias else []
            names.append(f"weight_peephole_l{l}{sfx}")
    assert list(layer.params) == names
    assert list(layer.grads) == names
    assert list(layer.state_dict()) == names
    bound = 1 / np.sqrt(H)
    for name in names:
        if "peephole" in name:
            p = layer.params[name]
            assert p.shape == (3, H) and p.dtype == np.float32
            assert np.all(np.abs(p) <= bound) and np.std(p) > 0.2 * bound
            assert not np.any(layer.grads[name])
    # the same seed gives the same peepholes; reset_parameters draws them again
    again = fastrnn.LSTM(D, H, 2, bias=bias, bidirectional=bidir, peephole=True, seed=2)
    np.testing.assert_array_equal(again.params["weight_peephole_l1"],
                                  layer.params["weight_peephole_l1"])
    old = layer.params["weight_peephole_l0"].copy()
    layer.reset_parameters(99)
    assert not np.array_equal(old, layer.params["weight_peephole_l0"])
    # zero_grad clears them
    layer.grads["weight_peephole_l0"][...] = 1
    layer.zero_grad()
    assert not np.any(layer.grads["weight_peephole_l0"])


def test_gru_reset_before_has_torch_parameters():
    a = fastrnn.GRU(D, H, 2, bidirectional=True, reset_after=False, seed=1)
    b = fastrnn.GRU(D, H, 2, bidirectional=True, seed=1)
    assert list(a.params) == list(b.params)
    for k in a.params:
        assert a.params[k].shape == b.params[k].shape


def test_load_state_dict_checks_peepholes():
    layer = fastrnn.LSTM(D, H, peephole=True, seed=0)
    plain = fastrnn.LSTM(D, H, seed=0).state_dict()
    with pytest.raises(ValueError, match="weight_peephole_l0"):
        layer.load_state_dict(plain)
    bad = dict(plain, weight_peephole_l0=np.zeros((4, H)))
    with pytest.raises(ValueError, match="weight_peephole_l0"):
        layer.load_state_dict(bad)
    good = dict(plain, weight_peephole_l0=np.full((3, H), 0.25))
    layer.load_state_dict(good)
    np.testing.assert_array_equal(layer.params["weight_peephole_l0"], 0.25)


def test_repr_shows_non_default_variants():
    assert "peephole=True" in repr(fastrnn.LSTM(3, 4, peephole=True))
    assert "peephole" not in repr(fastrnn.LSTM(3, 4))
    assert "reset_after=False" in repr(fastrnn.GRU(3, 4, reset_after=False))
    assert "reset_after" not in repr(fastrnn.GRU(3, 4))
    assert repr(fastrnn.GRU(3, 4, reset_after=False, dtype=np.float64)) == \
        "GRU(3, 4, reset_after=False, dtype=float64)"


@pytest.mark.parametrize("cls, key", [(fastrnn.LSTM, "peephole"), (fastrnn.GRU, "reset_after")])
@pytest.mark.parametrize("bad", [1, 0, "yes", None, 1.0])
def test_variant_flags_must_be_bool(cls, key, bad):
    with pytest.raises(TypeError, match=key):
        cls(3, 4, **{key: bad})


def test_variant_flags_belong_to_their_cell():
    with pytest.raises(TypeError, match="peephole"):
        fastrnn.GRU(3, 4, peephole=True)
    with pytest.raises(TypeError, match="reset_after"):
        fastrnn.LSTM(3, 4, reset_after=False)
    with pytest.raises(TypeError):
        fastrnn.RNN(3, 4, peephole=True)


def test_numpy_bool_accepted():
    assert fastrnn.LSTM(3, 4, peephole=np.bool_(True)).peephole is True
    assert fastrnn.GRU(3, 4, reset_after=np.bool_(False)).reset_after is False


# ------------------------------------------------------------------------ save, load, pickle


def _same_outputs(a, b, x):
    ya, sa = a(x)
    yb, sb = b(x)
    np.testing.assert_array_equal(ya, yb)
    for u, v in zip(as_parts(sa), as_parts(sb)):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("name", VARIANTS)
def test_save_load_round_trip(name, tmp_path):
    layer = make_variant(name, D, H, 2, bidirectional=True, bias=False, dtype=np.float64,
                         seed=6)
    randomize(layer, rng_for("save", name))
    other = fastrnn.LSTM(D, H, seed=1)
    path = tmp_path / "model.npz"
    fastrnn.save(path, {"variant": layer, "plain": other})
    loaded = fastrnn.load(path)
    got = loaded["variant"]
    assert type(got) is type(layer)
    assert getattr(got, "peephole", None) == getattr(layer, "peephole", None)
    assert getattr(got, "reset_after", None) == getattr(layer, "reset_after", None)
    assert list(got.params) == list(layer.params)
    for k, v in layer.params.items():
        np.testing.assert_array_equal(got.params[k], v, err_msg=k)
    assert loaded["plain"].peephole is False
    x = rng_for("save x", name).standard_normal((4, 2, D))
    _same_outputs(got, layer, x)


@pytest.mark.parametrize("name", VARIANTS)
def test_pickle_round_trip(name):
    layer = make_variant(name, D, H, 2, dtype=np.float32, seed=7)
    got = pickle.loads(pickle.dumps(layer))
    assert repr(got) == repr(layer)
    assert list(got.params) == list(layer.params)
    _same_outputs(got, layer, rng_for("pickle", name).standard_normal((3, 2, D)))


def test_load_rejects_non_bool_variant_flag(tmp_path):
    import json
    path = tmp_path / "m.npz"
    fastrnn.save(path, fastrnn.GRU(D, H, reset_after=False, seed=0))
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["__fastrnn__"].item())
    header["layers"][0]["config"]["reset_after"] = "no"
    arrays["__fastrnn__"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="reset_after"):
        fastrnn.load(path)


@pytest.mark.parametrize("name", VARIANTS)
def test_long_inference_crosses_chunks(name, restore_threads, monkeypatch):
    # Many projection chunks on the batch-row path: r * h and the cells live in the chunk's
    # buffers, which the next chunk's projection overwrites.
    import fastrnn.layers.base as base
    monkeypatch.setattr(base, "_CHUNK_ELEMENTS", 4 * 24 * 6 * 3)
    layer = make_variant(name, 10, 24, 2, bidirectional=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((50, 6, 10))
    _threads.set_num_threads(1)
    y1, s1 = layer(x)
    _threads.set_num_threads(2)
    y2, s2 = layer(x)
    np.testing.assert_array_equal(y1, y2)
    ref = reference_run(layer, x, None, backward=False)
    np.testing.assert_allclose(y2, ref["y"], **tol(np.float64))
    for a, e in zip(as_parts(s2), as_parts(ref["state_n"])):
        np.testing.assert_allclose(a, e, **tol(np.float64))
