"""fastrnn.Embedding: lookup, gradient by finite differences (float64), torch parity, errors."""

import numpy as np
import pytest

import fastrnn

EPS = 1e-6


def test_lookup_and_shapes():
    emb = fastrnn.Embedding(7, 3, dtype=np.float64, seed=0)
    W = emb.params["weight"]
    assert W.shape == (7, 3) and emb.grads["weight"].shape == (7, 3)
    idx = np.array([[0, 6], [3, 3], [5, 1]])
    y = emb(idx)
    assert y.shape == (3, 2, 3) and y.dtype == np.float64
    np.testing.assert_array_equal(y[1, 0], W[3])
    np.testing.assert_array_equal(y[2, 1], W[1])
    y2, _ = emb.forward(idx)
    np.testing.assert_array_equal(y, y2)
    y[0, 0] = 99.0                      # the output is a copy, not a view of W
    assert W[0, 0] != 99.0
    assert emb(4).shape == (3,)         # a scalar index gives one vector


def test_init_is_standard_normal_and_seeded():
    a = fastrnn.Embedding(300, 40, seed=1).params["weight"]
    b = fastrnn.Embedding(300, 40, seed=1).params["weight"]
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02


def test_gradient_by_finite_differences_with_repeated_indices():
    rng = np.random.default_rng(2)
    emb = fastrnn.Embedding(5, 3, dtype=np.float64, seed=3)
    idx = np.array([[1, 4, 1], [0, 1, 2]])      # index 1 three times, index 3 never
    R = rng.standard_normal(idx.shape + (3,))

    def loss():
        return float(np.sum(emb(idx) * R))

    _, cache = emb.forward(idx)
    assert emb.backward(R, cache) is None
    W = emb.params["weight"]
    num = np.zeros_like(W)
    for i in np.ndindex(W.shape):
        orig = W[i]
        W[i] = orig + EPS
        fp = loss()
        W[i] = orig - EPS
        fm = loss()
        W[i] = orig
        num[i] = (fp - fm) / (2 * EPS)
    np.testing.assert_allclose(emb.grads["weight"], num, rtol=1e-7, atol=1e-8)
    np.testing.assert_array_equal(emb.grads["weight"][3], 0.0)
    # grads accumulate until zero_grad
    emb.backward(R, cache)
    np.testing.assert_allclose(emb.grads["weight"], 2 * num, rtol=1e-7, atol=1e-8)
    emb.zero_grad()
    assert not emb.grads["weight"].any()


def test_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    emb = fastrnn.Embedding(6, 4, seed=6)
    t = torch.nn.Embedding(6, 4)
    t.load_state_dict({"weight": torch.from_numpy(emb.params["weight"].copy())})
    idx = rng.integers(0, 6, size=(5, 3))
    dy = rng.standard_normal((5, 3, 4)).astype(np.float32)
    out = t(torch.from_numpy(idx))
    out.backward(torch.from_numpy(dy))
    y, cache = emb.forward(idx)
    emb.backward(dy, cache)
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(emb.grads["weight"], t.weight.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_and_checks():
    a = fastrnn.Embedding(4, 2, seed=0)
    b = fastrnn.Embedding(4, 2, seed=1)
    ref = b.params["weight"]
    b.load_state_dict(a.state_dict())
    assert b.params["weight"] is ref
    np.testing.assert_array_equal(b.params["weight"], a.params["weight"])
    with pytest.raises(ValueError, match="weight"):
        b.load_state_dict({"weight": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({})


def test_bad_input():
    emb = fastrnn.Embedding(4, 2)
    with pytest.raises(TypeError, match="idx"):
        emb(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="idx"):
        emb(np.array([0, 4]))
    with pytest.raises(ValueError, match="idx"):
        emb(np.array([-1]))
    with pytest.raises(ValueError, match="num_embeddings"):
        fastrnn.Embedding(0, 2)
    with pytest.raises(TypeError, match="embedding_dim"):
        fastrnn.Embedding(3, 2.5)
    _, cache = emb.forward(np.array([1, 2]))
    with pytest.raises(ValueError, match="dy"):
        emb.backward(np.zeros((2, 3)), cache)
    other = fastrnn.Embedding(4, 2)
    with pytest.raises(ValueError, match="cache"):
        other.backward(np.zeros((2, 2)), cache)
    with pytest.raises(TypeError, match="cache"):
        emb.backward(np.zeros((2, 2)), None)
