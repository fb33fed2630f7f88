"""fastrnn.DotAttention and AdditiveAttention: against Keras 3's Attention and
AdditiveAttention layers (on the torch backend; context and weights, masks, use_scale
both ways, key given or not), against float64 finite differences for every gradient
(query, value, key, scale; with and without dweights and masks), and bad inputs."""

import os

import numpy as np
import pytest

import fastrnn

B, TQ, TV, DIM = 2, 3, 5, 4
# row 0 partly masked, row 1 every key masked (documented: uniform weights)
MASK = np.array([[True, True, False, True, False], [False] * TV])


def make(kind, use_scale, dtype=np.float64, seed=0):
    if kind == "dot":
        att = fastrnn.DotAttention(use_scale=use_scale, dtype=dtype)
        if use_scale:
            att.params["scale"][...] = 0.7      # not Keras's initial 1
        return att
    return fastrnn.AdditiveAttention(DIM, use_scale=use_scale, dtype=dtype, seed=seed)


def inputs(rng, dtype=np.float64, dv=DIM):
    return (rng.standard_normal((B, TQ, DIM)).astype(dtype),
            rng.standard_normal((B, TV, dv)).astype(dtype),
            rng.standard_normal((B, TV, DIM)).astype(dtype))


@pytest.mark.parametrize("kind", ["dot", "additive"])
@pytest.mark.parametrize("use_scale", [True, False])
@pytest.mark.parametrize("with_key", [True, False])
@pytest.mark.parametrize("mask", [None, MASK])
def test_matches_keras(kind, use_scale, with_key, mask):
    os.environ["KERAS_BACKEND"] = "torch"     # before keras is imported
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    q, v, k = inputs(rng, np.float32)
    att = make(kind, use_scale, np.float32)
    klass = keras.layers.Attention if kind == "dot" else keras.layers.AdditiveAttention
    layer = klass(use_scale=use_scale)
    args = [q, v, k] if with_key else [q, v]
    layer(args)                                         # builds the weights
    if use_scale:
        layer.set_weights([att.params["scale"]])
    ctx_k, w_k = layer(args, mask=[None, mask], return_attention_scores=True)
    ctx, w = att(q, v, k if with_key else None, value_mask=mask)
    np.testing.assert_allclose(ctx, keras.ops.convert_to_numpy(ctx_k), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w, keras.ops.convert_to_numpy(w_k), rtol=1e-5, atol=1e-6)
    if mask is not None:
        assert not w[0][:, ~mask[0]].any()             # masked keys: weight 0
        np.testing.assert_allclose(w[1], 1 / TV)       # all masked: uniform, not NaN


def numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = f()
        x[idx] = old - eps
        down = f()
        x[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("kind", ["dot", "additive"])
@pytest.mark.parametrize("use_scale", [True, False])
@pytest.mark.parametrize("with_key", [True, False])
@pytest.mark.parametrize("mask", [None, MASK])
@pytest.mark.parametrize("with_dweights", [True, False])
def test_gradients_by_finite_differences(kind, use_scale, with_key, mask, with_dweights):
    rng = np.random.default_rng(2)
    q, v, k = inputs(rng, dv=DIM if not with_key or kind == "additive" else 3)
    if not with_key:
        k = None
    att = make(kind, use_scale)
    dc = rng.standard_normal((B, TQ, v.shape[2]))
    dw = rng.standard_normal((B, TQ, TV)) if with_dweights else None

    def loss():
        ctx, w = att(q, v, k, value_mask=mask)
        return np.sum(ctx * dc) + (np.sum(w * dw) if with_dweights else 0.0)

    ctx, w, cache = att.forward(q, v, k, value_mask=mask)
    att.zero_grad()
    dq, dv, dk = att.backward(dc, cache, dw)
    np.testing.assert_allclose(dq, numeric_grad(loss, q), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dv, numeric_grad(loss, v), rtol=1e-6, atol=1e-8)
    if with_key:
        np.testing.assert_allclose(dk, numeric_grad(loss, k), rtol=1e-6, atol=1e-8)
    else:
        assert dk is None
    for name, p in att.params.items():
        np.testing.assert_allclose(att.grads[name], numeric_grad(loss, p), rtol=1e-6,
                                   atol=1e-8)


def test_grads_accumulate_and_inputs_not_modified():
    rng = np.random.default_rng(3)
    q, v, k = inputs(rng)
    for a in (q, v, k):
        a.flags.writeable = False
    copies = [a.copy() for a in (q, v, k)]
    att = make("additive", True)
    _, _, cache = att.forward(q, v, k, value_mask=MASK)
    dc = rng.standard_normal((B, TQ, DIM))
    att.backward(dc, cache)
    once = att.grads["scale"].copy()
    att.backward(dc, cache)
    np.testing.assert_allclose(att.grads["scale"], 2 * once)
    for a, b in zip((q, v, k), copies):
        np.testing.assert_array_equal(a, b)
    assert att(q, v, k)[0].dtype == np.float64
    assert fastrnn.DotAttention()(q.astype(np.float32), v)[0].dtype == np.float32


def test_state_dict_and_seed():
    a, b = fastrnn.AdditiveAttention(6, seed=4), fastrnn.AdditiveAttention(6, seed=4)
    np.testing.assert_array_equal(a.params["scale"], b.params["scale"])
    assert np.abs(a.params["scale"]).max() <= np.sqrt(3 / 6)
    c = fastrnn.AdditiveAttention(6, seed=5)
    c.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(c.params["scale"], a.params["scale"])
    assert fastrnn.DotAttention().params == {}
    assert fastrnn.AdditiveAttention(3, use_scale=False).params == {}


def test_bad_inputs():
    rng = np.random.default_rng(5)
    q, v, k = inputs(rng)
    att = make("additive", True)
    with pytest.raises(ValueError, match="query"):
        att(q[0], v)
    with pytest.raises(ValueError, match="query"):
        att(np.zeros((B, TQ, DIM + 1)), v, np.zeros((B, TV, DIM + 1)))
    with pytest.raises(ValueError, match="value"):
        att(q, v[:1])
    with pytest.raises(ValueError, match="key"):
        att(q, v, k[:, :2])
    with pytest.raises(TypeError, match="value_mask"):
        att(q, v, value_mask=MASK.astype(int))
    with pytest.raises(ValueError, match="value_mask"):
        att(q, v, value_mask=MASK[:, :2])
    with pytest.raises(TypeError, match="query"):
        att(q.astype(complex), v)
    _, _, cache = att.forward(q, v)
    with pytest.raises(ValueError, match="dcontext"):
        att.backward(np.zeros((B, TQ, DIM + 1)), cache)
    with pytest.raises(ValueError, match="dweights"):
        att.backward(np.zeros((B, TQ, DIM)), cache, np.zeros((B, TQ, TV + 1)))
    with pytest.raises(ValueError, match="cache"):
        make("additive", True).backward(np.zeros((B, TQ, DIM)), cache)
    with pytest.raises(ValueError, match="dim"):
        fastrnn.AdditiveAttention(0)
    with pytest.raises(TypeError, match="use_scale"):
        fastrnn.DotAttention(use_scale=1)
