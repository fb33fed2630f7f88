"""fastrnn.RNNCell, LSTMCell and GRUCell: one time step at a time, torch.nn's cells.

A cell is a one-layer, one-direction recurrent layer run with T = 1: it holds
such a layer and calls the layer's own direction runners (``_run_direction``,
``_backprop_direction`` in fastrnn/layers/base.py), so a step runs on the same
compiled kernels (fastrnn/kernels/recurrent.pyx) as a whole sequence, and a
loop of cell steps is the layer's call step by step.  The cell's parameters
are the layer's arrays under torch's cell names (``weight_ih`` for the
layer's ``weight_ih_l0``).  What the cell adds is the step API: inputs of
(B, D) or (D,), validated once per step and nothing more.
"""

import numpy as np

from fastrnn.layers.base import ForwardCache
from fastrnn.layers.gru import GRU
from fastrnn.layers.lstm import LSTM
from fastrnn.layers.module import ParamModule
from fastrnn.layers.rnn import RNN
from fastrnn.runtime.aligned import empty_aligned, zeros_aligned
from fastrnn.runtime.lengths import NO_LENGTHS
from fastrnn._validation import as_real_array

__all__ = ["RNNCell", "LSTMCell", "GRUCell"]

# the cell's parameter name -> the one-layer layer's
_LAYER_NAMES = {"weight_ih": "weight_ih_l0", "weight_hh": "weight_hh_l0",
                "bias_ih": "bias_ih_l0", "bias_hh": "bias_hh_l0"}

_METHODS = """
    Attributes
    ----------
    params, grads : dict of name -> ndarray
        torch's cell names and shapes: ``weight_ih`` ({wshape}), ``weight_hh``,
        ``bias_ih``, ``bias_hh`` (without bias, only the weights); a torch cell's
        ``state_dict()`` (converted with ``.numpy()``) loads as is.  backward()
        adds into grads until zero_grad().

    Methods
    -------
    cell(x, state=None) -> state_out
        Inference step.  x is (B, D) or unbatched (D,); state is {state} of
        (B, H) (or (H,) unbatched); None means zeros.
    forward(x, state=None) -> (state_out, cache)
        Training step; the cache references x and keeps the step's activations.
    backward(dstate_out, cache) -> (dx, dstate)
        Gradients of the step's input and incoming state from the gradient of
        its outgoing state (shaped like it); adds parameter gradients into grads.
    state_dict(), load_state_dict(mapping), zero_grad(), reset_parameters(seed)

    Notes
    -----
    Runs the compiled step of the layer class with T = 1, so a loop of steps
    gives the layer's results on the whole sequence; initialisation is the
    layer's, U(-1/sqrt(H), 1/sqrt(H)), and the same seed gives the same
    parameters as a one-layer layer.
"""

_PARAMETERS = """
    Parameters
    ----------
    input_size : int
        Number of features D of the input.
    hidden_size : int
        Number of features H of the state.
    bias : bool, default True
        Whether the cell has the two bias vectors b_ih and b_hh.
"""

_KEYWORDS = """    dtype : float32 or float64, default float32
        Dtype of parameters, computation and results; inputs of another real
        dtype are converted.
    seed : int, numpy Generator or None
        Seeds the initialisation of every parameter.
"""


class _Cell(ParamModule):
    """One step of a one-layer recurrent layer (see the module docstring)."""

    _layer_class = None

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, seed=None,
                 **variant):
        self._layer = self._layer_class(input_size, hidden_size, bias=bias, dtype=dtype,
                                        seed=seed, **variant)
        self.input_size, self.hidden_size = self._layer.input_size, self._layer.hidden_size
        self.bias, self.dtype = self._layer.bias, self._layer.dtype
        self._arity = 2 if self._layer._has_cell else 1
        self.params, self.grads = {}, {}
        self._bind()

    def _bind(self):
        """params and grads: the layer's arrays under the cell's names (in place, so that
        references to the dicts, an optimiser's, stay valid)."""
        for table, source in ((self.params, self._layer.params),
                              (self.grads, self._layer.grads)):
            table.clear()
            for name, layer_name in _LAYER_NAMES.items():
                if layer_name in source:
                    table[name] = source[layer_name]

    def reset_parameters(self, seed=None):
        """Draw every parameter from U(-1/sqrt(H), 1/sqrt(H)) (torch's init) and zero grads."""
        self._layer.reset_parameters(seed)
        self._bind()

    # ------------------------------------------------------------- inputs

    def _input(self, x):
        """x as a C-contiguous (1, B, D) array of the cell's dtype, and whether it was (D,)."""
        arr = as_real_array(x, "x")
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.input_size:
            raise ValueError(f"x: expected shape (B, {self.input_size}) or "
                             f"({self.input_size},), got shape {arr.shape}")
        unbatched = arr.ndim == 1
        x3 = np.ascontiguousarray(arr, dtype=self.dtype).reshape(1, -1, self.input_size)
        if x3.shape[1] == 0:
            raise ValueError("x: expected at least one row, got shape (0, "
                             f"{self.input_size})")
        return x3, unbatched

    def _states(self, state, name, B, unbatched):
        """state (h, or (h, c) for the LSTM cell) as a list of C-contiguous (B, H) arrays;
        None gives zeros."""
        H = self.hidden_size
        if state is None:
            return [zeros_aligned((B, H), self.dtype) for _ in range(self._arity)]
        if self._arity == 2:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"{name}: expected a pair (h, c), got "
                                f"{type(state).__name__}")
            parts, names = state, (f"{name}[0] (h)", f"{name}[1] (c)")
        else:
            parts, names = (state,), (name,)
        shape = (H,) if unbatched else (B, H)
        out = []
        for part, part_name in zip(parts, names):
            arr = as_real_array(part, part_name)
            if arr.shape != shape:
                raise ValueError(f"{part_name}: expected shape {shape}, got shape {arr.shape}")
            out.append(np.ascontiguousarray(arr, dtype=self.dtype).reshape(B, H))
        return out

    def _user_state(self, states, unbatched):
        out = [s[0] if unbatched else s for s in states]
        return tuple(out) if self._arity == 2 else out[0]

    # -------------------------------------------------------------- steps

    def _step(self, x, state, training):
        x3, unbatched = self._input(x)
        B = x3.shape[1]
        layer = self._layer
        states0 = self._states(state, "state", B, unbatched)
        y = empty_aligned((1, B, self.hidden_size), self.dtype)
        states_n = [np.empty((B, self.hidden_size), self.dtype) for _ in states0]
        runtime = layer._runtime
        if training:
            with runtime.scratch.lease() as lease:
                saved = layer._run_direction(0, 0, x3, states0, y, states_n, True,
                                             NO_LENGTHS, work=lease)
                kept = lease.kept()
            cache = ForwardCache(self, unbatched, np.shape(x), [x3], [y], states0,
                                 {0: saved}, kept=kept)
            return self._user_state(states_n, unbatched), cache
        reused = runtime.take_reused()
        layer._run_direction(0, 0, x3, states0, y, states_n, False, NO_LENGTHS, work=reused)
        runtime.keep_reused(reused)
        return self._user_state(states_n, unbatched)

    def __call__(self, x, state=None):
        """Inference: one step from state on x; returns the new state (see the class)."""
        return self._step(x, state, False)

    def forward(self, x, state=None):
        """Training step: returns (state_out, cache); see the class docstring."""
        return self._step(x, state, True)

    def backward(self, dstate_out, cache):
        """Backpropagate through one step.

        Parameters
        ----------
        dstate_out : array_like, or a pair (dh, dc) for the LSTM cell
            Gradient of the loss with respect to the state forward() returned,
            shaped like it.
        cache : the cache returned by this cell's forward()

        Returns
        -------
        dx : ndarray shaped like forward's x
        dstate : gradient with respect to forward's state, shaped like the state
            (a pair for the LSTM cell); also when forward's state was None (zeros).

        Adds the gradients of every parameter into grads.
        """
        self._owned_cache(cache, ForwardCache)
        x3, y = cache.inputs[0], cache.outputs[0]
        B = x3.shape[1]
        dstates = self._states(dstate_out, "dstate_out", B, cache.unbatched)
        # with T = 1 the output y is the new h: its gradient goes in as dy, and the
        # carries (zero dh; dc) come back as the gradient of the incoming state
        dy = dstates[0].reshape(1, B, self.hidden_size)
        carries = [zeros_aligned((B, self.hidden_size), self.dtype)]
        if self._arity == 2:
            carries.append(empty_aligned((B, self.hidden_size), self.dtype))
            carries[1][...] = dstates[1]
        dx = np.zeros_like(x3)
        layer = self._layer
        with layer._runtime.scratch.lease() as lease:
            layer._backprop_direction(0, 0, x3, y, dy, cache.saved[0], cache.states0,
                                      carries, dx, False, NO_LENGTHS, lease)
        dx_user = dx[0, 0] if cache.unbatched else dx[0]
        return dx_user, self._user_state(carries, cache.unbatched)

    def __repr__(self):
        extra = "" if self.bias else ", bias=False"
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}"
                f"{self._repr_extra()}, dtype={self.dtype.name})")

    def _repr_extra(self):
        return ""


class RNNCell(_Cell):
    __doc__ = """One step of an Elman RNN, torch.nn.RNNCell's maths and names.

    The step::

        h' = act(W_ih x + b_ih + W_hh h + b_hh),   act = tanh or relu
    """ + _PARAMETERS + """    nonlinearity : {"tanh", "relu"}, default "tanh"
""" + _KEYWORDS + _METHODS.format(wshape="(H, D)", state="h")

    _layer_class = RNN

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *,
                 dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed,
                         nonlinearity=nonlinearity)
        self.nonlinearity = self._layer.nonlinearity

    def _repr_extra(self):
        return "" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}"


class LSTMCell(_Cell):
    __doc__ = """One step of an LSTM, torch.nn.LSTMCell's maths and names.

    The gates i, f, g, o lie in the rows of W_ih and W_hh in that order::

        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
        f = sigmoid(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        o = sigmoid(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g
        h' = o * tanh(c')

    The state is the pair (h, c), and so is what a step returns: ``h, c = cell(x, (h, c))``.
    """ + _PARAMETERS + _KEYWORDS + _METHODS.format(wshape="(4H, D)", state="a pair (h, c)")

    _layer_class = LSTM

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed)


class GRUCell(_Cell):
    __doc__ = """One step of a GRU, torch.nn.GRUCell's maths and names.

    The gates r, z, n lie in the rows of W_ih and W_hh in that order, and the reset gate
    multiplies W_hn h + b_hn::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h
    """ + _PARAMETERS + _KEYWORDS + _METHODS.format(wshape="(3H, D)", state="h")

    _layer_class = GRU

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed)
