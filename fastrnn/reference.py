"""Readable NumPy reference implementation of fastrnn's recurrent networks.

This module is the gold standard of the test suite and the NumPy baseline of
the benchmarks. It favours clarity over speed: one Python loop over time
steps, plain NumPy inside it, no tricks. The fast Cython kernels must agree
with it to rounding error.

The maths is exactly ``torch.nn``'s (``RNN``, ``LSTM``, ``GRU`` with
``batch_first=False``). For one layer and one direction, with ``x_t`` of shape
``(B, D)`` and ``h_t`` of shape ``(B, H)``:

RNN (``act`` is tanh or relu)::

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

LSTM (``W_ih`` is (4H, D) and ``W_hh`` is (4H, H), gate rows in order i, f, g, o)::

    i = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g =    tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

GRU (``W_ih`` is (3H, D) and ``W_hh`` is (3H, H), gate rows in order r, z, n)::

    r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n =    tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

Two variants, chosen by keyword arguments:

* LSTM with peepholes (ONNX's P input, Gers & Schmidhuber): a (3, H) array
  ``[p_i, p_f, p_o]`` per layer and direction, ``weight_peephole_l{k}``::

      i = sigmoid(... + p_i * c_{t-1});  f = sigmoid(... + p_f * c_{t-1})
      c_t = f * c_{t-1} + i * g;         o = sigmoid(... + p_o * c_t)

* GRU with the reset gate before the product (``reset_after=False``; Keras'
  reset_after=False, ONNX's linear_before_reset=0), same parameters::

      n = tanh(W_in x_t + b_in + W_hn (r * h_{t-1}) + b_hn)

Conventions
-----------
* Arrays are time-major and batched: ``x`` is (T, B, D), states are (B, H)
  per layer and direction, (num_layers * num_dirs, B, H) for a network.
* A missing bias (``None``, or an absent key in ``params``) means zero.
* Everything is computed in ``np.result_type`` of the input and the
  parameters (promoted to a floating type); states are converted to it.
* Inputs are never modified. The ``cache`` returned by a forward function
  keeps references to its inputs (as ``torch`` keeps saved tensors), so do
  not modify them in place between a forward and its backward.
* The input projection ``W_ih x_t + b_ih`` does not depend on the state, so it
  is computed for all time steps with one matrix product before the loop, and
  its gradients after the backward loop. Only the recurrence is a loop. The
  per-step helpers (``*_cell_forward``, ``*_cell_backward``) therefore take
  that projection, called ``xi``, rather than ``x_t``.
"""

import numpy as np

__all__ = [
    "sigmoid",
    "rnn_cell_forward",
    "rnn_cell_backward",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "gru_cell_forward",
    "gru_cell_backward",
    "gru_cell_forward_reset_before",
    "gru_cell_backward_reset_before",
    "layer_forward",
    "layer_backward",
    "forward",
    "backward",
]

# Number of gate blocks stacked in the rows of W_ih and W_hh.
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
NONLINEARITIES = ("tanh", "relu")


# ---------------------------------------------------------------------------
# Element-wise helpers
# ---------------------------------------------------------------------------

def sigmoid(a):
    """Logistic function ``1 / (1 + exp(-a))``, without overflow.

    ``exp`` is only taken of ``-|a| <= 0``, so it never overflows:
    ``sigmoid(a) = 1 / (1 + e)`` for ``a >= 0`` and ``e / (1 + e)`` for
    ``a < 0``, with ``e = exp(-|a|)``. The dtype of ``a`` is kept.
    """
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _activation(a, nonlinearity):
    if nonlinearity == "tanh":
        return np.tanh(a)
    return np.maximum(a, 0)


# ---------------------------------------------------------------------------
# One time step of each cell, forward and backward
# ---------------------------------------------------------------------------

def rnn_cell_forward(xi, h, w_hh, b_hh=None, nonlinearity="tanh"):
    """One step of the Elman RNN: ``h' = act(xi + W_hh h + b_hh)``.

    Parameters
    ----------
    xi : ndarray, shape (B, H)
        Input projection ``W_ih x_t + b_ih`` of this step.
    h : ndarray, shape (B, H)
        Previous hidden state.
    w_hh : ndarray, shape (H, H)
    b_hh : ndarray, shape (H,), or None
    nonlinearity : {"tanh", "relu"}

    Returns
    -------
    h_new : ndarray, shape (B, H)
    """
    a = xi + h @ w_hh.T
    if b_hh is not None:
        a = a + b_hh
    return _activation(a, nonlinearity)


def rnn_cell_backward(dh_new, h_new, nonlinearity="tanh"):
    """Gradient of the RNN pre-activation ``a`` from the gradient of ``h' = act(a)``.

    ``tanh'(a) = 1 - h'^2``; ``relu'(a) = [h' > 0]`` (0 at the kink, as in torch).
    The same ``da`` is the gradient of both ``xi`` and ``W_hh h + b_hh``.

    Returns
    -------
    da : ndarray, shape (B, H)
    """
    if nonlinearity == "tanh":
        return dh_new * (1 - h_new * h_new)
    return dh_new * (h_new > 0)


def lstm_cell_forward(xi, h, c, w_hh, b_hh=None, w_peep=None):
    """One LSTM step.

    With ``a = xi + W_hh h + b_hh`` split in four (B, H) blocks ``a_i, a_f, a_g, a_o``::

        i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
        c' = f * c + i * g
        h' = o * tanh(c')

    With peepholes ``w_peep = [p_i, p_f, p_o]`` (3, H), i and f take
    ``a_i + p_i * c`` and ``a_f + p_f * c``, and o takes ``a_o + p_o * c'``.

    Parameters
    ----------
    xi : ndarray, shape (B, 4H)
        Input projection ``W_ih x_t + b_ih`` of this step.
    h, c : ndarray, shape (B, H)
        Previous hidden and cell states.
    w_hh : ndarray, shape (4H, H)
    b_hh : ndarray, shape (4H,), or None
    w_peep : ndarray, shape (3, H), or None (no peepholes)

    Returns
    -------
    h_new, c_new : ndarray, shape (B, H)
    gates : ndarray, shape (B, 4H)
        The activated gates ``[i, f, g, o]``, which backward needs.
    """
    H = w_hh.shape[1]
    a = xi + h @ w_hh.T
    if b_hh is not None:
        a = a + b_hh
    a_i, a_f, a_o = a[:, 0 * H:1 * H], a[:, 1 * H:2 * H], a[:, 3 * H:4 * H]
    if w_peep is not None:
        a_i = a_i + w_peep[0] * c
        a_f = a_f + w_peep[1] * c
    i = sigmoid(a_i)
    f = sigmoid(a_f)
    g = np.tanh(a[:, 2 * H:3 * H])
    c_new = f * c + i * g
    if w_peep is not None:
        a_o = a_o + w_peep[2] * c_new
    o = sigmoid(a_o)
    h_new = o * np.tanh(c_new)
    return h_new, c_new, np.concatenate([i, f, g, o], axis=1)


def lstm_cell_backward(dh_new, dc_new, c, c_new, gates, w_peep=None):
    """Backward of one LSTM step.

    With ``tc = tanh(c')`` and the activated gates ``i, f, g, o``::

        dc_total = dc' + dh' * o * (1 - tc^2)      # c' feeds h' and the next step
        da_i = dc_total * g  * i * (1 - i)
        da_f = dc_total * c  * f * (1 - f)
        da_g = dc_total * i  * (1 - g^2)
        da_o = dh' * tc      * o * (1 - o)
        dc   = dc_total * f

    With peepholes ``w_peep = [p_i, p_f, p_o]``, c' also reaches the loss
    through o, and c through i and f::

        dc_total += da_o * p_o           (before da_i, da_f, da_g use it)
        dc       += da_i * p_i + da_f * p_f
        dw_peep   = [sum_b da_i * c, sum_b da_f * c, sum_b da_o * c']

    Parameters
    ----------
    dh_new, dc_new : ndarray, shape (B, H)
        Gradients of the loss with respect to ``h'`` and ``c'``.
    c, c_new : ndarray, shape (B, H)
        Cell state before and after the step.
    gates : ndarray, shape (B, 4H)
        ``[i, f, g, o]`` as returned by :func:`lstm_cell_forward`.

    Returns
    -------
    da : ndarray, shape (B, 4H)
        Gradient of the pre-activation ``a``; it is the gradient of both
        ``xi`` and ``W_hh h + b_hh``.
    dc : ndarray, shape (B, H)
        Gradient with respect to the previous cell state.
    dw_peep : ndarray, shape (3, H)
        Only when ``w_peep`` is given: the gradient of the peepholes.
    """
    H = c.shape[1]
    i = gates[:, 0 * H:1 * H]
    f = gates[:, 1 * H:2 * H]
    g = gates[:, 2 * H:3 * H]
    o = gates[:, 3 * H:4 * H]
    tc = np.tanh(c_new)
    da_o = dh_new * tc * o * (1 - o)
    dc_total = dc_new + dh_new * o * (1 - tc * tc)
    if w_peep is not None:
        dc_total = dc_total + da_o * w_peep[2]
    da_i = dc_total * g * i * (1 - i)
    da_f = dc_total * c * f * (1 - f)
    da_g = dc_total * i * (1 - g * g)
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
    if w_peep is None:
        return da, dc_total * f
    dc = dc_total * f + da_i * w_peep[0] + da_f * w_peep[1]
    dw_peep = np.stack([(da_i * c).sum(axis=0), (da_f * c).sum(axis=0),
                        (da_o * c_new).sum(axis=0)])
    return da, dc, dw_peep


def gru_cell_forward(xi, h, w_hh, b_hh=None):
    """One GRU step.

    With ``xi = W_ih x_t + b_ih`` and ``hh = W_hh h + b_hh``, each split in
    three (B, H) blocks for r, z, n::

        r  = sigmoid(xi_r + hh_r)
        z  = sigmoid(xi_z + hh_z)
        n  = tanh(xi_n + r * hh_n)        # the reset gate multiplies W_hn h + b_hn
        h' = (1 - z) * n + z * h

    Parameters
    ----------
    xi : ndarray, shape (B, 3H)
        Input projection ``W_ih x_t + b_ih`` of this step.
    h : ndarray, shape (B, H)
        Previous hidden state.
    w_hh : ndarray, shape (3H, H)
    b_hh : ndarray, shape (3H,), or None

    Returns
    -------
    h_new : ndarray, shape (B, H)
    gates : ndarray, shape (B, 3H)
        The activated gates ``[r, z, n]``.
    hh_n : ndarray, shape (B, H)
        ``W_hn h + b_hn``, which backward needs for the gradient of r.
    """
    H = w_hh.shape[1]
    hh = h @ w_hh.T
    if b_hh is not None:
        hh = hh + b_hh
    r = sigmoid(xi[:, 0 * H:1 * H] + hh[:, 0 * H:1 * H])
    z = sigmoid(xi[:, 1 * H:2 * H] + hh[:, 1 * H:2 * H])
    hh_n = hh[:, 2 * H:3 * H]
    n = np.tanh(xi[:, 2 * H:3 * H] + r * hh_n)
    h_new = (1 - z) * n + z * h
    return h_new, np.concatenate([r, z, n], axis=1), hh_n


def gru_cell_backward(dh_new, h, gates, hh_n):
    """Backward of one GRU step.

    ::

        da_n  = dh' * (1 - z) * (1 - n^2)          # gradient of the tanh argument
        da_z  = dh' * (h - n) * z * (1 - z)
        da_r  = da_n * hh_n * r * (1 - r)
        dhh_n = da_n * r

    The input side and the hidden side differ only in the n block, because
    of the reset product: ``dxi = [da_r, da_z, da_n]`` and
    ``dhh = [da_r, da_z, dhh_n]``. Besides flowing through ``W_hh``, the
    previous state also gets ``dh' * z`` directly from ``h' = ... + z * h``.

    Parameters
    ----------
    dh_new : ndarray, shape (B, H)
        Gradient of the loss with respect to ``h'``.
    h : ndarray, shape (B, H)
        Previous hidden state.
    gates : ndarray, shape (B, 3H)
        ``[r, z, n]`` as returned by :func:`gru_cell_forward`.
    hh_n : ndarray, shape (B, H)
        ``W_hn h + b_hn`` as returned by :func:`gru_cell_forward`.

    Returns
    -------
    dxi : ndarray, shape (B, 3H)
        Gradient of ``xi = W_ih x_t + b_ih``.
    dhh : ndarray, shape (B, 3H)
        Gradient of ``hh = W_hh h + b_hh``.
    dh_direct : ndarray, shape (B, H)
        The part of the gradient of ``h`` that does not go through ``W_hh``.
    """
    H = h.shape[1]
    r = gates[:, 0 * H:1 * H]
    z = gates[:, 1 * H:2 * H]
    n = gates[:, 2 * H:3 * H]
    da_n = dh_new * (1 - z) * (1 - n * n)
    da_z = dh_new * (h - n) * z * (1 - z)
    da_r = da_n * hh_n * r * (1 - r)
    dhh_n = da_n * r
    dxi = np.concatenate([da_r, da_z, da_n], axis=1)
    dhh = np.concatenate([da_r, da_z, dhh_n], axis=1)
    return dxi, dhh, dh_new * z


def gru_cell_forward_reset_before(xi, h, w_hh, b_hh=None):
    """One GRU step with the reset gate before the product (reset_after=False).

    With ``xi = W_ih x_t + b_ih`` split in three (B, H) blocks for r, z, n::

        r  = sigmoid(xi_r + W_hr h + b_hr)
        z  = sigmoid(xi_z + W_hz h + b_hz)
        n  = tanh(xi_n + W_hn (r * h) + b_hn)
        h' = (1 - z) * n + z * h

    Returns
    -------
    h_new, gates : as gru_cell_forward returns them
    rh : ndarray, shape (B, H)
        ``r * h``, the operand of ``W_hn``, which backward needs.
    """
    H = w_hh.shape[1]
    b = np.zeros(3 * H, dtype=xi.dtype) if b_hh is None else b_hh
    w_hr, w_hz, w_hn = w_hh[0 * H:1 * H], w_hh[1 * H:2 * H], w_hh[2 * H:3 * H]
    r = sigmoid(xi[:, 0 * H:1 * H] + h @ w_hr.T + b[0 * H:1 * H])
    z = sigmoid(xi[:, 1 * H:2 * H] + h @ w_hz.T + b[1 * H:2 * H])
    rh = r * h
    n = np.tanh(xi[:, 2 * H:3 * H] + rh @ w_hn.T + b[2 * H:3 * H])
    h_new = (1 - z) * n + z * h
    return h_new, np.concatenate([r, z, n], axis=1), rh


def gru_cell_backward_reset_before(dh_new, h, gates, rh, w_hh):
    """Backward of :func:`gru_cell_forward_reset_before`.

    ::

        da_n = dh' * (1 - z) * (1 - n^2)
        da_z = dh' * (h - n) * z * (1 - z)
        drh  = da_n W_hn                            # gradient of r * h
        da_r = drh * h * r * (1 - r)
        dh   = dh' * z + drh * r + da_r W_hr + da_z W_hz
        dW_hr += da_r^T h    dW_hz += da_z^T h    dW_hn += da_n^T (r * h)

    Every bias enters its gate's argument unreduced, so the input side and
    the hidden side have the same gradient ``da = [da_r, da_z, da_n]``.

    Returns
    -------
    da : ndarray, shape (B, 3H)
        Gradient of the gate arguments (of ``xi`` and of ``b_hh``).
    dh : ndarray, shape (B, H)
        Gradient with respect to the previous state ``h``.
    dw_hh : ndarray, shape (3H, H)
        This step's contribution to the gradient of ``W_hh``.
    """
    H = h.shape[1]
    r = gates[:, 0 * H:1 * H]
    z = gates[:, 1 * H:2 * H]
    n = gates[:, 2 * H:3 * H]
    w_hr, w_hz, w_hn = w_hh[0 * H:1 * H], w_hh[1 * H:2 * H], w_hh[2 * H:3 * H]
    da_n = dh_new * (1 - z) * (1 - n * n)
    da_z = dh_new * (h - n) * z * (1 - z)
    drh = da_n @ w_hn
    da_r = drh * h * r * (1 - r)
    dh = dh_new * z + drh * r + da_r @ w_hr + da_z @ w_hz
    dw_hh = np.concatenate([da_r.T @ h, da_z.T @ h, da_n.T @ rh], axis=0)
    return np.concatenate([da_r, da_z, da_n], axis=1), dh, dw_hh


# ---------------------------------------------------------------------------
# Argument handling
# ---------------------------------------------------------------------------

def _check_mode(mode, nonlinearity):
    if mode not in GATES:
        raise ValueError(f"mode must be one of {sorted(GATES)}, got {mode!r}")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"nonlinearity must be one of {list(NONLINEARITIES)}, got {nonlinearity!r}")


def _compute_dtype(*arrays):
    """Common dtype of the given arrays (None skipped), promoted to floating.

    The Python float is a "weak" scalar: it turns integer arrays into float64
    but leaves float32 as float32.
    """
    return np.result_type(*[a for a in arrays if a is not None], 1.0)


def _as(a, dtype):
    return None if a is None else np.asarray(a, dtype=dtype)


def _check_shape(name, a, shape):
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")


def _state_parts(mode, state, name):
    """Split a state into (h, c); c is None except for lstm. None stays None."""
    if mode != "lstm":
        return state, None
    if state is None:
        return None, None
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise ValueError(f"{name} must be a tuple (h, c) for lstm, got {type(state).__name__}")
    return state[0], state[1]


def _state_array(a, shape, dtype, name):
    """A fresh array of the given shape and dtype: zeros for None, else a converted copy."""
    if a is None:
        return np.zeros(shape, dtype=dtype)
    a = np.array(a, dtype=dtype)  # a copy, so no result ever aliases a caller's array
    _check_shape(name, a, shape)
    return a


def _time_steps(T, reverse):
    """The time indices in the order a direction processes them."""
    return range(T - 1, -1, -1) if reverse else range(T)


# ---------------------------------------------------------------------------
# One layer, one direction
# ---------------------------------------------------------------------------

def layer_forward(mode, x, state0, w_ih, w_hh, b_ih=None, b_hh=None, *,
                  reverse=False, nonlinearity="tanh", w_peep=None, reset_after=True):
    """Run one recurrent layer in one direction over a whole sequence.

    For every processed step ``t`` (``0, ..., T-1``, or ``T-1, ..., 0`` when
    ``reverse``), the cell maps ``x[t]`` and the state left by the previous
    processed step to a new state; ``y[t]`` is its hidden part::

        rnn:   h_t = act(W_ih x_t + b_ih + W_hh h_prev + b_hh)
        lstm:  [i, f, g, o] = [sig, sig, tanh, sig](W_ih x_t + b_ih + W_hh h_prev + b_hh)
               c_t = f * c_prev + i * g;   h_t = o * tanh(c_t)
        gru:   [r, z] = sig(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_prev + b_h{r,z})
               n = tanh(W_in x_t + b_in + r * (W_hn h_prev + b_hn))
               h_t = (1 - z) * n + z * h_prev

    Parameters
    ----------
    mode : {"rnn", "lstm", "gru"}
    x : array_like, shape (T, B, D)
    state0 : array_like (B, H), or tuple (h0, c0) of such for lstm
        Initial state; ``None`` (or a ``None`` component) means zeros.
    w_ih : array_like, shape (G*H, D)
        Input weights, G = 1, 4, 3 gate blocks for rnn, lstm, gru.
    w_hh : array_like, shape (G*H, H)
        Recurrent weights; H is taken from ``w_hh.shape[1]``.
    b_ih, b_hh : array_like, shape (G*H,), or None
        Biases; None means zero (and no gradient is returned for it).
    reverse : bool
        Process time backwards (the reverse direction of a bidirectional
        layer). ``y[t]`` is still the output at time ``t``.
    nonlinearity : {"tanh", "relu"}
        Activation of the rnn cell; ignored by lstm and gru.
    w_peep : array_like, shape (3, H), or None
        lstm only: the peepholes ``[p_i, p_f, p_o]``; None means none.
    reset_after : bool
        gru only: False puts the reset gate before the product,
        ``n = tanh(W_in x_t + b_in + W_hn (r * h_prev) + b_hn)``.

    Returns
    -------
    y : ndarray, shape (T, B, H)
    state_n : ndarray (B, H), or tuple (h_n, c_n) for lstm
        The state after the last processed step.
    cache : dict
        What :func:`layer_backward` needs.
    """
    _check_mode(mode, nonlinearity)
    _check_variant(mode, w_peep is not None, reset_after)
    x, w_ih, w_hh = np.asarray(x), np.asarray(w_ih), np.asarray(w_hh)
    b_ih, b_hh, w_peep = _as(b_ih, None), _as(b_hh, None), _as(w_peep, None)
    dtype = _compute_dtype(x, w_ih, w_hh, b_ih, b_hh, w_peep)
    x, w_ih, w_hh = _as(x, dtype), _as(w_ih, dtype), _as(w_hh, dtype)
    b_ih, b_hh, w_peep = _as(b_ih, dtype), _as(b_hh, dtype), _as(w_peep, dtype)

    if x.ndim != 3:
        raise ValueError(f"x must have shape (T, B, D), got {x.shape}")
    T, B, D = x.shape
    if w_hh.ndim != 2:
        raise ValueError(f"w_hh must have shape (G*H, H), got {w_hh.shape}")
    H = w_hh.shape[1]
    G = GATES[mode] * H
    _check_shape("w_hh", w_hh, (G, H))
    _check_shape("w_ih", w_ih, (G, D))
    if b_ih is not None:
        _check_shape("b_ih", b_ih, (G,))
    if b_hh is not None:
        _check_shape("b_hh", b_hh, (G,))
    if w_peep is not None:
        _check_shape("w_peep", w_peep, (3, H))
    h0, c0 = _state_parts(mode, state0, "state0")
    h = _state_array(h0, (B, H), dtype, "h0")
    c = _state_array(c0, (B, H), dtype, "c0") if mode == "lstm" else None

    # The input side does not depend on the state: one product for all steps.
    xi = x @ w_ih.T
    if b_ih is not None:
        xi = xi + b_ih

    y = np.empty((T, B, H), dtype=dtype)
    h_in = np.empty((T, B, H), dtype=dtype)  # state entering each step, for dW_hh
    if mode == "lstm":
        c_in = np.empty((T, B, H), dtype=dtype)
        c_out = np.empty((T, B, H), dtype=dtype)
        gates = np.empty((T, B, G), dtype=dtype)
    elif mode == "gru":
        gates = np.empty((T, B, G), dtype=dtype)
        hh_n = np.empty((T, B, H), dtype=dtype)   # W_hn h + b_hn, or r * h (reset-before)

    for t in _time_steps(T, reverse):
        h_in[t] = h
        if mode == "rnn":
            h = rnn_cell_forward(xi[t], h, w_hh, b_hh, nonlinearity)
        elif mode == "lstm":
            c_in[t] = c
            h, c, gates[t] = lstm_cell_forward(xi[t], h, c, w_hh, b_hh, w_peep)
            c_out[t] = c
        elif reset_after:
            h, gates[t], hh_n[t] = gru_cell_forward(xi[t], h, w_hh, b_hh)
        else:
            h, gates[t], hh_n[t] = gru_cell_forward_reset_before(xi[t], h, w_hh, b_hh)
        y[t] = h

    cache = {
        "mode": mode, "nonlinearity": nonlinearity, "reverse": reverse,
        "dtype": dtype, "x": x, "w_ih": w_ih, "w_hh": w_hh,
        "has_b_ih": b_ih is not None, "has_b_hh": b_hh is not None,
        "y": y, "h_in": h_in, "w_peep": w_peep, "reset_after": reset_after,
    }
    if mode == "lstm":
        cache.update(c_in=c_in, c_out=c_out, gates=gates)
    elif mode == "gru":
        cache.update(gates=gates, hh_n=hh_n)
    state_n = (h, c) if mode == "lstm" else h
    return y, state_n, cache


def layer_backward(dy, dstate_n, cache):
    """Backward through time of :func:`layer_forward`.

    Walks the steps in the opposite order of the forward pass, carrying the
    gradient of the state. At each step ``dh += dy[t]``, the cell's backward
    gives the gradient ``da`` of the gate pre-activations, and::

        dW_hh += da_h^T h_prev      db_hh += sum_b da_h
        dh_prev = da_h W_hh (+ dh' * z for gru)

    where ``da_h`` is the hidden-side gradient (equal to the input-side one
    ``da_x`` except in the GRU n block). After the loop, for all steps at once::

        dx = da_x W_ih      dW_ih = sum_t da_x[t]^T x[t]      db_ih = sum_{t,b} da_x

    Parameters
    ----------
    dy : array_like, shape (T, B, H)
        Gradient of the loss with respect to ``y``.
    dstate_n : array_like (B, H), or tuple (dh_n, dc_n) for lstm
        Gradient with respect to ``state_n``; ``None`` means zeros.
    cache : dict
        As returned by :func:`layer_forward`.

    Returns
    -------
    dx : ndarray, shape (T, B, D)
    dstate0 : ndarray (B, H), or tuple (dh0, dc0) for lstm
    grads : dict
        ``"weight_ih"``, ``"weight_hh"`` and, for the biases that were given,
        ``"bias_ih"``, ``"bias_hh"``; ``"weight_peephole"`` with peepholes.
    """
    mode, dtype = cache["mode"], cache["dtype"]
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    T, B, D = x.shape
    G, H = w_hh.shape

    dy = np.asarray(dy, dtype=dtype)
    _check_shape("dy", dy, (T, B, H))
    dh_n, dc_n = _state_parts(mode, dstate_n, "dstate_n")
    dh = _state_array(dh_n, (B, H), dtype, "dh_n")
    dc = _state_array(dc_n, (B, H), dtype, "dc_n") if mode == "lstm" else None

    dxi = np.empty((T, B, G), dtype=dtype)  # gradient of W_ih x_t + b_ih, per step
    dw_hh = np.zeros((G, H), dtype=dtype)
    db_hh = np.zeros(G, dtype=dtype)
    w_peep = cache["w_peep"]
    dw_peep = None if w_peep is None else np.zeros((3, H), dtype=dtype)

    for t in reversed(_time_steps(T, cache["reverse"])):
        dh = dh + dy[t]  # y[t] is the new state's h: both paths add up
        h_prev = cache["h_in"][t]
        if mode == "rnn":
            da_h = rnn_cell_backward(dh, cache["y"][t], cache["nonlinearity"])
            dxi[t] = da_h
            dh_direct = 0
        elif mode == "lstm" and w_peep is not None:
            da_h, dc, dp = lstm_cell_backward(dh, dc, cache["c_in"][t], cache["c_out"][t],
                                              cache["gates"][t], w_peep)
            dw_peep += dp
            dxi[t] = da_h
            dh_direct = 0
        elif mode == "lstm":
            da_h, dc = lstm_cell_backward(dh, dc, cache["c_in"][t], cache["c_out"][t],
                                          cache["gates"][t])
            dxi[t] = da_h
            dh_direct = 0
        elif not cache["reset_after"]:
            # the n block's weights meet r * h, not h: this cell does its own dW_hh and dh
            dxi[t], dh, dw_step = gru_cell_backward_reset_before(
                dh, h_prev, cache["gates"][t], cache["hh_n"][t], w_hh)
            dw_hh += dw_step
            db_hh += dxi[t].sum(axis=0)
            continue
        else:
            dxi[t], da_h, dh_direct = gru_cell_backward(dh, h_prev, cache["gates"][t],
                                                        cache["hh_n"][t])
        dw_hh += da_h.T @ h_prev
        db_hh += da_h.sum(axis=0)
        dh = da_h @ w_hh + dh_direct

    # The input side, for all steps at once (it has no recurrence).
    dx = dxi @ w_ih
    grads = {"weight_ih": dxi.reshape(T * B, G).T @ x.reshape(T * B, D),
             "weight_hh": dw_hh}
    if cache["has_b_ih"]:
        grads["bias_ih"] = dxi.sum(axis=(0, 1))
    if cache["has_b_hh"]:
        grads["bias_hh"] = db_hh
    if dw_peep is not None:
        grads["weight_peephole"] = dw_peep
    dstate0 = (dh, dc) if mode == "lstm" else dh
    return dx, dstate0, grads


# ---------------------------------------------------------------------------
# Stacked, optionally bidirectional network
# ---------------------------------------------------------------------------

def _check_variant(mode, peephole, reset_after):
    if peephole and mode != "lstm":
        raise ValueError(f"peepholes are an lstm option, got mode {mode!r}")
    if not isinstance(reset_after, bool):
        raise TypeError(f"reset_after must be True or False, got {reset_after!r}")
    if not reset_after and mode != "gru":
        raise ValueError(f"reset_after=False is a gru option, got mode {mode!r}")


def _suffix(direction):
    return "_reverse" if direction == 1 else ""


def _layer_param_names(layer, direction):
    s = f"_l{layer}{_suffix(direction)}"
    return {"weight_ih": "weight_ih" + s, "weight_hh": "weight_hh" + s,
            "bias_ih": "bias_ih" + s, "bias_hh": "bias_hh" + s,
            "weight_peephole": "weight_peephole" + s}


def forward(mode, params, x, state0=None, *, num_layers=1, bidirectional=False,
            reverse=False, nonlinearity="tanh", peephole=False, reset_after=True):
    """Stacked, optionally bidirectional network, like ``torch.nn.RNN/LSTM/GRU``.

    Layer ``k`` runs :func:`layer_forward` forwards in time and, when
    bidirectional, again backwards in time with the ``_reverse`` parameters.
    Its output is the concatenation along the feature axis::

        y_k[t] = [y_k_forward[t], y_k_reverse[t]]      # (B, num_dirs * H)

    and is the input of layer ``k + 1``; ``x`` is the input of layer 0.
    Dropout between layers is not modelled.

    Parameters
    ----------
    mode : {"rnn", "lstm", "gru"}
    params : mapping of str to array_like
        Keyed by torch's state_dict names: ``weight_ih_l{k}`` (G*H, D_k),
        ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (G*H,),
        and the same with suffix ``_reverse`` for the reverse direction;
        ``D_0 = D`` and ``D_k = num_dirs * H`` for ``k > 0``. Absent bias keys
        mean no bias. H is taken from ``weight_hh_l0``.
    x : array_like, shape (T, B, D)
    state0 : None, array_like, or tuple (h0, c0) for lstm
        Each of shape (num_layers * num_dirs, B, H), indexed by
        ``layer * num_dirs + direction`` as in torch. None means zeros.
    num_layers : int
    bidirectional : bool
    reverse : bool
        Run every layer's single direction backwards in time (ONNX's
        direction="reverse"), with the forward parameter names; cannot be
        combined with ``bidirectional``.
    nonlinearity : {"tanh", "relu"}
        Activation of the rnn cell; ignored by lstm and gru.
    peephole : bool
        lstm only: params also hold ``weight_peephole_l{k}`` (3, H) per
        layer and direction, rows ``[p_i, p_f, p_o]``.
    reset_after : bool
        gru only: False for the reset gate before the product.

    Returns
    -------
    y : ndarray, shape (T, B, num_dirs * H)
        Output of the last layer.
    state_n : ndarray, or tuple (h_n, c_n) for lstm
        Final states, same structure and shapes as ``state0``.
    cache : dict
        What :func:`backward` needs.
    """
    _check_mode(mode, nonlinearity)
    _check_variant(mode, peephole, reset_after)
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if reverse and bidirectional:
        raise ValueError("reverse=True needs bidirectional=False")
    num_dirs = 2 if bidirectional else 1

    # Gather every layer's parameters and fix one compute dtype for all of them.
    layer_params = {}
    for k in range(num_layers):
        for d in range(num_dirs):
            names = _layer_param_names(k, d)
            for role in ("weight_ih", "weight_hh") + (("weight_peephole",) if peephole else ()):
                if names[role] not in params:
                    raise ValueError(f"params is missing {names[role]!r}")
            if not peephole and names["weight_peephole"] in params:
                raise ValueError(f"params has {names['weight_peephole']!r}: pass peephole=True")
            layer_params[k, d] = {role: np.asarray(params[name])
                                  for role, name in names.items() if name in params}
    x = np.asarray(x)
    dtype = _compute_dtype(x, *[a for p in layer_params.values() for a in p.values()])
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (T, B, D), got {x.shape}")
    T, B, _ = x.shape
    H = layer_params[0, 0]["weight_hh"].shape[1]

    state_shape = (num_layers * num_dirs, B, H)
    h0, c0 = _state_parts(mode, state0, "state0")
    h0 = _state_array(h0, state_shape, dtype, "h0")
    c0 = _state_array(c0, state_shape, dtype, "c0") if mode == "lstm" else None
    h_n = np.empty(state_shape, dtype=dtype)
    c_n = np.empty(state_shape, dtype=dtype) if mode == "lstm" else None

    layer_input = x
    caches = []
    for k in range(num_layers):
        outputs, layer_caches = [], []
        for d in range(num_dirs):
            p = {role: a.astype(dtype, copy=False) for role, a in layer_params[k, d].items()}
            idx = k * num_dirs + d
            s0 = (h0[idx], c0[idx]) if mode == "lstm" else h0[idx]
            y_d, s_n, cache_d = layer_forward(
                mode, layer_input, s0, p["weight_ih"], p["weight_hh"],
                p.get("bias_ih"), p.get("bias_hh"),
                reverse=(d == 1 or reverse), nonlinearity=nonlinearity,
                w_peep=p.get("weight_peephole"), reset_after=reset_after)
            if mode == "lstm":
                h_n[idx], c_n[idx] = s_n
            else:
                h_n[idx] = s_n
            outputs.append(y_d)
            layer_caches.append(cache_d)
        caches.append(layer_caches)
        layer_input = outputs[0] if num_dirs == 1 else np.concatenate(outputs, axis=2)

    cache = {"mode": mode, "num_layers": num_layers, "num_dirs": num_dirs,
             "hidden_size": H, "dtype": dtype, "input_shape": x.shape,
             "layers": caches}
    state_n = (h_n, c_n) if mode == "lstm" else h_n
    return layer_input, state_n, cache


def backward(dy, cache, dstate_n=None):
    """Backward of :func:`forward`.

    Goes through the layers from the top down. Layer ``k``'s output gradient
    is split along the feature axis between its directions, each direction
    runs :func:`layer_backward`, and since both directions read the same
    input their input gradients add up::

        d y_{k-1} = dx_k_forward + dx_k_reverse

    Parameters
    ----------
    dy : array_like, shape (T, B, num_dirs * H)
        Gradient of the loss with respect to ``y``.
    cache : dict
        As returned by :func:`forward`.
    dstate_n : None, array_like, or tuple (dh_n, dc_n) for lstm
        Gradient with respect to ``state_n``, same shapes; None means zeros.

    Returns
    -------
    dx : ndarray, shape (T, B, D)
    dstate0 : ndarray, or tuple (dh0, dc0) for lstm
        Gradient with respect to the initial state; returned even if
        ``state0`` was None.
    grads : dict
        Parameter gradients, keyed by the same names as ``params``.
    """
    mode, dtype = cache["mode"], cache["dtype"]
    num_layers, num_dirs, H = cache["num_layers"], cache["num_dirs"], cache["hidden_size"]
    T, B, _ = cache["input_shape"]

    dy = np.asarray(dy, dtype=dtype)
    _check_shape("dy", dy, (T, B, num_dirs * H))
    state_shape = (num_layers * num_dirs, B, H)
    dh_n, dc_n = _state_parts(mode, dstate_n, "dstate_n")
    dh_n = _state_array(dh_n, state_shape, dtype, "dh_n")
    dc_n = _state_array(dc_n, state_shape, dtype, "dc_n") if mode == "lstm" else None
    dh0 = np.empty(state_shape, dtype=dtype)
    dc0 = np.empty(state_shape, dtype=dtype) if mode == "lstm" else None

    grads = {}
    d_out = dy  # gradient with respect to the current layer's output
    for k in reversed(range(num_layers)):
        d_in = 0
        for d in range(num_dirs):
            idx = k * num_dirs + d
            dy_d = d_out[:, :, d * H:(d + 1) * H]
            ds_n = (dh_n[idx], dc_n[idx]) if mode == "lstm" else dh_n[idx]
            dx_d, ds0, g = layer_backward(dy_d, ds_n, cache["layers"][k][d])
            d_in = d_in + dx_d
            if mode == "lstm":
                dh0[idx], dc0[idx] = ds0
            else:
                dh0[idx] = ds0
            names = _layer_param_names(k, d)
            for role, grad in g.items():
                grads[names[role]] = grad
        d_out = d_in

    dstate0 = (dh0, dc0) if mode == "lstm" else dh0
    return d_out, dstate0, grads
