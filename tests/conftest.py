"""Shared helpers for the fastrnn layer tests.

Everything that several test modules need lives here: the tolerance dict, the list of cell
kinds, a factory for layers, random inputs and states, layout conversions between the layer's
forms (time-major, batch-first, unbatched) and the reference's single time-major batched form,
and a gold-standard run of ``fastrnn.reference`` in float64.
"""


import numpy as np
import pytest

from fastrnn.layers.cell_kinds import BY_KEY, KINDS, kind_of

# Tolerances against the float64 reference (or torch), one entry per layer dtype.  Sizes in the
# tests are small (D, H <= 8, T <= 6, B <= 4) and inputs ~N(0, 1), so float32 results agree with
# the float64 gold standard to about 1e-6; parameter gradients are sums over T*B terms and so
# get a relative term of the same order.
TOL = {
    np.float32: dict(rtol=1e-5, atol=1e-5),
    np.float64: dict(rtol=1e-10, atol=1e-10),
}

DTYPES = [np.float32, np.float64]

# Cell kinds, from fastrnn/layers/cell_kinds.py: "rnn_tanh" and "rnn_relu" are fastrnn.RNN with
# that nonlinearity, every other kind its key.
NONLINEARITIES = ("tanh", "relu")
CELLS = [name for kind in KINDS
         for name in ([f"rnn_{n}" for n in NONLINEARITIES] if kind.key == "rnn" else [kind.key])]

GATES = {cell: BY_KEY[cell.partition("_")[0]].gate_count for cell in CELLS}


def tol(dtype):
    """Tolerance kwargs for np.testing.assert_allclose for a layer of this dtype."""
    return TOL[np.dtype(dtype).type]


def mode_of(cell):
    """Reference mode name for a cell kind."""
    return "rnn" if cell.startswith("rnn") else cell


def nonlinearity_of(cell):
    return "relu" if cell == "rnn_relu" else "tanh"


def is_lstm(cell):
    """Whether the cell's state is a pair (h, c)."""
    return BY_KEY[mode_of(cell)].state_arity == 2


def layer_class(cell):
    return BY_KEY[mode_of(cell)].layer_class


def make_layer(cell, input_size, hidden_size, num_layers=1, **kwargs):
    """Build fastrnn.RNN/LSTM/GRU for a cell kind; kwargs are passed through (dtype, seed, ...)."""
    cls = layer_class(cell)
    if cell.startswith("rnn"):
        kwargs.setdefault("nonlinearity", nonlinearity_of(cell))
    return cls(input_size, hidden_size, num_layers, **kwargs)


def cell_of(layer):
    """Cell kind of an existing layer."""
    key = kind_of(layer).key
    return f"{key}_{layer.nonlinearity}" if key == "rnn" else key


def num_dirs(layer):
    return 2 if layer.bidirectional else 1


def param_names(num_layers, bidirectional, bias=True):
    """torch.nn state_dict names, in torch's order."""
    names = []
    for l in range(num_layers):
        for suffix in ([""] + (["_reverse"] if bidirectional else [])):
            names += [f"weight_ih_l{l}{suffix}", f"weight_hh_l{l}{suffix}"]
            if bias:
                names += [f"bias_ih_l{l}{suffix}", f"bias_hh_l{l}{suffix}"]
    return names


def param_shapes(cell, input_size, hidden_size, num_layers, bidirectional, bias=True):
    """Expected {name: shape}, as torch.nn has them."""
    G = GATES[cell] * hidden_size
    dirs = 2 if bidirectional else 1
    shapes = {}
    for name in param_names(num_layers, bidirectional, bias):
        layer_idx = int(name.split("_l")[1].split("_")[0])
        if name.startswith("weight_ih"):
            shapes[name] = (G, input_size if layer_idx == 0 else dirs * hidden_size)
        elif name.startswith("weight_hh"):
            shapes[name] = (G, hidden_size)
        else:
            shapes[name] = (G,)
    return shapes


# ------------------------------------------------------------------------------------------
# random data


def rng_for(*key):
    """A numpy Generator seeded deterministically from a test's parameters."""
    s = repr(key).encode()
    seed = 0
    for b in s:
        seed = (seed * 131 + b) % (2**63)
    return np.random.default_rng(seed)


def seed_for(*key):
    return int(rng_for("seed", *key).integers(2**31))


def x_shape(T, B, D, *, batch_first=False):
    """Shape of x; B=None means unbatched (T, D)."""
    if B is None:
        return (T, D)
    return (B, T, D) if batch_first else (T, B, D)


def y_shape(T, B, H, dirs, *, batch_first=False):
    return x_shape(T, B, dirs * H, batch_first=batch_first)


def state_shape(layer, B):
    """Shape of one state array; B=None means unbatched."""
    L = layer.num_layers * num_dirs(layer)
    return (L, layer.hidden_size) if B is None else (L, B, layer.hidden_size)


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def make_x(rng, layer, T, B):
    return randn(rng, x_shape(T, B, layer.input_size, batch_first=layer.batch_first), layer.dtype)


def make_dy(rng, layer, T, B):
    return randn(rng, y_shape(T, B, layer.hidden_size, num_dirs(layer),
                              batch_first=layer.batch_first), layer.dtype)


def make_state(rng, layer, B, dtype=None):
    """A random state for the layer: h, or (h, c) for LSTM.  B=None means unbatched."""
    dtype = layer.dtype if dtype is None else dtype
    shape = state_shape(layer, B)
    if is_lstm(cell_of(layer)):
        return (randn(rng, shape, dtype), randn(rng, shape, dtype))
    return randn(rng, shape, dtype)


def zeros_state(layer, B, dtype=np.float64):
    shape = state_shape(layer, B)
    if is_lstm(cell_of(layer)):
        return (np.zeros(shape, dtype), np.zeros(shape, dtype))
    return np.zeros(shape, dtype)


def map_state(fn, s):
    """Apply fn to an array state or to each member of a tuple state (None stays None)."""
    if s is None:
        return None
    if isinstance(s, tuple):
        return tuple(fn(a) for a in s)
    return fn(s)


def copy_state(s):
    return map_state(lambda a: np.array(a, copy=True), s)


def as_parts(s):
    """State as a tuple of arrays (h,) or (h, c)."""
    return s if isinstance(s, tuple) else (s,)


# ------------------------------------------------------------------------------------------
# comparisons


def assert_close(actual, expected, dtype, what="", **override):
    """assert_allclose with the dtype's tolerance; handles (h, c) tuples; checks shape first."""
    kw = dict(tol(dtype))
    kw.update(override)
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple), f"{what}: expected a tuple, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{what}: expected {len(expected)} arrays"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, dtype, f"{what}[{i}]", **override)
        return
    assert isinstance(actual, np.ndarray), f"{what}: expected ndarray, got {type(actual).__name__}"
    assert actual.shape == np.shape(expected), (
        f"{what}: shape {actual.shape} != expected {np.shape(expected)}")
    np.testing.assert_allclose(actual, expected, err_msg=what, **kw)


def assert_dtype(obj, dtype, what=""):
    for i, a in enumerate(as_parts(obj)):
        assert isinstance(a, np.ndarray), f"{what}[{i}]: not an ndarray"
        assert a.dtype == np.dtype(dtype), f"{what}[{i}]: dtype {a.dtype} != {np.dtype(dtype)}"


def assert_grads_close(grads, expected, dtype, scale=1.0):
    assert set(grads) == set(expected), f"grad keys {sorted(grads)} != {sorted(expected)}"
    for k in expected:
        assert_close(grads[k], scale * np.asarray(expected[k]), dtype, f"grad {k}")


# ------------------------------------------------------------------------------------------
# gold standard: fastrnn.reference in float64


def _to_time_major(a, layer, unbatched):
    a = np.array(a, dtype=np.float64)
    if unbatched:
        return np.ascontiguousarray(a[:, None, :])
    if layer.batch_first:
        return np.ascontiguousarray(a.transpose(1, 0, 2))
    return a


def _from_time_major(a, layer, unbatched):
    if unbatched:
        return a[:, 0, :]
    if layer.batch_first:
        return a.transpose(1, 0, 2)
    return a


def _state_in(s, unbatched):
    return map_state(lambda a: np.array(a, dtype=np.float64)[:, None, :] if unbatched
                     else np.array(a, dtype=np.float64), s)


def _state_out(s, unbatched):
    return map_state(lambda a: a[:, 0, :] if unbatched else a, s)


def variant_of(layer):
    """The reference.forward keywords of a layer's cell variant ({} for torch's cells)."""
    out = {}
    if getattr(layer, "peephole", False):
        out["peephole"] = True
    if not getattr(layer, "reset_after", True):
        out["reset_after"] = False
    return out


def reference_params(layer):
    return {k: np.array(v, dtype=np.float64) for k, v in layer.params.items()}


def reference_run(layer, x, state0=None, dy=None, dstate_n=None, *, backward=True):
    """Run fastrnn.reference in float64 on the layer's parameters and input layout.

    Returns dict(y, state_n) and, with backward, dx, dstate0 and grads, all in the layer's
    layout (batch-first or unbatched as the inputs were).  dy=None means zeros.
    """
    from fastrnn import reference

    x = np.asarray(x)
    unbatched = x.ndim == 2
    cell = cell_of(layer)
    y, state_n, cache = reference.forward(
        mode_of(cell), reference_params(layer), _to_time_major(x, layer, unbatched),
        _state_in(state0, unbatched), num_layers=layer.num_layers,
        bidirectional=layer.bidirectional, reverse=layer.reverse,
        nonlinearity=nonlinearity_of(cell), **variant_of(layer))
    out = dict(y=_from_time_major(y, layer, unbatched), state_n=_state_out(state_n, unbatched))
    if not backward:
        return out
    if dy is None:
        dy = np.zeros(y.shape)
        dy_t = dy
    else:
        dy_t = _to_time_major(dy, layer, unbatched)
    dx, dstate0, grads = reference.backward(dy_t, cache, _state_in(dstate_n, unbatched))
    out.update(dx=_from_time_major(dx, layer, unbatched),
               dstate0=_state_out(dstate0, unbatched), grads=grads)
    return out


# ------------------------------------------------------------------------------------------
# ONNX Runtime, the peer of the ONNX tests


def ort_run(model, feed):
    """Outputs of ONNX Runtime (CPU, one thread) on a model given as bytes or a path."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feed)


@pytest.fixture
def restore_threads():
    """Put fastrnn's thread count back after a test that changes it."""
    from fastrnn.kernels import threads as _threads

    previous = _threads.get_num_threads()
    yield
    _threads.set_num_threads(previous)
