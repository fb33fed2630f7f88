"""The compiled softmax cross-entropy (fastrnn/kernels/xent.pyx) behind
fastrnn.softmax_cross_entropy: against a NumPy version and torch, with masks, by
float64 finite differences, in place, and bitwise over thread counts."""

import numpy as np
import pytest

import fastrnn


def numpy_xent(z, t, w):
    """The loss and gradient written out in NumPy (float64), as the API documents them."""
    z = z.astype(np.float64)
    lp = z - z.max(-1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
    picked = np.take_along_axis(lp, t[..., None], -1)[..., 0]
    total = w.sum()
    g = np.exp(lp)
    np.put_along_axis(g, t[..., None], np.take_along_axis(g, t[..., None], -1) - 1, -1)
    return float(-(w * picked).sum() / total), g * (w / total)[..., None]


def threads(n):
    return fastrnn.set_num_threads(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3), (5, 17), (4, 6, 1000)])
@pytest.mark.parametrize("masked", [False, True])
def test_against_numpy(dtype, shape, masked):
    rng = np.random.default_rng(shape[-1])
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    t = rng.integers(0, shape[-1], size=shape[:-1])
    w = (rng.random(shape[:-1]) < 0.6).astype(np.float64) if masked else np.ones(shape[:-1])
    w.flat[0] = 1.0
    loss, d = fastrnn.softmax_cross_entropy(z, t, w.astype(bool) if masked else None)
    ref_loss, ref_d = numpy_xent(z, t, w)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss == pytest.approx(ref_loss, rel=rtol)
    assert d.dtype == dtype
    np.testing.assert_allclose(d, ref_d, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_torch_large_vocabulary(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((20, 6, 3001)) * 5).astype(dtype)
    t = rng.integers(0, 3001, size=(20, 6))
    mask = rng.random((20, 6)) < 0.8
    zt = torch.from_numpy(z.copy()).requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(zt.reshape(-1, 3001),
                                            torch.from_numpy(np.where(mask, t, -100)).reshape(-1))
    ref.backward()
    loss, d = fastrnn.softmax_cross_entropy(z, t, mask)
    tol = dict(rtol=1e-5, atol=1e-8) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(float(ref.detach()), rel=tol["rtol"])
    np.testing.assert_allclose(d, zt.grad.numpy(), **tol)


def test_finite_differences_float64_with_weights():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 4, 6))
    t = rng.integers(0, 6, size=(3, 4))
    w = rng.random((3, 4)) * (rng.random((3, 4)) < 0.7)
    w[0, 0] = 0.3
    _, d = fastrnn.softmax_cross_entropy(z, t, w)
    num = np.zeros_like(z)
    eps = 1e-6
    for i in np.ndindex(z.shape):
        zp = z.copy()
        zp[i] += eps
        fp = fastrnn.softmax_cross_entropy(zp, t, w)[0]
        zp[i] -= 2 * eps
        fm = fastrnn.softmax_cross_entropy(zp, t, w)[0]
        num[i] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_in_place_of_the_logits(dtype):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((7, 50)).astype(dtype)
    t = rng.integers(0, 50, size=7)
    loss, d = fastrnn.softmax_cross_entropy(z, t)
    z2 = z.copy()
    loss2, d2 = fastrnn.softmax_cross_entropy(z2, t, out=z2)
    assert d2 is z2 and loss2 == loss
    np.testing.assert_array_equal(d2, d)
    out = np.empty_like(z)
    assert fastrnn.softmax_cross_entropy(z, t, out=out)[1] is out
    np.testing.assert_array_equal(out, d)
    with pytest.raises(ValueError, match="out"):
        fastrnn.softmax_cross_entropy(z, t, out=np.empty((7, 49), dtype))
    with pytest.raises(ValueError, match="out"):
        fastrnn.softmax_cross_entropy(z, t, out=z[:, ::-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_over_thread_counts(dtype):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((20, 60, 700)).astype(dtype)
    t = rng.integers(0, 700, size=(20, 60))
    mask = rng.random((20, 60)) < 0.9
    out = []
    for n in (1, 2):
        previous = threads(n)
        try:
            out.append(fastrnn.softmax_cross_entropy(z, t, mask))
            out.append((0.0, fastrnn.log_softmax(z)))
        finally:
            threads(previous)
    assert out[0][0] == out[2][0]
    np.testing.assert_array_equal(out[0][1], out[2][1])
    np.testing.assert_array_equal(out[1][1], out[3][1])


def test_bad_logits_anywhere_are_errors():
    z = np.zeros((3, 4))
    z[2, 1] = np.nan
    with pytest.raises(ValueError, match="logits"):
        fastrnn.softmax_cross_entropy(z, [0, 0, 0], [True, True, False])   # masked row too
    z[2, 1] = np.inf
    with pytest.raises(ValueError, match="logits"):
        fastrnn.softmax_cross_entropy(z, [0, 0, 0])
    with pytest.raises(ValueError, match="logits"):
        fastrnn.log_softmax(z)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logits_far_below_the_maximum_and_minus_infinity(dtype):
    # Terms exp(z - max) below float32's normal range, and exactly -inf: the
    # loss and gradient stay finite, and those classes get (next to) no gradient.
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 300)).astype(dtype)
    z[:, 0] = 50.0
    z[:, 1:40] = -60.0 - 40 * rng.random((6, 39))     # 110 to 150 below the maximum
    z[:, 40:45] = -np.inf
    t = np.array([0, 3, 50, 60, 0, 299])
    loss, d = fastrnn.softmax_cross_entropy(z, t)
    ref_loss, ref_d = numpy_xent(np.where(np.isinf(z), -1e30, z), t, np.ones(6))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.isfinite(loss) and loss == pytest.approx(ref_loss, rel=rtol)
    np.testing.assert_allclose(d, ref_d, rtol=rtol, atol=1e-30)
    assert np.all(d[:, 40:45] == 0)
    lp = fastrnn.log_softmax(z)
    np.testing.assert_allclose(lp[:, 45:], (z - z.max(-1, keepdims=True))[:, 45:]
                               - np.log(np.exp((z - z.max(-1, keepdims=True))
                                               .astype(np.float64)).sum(-1, keepdims=True)),
                               rtol=rtol, atol=rtol)
