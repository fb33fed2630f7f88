"""Finite-difference checks of the layers' backward, in float64.

loss = sum(y * R) + sum(state_n * S) for fixed random R and S (S is (Sh, Sc) for LSTM).  Its
analytic gradient is what layer.backward(R, cache, S) returns (dx, dstate0) and adds into
layer.grads; it is compared with central differences of the loss, evaluated with the
inference call, w.r.t. every entry of x and state0 and a sample of entries of every parameter.
"""

import numpy as np
import pytest

from conftest import (CELLS, as_parts, make_dy, make_layer, make_state, make_x, rng_for,
                      seed_for)

EPS = 1e-6
# central differences: truncation ~EPS^2, rounding ~1e-16 * |loss| / EPS ~ 1e-9
GC_TOL = dict(rtol=1e-6, atol=1e-7)
SAMPLES_PER_PARAM = 4

CONFIGS = {
    # the required case: 2 layers, bidirectional
    "L2-bi": dict(num_layers=2, bidirectional=True, batch_first=False, bias=True, T=3, B=2),
    # and a cheap second one: batch-first, no bias, unidirectional
    "L1-uni-bf-nobias": dict(num_layers=1, bidirectional=False, batch_first=True, bias=False,
                             T=4, B=1),
}


def _setup(cell, config_name):
    cfg = CONFIGS[config_name]
    key = ("gradcheck", cell, config_name)
    rng = rng_for(*key)
    layer = make_layer(cell, 3, 2, cfg["num_layers"], bidirectional=cfg["bidirectional"],
                       batch_first=cfg["batch_first"], bias=cfg["bias"], dtype=np.float64,
                       seed=seed_for(*key))
    x = make_x(rng, layer, cfg["T"], cfg["B"])
    state0 = make_state(rng, layer, cfg["B"])
    R = make_dy(rng, layer, cfg["T"], cfg["B"])
    S = make_state(rng, layer, cfg["B"])
    return layer, x, state0, R, S


def _loss(layer, x, state0, R, S):
    y, state_n = layer(x, state0)
    total = float(np.sum(y * R))
    for a, s in zip(as_parts(state_n), as_parts(S)):
        total += float(np.sum(a * s))
    return total


def _analytic(layer, x, state0, R, S):
    layer.zero_grad()
    _, _, cache = layer.forward(x, state0)
    dx, dstate0 = layer.backward(R, cache, S)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    return dx, dstate0, grads


def _central(f, arr, idx):
    """Central difference of f() w.r.t. arr[idx], perturbing arr in place."""
    orig = arr[idx]
    arr[idx] = orig + EPS
    fp = f()
    arr[idx] = orig - EPS
    fm = f()
    arr[idx] = orig
    return (fp - fm) / (2 * EPS)


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_x(cell, config_name):
    layer, x, state0, R, S = _setup(cell, config_name)
    dx, _, _ = _analytic(layer, x, state0, R, S)
    xp = x.copy()
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        num[idx] = _central(lambda: _loss(layer, xp, state0, R, S), xp, idx)
    np.testing.assert_allclose(dx, num, **GC_TOL)


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_state0(cell, config_name):
    layer, x, state0, R, S = _setup(cell, config_name)
    _, dstate0, _ = _analytic(layer, x, state0, R, S)
    parts = [a.copy() for a in as_parts(state0)]
    state = tuple(parts) if isinstance(state0, tuple) else parts[0]
    for i, (part, analytic) in enumerate(zip(parts, as_parts(dstate0))):
        num = np.zeros_like(part)
        for idx in np.ndindex(part.shape):
            num[idx] = _central(lambda: _loss(layer, x, state, R, S), part, idx)
        np.testing.assert_allclose(analytic, num, err_msg=f"dstate0[{i}]", **GC_TOL)


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_params(cell, config_name):
    """Parameters are perturbed through load_state_dict, the supported way to set them."""
    layer, x, state0, R, S = _setup(cell, config_name)
    _, _, grads = _analytic(layer, x, state0, R, S)
    sd = layer.state_dict()
    rng = rng_for("gradcheck-sample", cell, config_name)

    def loss_with(sd):
        layer.load_state_dict(sd)
        return _loss(layer, x, state0, R, S)

    for name, p in sd.items():
        flat = rng.choice(p.size, size=min(SAMPLES_PER_PARAM, p.size), replace=False)
        for f in flat:
            idx = np.unravel_index(f, p.shape)
            num = _central(lambda: loss_with(sd), p, idx)
            np.testing.assert_allclose(grads[name][idx], num, err_msg=f"{name}{idx}",
                                       **GC_TOL)
    layer.load_state_dict(sd)
