"""Reduced-precision inference (FrozenLayer and Stepper with weights="int8" or
"bfloat16") against NumPy models of the same arithmetic, written here from their
definitions (the comments of csrc/fastrnn_q8.h and csrc/fastrnn_bf16.h): int8 weights
per output row and activations per row at each product with exact integer sums;
bfloat16 weights and activations, rounded to nearest even, with float32 sums."""

import pickle

import numpy as np
import pytest

import fastrnn
from fastrnn.kernels import recurrent as K
from fastrnn.kernels.threads import get_num_threads, set_num_threads

RNG = np.random.default_rng(7)


# ----------------------------------------------------------------- the model

def quantize_rows(a):
    """(q, scale) of each row of a (float32): q = rint(a * (127 / max|a|)), scale
    max|a| / 127, zeros where a row is all zeros."""
    a = np.asarray(a, np.float32)
    amax = np.abs(a).max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    q = np.clip(np.rint(a * inv), -127, 127)
    return q.astype(np.int64), (amax / np.float32(127)).astype(np.float32)


def to_bf16(a):
    """a rounded to bfloat16 (nearest even), as float32."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def int8_matmul(a, w):
    """a @ w.T as the int8 product computes it, in float64 from the exact int sums."""
    qa, sa = quantize_rows(a)
    qw, sw = quantize_rows(w)
    acc = (qa @ qw.T).astype(np.float32)           # exactly as the kernel converts them
    return acc.astype(np.float64) * (sa * sw.T).astype(np.float64)


def bf16_matmul(a, w):
    """a @ w.T from the bfloat16 roundings of both, in float64."""
    return to_bf16(a).astype(np.float64) @ to_bf16(w).astype(np.float64).T


MATMUL = {"int8": int8_matmul, "bfloat16": bf16_matmul}
KINDS = tuple(MATMUL)
qmatmul = int8_matmul     # the product model_direction uses (set per call by model)


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def model_direction(cell, p, sfx, x, h, c, variant):
    """One direction over x (T, B, D) from state (h, c): the cells' torch equations,
    every weight product through qmatmul, gates in float32."""
    f32 = np.float32
    w_ih, w_hh = p[f"weight_ih{sfx}"], p[f"weight_hh{sfx}"]
    b_ih = p.get(f"bias_ih{sfx}", np.zeros(w_ih.shape[0], f32))
    b_hh = p.get(f"bias_hh{sfx}", np.zeros(w_hh.shape[0], f32))
    H = w_hh.shape[1]
    ys = []
    for t in range(x.shape[0]):
        xi = (qmatmul(x[t], w_ih) + b_ih).astype(f32)
        if cell == "RNN":
            pre = xi + b_hh + qmatmul(h, w_hh)
            h = (np.maximum(pre, 0) if variant.get("nonlinearity") == "relu"
                 else np.tanh(pre)).astype(f32)
        elif cell == "LSTM":
            g = xi + b_hh + qmatmul(h, w_hh)
            i, f, gg, o = (g[:, k * H:(k + 1) * H] for k in range(4))
            c = (sigmoid(f) * c + sigmoid(i) * np.tanh(gg)).astype(f32)
            h = (sigmoid(o) * np.tanh(c)).astype(f32)
        elif variant.get("reset_after", True):
            hh = qmatmul(h, w_hh) + b_hh
            r = sigmoid(xi[:, :H] + hh[:, :H])
            z = sigmoid(xi[:, H:2 * H] + hh[:, H:2 * H])
            n = np.tanh(xi[:, 2 * H:] + r * hh[:, 2 * H:])
            h = ((1 - z) * n + z * h).astype(f32)
        else:   # reset-before: b_hn folds into the input side, r * h enters W_hn's product
            r = sigmoid(xi[:, :H] + b_hh[:H] + qmatmul(h, w_hh[:H]))
            z = sigmoid(xi[:, H:2 * H] + b_hh[H:2 * H] + qmatmul(h, w_hh[H:2 * H]))
            rh = (r * h).astype(f32)
            n = np.tanh(xi[:, 2 * H:] + b_hh[2 * H:] + qmatmul(rh, w_hh[2 * H:]))
            h = ((1 - z) * n + z * h).astype(f32)
        ys.append(h)
    return np.stack(ys), h, c


def model(layer, x, kind="int8"):
    """The model of a stack's output (T, B, dirs * H) in kind's precision, time-major x
    (T, B, D)."""
    global qmatmul
    qmatmul = MATMUL[kind]
    p, H = layer.params, layer.hidden_size
    variant = {k: getattr(layer, k) for k in ("nonlinearity", "reset_after")
               if hasattr(layer, k)}
    B = x.shape[1]
    for l in range(layer.num_layers):
        outs = []
        for d in range(2 if layer.bidirectional else 1):
            sfx = f"_l{l}" + ("_reverse" if d else "")
            h = c = np.zeros((B, H), np.float32)
            seq = x[::-1] if d else x
            y, _, _ = model_direction(type(layer).__name__, p, sfx, seq, h, c, variant)
            outs.append(y[::-1] if d else y)
        x = np.concatenate(outs, axis=-1)
    return x


CASES = [
    ("RNN", dict(nonlinearity="tanh")),
    ("RNN", dict(nonlinearity="relu")),
    ("LSTM", {}),
    ("GRU", {}),
    ("GRU", dict(reset_after=False)),
]


def make(cell, kw, D, H, **more):
    return getattr(fastrnn, cell)(D, H, seed=int(RNG.integers(1 << 30)), **kw, **more)


# ---------------------------------------------------------------- products

def each_path(kind):
    """Set each of kind's paths this CPU runs in turn; yield its index."""
    for path, ok in enumerate(K.reduced_paths(kind).values()):
        if not ok:
            continue
        before = K._set_reduced_path(kind, path)
        try:
            yield path
        finally:
            K._set_reduced_path(kind, before)


def bf16_sum(A, W):
    """The bfloat16 product's float32 sums in its order: over the pairs of k, the odd
    k's product, then the even one's, each added with one rounding."""
    a, w = to_bf16(A), to_bf16(W)
    acc = np.zeros((A.shape[0], W.shape[0]), np.float32)
    for k in range(0, A.shape[1] + A.shape[1] % 2, 2):
        for j in (k + 1, k):
            if j < A.shape[1]:    # exact products: float64 holds them, one rounding
                acc = (acc.astype(np.float64) + np.outer(a[:, j], w[:, j])).astype(np.float32)
    return acc


@pytest.mark.parametrize("M,N,Kdim", [(1, 16, 4), (3, 37, 23), (7, 64, 130), (300, 50, 9),
                                      (2, 33, 1), (16, 32, 128), (19, 40, 200), (41, 70, 65)])
def test_int8_product_is_the_exact_integer_sum(M, N, Kdim):
    A = RNG.standard_normal((M, Kdim)).astype(np.float32)
    W = RNG.standard_normal((N, Kdim)).astype(np.float32)
    qa, sa = quantize_rows(A)
    qw, sw = quantize_rows(W)
    want = (qa @ qw.T).astype(np.float32) * (sa * sw.T)     # one rounding: fma with 0
    for path in each_path("int8"):
        np.testing.assert_array_equal(K._reduced_product("int8", A, W), want,
                                      err_msg=f"path {path}")


@pytest.mark.parametrize("M,N,Kdim", [(1, 16, 4), (3, 37, 23), (7, 64, 130), (300, 50, 9),
                                      (2, 33, 1), (6, 40, 33), (13, 50, 64), (2, 17, 32768)])
def test_bf16_product_is_the_ordered_float32_sum(M, N, Kdim):
    A = RNG.standard_normal((M, Kdim)).astype(np.float32)
    W = RNG.standard_normal((N, Kdim)).astype(np.float32)
    want = bf16_sum(A, W)
    # a sum of K exact products, each added with one rounding, in any order: within
    # K roundings of the sum of their magnitudes of the ordered one
    a, w = to_bf16(A).astype(np.float64), to_bf16(W).astype(np.float64)
    bound = 2 * Kdim * 2.0 ** -24 * (np.abs(a) @ np.abs(w).T)
    for path in each_path("bfloat16"):
        got = K._reduced_product("bfloat16", A, W)
        if K._sums_in_order("bfloat16", path):
            np.testing.assert_array_equal(got, want, err_msg=f"path {path}")
        else:
            assert (np.abs(got.astype(np.float64) - want) <= bound).all(), f"path {path}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("M,N,Kdim", [(20, 40, 70), (33, 17, 100)])
def test_a_row_of_the_product_does_not_depend_on_the_others(kind, M, N, Kdim):
    A = RNG.standard_normal((M, Kdim)).astype(np.float32)
    W = RNG.standard_normal((N, Kdim)).astype(np.float32)
    for path in each_path(kind):
        whole = K._reduced_product(kind, A, W)
        for m in (0, 5, M - 1):
            np.testing.assert_array_equal(K._reduced_product(kind, A[m:m + 1], W)[0],
                                          whole[m], err_msg=f"path {path}, row {m}")


def test_int8_product_rows_of_zeros_and_nonfinite():
    A = RNG.standard_normal((4, 20)).astype(np.float32)
    A[1] = 0
    A[2, 3] = np.nan
    A[3, 0] = np.inf
    W = RNG.standard_normal((18, 20)).astype(np.float32)
    for path in each_path("int8"):
        got = K._reduced_product("int8", A, W, bias=np.ones(18, np.float32))
        assert np.isfinite(got[0]).all()
        np.testing.assert_array_equal(got[1], np.ones(18, np.float32))
        assert np.isnan(got[2]).all() and np.isnan(got[3]).all()


def test_bf16_product_nonfinite_rows():
    A = RNG.standard_normal((3, 9)).astype(np.float32)
    A[1, 2] = np.nan
    A[2, 0] = np.inf
    W = RNG.standard_normal((5, 9)).astype(np.float32)
    for path in each_path("bfloat16"):
        got = K._reduced_product("bfloat16", A, W)
        assert np.isfinite(got[0]).all() and np.isnan(got[1]).all()
        assert not np.isfinite(got[2]).any()


# ------------------------------------------------------------------ layers

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell,kw", CASES)
@pytest.mark.parametrize("B", [1, 3, 8])
def test_frozen_matches_the_model(kind, cell, kw, B):
    layer = make(cell, kw, 10, 32, num_layers=2)
    x = RNG.standard_normal((6, B, 10)).astype(np.float32)
    got = layer.frozen(weights=kind)(x)[0]
    want = model(layer, x, kind)
    floats = layer(x)[0]
    err = np.abs(got - want).max()
    gap = np.abs(got - floats).max()
    # within a few roundings of the model, and much nearer it than the float layer
    assert err <= 2e-4, err
    assert err <= (0.1 if kind == "int8" else 0.5) * gap, (err, gap)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell,kw", CASES)
def test_bidirectional_and_odd_sizes(kind, cell, kw):
    layer = make(cell, kw, 7, 19, bidirectional=True)
    x = RNG.standard_normal((5, 2, 7)).astype(np.float32)
    got = layer.frozen(weights=kind)(x)[0]
    assert np.abs(got - model(layer, x, kind)).max() <= 2e-4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell,kw", CASES)
def test_paths_and_threads_agree_bitwise(kind, cell, kw):
    layer = make(cell, kw, 24, 64, num_layers=2)
    x = RNG.standard_normal((9, 4, 24)).astype(np.float32)
    outs = []
    threads = get_num_threads()
    for path in each_path(kind):
        for nt in sorted({1, 2, threads}):
            set_num_threads(nt)
            try:
                for B in (1, 4):    # B = 1 may split each step by hidden units
                    outs.append((path, nt, B, layer.frozen(weights=kind)(x[:, :B])[0]))
            finally:
                set_num_threads(threads)
    # paths that sum in the defined order agree with each other; one with an order of
    # its own (AMX-BF16) with itself, whatever the threads
    for path, nt, B, y in outs:
        ordered = K._sums_in_order(kind, path)
        ref = next(o[3] for o in outs
                   if o[2] == B and K._sums_in_order(kind, o[0]) == ordered
                   and (ordered or o[0] == path))
        np.testing.assert_array_equal(y, ref, err_msg=f"path {path}, {nt} threads, B {B}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell,kw", CASES)
def test_lengths_match_each_sequence_alone(kind, cell, kw):
    layer = make(cell, kw, 6, 32)
    frozen = layer.frozen(weights=kind)
    x = RNG.standard_normal((7, 3, 6)).astype(np.float32)
    lengths = np.array([7, 3, 5])
    y, h = frozen(x, lengths=lengths)
    h = h[0] if isinstance(h, tuple) else h
    for b, n in enumerate(lengths):
        yb, hb = frozen(x[:n, b])
        hb = hb[0] if isinstance(hb, tuple) else hb
        np.testing.assert_array_equal(y[:n, b], yb)
        assert not y[n:, b].any()
        np.testing.assert_array_equal(h[0, b], hb[0])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell,kw", CASES)
def test_stepper_equals_frozen(kind, cell, kw):
    layer = make(cell, kw, 5, 24, num_layers=2)
    x = RNG.standard_normal((6, 2, 5)).astype(np.float32)
    step = layer.stepper(batch_size=2, weights=kind)
    ys = np.stack([step(x_t) for x_t in x])
    np.testing.assert_array_equal(ys, layer.frozen(weights=kind)(x)[0])


def test_error_against_float_is_small_and_bf16_below_int8():
    layer = fastrnn.LSTM(64, 128, seed=3)
    x = RNG.standard_normal((20, 4, 64)).astype(np.float32)
    y = layer(x)[0]
    err = {k: np.abs(layer.frozen(weights=k)(x)[0] - y).max() for k in KINDS}
    assert 0 < err["bfloat16"] < err["int8"] < 0.05, err


# -------------------------------------------------------------- arguments

def test_bad_arguments():
    layer = fastrnn.LSTM(4, 8, seed=0)
    with pytest.raises(ValueError, match="weights"):
        layer.frozen(weights="int4")
    with pytest.raises(ValueError, match="weights"):
        fastrnn.FrozenLayer(layer, weights=8)
    with pytest.raises(TypeError, match="weights"):
        fastrnn.LSTM(4, 8, dtype=np.float64).frozen(weights="int8")
    bad = fastrnn.GRU(4, 8, seed=0)
    bad.params["weight_hh_l0"][0, 0] = np.nan
    with pytest.raises(ValueError, match="weight_hh_l0"):
        bad.frozen(weights="int8")
    with pytest.raises(ValueError, match="weights"):
        layer.stepper(weights="bf16")
    with pytest.raises(TypeError, match="weights"):
        fastrnn.GRU(4, 8, dtype=np.float64).stepper(weights="bfloat16")
    with pytest.raises(ValueError, match="path"):
        K._set_reduced_path("int8", 99)
    with pytest.raises(ValueError, match="kind"):
        K.reduced_paths("int4")


@pytest.mark.parametrize("kind", KINDS)
def test_repr_pickle_and_user_arrays_untouched(kind):
    layer = fastrnn.GRU(4, 16, seed=1)
    before = {k: v.copy() for k, v in layer.params.items()}
    frozen = layer.frozen(weights=kind)
    assert frozen.weights == kind and kind in repr(frozen)
    assert kind in repr(layer.stepper(weights=kind))
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    x0 = x.copy()
    y = frozen(x)[0]
    again = pickle.loads(pickle.dumps(frozen))
    assert again.weights == kind
    np.testing.assert_array_equal(again(x)[0], y)
    np.testing.assert_array_equal(x, x0)
    for k, v in layer.params.items():
        np.testing.assert_array_equal(v, before[k])
