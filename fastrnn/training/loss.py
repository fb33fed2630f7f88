"""Softmax cross-entropy loss and log-softmax, stable for large logits."""

import numpy as np

from fastrnn._validation import as_real_array
from fastrnn.kernels import xent
from fastrnn.kernels.threads import get_num_threads

__all__ = ["log_softmax", "softmax_cross_entropy"]


def _float_rows(value, name):
    """value as a C-contiguous float32/float64 array (other real dtypes become float64),
    not copied when it already is one; and its rows (n, V)."""
    arr = as_real_array(value, name)
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name}: expected shape (..., V) with V >= 1, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    return arr, arr.reshape(-1, arr.shape[-1])


_BAD_LOGITS = ("logits: expected finite numbers or -inf, with at least one finite logit per "
               "distribution (got NaN, +inf or a row of -inf)")


def log_softmax(logits):
    """Log-probabilities of softmax over the last axis, without overflow.

    ::

        log_softmax(z)_i = (z_i - m) - log(sum_j exp(z_j - m)),   m = max_j z_j

    Parameters
    ----------
    logits : array_like, shape (..., V)
        Finite numbers or -inf, at least one finite per distribution.

    Returns
    -------
    ndarray shaped like logits, float32 for float32 input, else float64.
    """
    z, rows = _float_rows(logits, "logits")
    out = np.empty_like(z)
    xent.log_softmax(rows, out.reshape(rows.shape), get_num_threads())
    if np.isnan(out).any():
        raise ValueError(_BAD_LOGITS)
    return out


def softmax_cross_entropy(logits, targets, mask=None, *, out=None):
    r"""Mean cross-entropy of softmax(logits) against integer targets, and its gradient.

    For every position n (all axes but the last), with weights w_n (the mask,
    1 everywhere when mask is None)::

        log p_n   = log_softmax(logits_n)
        loss      = sum_n w_n * (-log p_n[targets_n]) / sum_n w_n
        dlogits_n = w_n / sum_n w_n * (softmax(logits_n) - onehot(targets_n))

    log_softmax subtracts the row maximum before exp, so large logits neither
    overflow nor lose the loss to rounding.  With a boolean mask the loss is
    the mean over the unmasked (True) positions; when every weight is zero
    the loss and the gradient are zero.

    One compiled pass per position on fastrnn's threads (max, exp and sum,
    scale), the position's row staying in cache; each row sums in a fixed
    order, so the result does not depend on the thread count.

    Parameters
    ----------
    logits : array_like, shape (..., V)
        Finite numbers or -inf (at least one finite per position).
    targets : array_like of int, shape (...)
        Class of every position, in [0, V).
    mask : None or array_like of bool or non-negative numbers, shape (...)
        Weight of every position: False / 0 leaves a position out.
    out : None or ndarray, keyword-only
        Where to write dlogits: a C-contiguous writable array of the logits'
        shape and float dtype.  It may be the logits array itself, which then
        holds the gradient in place of the logits (no second array of the
        logits' size; on an error its contents are unspecified).

    Returns
    -------
    loss : float
    dlogits : ndarray, shape (..., V)
        d loss / d logits, float32 for float32 logits, else float64.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> loss, d = fastrnn.softmax_cross_entropy(np.zeros((2, 4)), [1, 3])
    >>> round(loss, 6), round(float(np.log(4)), 6)
    (1.386294, 1.386294)
    """
    z, rows = _float_rows(logits, "logits")
    V = z.shape[-1]
    t = np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets: expected integers, got an array of dtype {t.dtype}")
    if t.shape != z.shape[:-1]:
        raise ValueError(f"targets: expected shape {z.shape[:-1]} (the logits' shape without "
                         f"the last axis), got shape {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= V):
        raise ValueError(f"targets: expected classes in [0, {V}), got values in "
                         f"[{t.min()}, {t.max()}]")
    if mask is None:
        w = np.ones(t.shape, np.float64)
    else:
        w = np.array(as_real_array(mask, "mask"), dtype=np.float64)
        if w.shape != t.shape:
            raise ValueError(f"mask: expected shape {t.shape} (like targets), got shape "
                             f"{w.shape}")
        if not (np.isfinite(w).all() and (w >= 0).all()):
            raise ValueError("mask: expected booleans or finite non-negative weights")
    total = w.sum()
    grad = _gradient_array(out, z)
    scale = (w / total if total > 0 else w).ravel()
    nll = np.empty(rows.shape[0], np.float64)
    xent.cross_entropy(rows, np.ascontiguousarray(t.ravel(), dtype=np.int64), scale,
                       grad.reshape(rows.shape), nll, get_num_threads())
    if np.isnan(nll).any():
        raise ValueError(_BAD_LOGITS)
    if total == 0:
        return 0.0, grad
    # 0 * inf would be NaN: a position left out by the mask contributes nothing
    loss = float(np.sum(np.where(w.ravel() > 0, scale * nll, 0.0)))
    return loss, grad


def _gradient_array(out, z):
    """The array softmax_cross_entropy writes dlogits into: out (checked) or a new one."""
    if out is None:
        return np.empty_like(z)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected an ndarray, got {type(out).__name__}")
    if out.shape != z.shape or out.dtype != z.dtype:
        raise ValueError(f"out: expected shape {z.shape} and dtype {z.dtype} (the logits'), "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out: expected a C-contiguous, writable array")
    if np.may_share_memory(out, z) and out.__array_interface__["data"][0] != \
            z.__array_interface__["data"][0]:
        raise ValueError("out: may be the logits array itself, but not overlap it otherwise")
    return out
