"""fastrnn.Linear: an affine map over the last axis, torch.nn.Linear's maths and names."""

import numpy as np

from fastrnn.kernels import dense
from fastrnn.kernels.threads import get_num_threads
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

    keep_packed : bool, default False
        Keep the weights packed for fastrnn's GEMM between calls, instead of
        packing them at every call of 4 rows or more (about one pass over W).
        The pack is refreshed when the layer's weights version changes:
        fastrnn's optimizers, load_state_dict and reset_parameters bump it.
        A write into params["weight"] by other means is NOT seen until
        params_changed() is called: leave keep_packed off unless the
        weights change only through those.

    The products run on fastrnn's packed GEMM and thread pool, without the
    GIL; each output sums in a fixed order, so results do not depend on the
    thread count.

    Methods
    -------
    layer(x) -> y
        Inference.
    forward(x) -> (y, cache)
        Training forward; the cache references x.
    backward(dy, cache) -> dx
        Adds the parameter gradients into grads.
    params_changed()
        Say that params were written in place (see keep_packed).
    state_dict(), load_state_dict(mapping), zero_grad(), reset_parameters(seed)
    """

    keep_packed = False

    def __init__(self, in_features, out_features, *, bias=True, dtype=np.float32, seed=None):
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.bias = bool(bias)
        self._init_parameters(dtype, seed)

    def params_changed(self):
        """Invalidate the kept pack of the weights (they were changed in place)."""
        self._version = getattr(self, "_version", 0) + 1

    def load_state_dict(self, source, prefix=""):
        super().load_state_dict(source, prefix)
        self.params_changed()

    load_state_dict.__doc__ = ParamModule.load_state_dict.__doc__

    def _buffer(self, name, size):
        """A work buffer of size elements kept between calls (no page faults per step)."""
        work = self.__dict__.setdefault("_work", {})
        buf = work.get(name)
        if buf is None or buf.size != size or buf.dtype != self.dtype:
            buf = work[name] = np.empty(size, self.dtype)
        return buf

    def _weight_pack(self, W, rows):
        """The work buffer for W packed, and whether it already holds this W packed."""
        size = dense.pack_size(self.out_features, self.in_features, self.dtype.itemsize)
        if not dense.packs_forward(rows):
            return np.empty(0, self.dtype), False
        wp = self._buffer("weight_packed", size)
        key = (getattr(self, "_version", 0), id(self.params["weight"]),
               W.__array_interface__["data"][0])
        fresh = self.keep_packed and self.__dict__.get("_packed_key") == key
        self._packed_key = key if self.keep_packed else None
        return wp, fresh

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
        self.params_changed()

    def _input(self, x):
        arr = as_real_array(x, "x")
        if arr.ndim == 0 or arr.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., {self.in_features}), got shape "
                             f"{arr.shape}")
        return arr.astype(self.dtype, copy=False)

    def _param(self, name):
        """params[name] as a C-contiguous array of the layer's dtype (a copy if it is not)."""
        return np.ascontiguousarray(self.params[name], dtype=self.dtype)

    def _affine(self, x):
        x2 = np.ascontiguousarray(x.reshape(-1, self.in_features))
        W = self._param("weight")
        b = self._param("bias") if self.bias else np.empty(0, self.dtype)
        y = np.empty((x2.shape[0], self.out_features), self.dtype)
        wp, fresh = self._weight_pack(W, x2.shape[0])
        dense.forward(x2, W, b, y, wp, get_num_threads(), fresh)
        return y.reshape(x.shape[:-1] + (self.out_features,))

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
        d2 = np.ascontiguousarray(d.reshape(-1, self.out_features), dtype=self.dtype)
        x2 = np.ascontiguousarray(x.reshape(-1, self.in_features))
        M, N, K = x2.shape[0], self.out_features, self.in_features
        dx = np.empty((M, K), self.dtype)
        dW = self._grad_target("weight")
        db = self._grad_target("bias") if self.bias else np.empty(0, self.dtype)
        item, threads = self.dtype.itemsize, get_num_threads()
        dense.backward(x2, self._param("weight"), d2, dx, dW, db,
                       self._buffer("weight_t_packed", dense.pack_size(K, N, item)),
                       self._buffer("x_t_packed", dense.pack_size(K, M, item)),
                       self._buffer("dy_t_blocks", dense.dw_work_size(M, threads)), threads)
        self._grad_done("weight", dW)
        if self.bias:
            self._grad_done("bias", db)
        return dx.reshape(x.shape)

    def _grad_target(self, name):
        """Where backward adds grads[name]: the array itself when the kernels can write it,
        else a zeroed temporary that _grad_done adds in."""
        g = self.grads[name]
        if (isinstance(g, np.ndarray) and g.dtype == self.dtype and g.flags.c_contiguous
                and g.flags.writeable):
            return g
        return np.zeros(self.params[name].shape, self.dtype)

    def _grad_done(self, name, target):
        if target is not self.grads[name]:
            self.grads[name] += target

    def __repr__(self):
        extra = "" if self.bias else ", bias=False"
        return (f"Linear({self.in_features}, {self.out_features}{extra}, "
                f"dtype={self.dtype.name})")
