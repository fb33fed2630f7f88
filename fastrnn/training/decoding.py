"""Decoding a sequence from a step function: greedy and beam search.

A step function advances K live hypotheses by one token::

    log_probs, state = step(tokens, state)

tokens is an int64 array (K,) holding the last token of each hypothesis;
log_probs is (K, V), row k the log-probabilities of the next token after
hypothesis k; state is None, an array, or a tuple of arrays whose axis 1
indexes the hypotheses (fastrnn's own state layout, (num_layers, K, H), so
that a fastrnn layer's state passes through unchanged).  The decoders
reorder the state along axis 1 as hypotheses are kept, dropped or copied.

The returned sequences never include start_token and include end_token
when it was produced.
"""

import numbers

import numpy as np

__all__ = ["greedy_decode", "beam_search"]


def _check_int(value, name, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _check_step(step):
    if not callable(step):
        raise TypeError(f"step: expected a callable step(tokens, state) -> (log_probs, state), "
                        f"got {type(step).__name__}")


def _call_step(step, tokens, state):
    """Run step and check that it returned ((K, V) log-probabilities, state)."""
    out = step(tokens, state)
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"step: expected it to return a pair (log_probs, state), got "
                        f"{type(out).__name__}")
    log_probs, state = out
    lp = np.asarray(log_probs)
    if lp.dtype.kind not in "biuf":
        raise TypeError(f"step: expected real log_probs, got dtype {lp.dtype}")
    lp = lp.astype(np.float64)
    K = len(tokens)
    if lp.ndim != 2 or lp.shape[0] != K or lp.shape[1] == 0:
        raise ValueError(f"step: expected log_probs of shape ({K}, V) for {K} hypotheses, "
                         f"got shape {lp.shape}")
    if np.isnan(lp).any():
        raise ValueError("step: returned NaN log-probabilities")
    return lp, state


def _select(state, index):
    """Keep (and copy) the hypotheses index along axis 1 of every array of state."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_select(s, index) for s in state)
    return np.take(np.asarray(state), index, axis=1)


def greedy_decode(step, state, start_token, *, max_len, end_token=None):
    """Decode by taking the most probable token at every step.

    ::

        y_1 = argmax_v log p(v | start),  y_t = argmax_v log p(v | start, y_1..y_{t-1})

    until y_t = end_token or t = max_len (ties go to the lower token id).

    Parameters
    ----------
    step : callable
        step(tokens, state) -> (log_probs, state); see the module docstring.
        Called with one hypothesis (K = 1).
    state : None, ndarray or tuple of ndarrays
        Initial state for step, the hypotheses on axis 1 (size 1 here).
    start_token : int
        First token fed to step.
    max_len : int >= 1
        Largest number of tokens produced (end_token included).
    end_token : int or None
        Decoding stops after this token (which is included in the result).

    Returns
    -------
    list of int
        The produced tokens, without start_token.
    """
    _check_step(step)
    start_token = _check_int(start_token, "start_token")
    max_len = _check_int(max_len, "max_len", 1)
    if end_token is not None:
        end_token = _check_int(end_token, "end_token")
    tokens = np.array([start_token], dtype=np.int64)
    out = []
    for _ in range(max_len):
        log_probs, state = _call_step(step, tokens, state)
        token = int(np.argmax(log_probs[0]))
        out.append(token)
        if token == end_token:
            break
        tokens = np.array([token], dtype=np.int64)
    return out


def beam_search(step, state, start_token, *, beam_width, max_len, end_token=None,
                length_penalty=0.0):
    """Decode the beam_width best sequences by beam search.

    A hypothesis y_1..y_n has the summed log-probability and the score::

        s(y) = sum_t log p(y_t | start, y_1..y_{t-1}),   score(y) = s(y) / n**length_penalty

    length_penalty = 0 ranks by s itself (which favours short sequences);
    length_penalty = 1 ranks by the mean log-probability per token.

    The search keeps W = beam_width slots.  At every step each live
    hypothesis is extended by every token, and the W - F best extensions by s
    are kept, F being the number of finished hypotheses (all extensions at one
    step have the same length, so s and score rank them alike).  An extension
    ending in end_token is finished and takes its slot for good; the others
    stay live.  The search stops when no live hypothesis remains or after
    max_len tokens (live hypotheses then count as finished).  Finally the
    finished hypotheses are ranked by score.  With beam_width = 1 this is
    greedy_decode; a beam at least as wide as the number of possible
    sequences is an exhaustive search.

    Parameters
    ----------
    step : callable
        step(tokens, state) -> (log_probs, state); see the module docstring.
        Called with K = 1 first, then with up to beam_width hypotheses.
    state : None, ndarray or tuple of ndarrays
        Initial state for step, the hypotheses on axis 1 (size 1).
    start_token : int
    beam_width : int >= 1
    max_len : int >= 1
        Largest number of tokens of a sequence (end_token included).
    end_token : int or None
    length_penalty : float, default 0

    Returns
    -------
    list of (list of int, float)
        Up to beam_width (sequence, score) pairs, best first; a sequence
        excludes start_token and includes end_token when it has one.
        Extensions with log-probability -inf are never kept.
    """
    _check_step(step)
    start_token = _check_int(start_token, "start_token")
    beam_width = _check_int(beam_width, "beam_width", 1)
    max_len = _check_int(max_len, "max_len", 1)
    if end_token is not None:
        end_token = _check_int(end_token, "end_token")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real) \
            or not np.isfinite(length_penalty):
        raise ValueError(f"length_penalty: expected a finite number, got {length_penalty!r}")
    alpha = float(length_penalty)

    tokens = np.array([start_token], dtype=np.int64)
    seqs = [[]]                      # live hypotheses
    sums = np.zeros(1)               # their summed log-probabilities
    finished = []                    # (sequence, summed log-probability)
    for t in range(max_len):
        log_probs, new_state = _call_step(step, tokens, state)
        V = log_probs.shape[1]
        cand = (sums[:, None] + log_probs).ravel()
        order = np.argsort(-cand, kind="stable")      # ties: lower hypothesis, then token
        order = order[cand[order] > -np.inf][:beam_width - len(finished)]
        parents, next_tokens, next_seqs = [], [], []
        for flat in order:
            k, v = divmod(int(flat), V)
            seq = seqs[k] + [v]
            if v == end_token or t == max_len - 1:
                finished.append((seq, float(cand[flat])))
            else:
                parents.append(k)
                next_tokens.append(v)
                next_seqs.append(seq)
        if not parents:
            break
        index = np.array(parents, dtype=np.intp)
        state = _select(new_state, index)
        tokens = np.array(next_tokens, dtype=np.int64)
        sums = cand[index * V + tokens]
        seqs = next_seqs
    scored = [(seq, s / len(seq) ** alpha) for seq, s in finished]
    scored.sort(key=lambda item: -item[1])            # stable: ties keep search order
    return scored
