"""fastrnn.Linear: an affine map over the last axis, torch.nn.Linear's maths and names."""

import numpy as np

from fastrnn.layers.module import LayerCache, ParamModule
from fastrnn._validation import as_real_array, check_positive_int

__all__ = ["Linear"]


class Linear(ParamModule):
    """Affine map of the last axis: y = x W^T + b.

    For x of shape (..., D_in), with W (D_out, D_in) and b (D_out,)::

        y[..., j] = sum_i x[..., i] W[j, i] + b[j]

    and in backward, summing over every leading position n::

        dx_n = dy_n W,    dW += sum_n dy_n^T x_n,    db += sum_n dy_n

    Parameters
    ----------
    in_features : int
        Size D_in of the input's last axis.
    out_features : int
        Size D_out of the output's last axis.
    bias : bool, default True
    dtype : float32 or float64, default float32
        Inputs of another real dtype are converted.
    seed : int, numpy Generator or None
        Seeds the initialisation U(-1/sqrt(D_in), 1/sqrt(D_in)) of W and b
        (torch's bound).

    Attributes
    ----------
    params, grads : dict with "weight" (D_out, D_in) and "bias" (D_out,)
        backward() adds into grads until zero_grad().

    Methods
    -------
    layer(x) -> y
        Inference.
    forward(x) -> (y, cache)
        Training forward; the cache references x.
    backward(dy, cache) -> dx
        Adds the parameter gradients into grads.
    state_dict(), load_state_dict(mapping), zero_grad(), reset_parameters(seed)
    """

    def __init__(self, in_features, out_features, *, bias=True, dtype=np.float32, seed=None):
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.bias = bool(bias)
        self._init_parameters(dtype, seed)

    def reset_parameters(self, seed=None):
        """Draw W and b from U(-1/sqrt(D_in), 1/sqrt(D_in)) (torch's bound) and zero grads."""
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        self.params.clear()
        self.grads.clear()
        for name, shape in shapes.items():
            self.params[name] = rng.uniform(-bound, bound, size=shape).astype(self.dtype)
            self.grads[name] = np.zeros(shape, self.dtype)

    def _input(self, x):
        arr = as_real_array(x, "x")
        if arr.ndim == 0 or arr.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., {self.in_features}), got shape "
                             f"{arr.shape}")
        return arr.astype(self.dtype, copy=False)

    def _affine(self, x):
        y = x @ self.params["weight"].T
        if self.bias:
            y += self.params["bias"]
        return y

    def __call__(self, x):
        """Inference: y = x W^T + b over the last axis."""
        return self._affine(self._input(x))

    def forward(self, x):
        """Training forward: returns (y, cache)."""
        arr = self._input(x)
        return self._affine(arr), LayerCache(self, arr)

    def backward(self, dy, cache):
        """Gradient of the input, dx = dy W; adds dW and db into grads.

        Parameters
        ----------
        dy : array_like, shape (..., D_out), the x of forward's leading shape
        cache : the cache returned by this layer's forward()

        Returns
        -------
        dx : ndarray shaped like x
        """
        x = self._check_cache(cache)
        d = as_real_array(dy, "dy")
        expected = x.shape[:-1] + (self.out_features,)
        if d.shape != expected:
            raise ValueError(f"dy: expected shape {expected}, got shape {d.shape}")
        d = d.astype(self.dtype, copy=False)
        d2 = d.reshape(-1, self.out_features)
        x2 = x.reshape(-1, self.in_features)
        self.grads["weight"] += d2.T @ x2
        if self.bias:
            self.grads["bias"] += d2.sum(axis=0)
        return d @ self.params["weight"]

    def __repr__(self):
        extra = "" if self.bias else ", bias=False"
        return (f"Linear({self.in_features}, {self.out_features}{extra}, "
                f"dtype={self.dtype.name})")
