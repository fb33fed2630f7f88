"""Input validation, conversions and edge cases of the layers.

Every bad input is a ValueError or TypeError whose message names the argument and, for a shape
error, shows the shape that came (as Python prints a tuple).  Good inputs in unusual forms
(non-contiguous, read-only, another real dtype, integers) give the same numbers as a contiguous
copy in the layer's dtype, and no input is ever modified.  B = 0 gives empty results.
"""

import re

import numpy as np
import pytest

from conftest import (CELLS, DTYPES, as_parts, assert_close, assert_dtype, assert_grads_close,
                      cell_of, make_layer, map_state, rng_for, state_shape)

D, H, L = 7, 3, 2   # bidirectional: L * dirs = 4, y feature size 6
T, B = 5, 2


def raises_naming(name, shape=None, exc=(ValueError, TypeError)):
    """pytest.raises that also checks the message names `name` and shows `shape`."""
    return _Raises(exc, name, shape)


class _Raises:
    def __init__(self, exc, name, shape):
        self.exc, self.name, self.shape = exc, name, shape

    def __enter__(self):
        self.cm = pytest.raises(self.exc, match=rf"\b{re.escape(self.name)}\b")
        self.info = self.cm.__enter__()
        return self.info

    def __exit__(self, *exc_info):
        handled = self.cm.__exit__(*exc_info)
        if handled and self.shape is not None:
            msg = str(self.info.value)
            assert str(tuple(self.shape)) in msg, (
                f"message does not show the shape {tuple(self.shape)}: {msg!r}")
        return handled


def _layer(cell, dtype=np.float32, **kw):
    kw.setdefault("bidirectional", True)
    return make_layer(cell, D, H, kw.pop("num_layers", L), dtype=dtype, seed=11, **kw)


def _state(rng, layer, b, dtype=None):
    dtype = layer.dtype if dtype is None else dtype
    shape = state_shape(layer, b)
    if cell_of(layer) == "lstm":
        return (rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype))
    return rng.standard_normal(shape).astype(dtype)


def _call(layer, method, x, state0=None):
    if method == "call":
        return layer(x, state0)
    return layer.forward(x, state0)


# ------------------------------------------------------------------------------------------
# x


@pytest.mark.parametrize("method", ["call", "forward"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first, shape", [
    (False, (D,)),             # 1-D
    (False, (T, B, D, 1)),     # 4-D
    (False, (T, B, D + 1)),    # wrong feature size
    (False, (T, D - 1)),       # wrong feature size, unbatched
    (True, (B, T, D + 2)),     # wrong feature size, batch-first
    (False, (0, B, D)),        # T = 0
    (False, (0, D)),           # T = 0, unbatched
    (True, (B, 0, D)),         # T = 0, batch-first
])
def test_bad_x_shape(cell, method, batch_first, shape):
    layer = _layer(cell, batch_first=batch_first)
    x = np.zeros(shape, np.float32)
    with raises_naming("x", shape, ValueError):
        _call(layer, method, x)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bad", ["complex", "object", "string"])
def test_bad_x_dtype(cell, bad):
    layer = _layer(cell)
    x = np.random.default_rng(0).standard_normal((T, B, D))
    if bad == "complex":
        x = x + 1j * x
    elif bad == "object":
        x = x.astype(object)
    else:
        x = x.astype(str)
    for method in ["call", "forward"]:
        with raises_naming("x", exc=TypeError):
            _call(layer, method, x)


# ------------------------------------------------------------------------------------------
# state0


def _bad_state_shapes(unbatched):
    if unbatched:
        return [(4, H + 1), (3, H), (4, 1, H), (4,)]
    return [(4, B + 1, H), (3, B, H), (4, B, H + 1), (4, H), (2 * 4, B, H), (4, B, H, 1)]


@pytest.mark.parametrize("method", ["call", "forward"])
@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_bad_state0_shape(cell, unbatched, method):
    layer = _layer(cell)
    rng = rng_for("bad-state0", cell)
    x = rng.standard_normal((T, D) if unbatched else (T, B, D)).astype(np.float32)
    good = state_shape(layer, None if unbatched else B)
    for bad in _bad_state_shapes(unbatched):
        bad_arr = np.zeros(bad, np.float32)
        if cell == "lstm":
            # a bad h, and a good h with a bad c
            for state0 in [(bad_arr, np.zeros(good, np.float32)),
                           (np.zeros(good, np.float32), bad_arr)]:
                with raises_naming("state0", bad, ValueError):
                    _call(layer, method, x, state0)
        else:
            with raises_naming("state0", bad, ValueError):
                _call(layer, method, x, bad_arr)


@pytest.mark.parametrize("method", ["call", "forward"])
@pytest.mark.parametrize("cell", CELLS)
def test_bad_state0_structure(cell, method):
    layer = _layer(cell)
    x = np.ones((T, B, D), np.float32)
    h = np.zeros(state_shape(layer, B), np.float32)
    if cell == "lstm":
        bads = [h, (h,), (h, h, h)]
    else:
        bads = [(h, h)]
    for bad in bads:
        with raises_naming("state0"):
            _call(layer, method, x, bad)


# ------------------------------------------------------------------------------------------
# backward: dy, dstate_n, cache


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first, unbatched", [(False, False), (True, False), (False, True)])
def test_bad_dy_shape(cell, batch_first, unbatched):
    layer = _layer(cell, batch_first=batch_first)
    xs = (T, D) if unbatched else ((B, T, D) if batch_first else (T, B, D))
    x = np.ones(xs, np.float32)
    if unbatched:
        bads = [(T, 2 * H + 1), (T + 1, 2 * H), (T, H), (T, 1, 2 * H)]
    elif batch_first:
        bads = [(T, B, 2 * H), (B, T, H), (B, T + 1, 2 * H), (B, T, 2 * H, 1)]
    else:
        bads = [(T, B, 2 * H + 1), (T, B + 1, 2 * H), (T - 1, B, 2 * H), (T, B, H),
                (B, T, 2 * H), (T * B, 2 * H)]
    for bad in bads:
        _, _, cache = layer.forward(x)
        with raises_naming("dy", bad, ValueError):
            layer.backward(np.zeros(bad, np.float32), cache)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("unbatched", [False, True])
def test_bad_dstate_n(cell, unbatched):
    layer = _layer(cell)
    x = np.ones((T, D) if unbatched else (T, B, D), np.float32)
    good = state_shape(layer, None if unbatched else B)
    dy = np.zeros((T, 2 * H) if unbatched else (T, B, 2 * H), np.float32)
    for bad in _bad_state_shapes(unbatched):
        bad_arr = np.zeros(bad, np.float32)
        cands = ([(bad_arr, np.zeros(good, np.float32)), (np.zeros(good, np.float32), bad_arr)]
                 if cell == "lstm" else [bad_arr])
        for dsn in cands:
            _, _, cache = layer.forward(x)
            with raises_naming("dstate_n", bad, ValueError):
                layer.backward(dy, cache, dsn)
    # wrong structure
    g = np.zeros(good, np.float32)
    for dsn in ([g, (g,), (g, g, g)] if cell == "lstm" else [(g, g)]):
        _, _, cache = layer.forward(x)
        with raises_naming("dstate_n"):
            layer.backward(dy, cache, dsn)


@pytest.mark.parametrize("cell", CELLS)
def test_bad_cache(cell):
    layer = _layer(cell)
    twin = _layer(cell)                     # same configuration and weights, another object
    other = _layer("gru" if cell != "gru" else "lstm")
    x = np.ones((T, B, D), np.float32)
    dy = np.zeros((T, B, 2 * H), np.float32)
    _, _, twin_cache = twin.forward(x)
    _, _, other_cache = other.forward(x)
    for bad in [twin_cache, other_cache, None, 42, "cache", (1, 2, 3), {}, [], x]:
        with raises_naming("cache"):
            layer.backward(dy, bad)
    # a failed backward adds nothing
    for k, g in layer.grads.items():
        assert not np.any(g), k


# ------------------------------------------------------------------------------------------
# constructor


BAD_CTOR = [
    ("input_size", 0), ("input_size", -3), ("input_size", 2.5), ("input_size", "4"),
    ("input_size", None),
    ("hidden_size", 0), ("hidden_size", -1), ("hidden_size", 3.5), ("hidden_size", "3"),
    ("hidden_size", None),
    ("num_layers", 0), ("num_layers", -2), ("num_layers", 1.5), ("num_layers", "2"),
    ("dtype", np.float16), ("dtype", np.int32), ("dtype", np.int64), ("dtype", np.complex64),
    ("dtype", np.complex128), ("dtype", object), ("dtype", "float16"), ("dtype", bool),
    ("dtype", None),   # np.dtype(None) is float64: must not silently pass as a dtype
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("arg, value", BAD_CTOR, ids=[f"{a}={v!r}" for a, v in BAD_CTOR])
def test_bad_constructor_args(cell, arg, value):
    kw = dict(input_size=4, hidden_size=3, num_layers=1)
    kw[arg] = value
    args = (kw.pop("input_size"), kw.pop("hidden_size"), kw.pop("num_layers"))
    with raises_naming(arg):
        make_layer(cell, *args, **kw)


@pytest.mark.parametrize("value", ["sigmoid", "", "gelu", None, 1])
def test_bad_nonlinearity(value):
    import fastrnn
    with pytest.raises((ValueError, TypeError), match=r"\bnonlinearity\b"):
        fastrnn.RNN(4, 3, nonlinearity=value)


@pytest.mark.parametrize("cell", CELLS)
def test_numpy_integer_sizes_accepted(cell):
    layer = make_layer(cell, np.int64(4), np.int32(3), np.int64(2), seed=0)
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (4, 3, 2)
    y, _ = layer(np.ones((2, 1, 4), np.float32))
    assert y.shape == (2, 1, 3)


# ------------------------------------------------------------------------------------------
# B = 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_empty_batch(cell, batch_first, dtype):
    layer = _layer(cell, dtype=dtype, batch_first=batch_first)
    xs = (0, T, D) if batch_first else (T, 0, D)
    ys = (0, T, 2 * H) if batch_first else (T, 0, 2 * H)
    ss = (2 * L, 0, H)
    x = np.zeros(xs, dtype)

    def check_state(s, what):
        parts = as_parts(s)
        assert len(parts) == (2 if cell == "lstm" else 1), what
        assert isinstance(s, tuple) == (cell == "lstm"), what
        for a in parts:
            assert a.shape == ss, what
        assert_dtype(s, dtype, what)

    for state0 in [None, _state(rng_for("b0"), layer, 0)]:
        y, sn = layer(x, state0)
        assert y.shape == ys and y.dtype == dtype
        check_state(sn, "call state_n")
        y, sn, cache = layer.forward(x, state0)
        assert y.shape == ys and y.dtype == dtype
        check_state(sn, "forward state_n")
        for dsn in [None, _state(rng_for("b0"), layer, 0)]:
            _, _, cache = layer.forward(x, state0)
            dx, ds0 = layer.backward(np.zeros(ys, dtype), cache, dsn)
            assert dx.shape == xs and dx.dtype == dtype
            check_state(ds0, "dstate0")
    for k, g in layer.grads.items():
        assert g.shape == layer.params[k].shape
        assert not np.any(g), k


# ------------------------------------------------------------------------------------------
# conversions: non-contiguous, read-only, other dtypes; inputs never modified


def _strided(a):
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    out = big[..., ::2]
    assert not out.flags.c_contiguous
    return out


def _transposed(a):
    out = np.ascontiguousarray(a.T).T
    assert a.ndim < 2 or not out.flags.c_contiguous
    return out


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


VARIANTS = {
    "plain": lambda a, dt: a.astype(dt),
    "strided": lambda a, dt: _strided(a.astype(dt)),
    "transposed": lambda a, dt: _transposed(a.astype(dt)),
    "fortran": lambda a, dt: np.asfortranarray(a.astype(dt)),
    "readonly": lambda a, dt: _readonly(a.astype(dt)),
    "float64": lambda a, dt: a.astype(np.float64),
    "float64-strided": lambda a, dt: _strided(a.astype(np.float64)),
}


def _run_all(layer, x, s0, dy, dsn):
    layer.zero_grad()
    y_c, sn_c = layer(x, s0)
    y_f, sn_f, cache = layer.forward(x, s0)
    dx, ds0 = layer.backward(dy, cache, dsn)
    return dict(y_call=y_c, sn_call=sn_c, y=y_f, sn=sn_f, dx=dx, ds0=ds0,
                grads={k: v.copy() for k, v in layer.grads.items()})


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, batch_first, unbatched", [
    ("rnn_tanh", False, False), ("rnn_relu", True, False), ("lstm", False, False),
    ("lstm", True, False), ("gru", False, False), ("gru", True, False), ("lstm", False, True),
    ("gru", False, True), ("rnn_tanh", False, True),
])
def test_input_forms_and_inputs_unmodified(cell, batch_first, unbatched, dtype, variant):
    layer = _layer(cell, dtype=dtype, batch_first=batch_first)
    rng = rng_for("forms", cell, batch_first, unbatched)
    b = None if unbatched else 3
    xs = (T, D) if unbatched else ((b, T, D) if batch_first else (T, b, D))
    ys = xs[:-1] + (2 * H,)
    # float64 data with full precision; the canonical input is its contiguous cast
    x64 = rng.standard_normal(xs)
    s64 = _state(rng, layer, b, np.float64)
    dy64 = rng.standard_normal(ys)
    dsn64 = _state(rng, layer, b, np.float64)
    canon = lambda a: np.ascontiguousarray(a, dtype=dtype)
    expected = _run_all(layer, canon(x64), map_state(canon, s64), canon(dy64),
                        map_state(canon, dsn64))

    f = VARIANTS[variant]
    x, s0, dy, dsn = (f(x64, dtype), map_state(lambda a: f(a, dtype), s64), f(dy64, dtype),
                      map_state(lambda a: f(a, dtype), dsn64))
    saved = [np.array(a, copy=True) for a in [x, *as_parts(s0), dy, *as_parts(dsn)]]
    params_before = layer.state_dict()
    got = _run_all(layer, x, s0, dy, dsn)

    for k in ["y_call", "sn_call", "y", "sn", "dx", "ds0"]:
        assert_close(got[k], expected[k], dtype, k)
        assert_dtype(got[k], dtype, k)
    assert got["dx"].shape == xs
    assert_grads_close(got["grads"], expected["grads"], dtype)
    # inputs and parameters untouched
    for a, s in zip([x, *as_parts(s0), dy, *as_parts(dsn)], saved):
        np.testing.assert_array_equal(a, s)
        assert a.dtype == s.dtype
    for k, v in params_before.items():
        np.testing.assert_array_equal(layer.params[k], v, err_msg=k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_integer_x_accepted(cell, dtype):
    layer = _layer(cell, dtype=dtype)
    rng = rng_for("int-x", cell)
    xi = rng.integers(-3, 4, size=(T, B, D))
    for int_dtype in [np.int64, np.int32, np.int8]:
        x = xi.astype(int_dtype)
        y, sn = layer(x)
        y_ref, sn_ref = layer(xi.astype(dtype))
        assert y.dtype == dtype
        assert_close(y, y_ref, dtype, "y")
        assert_close(sn, sn_ref, dtype, "state_n")
        y2, sn2, cache = layer.forward(x)
        assert_close(y2, y_ref, dtype, "forward y")
        dx, _ = layer.backward(np.ones(y.shape, dtype), cache)
        assert dx.shape == x.shape and dx.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_call_equals_forward(cell, dtype):
    for unbatched in [False, True]:
        layer = _layer(cell, dtype=dtype)
        rng = rng_for("call-forward", cell, unbatched)
        b = None if unbatched else 4
        x = rng.standard_normal((T, D) if unbatched else (T, b, D)).astype(dtype)
        s0 = _state(rng, layer, b)
        for state0 in [None, s0]:
            y1, sn1 = layer(x, state0)
            y2, sn2, _ = layer.forward(x, state0)
            assert_close(y1, y2, dtype, "y")
            assert_close(sn1, sn2, dtype, "state_n")
            assert isinstance(sn1, tuple) == (cell == "lstm")


@pytest.mark.parametrize("cell", CELLS)
def test_output_arrays_are_fresh(cell):
    """Results are new arrays: they do not alias the inputs or each other across calls."""
    layer = _layer(cell, dtype=np.float64)
    rng = rng_for("fresh", cell)
    x = rng.standard_normal((T, B, D))
    s0 = _state(rng, layer, B)
    y1, sn1 = layer(x, s0)
    y1c, sn1c = y1.copy(), map_state(np.copy, sn1)
    y2, sn2 = layer(2 * x, s0)
    np.testing.assert_array_equal(y1, y1c)
    for a, b in zip(as_parts(sn1), as_parts(sn1c)):
        np.testing.assert_array_equal(a, b)
    for out in [y1, *as_parts(sn1)]:
        for inp in [x, *as_parts(s0)]:
            assert not np.shares_memory(out, inp)
