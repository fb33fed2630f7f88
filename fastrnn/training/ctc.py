"""Connectionist temporal classification (Graves et al. 2006): the loss with its
gradient, and greedy and prefix beam-search decoding.

The loss validates and allocates here and runs its forward-backward recursion
in fastrnn/kernels/ctc.pyx (log space, compiled, threaded over the batch); the
decoders are NumPy.  Layouts and reductions are torch.nn.functional.ctc_loss's.
"""

import numbers

import numpy as np

from fastrnn._validation import as_real_array, check_bool
from fastrnn.kernels.ctc import ctc_forward_backward
from fastrnn.kernels.threads import get_num_threads

__all__ = ["ctc_loss", "ctc_greedy_decode", "ctc_beam_search"]

_REDUCTIONS = ("mean", "sum", "none")
# A batch with fewer (t, s) cells than this runs on one thread: waking a worker costs
# more than a few thousand log-sum-exps.
_THREADED_MIN_CELLS = 20_000


def _log_probs(value):
    """log_probs as a C-contiguous (T, N, C) float32/float64 array, and whether it was (T, C)."""
    arr = as_real_array(value, "log_probs")
    if arr.ndim not in (2, 3):
        raise ValueError(f"log_probs: expected a 3-D array (T, N, C) or a 2-D unbatched "
                         f"(T, C) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[-1] == 0:
        raise ValueError(f"log_probs: expected T >= 1 and C >= 1, got shape {arr.shape}")
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    unbatched = arr.ndim == 2
    if unbatched:
        arr = arr[:, np.newaxis, :]
    if arr.shape[1] == 0:
        raise ValueError(f"log_probs: expected N >= 1, got shape {arr.shape}")
    if np.isnan(arr).any() or np.isposinf(arr).any():
        raise ValueError("log_probs: expected log-probabilities (finite or -inf), got NaN "
                         "or +inf")
    return np.ascontiguousarray(arr, dtype=dtype), unbatched


def _blank(blank, C):
    if isinstance(blank, bool) or not isinstance(blank, numbers.Integral):
        raise TypeError(f"blank: expected an integer, got {type(blank).__name__} {blank!r}")
    if not 0 <= blank < C:
        raise ValueError(f"blank: expected a class index in [0, {C}), got {blank}")
    return int(blank)


def _int_array(value, name):
    """value as an int64 array; only integer dtypes (not bool) are taken."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: could not be converted to an array ({exc})") from exc
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got an array of dtype {arr.dtype}")
    return arr.astype(np.int64)


def _lengths(value, name, N, unbatched, high, high_name):
    """Lengths as an int64 (N,) array with 0 <= each <= high (an int or an (N,) array)."""
    arr = _int_array(value, name)
    if unbatched and arr.shape in ((), (1,)):
        arr = arr.reshape(1)
    if arr.shape != (N,):
        expected = "() or (1,)" if unbatched else f"({N},)"
        raise ValueError(f"{name}: expected shape {expected}, got shape {arr.shape}")
    bad = (arr < 0) | (arr > high)
    if bad.any():
        i = int(np.argmax(bad))
        bound = high if np.ndim(high) == 0 else high[i]
        raise ValueError(f"{name}: expected lengths in [0, {high_name}] ({bound}), got "
                         f"{arr[i]} at index {i}")
    return np.ascontiguousarray(arr)


def _targets(targets, target_lengths, N, C, blank, unbatched):
    """(concatenated int64 targets, start of each sequence's, lengths) after checking
    both of torch's layouts: padded (N, S) (unbatched (S,)) or concatenated 1-D."""
    tg = _int_array(targets, "targets")
    if unbatched:
        if tg.ndim != 1:
            raise ValueError(f"targets: expected a 1-D array (S,) for unbatched log_probs, "
                             f"got shape {tg.shape}")
        tg = tg[np.newaxis, :]
    if tg.ndim == 2:
        if tg.shape[0] != N:
            raise ValueError(f"targets: expected padded targets of shape ({N}, S), got "
                             f"shape {tg.shape}")
        lengths = _lengths(target_lengths, "target_lengths", N, unbatched, tg.shape[1],
                           "S = targets.shape[1]")
        start = np.arange(N, dtype=np.int64) * tg.shape[1]
        flat = np.ascontiguousarray(tg).reshape(-1)
        valid = np.arange(tg.shape[1]) < lengths[:, np.newaxis]
        used = tg[valid]
    elif tg.ndim == 1:
        lengths = _lengths(target_lengths, "target_lengths", N, unbatched, tg.shape[0],
                           "len(targets)")
        if lengths.sum() != tg.shape[0]:
            raise ValueError(f"target_lengths: concatenated targets need sum(target_lengths) "
                             f"== len(targets) = {tg.shape[0]}, got {lengths.sum()}")
        start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = used = np.ascontiguousarray(tg)
    else:
        raise ValueError(f"targets: expected padded (N, S) or concatenated 1-D targets, got "
                         f"shape {tg.shape}")
    if used.size and ((used < 0) | (used >= C)).any():
        raise ValueError(f"targets: expected labels in [0, {C}), got "
                         f"{used[(used < 0) | (used >= C)][0]}")
    if used.size and (used == blank).any():
        raise ValueError(f"targets: a target contains the blank label {blank}")
    if flat.size == 0:
        flat = np.zeros(1, np.int64)      # the kernel takes a pointer to its first element
    return flat, start, lengths


def ctc_loss(log_probs, targets, input_lengths, target_lengths, *, blank=0,
             reduction="mean", zero_infinity=False):
    r"""Connectionist temporal classification loss and its gradient, as torch's ctc_loss.

    For sequence n with input length L_n, log-probabilities
    ``y_t = log_probs[t, n, :]`` and target l of length S_n, the loss is the negative
    log of the probability of l summed over every alignment pi of length L_n that
    collapses to l (merge repeats, then drop blanks), B(pi) = l::

        loss_n = -log sum_{pi: B(pi) = l} prod_{t < L_n} exp(y_t[pi_t])

    computed by the forward-backward recursion over the extended target
    l' = (blank, l_1, blank, l_2, ..., l_S, blank) in log space::

        alpha_t(s) = y_t[l'_s] + logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1),
                                           alpha_{t-1}(s-2) if l'_s != blank, l'_s != l'_{s-2})
        loss_n = -logsumexp(alpha_{L-1}(2S), alpha_{L-1}(2S-1))

    and beta the same from the end.  The gradient is exact with respect to log_probs
    (log_probs are taken as given, not renormalised)::

        d loss_n / d y_t[c] = -sum_{s: l'_s = c} exp(alpha_t(s) + beta_t(s) - y_t[c] + loss_n)

    for t < L_n and 0 after.  Composed with log_softmax's backward it gives torch's
    gradient with respect to the logits, softmax(logits) - posterior.

    Parameters
    ----------
    log_probs : array_like, (T, N, C) or unbatched (T, C)
        Log-probabilities over C classes (blank included), e.g. fastrnn.log_softmax's
        output.  float32 stays float32; other real dtypes are computed in float64.
    targets : array_like of ints
        Padded (N, S), sequence n's labels in ``targets[n, :target_lengths[n]]``
        (the rest is ignored), or all the targets concatenated, 1-D of length
        ``sum(target_lengths)``.  Unbatched: (S,).  Labels in [0, C), never blank.
    input_lengths : array_like of ints, (N,) (unbatched: () or (1,))
        L_n in [0, T].
    target_lengths : array_like of ints, (N,) (unbatched: () or (1,))
        S_n, at most S for padded targets.
    blank : int, default 0
        The blank class.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean": ``mean_n(loss_n / max(S_n, 1))``; "sum": ``sum_n loss_n``; "none": the
        losses (N,) (a 0-d array unbatched), whose gradient is that of their sum.
    zero_infinity : bool, default False
        Infinite losses (a target no alignment of L_n steps can produce, e.g. more
        labels than steps) and their gradients become 0.

    Returns
    -------
    loss : float, or ndarray (N,) for reduction="none"
        inf for a sequence without alignment unless zero_infinity.
    dlog_probs : ndarray shaped like log_probs
        The gradient of loss.  A sequence without alignment contributes zeros (torch
        gives NaN there when zero_infinity is False).

    Raises
    ------
    ValueError, TypeError
        Naming the argument: shapes, dtypes, lengths out of range, labels out of
        range or equal to blank, NaN or +inf in log_probs.
    """
    lp, unbatched = _log_probs(log_probs)
    T, N, C = lp.shape
    blank = _blank(blank, C)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    zero_infinity = check_bool(zero_infinity, "zero_infinity")
    flat, start, tl = _targets(targets, target_lengths, N, C, blank, unbatched)
    il = _lengths(input_lengths, "input_lengths", N, unbatched, T, "T")

    if reduction == "mean":
        scale = 1.0 / (N * np.maximum(tl, 1))
    else:
        scale = np.ones(N)
    scale = scale.astype(lp.dtype)
    P = 2 * tl + 1
    sizes = (il + 2) * (P + 2) + 4 * P   # alpha's rows, beta's two, four vectors (ctc.pyx)
    work_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    work = np.empty(int(sizes.sum()), lp.dtype)
    nll = np.empty(N, lp.dtype)
    grad = np.empty_like(lp)
    threads = get_num_threads() if int((il * P).sum()) >= _THREADED_MIN_CELLS else 1
    ctc_forward_backward(lp, flat, start, il, tl, blank, scale, work_start, work, nll, grad,
                         threads)
    if zero_infinity:
        nll[np.isinf(nll)] = 0      # their gradient rows are already zero
    if reduction == "mean":
        loss = float(np.mean(nll / np.maximum(tl, 1)))
    elif reduction == "sum":
        loss = float(np.sum(nll))
    else:
        loss = nll[0].copy() if unbatched else nll
    return loss, (grad[:, 0, :] if unbatched else grad)


def _lengths_for_decoding(log_probs, input_lengths, blank):
    lp, unbatched = _log_probs(log_probs)
    T, N, C = lp.shape
    blank = _blank(blank, C)
    il = _lengths(input_lengths, "input_lengths", N, unbatched, T, "T")
    return lp, unbatched, il, blank


def ctc_greedy_decode(log_probs, input_lengths, *, blank=0):
    """Best-path decoding: the most likely class at every step, repeats merged, blanks dropped.

    ::

        pi_t = argmax_c log_probs[t, n, c]  (t < L_n),   labels_n = B(pi)

    where B merges runs of equal classes and then removes blanks.  This is the
    labelling of the single most probable alignment, not always the most probable
    labelling (see ctc_beam_search).

    Parameters
    ----------
    log_probs : array_like, (T, N, C) or unbatched (T, C)
    input_lengths : array_like of ints, (N,) (unbatched: () or (1,)), each in [0, T]
    blank : int, default 0

    Returns
    -------
    list of N lists of ints (one list for unbatched input)
    """
    lp, unbatched, il, blank = _lengths_for_decoding(log_probs, input_lengths, blank)
    best = lp.argmax(axis=2)                                   # (T, N)
    out = []
    for n, L in enumerate(il):
        path = best[:L, n]
        keep = np.ones(len(path), bool)
        keep[1:] = path[1:] != path[:-1]
        out.append([int(c) for c in path[keep] if c != blank])
    return out[0] if unbatched else out


def ctc_beam_search(log_probs, input_lengths, *, beam_width, blank=0):
    """Prefix beam search: the most probable labellings, each summed over its alignments.

    Every step extends the beam_width most probable prefixes, each prefix carrying
    the log-probabilities of its alignments so far ending in a blank (p_b) and in
    its last label (p_nb)::

        p_b(l; t)        = logaddexp(p_b(l; t-1), p_nb(l; t-1)) + y_t[blank]
        p_nb(l; t)      += p_nb(l; t-1) + y_t[l_last]                  (repeat, merged)
        p_nb(l + c; t)  += (p_b(l; t-1) if c == l_last else
                            logaddexp(p_b(l; t-1), p_nb(l; t-1))) + y_t[c]

    (``+=`` adding in log space), then keeps the beam_width best by
    logaddexp(p_b, p_nb).  With a beam at least as wide as the number of distinct
    prefixes nothing is pruned, and the scores are the exact log p(l | y), the same
    as -ctc_loss(..., reduction="sum") of each labelling.

    Parameters
    ----------
    log_probs : array_like, (T, N, C) or unbatched (T, C)
    input_lengths : array_like of ints, (N,) (unbatched: () or (1,)), each in [0, T]
    beam_width : int >= 1
    blank : int, default 0

    Returns
    -------
    list of N lists (one list for unbatched input), each best first, of at most
    beam_width pairs (labels, log_prob): labels a list of ints, log_prob a float.
    """
    if isinstance(beam_width, bool) or not isinstance(beam_width, numbers.Integral):
        raise TypeError(f"beam_width: expected an integer, got {type(beam_width).__name__}")
    if beam_width < 1:
        raise ValueError(f"beam_width: expected an integer >= 1, got {beam_width}")
    lp, unbatched, il, blank = _lengths_for_decoding(log_probs, input_lengths, blank)
    lp = lp.astype(np.float64)
    out = [_prefix_beam(lp[:L, n], int(beam_width), blank) for n, L in enumerate(il)]
    return out[0] if unbatched else out


def _prefix_beam(y, width, blank):
    """Prefix beam search over one sequence's (L, C) log-probabilities (see ctc_beam_search)."""
    C = y.shape[1]
    labels = np.array([c for c in range(C) if c != blank])
    beam = {(): (0.0, -np.inf)}                                # prefix -> (p_b, p_nb)
    for yt in y:
        nxt = {}

        def add(prefix, pb, pnb):
            ob, onb = nxt.get(prefix, (-np.inf, -np.inf))
            nxt[prefix] = (np.logaddexp(ob, pb), np.logaddexp(onb, pnb))

        for prefix, (pb, pnb) in beam.items():
            total = np.logaddexp(pb, pnb)
            last = prefix[-1] if prefix else -1
            add(prefix, total + yt[blank], pnb + yt[last] if last >= 0 else -np.inf)
            # every label c at once: from a blank-ending alignment for a repeat of the
            # last label, from any alignment otherwise
            ext = np.where(labels == last, pb, total) + yt[labels]
            for c, p in zip(labels.tolist(), ext.tolist()):
                if p > -np.inf:
                    add(prefix + (c,), -np.inf, p)
        ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))
        beam = dict(ranked[:width])
    result = [(list(prefix), float(np.logaddexp(pb, pnb))) for prefix, (pb, pnb) in beam.items()]
    result.sort(key=lambda r: -r[1])
    return result
