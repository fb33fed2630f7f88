"""Gradient clipping, in place: by the total norm, or element-wise by value.

Both functions take the gradients as one array, a dict of arrays (a layer's
``grads``), or an iterable whose items are arrays or dicts of arrays, so that
the gradients of several layers are clipped together::

    fastrnn.clip_grad_norm([embedding.grads, lstm.grads, linear.grads], 5.0)
"""

import math

import numpy as np

from fastrnn._validation import check_real
from fastrnn.kernels import optim_step
from fastrnn.kernels.threads import get_num_threads

__all__ = ["clip_grad_norm", "clip_grad_value"]

# Added to the total norm in the scaling factor, as torch.nn.utils.clip_grad_norm_ does.
_EPS = 1e-6


def _gradient_arrays(grads):
    """The arrays of grads as a list, each checked to be a writable floating ndarray."""
    if isinstance(grads, np.ndarray):
        items = [grads]
    elif isinstance(grads, dict):
        items = list(grads.values())
    else:
        try:
            items = list(grads)
        except TypeError:
            raise TypeError(f"grads: expected an ndarray, a dict of ndarrays or an iterable of "
                            f"them, got {type(grads).__name__}") from None
        flat = []
        for item in items:
            flat.extend(item.values() if isinstance(item, dict) else [item])
        items = flat
    for i, a in enumerate(items):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"grads: expected ndarrays (clipping works in place), got "
                            f"{type(a).__name__} at position {i}")
        if a.dtype.kind != "f":
            raise TypeError(f"grads: expected floating-point arrays, got dtype {a.dtype} at "
                            f"position {i}")
        if not a.flags.writeable:
            raise ValueError(f"grads: the array at position {i} is read-only; clipping works "
                             f"in place")
    return items


def _check_bound(value, name):
    return check_real(value, name, "a non-negative number", lambda x: x >= 0)


def _check_norm_type(norm_type):
    return check_real(norm_type, "norm_type", "a number >= 1 or inf", lambda p: p >= 1)


def _total_norm(arrays, p):
    """(sum over every element of every array of |g|**p)**(1/p), or max |g| for p = inf.

    Computed in float64 and scaled by the largest |g| first, so that neither
    large nor tiny gradients overflow or underflow in |g|**p.  NaN anywhere
    gives NaN; otherwise an infinite element gives inf.
    """
    peaks = [np.max(np.abs(a)) for a in arrays if a.size]
    if not peaks:
        return 0.0
    peak = float(np.max(np.array(peaks, dtype=np.float64)))   # NaN propagates
    if p == math.inf or peak == 0 or not math.isfinite(peak):
        return peak
    acc = 0.0
    for a in arrays:
        if a.size:
            scaled = np.abs(a.ravel(), dtype=np.float64) / peak
            acc += float(np.dot(scaled, scaled)) if p == 2 else float(np.sum(scaled ** p))
    return peak * acc ** (1.0 / p)


def _compiled_groups(arrays):
    """The arrays by dtype when the compiled passes can take every one, else None."""
    groups = {}
    for a in arrays:
        if a.dtype not in (np.float32, np.float64) or not a.flags.c_contiguous:
            return None
        groups.setdefault(a.dtype, []).append(a)
    return list(groups.values())


def _compiled_norm2(groups):
    """The 2-norm of every array of groups, from compiled sums of squares in float64
    (fixed chunks summed in order: independent of the threads); None when that sum
    overflows or underflows to 0, which the scaled NumPy path then settles."""
    total = 0.0
    for group in groups:
        partial = np.empty(sum(optim_step.chunks(a.size) for a in group))
        total += optim_step.sumsq(group, partial, get_num_threads())
    return math.sqrt(total) if 0 < total < math.inf else None


def clip_grad_norm(grads, max_norm, norm_type=2.0, *, error_if_nonfinite=False):
    r"""Scale gradients in place so that their total norm is at most max_norm.

    The total norm is taken over all arrays together, as if they were
    concatenated into one vector g::

        total = (sum_i |g_i|**p)**(1/p)        (p = norm_type)
        total = max_i |g_i|                    (p = inf)

    and every array is multiplied by ::

        coef = min(1, max_norm / (total + 1e-6))

    so nothing changes unless total exceeds max_norm (up to the 1e-6).  This
    is ``torch.nn.utils.clip_grad_norm_``'s rule; the norm is computed in float64.
    For p = 2 and C-contiguous arrays the sum of squares and the scaling are
    compiled passes on fastrnn's threads, independent of the thread count.

    Parameters
    ----------
    grads : ndarray, dict of ndarray, or iterable of ndarrays or dicts
        Gradients to clip in place, for example a layer's ``grads`` or a list
        of several layers' ``grads``.  Floating-point, writable arrays.
    max_norm : float >= 0
        Largest total norm allowed.
    norm_type : float >= 1 or inf, default 2
        The order p of the norm.
    error_if_nonfinite : bool, default False
        Raise FloatingPointError when the total norm is NaN or infinite.
        Otherwise a non-finite total is returned and the gradients are left
        unchanged (skip the optimizer step in that case).

    Returns
    -------
    float
        The total norm of the gradients before clipping.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    >>> fastrnn.clip_grad_norm(g, 1.0)
    5.0
    >>> np.round(g["a"], 6), np.round(g["b"], 6)
    (array([0.6, 0. ]), array([[0.8]]))
    """
    arrays = _gradient_arrays(grads)
    max_norm = _check_bound(max_norm, "max_norm")
    p = _check_norm_type(norm_type)
    groups = _compiled_groups(arrays)
    total = _compiled_norm2(groups) if groups is not None and p == 2 else None
    if total is None:
        total = _total_norm(arrays, p)
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise FloatingPointError(
                f"clip_grad_norm: the total norm of order {p} of the gradients is {total}; "
                f"set error_if_nonfinite=False to get it returned instead")
        return total
    coef = max_norm / (total + _EPS)
    if coef < 1.0 and groups is not None:
        for group in groups:
            optim_step.scale(group, coef, get_num_threads())
    elif coef < 1.0:
        for a in arrays:
            a *= a.dtype.type(coef)
    return total


def clip_grad_value(grads, clip_value):
    """Clamp every gradient element in place to [-clip_value, clip_value].

    ::

        g <- min(max(g, -clip_value), clip_value)

    as ``torch.nn.utils.clip_grad_value_`` does.  NaN elements stay NaN.

    Parameters
    ----------
    grads : ndarray, dict of ndarray, or iterable of ndarrays or dicts
        Gradients to clip in place (floating-point, writable arrays).
    clip_value : float >= 0
        The bound.

    Returns
    -------
    None

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> g = np.array([-3.0, 0.5, 2.0])
    >>> fastrnn.clip_grad_value(g, 1.0)
    >>> g
    array([-1. ,  0.5,  1. ])
    """
    arrays = _gradient_arrays(grads)
    clip_value = _check_bound(clip_value, "clip_value")
    for a in arrays:
        np.clip(a, -clip_value, clip_value, out=a)
