"""Drawing tokens from logits: temperature, top-k and top-p (nucleus) sampling."""

import numbers

import numpy as np

from fastrnn._validation import as_real_array

__all__ = ["sample"]


def as_generator(rng, name="rng"):
    """A numpy Generator from a Generator (used as is), a seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, np.random.SeedSequence) or (
            isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        if isinstance(rng, numbers.Integral) and rng < 0:
            raise ValueError(f"{name}: expected a non-negative seed, got {rng}")
        return np.random.default_rng(rng)
    raise TypeError(f"{name}: expected a numpy Generator, an integer seed or None, got "
                    f"{type(rng).__name__}")


def _check_logits(logits):
    arr = as_real_array(logits, "logits")
    if arr.ndim not in (1, 2):
        raise ValueError(f"logits: expected a 1-D (V,) or 2-D (N, V) array, got shape "
                         f"{arr.shape}")
    if arr.shape[-1] == 0:
        raise ValueError(f"logits: expected at least one token (V >= 1), got shape {arr.shape}")
    z = np.array(arr, dtype=np.float64, ndmin=2)     # a copy: the input is never modified
    if np.isfinite(z).all():       # the common case, in one pass
        return z
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError("logits: expected finite numbers or -inf (a token never drawn), "
                         "got NaN or +inf")
    dead = np.isneginf(z).all(axis=1)
    if dead.any():
        raise ValueError(f"logits: every logit of row {int(np.argmax(dead))} is -inf; at "
                         f"least one token must be possible")
    return z


def _draw(weights, gen):
    """One index per row of weights (N, V) >= 0, with probability weights / row sum."""
    N, V = weights.shape
    if N == 1:     # one row, a token at a time: in scalars, which cost less than arrays
        cum = np.cumsum(weights[0])
        # cum is non-decreasing: the count of cum <= u by bisection
        first = int(cum.searchsorted(gen.random(1)[0] * cum[-1], side="right"))
        idx = np.array([first])
        if first < V:
            return idx
    else:
        cum = np.cumsum(weights, axis=1)
        u = gen.random(N) * cum[:, -1]
        idx = np.sum(cum <= u[:, None], axis=1)      # first index with cum > u
    # The token at idx < V has positive weight (cum rises there).  u * total may
    # round up to total (idx = V): fall back on the last token of positive weight.
    if (idx >= V).any():
        last = V - 1 - np.argmax(weights[:, ::-1] > 0, axis=1)
        idx = np.minimum(idx, last)
    return idx


def sample(logits, *, temperature=1.0, top_k=None, top_p=None, rng=None):
    r"""Draw a token from each distribution softmax(logits / temperature).

    With logits z (one row per distribution) and temperature T > 0::

        p_i = exp((z_i - max z) / T) / sum_j exp((z_j - max z) / T)

    Subtracting max z first keeps exp from overflowing whatever the logits.
    Then, if given, in this order:

    - top_k = k keeps the k tokens of largest probability (ties broken
      towards the lower index) and sets the others to zero;
    - top_p = q sorts the remaining tokens by decreasing probability and
      keeps the smallest prefix whose probability reaches q of the total,
      i.e. token j (in that order) is kept when sum_{i<j} p_i < q sum_i p_i;

    and the kept probabilities are renormalised before drawing.  T -> 0
    approaches the argmax; T = 0 is exactly the argmax (greedy).

    Parameters
    ----------
    logits : array_like, shape (V,) or (N, V)
        Unnormalised log-probabilities; -inf marks a token that is never
        drawn (a row must have at least one finite logit).  Not modified.
    temperature : float >= 0, default 1
    top_k : int >= 1 or None
    top_p : float in (0, 1] or None
    rng : numpy Generator, int seed or None
        Source of randomness; the same seed gives the same tokens.  One
        uniform number is drawn per row.

    Returns
    -------
    int for 1-D logits, or ndarray of int64, shape (N,), for 2-D logits.

    Examples
    --------
    >>> import fastrnn
    >>> fastrnn.sample([0.0, 10.0, 0.0], temperature=0)
    1
    >>> fastrnn.sample([[5.0, 0.0], [0.0, 5.0]], top_k=1, rng=0)
    array([0, 1])
    """
    z = _check_logits(logits)
    one_d = np.ndim(logits) == 1
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature: expected a non-negative number, got "
                        f"{type(temperature).__name__} {temperature!r}")
    temperature = float(temperature)
    if not 0 <= temperature < np.inf:
        raise ValueError(f"temperature: expected a finite number >= 0, got {temperature!r}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
            raise TypeError(f"top_k: expected an integer >= 1 or None, got "
                            f"{type(top_k).__name__} {top_k!r}")
        if top_k < 1:
            raise ValueError(f"top_k: expected an integer >= 1 or None, got {top_k}")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real):
            raise TypeError(f"top_p: expected a number in (0, 1] or None, got "
                            f"{type(top_p).__name__} {top_p!r}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p: expected a number in (0, 1] or None, got {top_p!r}")
    gen = as_generator(rng)
    N, V = z.shape

    if temperature == 0:
        out = np.argmax(z, axis=1)     # inside every top-k or top-p set
    else:
        with np.errstate(over="ignore", under="ignore"):    # -> -inf and 0: wanted
            z -= z.max(axis=1, keepdims=True)
            z /= temperature
            prob = np.exp(z)           # the row maximum is 1, -inf becomes 0
        cut_k = top_k is not None and top_k < V
        cut_p = top_p is not None and top_p < 1
        if cut_k or cut_p:
            order = np.argsort(-z, axis=1, kind="stable")
            sp = np.take_along_axis(prob, order, axis=1)
            if cut_k:
                sp[:, top_k:] = 0
            if cut_p:
                cum = np.cumsum(sp, axis=1)
                before = np.concatenate([np.zeros((N, 1)), cum[:, :-1]], axis=1)
                sp[before >= top_p * cum[:, -1:]] = 0
            out = np.take_along_axis(order, _draw(sp, gen)[:, None], axis=1)[:, 0]
        else:
            out = _draw(prob, gen)
    out = out.astype(np.int64)
    return int(out[0]) if one_d else out
