"""Error of the compiled cells' sigmoid and tanh, measured against libm in float64.

float32 uses a vectorised exp-based approximation (csrc/fastrnn_math.h);
float64 calls libm.  The bounds below are what the layers' 1e-5 (float32)
and 1e-10 (float64) agreement with the reference relies on.
"""

import numpy as np
import pytest

from fastrnn.kernels import elementwise as _elementwise

# Maximum absolute error allowed against the float64 value of the function
# at the (rounded) float input.  float32 eps is 1.19e-7; tanh's output is
# within [-1, 1], so a few eps is a few 1e-7.
MAX_ABS_ERR = {np.float32: 4e-7, np.float64: 1e-15}


def exact(name, x):
    x = x.astype(np.float64)
    if name == "tanh":
        return np.tanh(x)
    return 0.5 * (1.0 + np.tanh(0.5 * x))   # sigmoid without overflow


@pytest.mark.parametrize("newton", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_max_error_against_libm(name, dtype, newton):
    # Dense over the range where the functions are not saturated, plus
    # random points of every magnitude (both signs) out to the clamp and beyond.
    rng = np.random.default_rng(0)
    x = np.concatenate([
        np.linspace(-20, 20, 400_001),
        rng.standard_normal(100_000) * 5,
        np.sign(rng.standard_normal(50_000)) * 10.0 ** rng.uniform(-8, 2.5, 50_000),
    ]).astype(dtype)
    out = np.empty_like(x)
    getattr(_elementwise, name)(x, out, newton)
    err = np.abs(out - exact(name, x))
    assert err.max() <= MAX_ABS_ERR[dtype], f"max error {err.max():.3g} at x={x[err.argmax()]!r}"


@pytest.mark.parametrize("newton", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturation_and_special_values(dtype, newton):
    x = np.array([-np.inf, -1e30, -500.0, -88.5, 0.0, 88.5, 500.0, 1e30, np.inf], dtype)
    t = np.empty_like(x)
    s = np.empty_like(x)
    _elementwise.tanh(x, t, newton)
    _elementwise.sigmoid(x, s, newton)
    np.testing.assert_array_equal(t, np.array([-1, -1, -1, -1, 0, 1, 1, 1, 1], dtype))
    assert np.all(np.isfinite(s))
    assert s[4] == 0.5 and np.all(s[5:] == 1)
    # The smallest sigmoid is tiny but never a denormal: denormals would slow
    # every later product with it on many CPUs.
    assert np.all((s[:4] == 0) | (s[:4] >= np.finfo(dtype).tiny))
    assert np.all(s[:4] < 1e-37)


@pytest.mark.parametrize("newton", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_propagates(dtype, newton):
    x = np.array([np.nan, 1.0], dtype)
    out = np.empty_like(x)
    for fn in (_elementwise.tanh, _elementwise.sigmoid):
        fn(x, out, newton)
        assert np.isnan(out[0]) and np.isfinite(out[1])


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_newton_steps_are_within_an_ulp_of_the_division(name):
    x = np.linspace(-30, 30, 600_001, dtype=np.float32)
    a, b = np.empty_like(x), np.empty_like(x)
    getattr(_elementwise, name)(x, a)
    getattr(_elementwise, name)(x, b, True)
    # sigmoid is the reciprocal itself: one ulp; tanh = 1 - 2 / d takes its
    # reciprocal's ulp (at most 2^-24 for d >= 1) twice, as an absolute error
    bound = np.spacing(a) if name == "sigmoid" else 2.0 ** -23
    assert (np.abs(a - b) <= bound).all()


def test_simd_target_is_reported():
    assert isinstance(_elementwise.simd_target(), str) and _elementwise.simd_target()
