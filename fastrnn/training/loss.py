"""Softmax cross-entropy loss and log-softmax, stable for large logits."""

import numpy as np

from fastrnn._validation import as_real_array
from fastrnn.kernels import xent
from fastrnn.kernels.threads import get_num_threads

__all__ = ["log_softmax", "softmax_cross_entropy"]

# Fewer logits than this are done on one thread: waking the pool costs more.
_THREADED_MIN_LOGITS = 1 << 14


def _threads(rows):
    return get_num_threads() if rows.size >= _THREADED_MIN_LOGITS else 1


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
    xent.log_softmax(rows, out.reshape(rows.shape), _threads(rows))
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
    t, w, scale = targets_and_scale(targets, mask, z.shape[:-1], z.shape[-1])
    grad = _gradient_array(out, z)
    nll = np.empty(rows.shape[0], np.float64)
    xent.cross_entropy(rows, t, scale, grad.reshape(rows.shape), nll, _threads(rows))
    return mean_loss(w, scale, nll), grad


def targets_and_scale(targets, mask, shape, V):
    """Checked targets (int64, flat), weights w (float64, flat) and each position's
    share of the mean, scale = w / sum w (w itself when every weight is 0), for
    positions of the given shape and V classes."""
    t = np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets: expected integers, got an array of dtype {t.dtype}")
    if t.shape != tuple(shape):
        raise ValueError(f"targets: expected shape {tuple(shape)} (the logits' shape without "
                         f"the last axis), got shape {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= V):
        raise ValueError(f"targets: expected classes in [0, {V}), got values in "
                         f"[{t.min()}, {t.max()}]")
    if mask is None:
        w = np.ones(t.size, np.float64)
    else:
        w = np.array(as_real_array(mask, "mask"), dtype=np.float64)
        if w.shape != t.shape:
            raise ValueError(f"mask: expected shape {t.shape} (like targets), got shape "
                             f"{w.shape}")
        if not (np.isfinite(w).all() and (w >= 0).all()):
            raise ValueError("mask: expected booleans or finite non-negative weights")
        w = w.ravel()
    total = w.sum()
    scale = w / total if total > 0 else w
    return np.ascontiguousarray(t.ravel(), dtype=np.int64), w, scale


def mean_loss(w, scale, nll):
    """The weighted mean of the per-position losses nll; ValueError for bad logits
    (a NaN loss)."""
    if np.isnan(nll).any():
        raise ValueError(_BAD_LOGITS)
    # 0 * inf would be NaN: a position left out by the mask contributes nothing
    return float(np.sum(np.where(w > 0, scale * nll, 0.0)))


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
