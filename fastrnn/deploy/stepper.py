"""fastrnn.Stepper: a recurrent stack run one time step per call, for streams.

A service that answers one frame at a time, or an edge box reading a sensor,
calls the network once per step with the state carried over.  Through
``layer(x_t, state)`` each such call validates and allocates as a whole
sequence would; a Stepper does that once, when it is made, and keeps its own
state, so a step is little more than the arithmetic.
"""


import numpy as np

from fastrnn.kernels import plan as _plan
from fastrnn.runtime.aligned import zeros_aligned
from fastrnn.runtime.lengths import NO_LENGTHS
from fastrnn.runtime.runtime import Runtime, check_weights, serving_copy
from fastrnn._validation import check_positive_int, check_state

_RUN = {np.dtype(np.float32): _plan.run_step["float"],
        np.dtype(np.float64): _plan.run_step["double"]}
_BIND = {np.dtype(np.float32): _plan.bind_io["float"],
         np.dtype(np.float64): _plan.bind_io["double"]}


class Stepper:
    """A unidirectional recurrent layer stack, advanced one time step per call.

    ``step = fastrnn.Stepper(layer)`` (or ``layer.stepper()``) then
    ``y_t = step(x_t)`` for t = 0, 1, ...: each call runs every layer of the
    stack on one step and carries the state, so that the outputs are those of
    ``layer(x)`` on the whole sequence::

        h^l_t = cell(h^{l-1}_t, h^l_{t-1})   for l = 1..num_layers, h^0_t = x_t
        y_t = h^{num_layers}_t

    (LSTM carries c^l_t too).  The stepper works on a copy of the layer's
    parameters taken when it is made: make a new one after training the layer
    further.  It holds one stream's state, so one stepper serves one stream
    (or one batch of streams) in one thread at a time; make one per stream.

    Parameters
    ----------
    layer : fastrnn.RNN, fastrnn.LSTM or fastrnn.GRU
        A forward layer stack (not bidirectional, not reverse: those need the
        whole sequence).
    state0 : None, array_like, or a pair (h0, c0) for LSTM
        The state before the first step, shaped like the layer's state0
        ((num_layers, B, H), or (num_layers, H) without batch_size); None
        means zeros.
    batch_size : None or int
        None: each step takes one stream's x_t of shape (D,).  An int B:
        B streams advance together, x_t is (B, D).
    weights : {"float", "int8", "bfloat16"}, default "float"
        What the steps multiply by: the weights in the layer's dtype, or in
        reduced precision as fastrnn.FrozenLayer does (float32 layers); such a
        stepper gives the numbers of ``layer.frozen(weights=weights)``.

    Attributes
    ----------
    state : ndarray, or a pair (h, c) for LSTM
        A copy of the current state, in the layout of state0.

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> lstm = fastrnn.LSTM(4, 8, num_layers=2, seed=0)
    >>> step = lstm.stepper()
    >>> x = np.ones((3, 4), np.float32)
    >>> ys = [step(x_t) for x_t in x]
    >>> np.allclose(ys[-1], lstm(x)[0][-1], atol=1e-6)
    True
    """

    def __init__(self, layer, state0=None, batch_size=None, *, weights="float"):
        runtime = Runtime(weights=check_weights(weights, layer))
        own = serving_copy(layer, runtime)      # the parameters as they are now
        if layer.bidirectional or layer.reverse:
            which = "bidirectional" if layer.bidirectional else "reverse"
            raise ValueError(f"layer: a {which} layer reads its input from the end, so it "
                             f"cannot be stepped; use a forward layer")
        self._unbatched = batch_size is None
        B = 1 if self._unbatched else check_positive_int(batch_size, "batch_size")
        self._layer = own
        L, D, H, dtype = layer.num_layers, layer.input_size, layer.hidden_size, layer.dtype
        self._shape = (B, D)
        self._dtype = dtype
        self._states = [zeros_aligned((L, B, H), dtype) for _ in range(2 if layer._has_cell else 1)]
        self.reset(state0)
        # With a plan in its runtime, the layer's forward hooks set the plan's layers up
        # rather than run them.  Every layer reads the one before through buffers that
        # live as long as the plan.
        self._plan = runtime.plan = _plan.StepPlan(L)
        x_buf = np.zeros((1, B, D), dtype)
        layer_in = x_buf
        for l in range(L):
            y = zeros_aligned((1, B, H), dtype)
            rows = [s[l] for s in self._states]     # (B, H) views: state in and out
            own._run_direction(l, 0, layer_in, rows, y, rows, False, NO_LENGTHS)
            layer_in = y
        _BIND[dtype](self._plan, x_buf, layer_in)
        self._run = _RUN[dtype]

    def __call__(self, x):
        """Advance one step on x_t ((D,), or (B, D) with batch_size) and return y_t
        ((H,) or (B, H)), a new array."""
        if not (type(x) is np.ndarray and x.dtype == self._dtype and x.flags.c_contiguous):
            x = self._as_input(x)
        if self._unbatched:
            if x.shape != self._shape[1:]:
                raise ValueError(f"x: expected shape {self._shape[1:]}, got {x.shape}")
            x = x.reshape(self._shape)
            out = np.empty((1, self._layer.hidden_size), self._dtype)
            self._run(self._plan, x, out)
            return out[0]
        if x.shape != self._shape:
            raise ValueError(f"x: expected shape {self._shape}, got {x.shape}")
        out = np.empty((self._shape[0], self._layer.hidden_size), self._dtype)
        self._run(self._plan, x, out)
        return out

    def _as_input(self, x):
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"x: expected real numbers, got an array of dtype {arr.dtype}")
        return np.ascontiguousarray(arr, dtype=self._dtype)

    @property
    def state(self):
        out = [s[:, 0].copy() if self._unbatched else s.copy() for s in self._states]
        return tuple(out) if self._layer._has_cell else out[0]

    def reset(self, state0=None):
        """Start again from state0 (None: zeros), shaped as for the constructor."""
        layer = self._layer
        states = check_state(state0, "state0", layer._state_shape(self._shape[0]),
                             layer._has_cell, self._unbatched, self._dtype)
        for own, new in zip(self._states, states):
            own[...] = new

    def __repr__(self):
        batch = "" if self._unbatched else f", batch_size={self._shape[0]}"
        kind = self._layer._runtime.weights
        kind = "" if kind == "float" else f", weights={kind!r}"
        return f"Stepper({self._layer!r}{batch}{kind})"
