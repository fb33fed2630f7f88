"""fastrnn.Linear on the packed GEMM (fastrnn/kernels/dense.pyx): forward and backward
against NumPy and torch, bitwise over thread counts, and the rule for kept packs."""

import numpy as np
import pytest

import fastrnn
from conftest import tol

SHAPES = [  # (leading shape, D_in, D_out): fewer rows than the packing threshold,
    ((1,), 7, 5),                     # uneven panels, several panels and rows
    ((3,), 16, 33),
    ((4, 5), 13, 40),
    ((6, 7), 128, 300),
]


def threads(n):
    return fastrnn.set_num_threads(n)


def numpy_linear(x, W, b, dy):
    y = x @ W.T + (b if b is not None else 0)
    d2, x2 = dy.reshape(-1, W.shape[0]), x.reshape(-1, W.shape[1])
    return y, dy @ W, d2.T @ x2, (d2.sum(0) if b is not None else None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead, din, dout", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_against_numpy(dtype, lead, din, dout, bias):
    rng = np.random.default_rng(din * dout)
    lin = fastrnn.Linear(din, dout, bias=bias, dtype=dtype, seed=1)
    x = rng.standard_normal(lead + (din,)).astype(dtype)
    dy = rng.standard_normal(lead + (dout,)).astype(dtype)
    W, b = lin.params["weight"], lin.params.get("bias")
    y_ref, dx_ref, dW_ref, db_ref = numpy_linear(x.astype(np.float64), W.astype(np.float64),
                                                  None if b is None else b.astype(np.float64),
                                                  dy.astype(np.float64))
    np.testing.assert_allclose(lin(x), y_ref, **tol(dtype))
    y, cache = lin.forward(x)
    np.testing.assert_allclose(y, y_ref, **tol(dtype))
    lin.grads["weight"] += 1.0           # backward adds into the gradients
    dx = lin.backward(dy, cache)
    np.testing.assert_allclose(dx, dx_ref, **tol(dtype))
    np.testing.assert_allclose(lin.grads["weight"], dW_ref + 1.0, **tol(dtype))
    if bias:
        np.testing.assert_allclose(lin.grads["bias"], db_ref, **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    lin = fastrnn.Linear(24, 70, dtype=dtype, seed=2)
    ref = torch.nn.Linear(24, 70).to(torch.float32 if dtype == np.float32 else torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(lin.params["weight"]))
        ref.bias.copy_(torch.from_numpy(lin.params["bias"]))
    x = rng.standard_normal((9, 5, 24)).astype(dtype)
    dy = rng.standard_normal((9, 5, 70)).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    y, cache = lin.forward(x)
    dx = lin.backward(dy, cache)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(lin.grads["weight"], ref.weight.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(lin.grads["bias"], ref.bias.grad.numpy(), **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [2, 37])
def test_bitwise_over_thread_counts(dtype, rows):
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 50)).astype(dtype)
    dy = rng.standard_normal((rows, 333)).astype(dtype)
    results = []
    for n in (1, 2):
        previous = threads(n)
        try:
            lin = fastrnn.Linear(50, 333, dtype=dtype, seed=3)
            y, cache = lin.forward(x)
            dx = lin.backward(dy, cache)
            results.append([y, dx, lin.grads["weight"].copy(), lin.grads["bias"].copy()])
        finally:
            threads(previous)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_in_place_writes_are_seen_by_default():
    lin = fastrnn.Linear(8, 20, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((10, 8))
    lin(x)
    lin.params["weight"][3, 2] += 1.0
    np.testing.assert_allclose(lin(x), x @ lin.params["weight"].T + lin.params["bias"],
                               rtol=1e-12)


def test_kept_pack_follows_the_version_rule():
    lin = fastrnn.Linear(8, 20, dtype=np.float64, seed=0)
    lin.keep_packed = True
    x = np.random.default_rng(1).standard_normal((10, 8))
    expected = lambda: x @ lin.params["weight"].T + lin.params["bias"]     # noqa: E731
    np.testing.assert_allclose(lin(x), expected(), rtol=1e-12)
    # an optimizer step bumps the version: the pack is refreshed
    lin.grads["weight"][:] = 1.0
    fastrnn.SGD(lin, lr=0.5).step()
    np.testing.assert_allclose(lin(x), expected(), rtol=1e-12)
    # so do load_state_dict and params_changed(); a bare in-place write is not seen
    lin.load_state_dict({k: v * 2 for k, v in lin.params.items()})
    np.testing.assert_allclose(lin(x), expected(), rtol=1e-12)
    stale = lin(x)
    lin.params["weight"][0, 0] += 1.0
    np.testing.assert_array_equal(lin(x), stale)       # the documented rule
    assert not np.allclose(lin(x), expected())
    lin.params_changed()
    np.testing.assert_allclose(lin(x), expected(), rtol=1e-12)


def test_non_contiguous_and_read_only_inputs():
    lin = fastrnn.Linear(6, 9, dtype=np.float64, seed=4)
    x = np.random.default_rng(2).standard_normal((6, 5, 12))[:, :, ::2]
    x.flags.writeable = False
    y, cache = lin.forward(x)
    np.testing.assert_allclose(y, x @ lin.params["weight"].T + lin.params["bias"], rtol=1e-12)
    dy = np.ones((6, 5, 9)).transpose(1, 0, 2).copy().transpose(1, 0, 2)
    dx = lin.backward(dy, cache)
    np.testing.assert_allclose(dx, dy @ lin.params["weight"], rtol=1e-12)
