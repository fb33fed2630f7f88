"""fastrnn.Embedding: a lookup table of vectors, torch.nn.Embedding's maths and names."""

import numpy as np

from fastrnn.kernels import gather
from fastrnn.kernels.threads import get_num_threads
from fastrnn.layers.module import LayerCache, ParamModule
from fastrnn._validation import as_real_array, check_positive_int

__all__ = ["Embedding"]


class Embedding(ParamModule):
    """A table of num_embeddings vectors of size embedding_dim, indexed by integers.

    ::

        y[..., :] = W[idx[...], :]

    and in backward, for every position n with index idx_n, ::

        dW[idx_n, :] += dy_n

    (an index that appears several times accumulates its gradients, in the
    order of the positions).  Both run compiled on fastrnn's threads; the
    threads split the table's rows in backward, so no two write one row and
    the result does not depend on the thread count.

    Parameters
    ----------
    num_embeddings : int
        Size V of the table (indices are in [0, V)).
    embedding_dim : int
        Size E of each vector.
    dtype : float32 or float64, default float32
    seed : int, numpy Generator or None
        Seeds the initialisation W ~ N(0, 1), torch's.

    Attributes
    ----------
    params, grads : dict with "weight", (V, E)
        backward() adds into grads until zero_grad().

    Methods
    -------
    layer(idx) -> y
        Inference: idx of any shape (...), y of shape (..., E).
    forward(idx) -> (y, cache)
    backward(dy, cache) -> None
        Adds the gradient of W into grads; indices have no gradient.
    state_dict(), load_state_dict(mapping), zero_grad(), reset_parameters(seed)
    """

    def __init__(self, num_embeddings, embedding_dim, *, dtype=np.float32, seed=None):
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self._init_parameters(dtype, seed)

    def reset_parameters(self, seed=None):
        """Draw W from N(0, 1) (torch's initialisation) and zero grads."""
        rng = np.random.default_rng(seed)
        shape = (self.num_embeddings, self.embedding_dim)
        self.params["weight"] = rng.standard_normal(shape).astype(self.dtype)
        self.grads["weight"] = np.zeros(shape, self.dtype)

    def _indices(self, idx):
        arr = np.asarray(idx)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"idx: expected integer indices, got an array of dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_embeddings):
            raise ValueError(f"idx: expected indices in [0, {self.num_embeddings}), got values "
                             f"in [{arr.min()}, {arr.max()}]")
        return arr.astype(np.int64, copy=False)

    def _lookup(self, arr):
        W = np.ascontiguousarray(self.params["weight"], dtype=self.dtype)
        y = self._spares().empty("y", (arr.size, self.embedding_dim), self.dtype)
        gather.gather(W, np.ascontiguousarray(arr.ravel()), y, get_num_threads())
        return y.reshape(arr.shape + (self.embedding_dim,))

    def __call__(self, idx):
        """Inference: the vectors W[idx], shape idx.shape + (E,)."""
        return self._lookup(self._indices(idx))

    def forward(self, idx):
        """Training forward: returns (y, cache) with y = W[idx]."""
        arr = self._indices(idx)
        return self._lookup(arr), LayerCache(self, arr)

    def backward(self, dy, cache):
        """Add dW[idx_n] += dy_n into grads["weight"]; returns None (indices have no gradient).

        Parameters
        ----------
        dy : array_like, shape idx.shape + (E,)
        cache : the cache returned by this layer's forward()
        """
        idx = self._check_cache(cache)
        d = as_real_array(dy, "dy")
        expected = idx.shape + (self.embedding_dim,)
        if d.shape != expected:
            raise ValueError(f"dy: expected shape {expected}, got shape {d.shape}")
        d2 = np.ascontiguousarray(d.reshape(-1, self.embedding_dim), dtype=self.dtype)
        g = self.grads["weight"]
        if g.dtype == self.dtype and g.flags.c_contiguous and g.flags.writeable:
            gather.scatter_add(g, np.ascontiguousarray(idx.ravel()), d2, get_num_threads())
        else:
            np.add.at(g, idx.ravel(), d2)
        return None

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, dtype={self.dtype.name})"
