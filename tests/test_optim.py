"""fastrnn.SGD and fastrnn.Adam: by hand, against torch.optim, and on a small training problem."""

import numpy as np
import pytest

import fastrnn


def _layers(dtype=np.float64):
    return [fastrnn.Linear(3, 2, dtype=dtype, seed=0), fastrnn.GRU(2, 3, dtype=dtype, seed=1)]


def _fill_grads(layers, rng):
    for layer in layers:
        for g in layer.grads.values():
            g[...] = rng.standard_normal(g.shape)


def test_sgd_one_step_by_hand():
    lin = fastrnn.Linear(2, 1, dtype=np.float64, seed=0)
    p0 = {k: v.copy() for k, v in lin.params.items()}
    lin.grads["weight"][...] = [[1.0, -2.0]]
    lin.grads["bias"][...] = [0.5]
    grads_before = {k: v.copy() for k, v in lin.grads.items()}
    opt = fastrnn.SGD(lin, lr=0.1)
    opt.step()
    np.testing.assert_allclose(lin.params["weight"], p0["weight"] - 0.1 * np.array([[1.0, -2.0]]))
    np.testing.assert_allclose(lin.params["bias"], p0["bias"] - 0.05)
    for k in grads_before:                       # gradients are read, not changed
        np.testing.assert_array_equal(lin.grads[k], grads_before[k])
    # momentum: the second step moves by lr * (momentum * g + g) for a constant g
    lin2 = fastrnn.Linear(2, 1, dtype=np.float64, seed=0)
    lin2.grads["weight"][...] = 1.0
    opt = fastrnn.SGD(lin2, lr=0.1, momentum=0.9)
    w0 = lin2.params["weight"].copy()
    opt.step()
    opt.step()
    np.testing.assert_allclose(lin2.params["weight"], w0 - 0.1 * (1.0 + 1.9))


def test_adam_first_step_moves_by_lr_times_sign():
    lin = fastrnn.Linear(3, 2, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    _fill_grads([lin], rng)
    w0, g = lin.params["weight"].copy(), lin.grads["weight"].copy()
    fastrnn.Adam(lin, lr=0.01, eps=0.0).step()
    # m_hat = g, v_hat = g**2 at t = 1: the step is lr * g / |g|
    np.testing.assert_allclose(lin.params["weight"], w0 - 0.01 * np.sign(g), rtol=1e-12)


OPTIONS = {
    "sgd": dict(lr=0.05),
    "sgd-momentum": dict(lr=0.05, momentum=0.9),
    "sgd-nesterov-wd": dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "sgd-dampening": dict(lr=0.05, momentum=0.5, dampening=0.3),
    "adam": dict(lr=0.01),
    "adam-wd": dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
}


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_torch_optim(name, dtype):
    torch = pytest.importorskip("torch")
    kw = OPTIONS[name]
    layers = _layers(dtype)
    tensors = [torch.tensor(p.copy(), requires_grad=True)
               for layer in layers for p in layer.params.values()]
    ours = (fastrnn.Adam if name.startswith("adam") else fastrnn.SGD)(layers, **kw)
    theirs = (torch.optim.Adam if name.startswith("adam") else torch.optim.SGD)(tensors, **kw)
    rng = np.random.default_rng(1)
    for _ in range(6):
        _fill_grads(layers, rng)
        for t, g in zip(tensors, (g for layer in layers for g in layer.grads.values())):
            t.grad = torch.from_numpy(g.copy())
        ours.step()
        theirs.step()
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for t, p in zip(tensors, (p for layer in layers for p in layer.params.values())):
        assert p.dtype == dtype
        np.testing.assert_allclose(p, t.detach().numpy(), **tol)


def test_trains_a_small_regression():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 4))
    true_w = rng.standard_normal((1, 4))
    y = x @ true_w.T + 0.3
    for opt_cls, kw in ((fastrnn.SGD, dict(lr=0.05, momentum=0.9)), (fastrnn.Adam,
                                                                       dict(lr=0.05))):
        lin = fastrnn.Linear(4, 1, dtype=np.float64, seed=4)
        opt = opt_cls(lin, **kw)
        losses = []
        for _ in range(200):
            out, cache = lin.forward(x)
            losses.append(float(np.mean((out - y) ** 2)))
            opt.zero_grad()
            lin.backward(2 * (out - y) / len(x), cache)
            opt.step()
        assert losses[-1] < 1e-3 * losses[0], opt_cls.__name__
        np.testing.assert_allclose(lin.params["weight"], true_w, atol=1e-2)


def test_zero_grad_duplicates_and_replaced_arrays():
    layers = _layers()
    rng = np.random.default_rng(5)
    _fill_grads(layers, rng)
    opt = fastrnn.SGD([layers[0], layers[1], layers[0]], lr=1.0)   # listed twice: stepped once
    w0 = layers[0].params["weight"].copy()
    g = layers[0].grads["weight"].copy()
    opt.step()
    np.testing.assert_allclose(layers[0].params["weight"], w0 - g)
    opt.zero_grad()
    assert not any(g.any() for layer in layers for g in layer.grads.values())
    # reset_parameters replaces the arrays: the next step updates the new ones
    layers[1].reset_parameters(9)
    new = layers[1].params["weight_hh_l0"]
    _fill_grads(layers, rng)
    before = new.copy()
    opt.step()
    assert layers[1].params["weight_hh_l0"] is new and not np.array_equal(new, before)


@pytest.mark.parametrize("make, exc, name", [
    (lambda L: fastrnn.SGD(L, lr=-1.0), ValueError, "lr"),
    (lambda L: fastrnn.SGD(L, lr="fast"), TypeError, "lr"),
    (lambda L: fastrnn.SGD(L, lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (lambda L: fastrnn.SGD(L, lr=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda L: fastrnn.Adam(L, betas=(0.9, 1.0)), ValueError, "betas"),
    (lambda L: fastrnn.Adam(L, betas=0.9), TypeError, "betas"),
    (lambda L: fastrnn.Adam(L, eps=float("nan")), ValueError, "eps"),
    (lambda L: fastrnn.Adam([object()]), TypeError, "layers"),
    (lambda L: fastrnn.Adam([]), ValueError, "layers"),
    (lambda L: fastrnn.Adam(3), TypeError, "layers"),
])
def test_bad_arguments(make, exc, name):
    with pytest.raises(exc, match=name):
        make(_layers())
