"""fastrnn.Embedding's compiled gather and scatter-add (fastrnn/kernels/gather.pyx):
repeated indices against numpy.add.at and torch, bitwise over thread counts."""

import numpy as np
import pytest

import fastrnn


def threads(n):
    return fastrnn.set_num_threads(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7, 3), (40, 60)])
def test_against_numpy_with_repeated_indices(dtype, shape):
    rng = np.random.default_rng(len(shape))
    emb = fastrnn.Embedding(50, 9, dtype=dtype, seed=1)
    idx = rng.integers(0, 12, size=shape)          # few rows: many repeats
    dy = rng.standard_normal(shape + (9,)).astype(dtype)
    y, cache = emb.forward(idx)
    np.testing.assert_array_equal(y, emb.params["weight"][idx])
    np.testing.assert_array_equal(emb(idx), y)
    emb.grads["weight"] += 0.5
    emb.backward(dy, cache)
    expected = np.full((50, 9), 0.5, dtype)
    np.add.at(expected, idx.ravel(), dy.reshape(-1, 9))
    np.testing.assert_array_equal(emb.grads["weight"], expected)     # same order of sums


def test_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    emb = fastrnn.Embedding(30, 5, dtype=np.float64, seed=2)
    ref = torch.nn.Embedding(30, 5).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(emb.params["weight"]))
    idx = rng.integers(0, 30, size=(20, 8))
    dy = rng.standard_normal((20, 8, 5))
    yt = ref(torch.from_numpy(idx))
    yt.backward(torch.from_numpy(dy))
    y, cache = emb.forward(idx)
    emb.backward(dy, cache)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(emb.grads["weight"], ref.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_over_thread_counts(dtype):
    rng = np.random.default_rng(4)
    idx = rng.zipf(1.3, size=(20, 60)) % 1000        # skewed, with many repeats
    dy = rng.standard_normal((20, 60, 64)).astype(dtype)
    grads = []
    for n in (1, 2):
        previous = threads(n)
        try:
            emb = fastrnn.Embedding(1000, 64, dtype=dtype, seed=5)
            y, cache = emb.forward(idx)
            emb.backward(dy, cache)
            grads.append((y, emb.grads["weight"].copy()))
        finally:
            threads(previous)
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


def test_bad_indices_are_errors():
    emb = fastrnn.Embedding(10, 3)
    with pytest.raises(ValueError, match="idx"):
        emb(np.array([0, 10]))
    with pytest.raises(ValueError, match="idx"):
        emb(np.array([-1]))
    with pytest.raises(TypeError, match="idx"):
        emb(np.array([0.5]))
