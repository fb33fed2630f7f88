"""fastrnn.Linear: an affine map over the last axis, torch.nn.Linear's maths and names."""

import functools

import numpy as np

from fastrnn.kernels import dense
from fastrnn.kernels.threads import get_num_threads
from fastrnn.layers.module import LayerCache, ParamModule
from fastrnn.runtime.machine import cache_sizes
from fastrnn.training.loss import mean_loss, targets_and_scale
from fastrnn._validation import as_real_array, check_positive_int

__all__ = ["Linear"]

# Products with fewer multiply-adds than this run on one thread: waking the
# pool's other threads costs microseconds (much more on a loaded machine), as
# much as such a product (one step of sampling: 1 x 128 times 128 x 54).
_THREADED_MIN_MACS = 1 << 17

# Rows per block of softmax_cross_entropy's compiled pass (kernels/dense.pyx)
# with its backward, at the least: large enough that the products run at the
# GEMM's pace (48 rows cost 10% more than the unfused calls, 256 to 600 rows 10%
# less, on a Zen 4 at V = 10,000).  Each block reads both packed weights again,
# so where L3 holds more, blocks grow (_xent_block_rows).  The loss alone takes
# smaller blocks (_loss_block_rows).
_XENT_BLOCK_ROWS = 256


@functools.lru_cache(maxsize=1)
def _l2_bytes():
    return cache_sizes()["L2"]


@functools.lru_cache(maxsize=1)
def _l3_bytes():
    return cache_sizes().get("L3", 0)


def _xent_block_rows(rows_per_thread, n_classes, itemsize, threads):
    """Rows per block of the training pass: each block reads both packed weights
    again, so as many rows as a thread's share of half of L3 holds the logits of
    (the loss and dX read them back), at least _XENT_BLOCK_ROWS, at most the
    thread's share of the rows."""
    fit = _l3_bytes() // 2 // max(threads, 1) // (n_classes * itemsize) // 12 * 12
    return int(max(min(fit, rows_per_thread), min(_XENT_BLOCK_ROWS, rows_per_thread), 1))


def _loss_block_rows(n_classes, itemsize):
    """Rows per block when only the loss is wanted: each task's block of logits
    then lives in work space of its own, reused block after block, so a block is
    sized to L2 (where the products write it and the row passes read it back;
    each block streams the packed weights once more, so not smaller), in whole
    register tiles of 4 and of 6 rows (12) where L2 holds that many, else of 4,
    at most _XENT_BLOCK_ROWS."""
    rows = _l2_bytes() // (n_classes * itemsize)
    rows = rows // 12 * 12 if rows >= 12 else rows // 4 * 4
    return int(min(max(rows, 4), _XENT_BLOCK_ROWS))


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
    softmax_cross_entropy(x, targets, mask=None, backward=True) -> (loss, dx)
        The layer as a softmax classifier's output: forward, the loss and
        backward in one pass (see there); backward=False: the loss only.
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

    def _threads(self, rows):
        """fastrnn's thread count, or 1 for a product too small to share."""
        if rows * self.in_features * self.out_features < _THREADED_MIN_MACS:
            return 1
        return get_num_threads()

    def _affine(self, x):
        x2 = np.ascontiguousarray(x.reshape(-1, self.in_features))
        W = self._param("weight")
        b = self._param("bias") if self.bias else np.empty(0, self.dtype)
        y = self._spares().empty("y", (x2.shape[0], self.out_features), self.dtype)
        wp, fresh = self._weight_pack(W, x2.shape[0])
        dense.forward(x2, W, b, y, wp, self._threads(x2.shape[0]), fresh)
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
        dx = self._spares().empty("dx", (M, K), self.dtype)
        dW = self._grad_target("weight")
        db = self._grad_target("bias") if self.bias else np.empty(0, self.dtype)
        item, threads = self.dtype.itemsize, self._threads(M)
        dense.backward(x2, self._param("weight"), d2, dx, dW, db,
                       self._buffer("weight_t_packed", dense.pack_size(K, N, item)),
                       self._buffer("x_t_packed", dense.pack_size(K, M, item)), threads)
        self._grad_done("weight", dW)
        if self.bias:
            self._grad_done("bias", db)
        return dx.reshape(x.shape)

    def softmax_cross_entropy(self, x, targets, mask=None, *, backward=True):
        r"""Forward, softmax cross-entropy and backward of this layer as one compiled job.

        With z = x W^T + b over every leading position n and weights w_n (the
        mask; 1 everywhere when None), as fastrnn.softmax_cross_entropy::

            loss   = sum_n w_n * (log sum_j exp(z_nj) - z_n[targets_n]) / sum_n w_n
            dz_n   = w_n / sum_n w_n * (softmax(z_n) - onehot(targets_n))
            dx_n   = dz_n W,    dW += sum_n dz_n^T x_n,    db += sum_n dz_n

        The same numbers as ``z, c = layer.forward(x)``,
        ``softmax_cross_entropy(z, targets, mask, out=z)`` and
        ``layer.backward(dz, c)``, in fewer passes over the logits: each block
        of rows gets its logits, their gradient (in their place) and its rows
        of dx while it is in cache, and the logits are never returned.  Their
        buffer (positions x out_features elements) is kept by the layer for
        the next call, as are the packed weights.

        Parameters
        ----------
        x : array_like, shape (..., in_features)
        targets : array_like of int, shape (...)
            Class of every position, in [0, out_features).
        mask : None or array_like of bool or non-negative numbers, shape (...)
            Weight of every position: False / 0 leaves a position out.
        backward : bool, default True
            False: the loss only (scoring held-out data), in the same
            blocks; grads are not touched and dx is None.

        Returns
        -------
        loss : float
        dx : ndarray shaped like x, or None when not backward
            d loss / d x.  dW and db are added into grads.

        Raises
        ------
        ValueError
            For bad targets or mask, or logits that are NaN or +inf (grads are
            then left unchanged).
        """
        arr = self._input(x)
        x2 = np.ascontiguousarray(arr.reshape(-1, self.in_features))
        M, N, K = x2.shape[0], self.out_features, self.in_features
        t, w, scale = targets_and_scale(targets, mask, arr.shape[:-1], N)
        item, threads = self.dtype.itemsize, self._threads(M)
        self._packed_key = None          # the kept pack buffer is written here
        nll, b = np.empty(M, np.float64), self._param("bias") if self.bias else None
        wp = self._buffer("weight_packed", dense.pack_size(N, K, item))
        if not backward:
            none = np.empty(0, self.dtype)
            rows = min(_loss_block_rows(N, item), -(-M // threads))
            g = self._buffer("loss_blocks", threads * rows * N).reshape(-1, N)
            dense.forward_xent_backward(x2, self._param("weight"), none if b is None else b,
                                        t, scale, g, nll, none.reshape(0, K),
                                        none.reshape(0, K), none, wp, none, none, rows,
                                        threads)
            return mean_loss(w, scale, nll), None
        g = self._buffer("logits_grad", M * N).reshape(M, N)
        dx = self._spares().empty("dx", (M, K), self.dtype)
        dW = self._grad_target("weight")
        db = self._grad_target("bias") if self.bias else np.empty(0, self.dtype)
        dense.forward_xent_backward(
            x2, self._param("weight"), np.empty(0, self.dtype) if b is None else b, t,
            scale, g, nll, dx, dW, db, wp,
            self._buffer("weight_t_packed", dense.pack_size(K, N, item)),
            self._buffer("x_t_packed", dense.pack_size(K, M, item)),
            _xent_block_rows(-(-M // threads), N, item, threads), threads)
        loss = mean_loss(w, scale, nll)      # raises for bad logits: grads untouched
        self._grad_done("weight", dW)
        if self.bias:
            self._grad_done("bias", db)
        return loss, dx.reshape(arr.shape)

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
