"""Dropout between stacked recurrent layers (the dropout= argument of RNN, LSTM and GRU).

The gold standard is the stack rebuilt by hand from one-layer fastrnn.reference networks, with
the masks the layer kept in its cache applied between them; finite differences in float64 check
backward through the masks; statistics check the masks themselves.
"""

import warnings

import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from conftest import (CELLS, as_parts, make_layer, make_state, mode_of, nonlinearity_of,
                      rng_for)

T, B, D, H = 4, 3, 3, 4


def _layer_params(layer, l):
    """Layer l's params renamed as a one-layer network's, in float64."""
    tag = f"_l{l}"
    return {k.replace(tag, "_l0"): np.array(v, np.float64) for k, v in layer.params.items()
            if tag in k}


def _rows(state, l, dirs):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(np.asarray(s, np.float64)[l * dirs:(l + 1) * dirs] for s in state)
    return np.asarray(state, np.float64)[l * dirs:(l + 1) * dirs]


def composed_reference(cell, layer, x, state0, masks, dy, dstate_n):
    """Forward and backward of the stack as one-layer reference networks joined by masks."""
    dirs = 2 if layer.bidirectional else 1
    inp = np.asarray(x, np.float64)
    caches, states = [], []
    for l in range(layer.num_layers):
        y, s_n, cache = reference.forward(mode_of(cell), _layer_params(layer, l), inp,
                                          _rows(state0, l, dirs), num_layers=1,
                                          bidirectional=layer.bidirectional,
                                          nonlinearity=nonlinearity_of(cell))
        caches.append(cache)
        states.append(as_parts(s_n))
        inp = y * masks[l] if l < layer.num_layers - 1 else y
    y_top = inp
    grads, dstates = {}, []
    d = np.asarray(dy, np.float64)
    for l in reversed(range(layer.num_layers)):
        dx, ds0, g = reference.backward(d, caches[l], _rows(dstate_n, l, dirs))
        grads.update({k.replace("_l0", f"_l{l}"): v for k, v in g.items()})
        dstates.insert(0, as_parts(ds0))
        d = dx * masks[l - 1] if l > 0 else dx
    state_n = tuple(np.concatenate(p) for p in zip(*states))
    dstate0 = tuple(np.concatenate(p) for p in zip(*dstates))
    return y_top, state_n, d, dstate0, grads


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_training_matches_the_reference_stack_with_the_cached_masks(cell, bidirectional):
    rng = rng_for("dropout", cell, bidirectional)
    layer = make_layer(cell, D, H, 3, bidirectional=bidirectional, dropout=0.4,
                       dtype=np.float64, seed=3)
    x = rng.standard_normal((T, B, D))
    state0 = make_state(rng, layer, B)
    dirs = 2 if bidirectional else 1
    dy = rng.standard_normal((T, B, dirs * H))
    dstate_n = make_state(rng, layer, B)

    y, state_n, cache = layer.forward(x, state0)
    masks = cache.masks
    assert len(masks) == 2 and all(m.shape == (T, B, dirs * H) for m in masks)
    assert all((m == 0).any() for m in masks)
    dx, dstate0 = layer.backward(dy, cache, dstate_n)

    ry, rstate_n, rdx, rdstate0, rgrads = composed_reference(cell, layer, x, state0, masks,
                                                             dy, dstate_n)
    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, ry, **tol)
    for a, b in zip(as_parts(state_n), rstate_n):
        np.testing.assert_allclose(a, b, **tol)
    np.testing.assert_allclose(dx, rdx, **tol)
    for a, b in zip(as_parts(dstate0), rdstate0):
        np.testing.assert_allclose(a, b, **tol)
    assert set(layer.grads) == set(rgrads)
    for k in rgrads:
        np.testing.assert_allclose(layer.grads[k], rgrads[k], **tol, err_msg=k)
    # the same x without dropout gives other outputs: the masks mattered
    assert not np.allclose(y, layer(x, state0)[0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradients_through_the_masks_by_finite_differences(cell):
    """loss = sum(y * R) through [layer 0] -> mask -> [layer 1], rebuilt from one-layer fastrnn
    layers (inference calls), against backward of the two-layer stack with dropout."""
    rng = rng_for("dropout-fd", cell)
    layer = make_layer(cell, 2, 3, 2, dropout=0.5, dtype=np.float64, seed=7)
    x = rng.standard_normal((3, 2, 2))
    R = rng.standard_normal((3, 2, 3))
    layer.zero_grad()
    _, _, cache = layer.forward(x)
    mask = cache.masks[0]
    dx, _ = layer.backward(R, cache)
    parts = [make_layer(cell, 2, 3, 1, dtype=np.float64), make_layer(cell, 3, 3, 1,
                                                                       dtype=np.float64)]
    for l, part in enumerate(parts):      # share the arrays, so perturbations reach both
        part.params = {k.replace(f"_l{l}", "_l0"): v for k, v in layer.params.items()
                       if f"_l{l}" in k}

    def loss(xv):
        y0, _ = parts[0](xv)
        y1, _ = parts[1](y0 * mask)
        return float(np.sum(y1 * R))

    eps = 1e-6
    xp = x.copy()
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = xp[i]
        xp[i] = orig + eps
        fp = loss(xp)
        xp[i] = orig - eps
        fm = loss(xp)
        xp[i] = orig
        num[i] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_hh_l1"):
        p = layer.params[name]
        for i in list(np.ndindex(p.shape))[::5]:
            orig = p[i]
            p[i] = orig + eps
            fp = loss(x)
            p[i] = orig - eps
            fm = loss(x)
            p[i] = orig
            assert layer.grads[name][i] == pytest.approx((fp - fm) / (2 * eps), rel=1e-6,
                                                         abs=1e-8), (name, i)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_statistics_and_scaling(p):
    layer = fastrnn.GRU(2, 50, 2, dropout=p, seed=1)
    _, _, cache = layer.forward(np.ones((40, 10, 2), np.float32))
    m = cache.masks[0]
    assert m.dtype == np.float32
    n = m.size
    zeros = int((m == 0).sum())
    assert abs(zeros - p * n) < 5 * np.sqrt(n * p * (1 - p))
    np.testing.assert_array_equal(np.unique(m), [0.0, np.float32(1.0 / (1.0 - p))])


def test_inference_and_zero_dropout_never_drop():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3))
    plain = fastrnn.LSTM(3, 4, 3, seed=2, dtype=np.float64)
    dropped = fastrnn.LSTM(3, 4, 3, seed=2, dropout=0.6, dtype=np.float64)
    np.testing.assert_array_equal(dropped(x)[0], plain(x)[0])
    y, _, cache = plain.forward(x)
    assert cache.masks == [None, None]
    np.testing.assert_array_equal(y, plain(x)[0])


def test_reproducible_by_seed_and_fresh_masks_per_call():
    x = np.random.default_rng(1).standard_normal((6, 3, 2))
    a = fastrnn.RNN(2, 5, 2, dropout=0.5, seed=11)
    b = fastrnn.RNN(2, 5, 2, dropout=0.5, seed=11)
    c = fastrnn.RNN(2, 5, 2, dropout=0.5, seed=12)
    ya1, ya2 = a.forward(x)[0], a.forward(x)[0]
    yb1, yb2 = b.forward(x)[0], b.forward(x)[0]
    np.testing.assert_array_equal(ya1, yb1)
    np.testing.assert_array_equal(ya2, yb2)
    assert not np.array_equal(ya1, ya2)
    c.load_state_dict(a.state_dict())              # same weights, other dropout stream
    assert not np.array_equal(c.forward(x)[0], ya1)
    a.reset_parameters(11)                         # reseeding restarts the stream
    np.testing.assert_array_equal(a.forward(x)[0], ya1)


def test_dropout_can_change_after_construction():
    x = np.random.default_rng(2).standard_normal((4, 2, 3))
    layer = fastrnn.GRU(3, 4, 2, seed=0, dtype=np.float64)
    layer.dropout = 0.5
    assert layer.dropout == 0.5
    _, _, cache = layer.forward(x)
    assert cache.masks[0] is not None and (cache.masks[0] == 0).any()
    layer.dropout = 0
    y, _, cache = layer.forward(x)
    assert cache.masks == [None]
    np.testing.assert_array_equal(y, layer(x)[0])


def test_warns_with_a_single_layer_only():
    with pytest.warns(UserWarning, match="dropout"):
        fastrnn.LSTM(2, 3, dropout=0.2)
    layer = fastrnn.GRU(2, 3)
    with pytest.warns(UserWarning, match="num_layers"):
        layer.dropout = 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastrnn.LSTM(2, 3, num_layers=2, dropout=0.2)
        fastrnn.RNN(2, 3, dropout=0.0)


@pytest.mark.parametrize("bad, exc", [(-0.1, ValueError), (1.0, ValueError), (1.5, ValueError),
                                      (float("nan"), ValueError), ("0.5", TypeError),
                                      (True, TypeError), (None, TypeError)])
def test_bad_dropout_values(bad, exc):
    with pytest.raises(exc, match="dropout"):
        fastrnn.LSTM(2, 3, 2, dropout=bad)
    layer = fastrnn.RNN(2, 3, 2)
    with pytest.raises(exc, match="dropout"):
        layer.dropout = bad
    assert layer.dropout == 0.0


def test_repr_mentions_dropout():
    assert "dropout=0.25" in repr(fastrnn.GRU(2, 3, 2, dropout=0.25))
    assert "dropout" not in repr(fastrnn.GRU(2, 3, 2))
