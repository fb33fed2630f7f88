"""fastrnn.softmax_cross_entropy and log_softmax: by hand, finite differences, torch, stability."""

import numpy as np
import pytest

import fastrnn

EPS = 1e-6


def test_hand_computed_cases():
    loss, d = fastrnn.softmax_cross_entropy(np.zeros((3, 5)), [0, 2, 4])
    assert loss == pytest.approx(np.log(5), rel=1e-15)
    expected = np.full((3, 5), 0.2)
    expected[[0, 1, 2], [0, 2, 4]] -= 1
    np.testing.assert_allclose(d, expected / 3, rtol=1e-14)
    # two classes, logits (0, log 3): p = (1/4, 3/4)
    loss, d = fastrnn.softmax_cross_entropy([[0.0, np.log(3.0)]], [0])
    assert loss == pytest.approx(np.log(4.0), rel=1e-14)
    np.testing.assert_allclose(d, [[0.25 - 1, 0.75]], rtol=1e-14)


def test_mask_averages_over_unmasked_positions_only():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 3, 6))
    t = rng.integers(0, 6, size=(4, 3))
    mask = rng.random((4, 3)) < 0.6
    mask[0, 0] = True
    loss, d = fastrnn.softmax_cross_entropy(z, t, mask)
    sub_loss, sub_d = fastrnn.softmax_cross_entropy(z[mask], t[mask])
    assert loss == pytest.approx(sub_loss, rel=1e-14)
    np.testing.assert_allclose(d[mask], sub_d, rtol=1e-14)
    assert not d[~mask].any()
    # padding can hold anything, even -inf at the target
    z2 = z.copy()
    z2[~mask] = -np.inf
    z2[~mask, 0] = 0.0
    loss2, _ = fastrnn.softmax_cross_entropy(z2, np.where(mask, t, 3), mask)
    assert loss2 == pytest.approx(loss, rel=1e-14)
    zero_loss, zero_d = fastrnn.softmax_cross_entropy(z, t, np.zeros((4, 3), bool))
    assert zero_loss == 0.0 and not zero_d.any()


@pytest.mark.parametrize("with_mask", [False, True])
def test_gradient_by_finite_differences(with_mask):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((3, 2, 4)) * 3
    t = rng.integers(0, 4, size=(3, 2))
    mask = (rng.random((3, 2)) < 0.7) if with_mask else None
    if with_mask:
        mask[0, 0] = True
    _, d = fastrnn.softmax_cross_entropy(z, t, mask)
    num = np.zeros_like(z)
    zp = z.copy()
    for i in np.ndindex(z.shape):
        orig = zp[i]
        zp[i] = orig + EPS
        fp = fastrnn.softmax_cross_entropy(zp, t, mask)[0]
        zp[i] = orig - EPS
        fm = fastrnn.softmax_cross_entropy(zp, t, mask)[0]
        zp[i] = orig
        num[i] = (fp - fm) / (2 * EPS)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)


def test_stable_for_huge_logits():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((5, 7))
    t = rng.integers(0, 7, size=5)
    base, dbase = fastrnn.softmax_cross_entropy(z, t)
    with np.errstate(all="raise"):
        shifted, dshift = fastrnn.softmax_cross_entropy(z + 1e4, t)
        big, _ = fastrnn.softmax_cross_entropy(np.array([[1e300, 0.0, -1e300]]), [1])
    assert shifted == pytest.approx(base, rel=1e-10)
    np.testing.assert_allclose(dshift, dbase, atol=1e-12)
    assert big == pytest.approx(1e300, rel=1e-12)


def test_dtype_and_inputs_unchanged():
    z = np.ones((2, 3), np.float32)
    z.flags.writeable = False
    loss, d = fastrnn.softmax_cross_entropy(z, np.array([0, 1], np.uint8))
    assert isinstance(loss, float) and d.dtype == np.float32
    np.testing.assert_array_equal(z, 1.0)
    _, d64 = fastrnn.softmax_cross_entropy(np.ones((2, 3), np.int64), [0, 1])
    assert d64.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((6, 4, 9)) * 4).astype(dtype)
    t = rng.integers(0, 9, size=(6, 4))
    mask = rng.random((6, 4)) < 0.5
    mask[0, 0] = True
    zt = torch.from_numpy(z.copy()).requires_grad_(True)
    # torch's ignore_index leaves out the masked positions and averages over the others
    tt = torch.from_numpy(np.where(mask, t, -100))
    ref = torch.nn.functional.cross_entropy(zt.reshape(-1, 9), tt.reshape(-1))
    ref.backward()
    loss, d = fastrnn.softmax_cross_entropy(z, t, mask)
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    assert loss == pytest.approx(float(ref.detach()), rel=tol["rtol"])
    np.testing.assert_allclose(d, zt.grad.numpy(), **tol)


def test_log_softmax_against_scipy_and_stability():
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(4)
    z = rng.standard_normal((3, 2, 5)) * 10
    np.testing.assert_allclose(fastrnn.log_softmax(z), special.log_softmax(z, axis=-1),
                               rtol=1e-13, atol=1e-13)
    out = fastrnn.log_softmax(np.array([1e308, 0.0, -np.inf]))
    np.testing.assert_array_equal(out, [0.0, -1e308, -np.inf])
    assert fastrnn.log_softmax(np.zeros(4, np.float32)).dtype == np.float32


@pytest.mark.parametrize("args, exc, name", [
    ((np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError, "targets"),
    ((np.zeros((2, 3)), np.array([0, 3])), ValueError, "targets"),
    ((np.zeros((2, 3)), np.array([0, 1, 2])), ValueError, "targets"),
    ((np.zeros((2, 3)), np.array([0, 1]), np.ones(3, bool)), ValueError, "mask"),
    ((np.zeros((2, 3)), np.array([0, 1]), np.array([1.0, -1.0])), ValueError, "mask"),
    ((np.array([[0.0, np.nan]]), np.array([0])), ValueError, "logits"),
    ((np.array([[-np.inf, -np.inf]]), np.array([0])), ValueError, "logits"),
    ((np.zeros((2, 0)), np.array([0, 0])), ValueError, "logits"),
])
def test_bad_input(args, exc, name):
    with pytest.raises(exc, match=name):
        fastrnn.softmax_cross_entropy(*args)
