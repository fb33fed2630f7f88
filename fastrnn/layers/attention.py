"""fastrnn.AdditiveAttention and fastrnn.DotAttention: Bahdanau's and Luong's attention,
Keras 3's AdditiveAttention and Attention layers, forward and backward (NumPy batched
products)."""

import numpy as np

from fastrnn.layers.module import LayerCache, ParamModule
from fastrnn._validation import as_real_array, check_bool, check_positive_int

__all__ = ["AdditiveAttention", "DotAttention"]

_COMMON = """
    For query (B, Tq, dim), key (B, Tv, dim) (the value when not given) and value
    (B, Tv, dv)::

        weights[b, i, :] = softmax_j(score[b, i, j] over the keys j with value_mask[b, j])
        context[b, i]    = sum_j weights[b, i, j] value[b, j]

    Masked keys get weight 0.  A row whose keys are all masked has no key to attend
    to: its weights are uniform, 1 / Tv over every key, so its context is the mean
    of the values, and no gradient flows to its scores.  (Keras subtracts 1e9 from
    masked scores; in float32 that gives the same uniform weights, in float64 the
    unmasked softmax.)

    Methods
    -------
    att(query, value, key=None, value_mask=None) -> (context, weights)
        Inference.  value_mask is (B, Tv) bool, True for the keys to attend to.
    forward(query, value, key=None, value_mask=None) -> (context, weights, cache)
        Training forward; the cache references the inputs.
    backward(dcontext, cache, dweights=None) -> (dquery, dvalue, dkey)
        Gradients from those of context (and of weights, if given).  dkey is None
        when forward had no key: the key was the value, and its gradient is in
        dvalue.  Adds parameter gradients into grads.
    state_dict(), load_state_dict(mapping), zero_grad(), reset_parameters(seed)
"""


class _Attention(ParamModule):
    """Masked softmax over scores, the weighted sum of the values, and their backward;
    a subclass gives the scores and their backward."""

    def _array(self, value, name, ndim=3):
        arr = as_real_array(value, name)
        if arr.ndim != ndim:
            raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
        return arr.astype(self.dtype, copy=False)

    def _inputs(self, query, value, key, value_mask):
        q = self._array(query, "query")
        v = self._array(value, "value")
        k = v if key is None else self._array(key, "key")
        B, Tq, dim = q.shape
        if v.shape[0] != B or v.shape[1] == 0:
            raise ValueError(f"value: expected shape ({B}, Tv >= 1, dv) for query of shape "
                             f"{q.shape}, got shape {v.shape}")
        if k.shape[:2] != v.shape[:2] or k.shape[2] != dim:
            what = "key" if key is not None else "value"
            raise ValueError(f"{what}: expected shape ({B}, {v.shape[1]}, {dim}) (the "
                             f"query's features), got shape {k.shape}")
        self._check_features(dim)
        mask = None
        if value_mask is not None:
            mask = np.asarray(value_mask)
            if mask.dtype != np.bool_:
                raise TypeError(f"value_mask: expected a bool array, got dtype {mask.dtype}")
            if mask.shape != v.shape[:2]:
                raise ValueError(f"value_mask: expected shape {v.shape[:2]}, got shape "
                                 f"{mask.shape}")
        return q, v, k, mask

    def _check_features(self, dim):
        pass

    def _run(self, query, value, key, value_mask):
        q, v, k, mask = self._inputs(query, value, key, value_mask)
        score, extra = self._scores(q, k)
        empty = None
        if mask is not None:
            score = np.where(mask[:, None, :], score, -np.inf)
            empty = ~mask.any(axis=1)                  # rows with every key masked
            score[empty] = 0                           # -> uniform weights
        score -= score.max(axis=2, keepdims=True)
        weights = np.exp(score)
        weights /= weights.sum(axis=2, keepdims=True)
        context = weights @ v
        return context, weights, (q, v, k, key is not None, weights, empty, extra)

    def __call__(self, query, value, key=None, value_mask=None):
        """Inference: returns (context, weights); see the class docstring."""
        context, weights, _ = self._run(query, value, key, value_mask)
        return context, weights

    def forward(self, query, value, key=None, value_mask=None):
        """Training forward: returns (context, weights, cache)."""
        context, weights, data = self._run(query, value, key, value_mask)
        return context, weights, LayerCache(self, data)

    def backward(self, dcontext, cache, dweights=None):
        """Gradients of query, value and key from those of context and weights.

        ::

            dW = dcontext value^T + dweights,     dvalue = W^T dcontext
            dscore = W * (dW - sum_j W dW)        (0 on masked keys and on rows with
                                                   every key masked)

        then through the scores (see the class docstring).  Adds the parameters'
        gradients into grads.

        Returns
        -------
        dquery, dvalue : ndarrays shaped like query and value
        dkey : ndarray shaped like key, or None when forward had no key (its gradient
            is then part of dvalue)
        """
        q, v, k, has_key, w, empty, extra = self._check_cache(cache)
        dc = self._array(dcontext, "dcontext")
        expected = w.shape[:2] + (v.shape[2],)
        if dc.shape != expected:
            raise ValueError(f"dcontext: expected shape {expected}, got shape {dc.shape}")
        dw = dc @ v.transpose(0, 2, 1)
        if dweights is not None:
            d = self._array(dweights, "dweights")
            if d.shape != w.shape:
                raise ValueError(f"dweights: expected shape {w.shape}, got shape {d.shape}")
            dw = dw + d
        dv = w.transpose(0, 2, 1) @ dc
        dscore = w * (dw - np.sum(w * dw, axis=2, keepdims=True))
        if empty is not None:
            dscore[empty] = 0       # uniform whatever the scores
        dq, dk = self._scores_backward(dscore, q, k, extra)
        if not has_key:
            return dq, dv + dk, None
        return dq, dv, dk


class DotAttention(_Attention):
    __doc__ = """Luong's dot-product attention, Keras 3's ``Attention`` layer::

        score[b, i, j] = scale * sum_d query[b, i, d] key[b, j, d]

    with the learned scalar ``scale`` (initialised to 1) when use_scale, else 1.
    """ + _COMMON + """
    Parameters
    ----------
    use_scale : bool, default False
        Learn the scalar scale (params["scale"], shape (), as Keras's weight).
    dtype : float32 or float64, default float32
    """

    def __init__(self, *, use_scale=False, dtype=np.float32):
        self.use_scale = check_bool(use_scale, "use_scale")
        self._init_parameters(dtype, None)

    def reset_parameters(self, seed=None):
        """scale = 1 (Keras's initialiser); zero grads."""
        self.params.clear()
        self.grads.clear()
        if self.use_scale:
            self.params["scale"] = np.ones((), self.dtype)
            self.grads["scale"] = np.zeros((), self.dtype)

    def _scores(self, q, k):
        qk = q @ k.transpose(0, 2, 1)
        return (qk * self.params["scale"] if self.use_scale else qk.copy()), qk

    def _scores_backward(self, dscore, q, k, qk):
        if self.use_scale:
            self.grads["scale"] += np.sum(dscore * qk)
            dscore = dscore * self.params["scale"]
        return dscore @ k, dscore.transpose(0, 2, 1) @ q

    def __repr__(self):
        return f"DotAttention(use_scale={self.use_scale}, dtype={self.dtype.name})"


class AdditiveAttention(_Attention):
    __doc__ = """Bahdanau's additive attention, Keras 3's ``AdditiveAttention`` layer::

        score[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])

    with the learned ``scale`` (dim,) when use_scale, else 1.  The full Bahdanau
    score v^T tanh(W_a s_i + U_a h_j) is this layer after two fastrnn.Linear
    projections (dim outputs each, one with bias), ``scale`` playing v::

        Wa, Ua = fastrnn.Linear(H_dec, dim), fastrnn.Linear(H_enc, dim, bias=False)
        context, weights = att(Wa(s), values, key=Ua(h))
    """ + _COMMON + """
    Parameters
    ----------
    dim : int
        Features of query and key.
    use_scale : bool, default True
        Learn scale (params["scale"], shape (dim,)), initialised as Keras's
        glorot_uniform, U(-sqrt(3 / dim), sqrt(3 / dim)).
    dtype : float32 or float64, default float32
    seed : int, numpy Generator or None
        Seeds scale's initialisation.

    Notes
    -----
    Training forward keeps tanh(query + key) for every (b, i, j): B * Tq * Tv * dim
    numbers.
    """

    def __init__(self, dim, *, use_scale=True, dtype=np.float32, seed=None):
        self.dim = check_positive_int(dim, "dim")
        self.use_scale = check_bool(use_scale, "use_scale")
        self._init_parameters(dtype, seed)

    def reset_parameters(self, seed=None):
        """Draw scale from U(-sqrt(3 / dim), sqrt(3 / dim)) (glorot_uniform); zero grads."""
        self.params.clear()
        self.grads.clear()
        if self.use_scale:
            bound = np.sqrt(3.0 / self.dim)
            rng = np.random.default_rng(seed)
            self.params["scale"] = rng.uniform(-bound, bound, self.dim).astype(self.dtype)
            self.grads["scale"] = np.zeros(self.dim, self.dtype)

    def _check_features(self, dim):
        if dim != self.dim:
            raise ValueError(f"query: expected {self.dim} features (dim), got {dim}")

    def _scores(self, q, k):
        th = np.tanh(q[:, :, None, :] + k[:, None, :, :])     # (B, Tq, Tv, dim)
        score = th @ self.params["scale"] if self.use_scale else th.sum(axis=3)
        return score, th

    def _scores_backward(self, dscore, q, k, th):
        if self.use_scale:
            self.grads["scale"] += np.einsum("bij,bijd->d", dscore, th)
            dpre = dscore[..., None] * self.params["scale"] * (1 - th * th)
        else:
            dpre = dscore[..., None] * (1 - th * th)
        return dpre.sum(axis=2), dpre.sum(axis=1)

    def __repr__(self):
        return (f"AdditiveAttention({self.dim}, use_scale={self.use_scale}, "
                f"dtype={self.dtype.name})")
