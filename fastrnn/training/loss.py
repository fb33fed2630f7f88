"""Softmax cross-entropy loss and log-softmax, stable for large logits."""

import numpy as np

from fastrnn._validation import as_real_array

__all__ = ["log_softmax", "softmax_cross_entropy"]


def _float_array(value, name):
    """value as a float32/float64 array (other real dtypes become float64); a copy."""
    arr = as_real_array(value, name)
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    return np.array(arr, dtype=dtype)


def _log_softmax_last(z):
    """log_softmax over the last axis of a float array z, computed in place of z."""
    peak = z.max(axis=-1, keepdims=True)
    if not np.isfinite(peak).all():
        raise ValueError("logits: expected finite numbers or -inf, with at least one finite "
                         "logit per distribution")
    with np.errstate(over="ignore", under="ignore"):     # -> -inf and 0: wanted
        z -= peak
        z -= np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    return z


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
    z = _float_array(logits, "logits")
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1, got {z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError("logits: expected finite numbers or -inf, got NaN or +inf")
    return _log_softmax_last(z)


def softmax_cross_entropy(logits, targets, mask=None):
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

    Parameters
    ----------
    logits : array_like, shape (..., V)
        Finite numbers or -inf (at least one finite per position).
    targets : array_like of int, shape (...)
        Class of every position, in [0, V).
    mask : None or array_like of bool or non-negative numbers, shape (...)
        Weight of every position: False / 0 leaves a position out.

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
    z = _float_array(logits, "logits")
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1, got {z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError("logits: expected finite numbers or -inf, got NaN or +inf")
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
    logp = _log_softmax_last(z)
    picked = np.take_along_axis(logp, t[..., None].astype(np.intp), axis=-1)[..., 0]
    if total == 0:
        return 0.0, np.zeros_like(logp)
    # 0 * inf would be NaN: a position left out by the mask contributes nothing
    nll = np.where(w > 0, -picked.astype(np.float64), 0.0)
    loss = float(np.sum(w * nll) / total)
    with np.errstate(under="ignore"):
        grad = np.exp(logp)                               # softmax, in place of logp
    np.put_along_axis(grad, t[..., None].astype(np.intp),
                      np.take_along_axis(grad, t[..., None].astype(np.intp), axis=-1) - 1,
                      axis=-1)
    grad *= (w / total).astype(grad.dtype)[..., None]
    return loss, grad
