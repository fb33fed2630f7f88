"""fastrnn.Linear: y = x W^T + b, gradients by finite differences (float64), torch parity."""

import numpy as np
import pytest

import fastrnn

EPS = 1e-6
GC_TOL = dict(rtol=1e-7, atol=1e-8)


def _central(f, arr, idx):
    orig = arr[idx]
    arr[idx] = orig + EPS
    fp = f()
    arr[idx] = orig - EPS
    fm = f()
    arr[idx] = orig
    return (fp - fm) / (2 * EPS)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)])
def test_forward_by_hand_and_gradients_by_finite_differences(shape, bias):
    rng = np.random.default_rng(len(shape) + 10 * bias)
    lin = fastrnn.Linear(4, 3, bias=bias, dtype=np.float64, seed=1)
    assert set(lin.params) == ({"weight", "bias"} if bias else {"weight"})
    x = rng.standard_normal(shape)
    R = rng.standard_normal(shape[:-1] + (3,))
    W = lin.params["weight"]
    expected = np.einsum("...i,ji->...j", x, W) + (lin.params["bias"] if bias else 0)
    np.testing.assert_allclose(lin(x), expected, rtol=1e-12, atol=1e-14)

    y, cache = lin.forward(x)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)
    dx = lin.backward(R, cache)
    assert dx.shape == x.shape

    def loss():
        return float(np.sum(lin(xp) * R))

    xp = x.copy()
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        num[i] = _central(loss, xp, i)
    np.testing.assert_allclose(dx, num, **GC_TOL)
    for name, p in lin.params.items():
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            num[i] = _central(loss, p, i)
        np.testing.assert_allclose(lin.grads[name], num, **GC_TOL, err_msg=name)


def test_init_bounds_seed_and_dtype():
    lin = fastrnn.Linear(25, 40, seed=3)
    W, b = lin.params["weight"], lin.params["bias"]
    assert W.dtype == b.dtype == np.float32
    assert W.shape == (40, 25) and b.shape == (40,)
    assert np.abs(W).max() <= 0.2 and np.abs(W).max() > 0.19     # U(-1/sqrt(25), 1/sqrt(25))
    np.testing.assert_array_equal(W, fastrnn.Linear(25, 40, seed=3).params["weight"])
    # float64 input to a float32 layer: converted, result float32
    assert lin(np.ones((2, 25))).dtype == np.float32


def test_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    lin = fastrnn.Linear(5, 3, seed=5)
    t = torch.nn.Linear(5, 3)
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in lin.state_dict().items()})
    x = rng.standard_normal((4, 2, 5)).astype(np.float32)
    dy = rng.standard_normal((4, 2, 3)).astype(np.float32)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out = t(xt)
    out.backward(torch.from_numpy(dy))
    y, cache = lin.forward(x)
    dx = lin.backward(dy, cache)
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.grads["weight"], t.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.grads["bias"], t.bias.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_inputs_not_modified_and_grads_accumulate():
    lin = fastrnn.Linear(3, 2, dtype=np.float64, seed=0)
    x = np.arange(6.0).reshape(2, 3)
    x.flags.writeable = False
    dy = np.ones((2, 2))
    _, cache = lin.forward(x)
    lin.backward(dy, cache)
    first = {k: v.copy() for k, v in lin.grads.items()}
    lin.backward(dy, cache)
    for k in first:
        np.testing.assert_allclose(lin.grads[k], 2 * first[k])
    np.testing.assert_array_equal(x, np.arange(6.0).reshape(2, 3))
    lin.zero_grad()
    assert not any(g.any() for g in lin.grads.values())


def test_bad_input():
    lin = fastrnn.Linear(3, 2)
    with pytest.raises(ValueError, match="x"):
        lin(np.ones((2, 4)))
    with pytest.raises(TypeError, match="x"):
        lin(np.array(["a", "b", "c"]))
    _, cache = lin.forward(np.ones((5, 3)))
    with pytest.raises(ValueError, match="dy"):
        lin.backward(np.ones((5, 3)), cache)
    with pytest.raises(ValueError, match="in_features"):
        fastrnn.Linear(0, 2)
    with pytest.raises(ValueError, match="dtype"):
        fastrnn.Linear(2, 2, dtype=np.int32)
