"""fastrnn.clip_grad_norm and clip_grad_value: hand-computed cases, inf norm, torch parity."""

import math

import numpy as np
import pytest

import fastrnn


def _grads(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((3, 4)).astype(dtype),
            "b": rng.standard_normal(4).astype(dtype),
            "empty": np.zeros((0, 2), dtype)}


def test_hand_computed_two_norm_scales_every_array():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0, 4.0]])}
    total = fastrnn.clip_grad_norm(g, 1.0)
    assert total == pytest.approx(5.0, rel=1e-15)
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(g["a"], [3 * coef, 0.0], rtol=1e-15)
    np.testing.assert_allclose(g["b"], [[0.0, 4 * coef]], rtol=1e-15)
    # the result has (almost exactly) norm max_norm
    assert math.hypot(g["a"][0], g["b"][0, 1]) == pytest.approx(1.0, abs=1e-6)


def test_hand_computed_one_norm_and_three_norm():
    g = [np.array([1.0, -2.0]), np.array([-3.0])]
    assert fastrnn.clip_grad_norm(g, 100.0, norm_type=1) == pytest.approx(6.0, rel=1e-15)
    np.testing.assert_array_equal(g[0], [1.0, -2.0])     # under max_norm: untouched
    assert fastrnn.clip_grad_norm(g, 100.0, norm_type=3) == pytest.approx(36 ** (1 / 3),
                                                                          rel=1e-14)
    total = fastrnn.clip_grad_norm(g, 3.0, norm_type=1)
    np.testing.assert_allclose(np.concatenate(g), np.array([1.0, -2.0, -3.0]) * 3 / (6 + 1e-6),
                               rtol=1e-15)
    assert total == pytest.approx(6.0)


def test_inf_norm_is_the_largest_magnitude():
    g = {"a": np.array([0.5, -7.0, 2.0]), "b": np.array([6.5])}
    total = fastrnn.clip_grad_norm(g, 3.5, norm_type=math.inf)
    assert total == 7.0
    coef = 3.5 / (7.0 + 1e-6)
    np.testing.assert_allclose(g["a"], np.array([0.5, -7.0, 2.0]) * coef, rtol=1e-15)
    assert np.max(np.abs(np.concatenate([g["a"], g["b"]]))) == pytest.approx(3.5, abs=1e-6)


def test_under_the_limit_nothing_changes_and_the_norm_is_returned():
    g = _grads()
    before = {k: v.copy() for k, v in g.items()}
    expected = np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in g.values()))
    total = fastrnn.clip_grad_norm(g, expected * 2)
    assert total == pytest.approx(expected, rel=1e-14)
    for k in g:
        np.testing.assert_array_equal(g[k], before[k])


def test_no_overflow_or_underflow_with_extreme_values():
    big = [np.array([3e200, 4e200])]
    assert fastrnn.clip_grad_norm(big, 1.0) == pytest.approx(5e200, rel=1e-14)
    np.testing.assert_allclose(big[0], [0.6, 0.8], rtol=1e-6)
    tiny = [np.array([3e-200, 4e-200])]
    assert fastrnn.clip_grad_norm(tiny, 1.0) == pytest.approx(5e-200, rel=1e-14)
    f32 = [np.array([3e30, 4e30], np.float32)]          # (3e30)**2 overflows float32
    assert fastrnn.clip_grad_norm(f32, 1.0) == pytest.approx(5e30, rel=1e-6)
    assert f32[0].dtype == np.float32
    np.testing.assert_allclose(f32[0], [0.6, 0.8], rtol=1e-6)


def test_several_layers_grads_are_one_vector():
    lstm = fastrnn.LSTM(3, 4, seed=0)
    lin = fastrnn.Linear(4, 2, seed=1)
    rng = np.random.default_rng(2)
    for layer in (lstm, lin):
        for g in layer.grads.values():
            g[...] = rng.standard_normal(g.shape)
    flat = np.concatenate([g.ravel() for layer in (lstm, lin) for g in layer.grads.values()])
    total = fastrnn.clip_grad_norm([lstm.grads, lin.grads], 1.0)
    assert total == pytest.approx(np.linalg.norm(flat.astype(np.float64)), rel=1e-6)
    after = np.concatenate([g.ravel() for layer in (lstm, lin) for g in layer.grads.values()])
    np.testing.assert_allclose(after, flat / (total + 1e-6), rtol=1e-6)


def test_nonfinite_norm_is_reported_and_grads_left_alone():
    g = [np.array([1.0, np.inf]), np.array([2.0])]
    assert fastrnn.clip_grad_norm(g, 1.0) == math.inf
    np.testing.assert_array_equal(g[0], [1.0, np.inf])
    assert g[1][0] == 2.0
    with pytest.raises(FloatingPointError, match="non-finite|inf"):
        fastrnn.clip_grad_norm(g, 1.0, error_if_nonfinite=True)
    h = [np.array([np.nan, 1.0])]
    assert math.isnan(fastrnn.clip_grad_norm(h, 1.0, norm_type=math.inf))
    with pytest.raises(FloatingPointError):
        fastrnn.clip_grad_norm(h, 1.0, error_if_nonfinite=True)


def test_clip_grad_value_clamps_in_place():
    g = {"a": np.array([-3.0, 0.5, 2.0]), "b": np.array([[1.5, -0.25]], np.float32)}
    b_ref = g["b"]
    assert fastrnn.clip_grad_value(g, 1.0) is None
    np.testing.assert_array_equal(g["a"], [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(g["b"], np.array([[1.0, -0.25]], np.float32))
    assert g["b"] is b_ref and g["b"].dtype == np.float32
    z = [np.array([0.3, -0.2])]
    fastrnn.clip_grad_value(z, 0.0)
    np.testing.assert_array_equal(z[0], [0.0, 0.0])


@pytest.mark.parametrize("fn, name", [(fastrnn.clip_grad_norm, "max_norm"),
                                      (fastrnn.clip_grad_value, "clip_value")])
@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_bounds_are_value_errors(fn, name, bad):
    g = [np.ones(2)]
    with pytest.raises(ValueError, match=name):
        fn(g, bad)
    np.testing.assert_array_equal(g[0], [1.0, 1.0])


def test_bad_arguments():
    with pytest.raises(TypeError, match="max_norm"):
        fastrnn.clip_grad_norm([np.ones(2)], "1")
    with pytest.raises(ValueError, match="norm_type"):
        fastrnn.clip_grad_norm([np.ones(2)], 1.0, norm_type=0.5)
    with pytest.raises(ValueError, match="norm_type"):
        fastrnn.clip_grad_norm([np.ones(2)], 1.0, norm_type=float("nan"))
    with pytest.raises(TypeError, match="grads"):
        fastrnn.clip_grad_norm([[1.0, 2.0]], 1.0)          # a list is not an array
    with pytest.raises(TypeError, match="grads"):
        fastrnn.clip_grad_norm([np.ones(2, np.int64)], 1.0)
    with pytest.raises(TypeError, match="grads"):
        fastrnn.clip_grad_value(3.0, 1.0)
    ro = np.ones(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastrnn.clip_grad_value([ro], 1.0)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_against_torch_clip_grad_norm(norm_type, dtype, max_norm):
    torch = pytest.importorskip("torch")
    ours = _grads(dtype, seed=3)
    del ours["empty"]      # torch's inf norm refuses empty tensors
    tensors = []
    for v in ours.values():
        t = torch.zeros(v.shape, dtype=torch.float32 if dtype == np.float32 else torch.float64,
                        requires_grad=True)
        t.grad = torch.from_numpy(v.copy())
        tensors.append(t)
    expected = float(torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type))
    total = fastrnn.clip_grad_norm(ours, max_norm, norm_type=norm_type)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert total == pytest.approx(expected, rel=rtol)
    for v, t in zip(ours.values(), tensors):
        assert v.dtype == dtype
        np.testing.assert_allclose(v, t.grad.numpy(), rtol=rtol, atol=1e-7)


def test_against_torch_clip_grad_value():
    torch = pytest.importorskip("torch")
    ours = _grads(np.float64, seed=4)
    tensors = []
    for v in ours.values():
        t = torch.zeros(v.shape, dtype=torch.float64, requires_grad=True)
        t.grad = torch.from_numpy(v.copy())
        tensors.append(t)
    torch.nn.utils.clip_grad_value_(tensors, 0.7)
    fastrnn.clip_grad_value(ours, 0.7)
    for v, t in zip(ours.values(), tensors):
        np.testing.assert_array_equal(v, t.grad.numpy())
