"""fastrnn.GRU: gated recurrent unit layers, torch.nn.GRU's maths."""

import numpy as np

from fastrnn import _docs, _gru, keras
from fastrnn._base import RecurrentLayer
from fastrnn._elementwise import panel_width
from fastrnn._validation import check_bool


# The float and double instances of the kernels, chosen once per dtype: a
# fused Cython function called directly re-dispatches on its argument types
# on every call, which a one-step stream pays each step.
_FORWARD = {np.dtype(np.float32): _gru.gru_forward["float"],
            np.dtype(np.float64): _gru.gru_forward["double"]}
_BACKWARD = {np.dtype(np.float32): _gru.gru_backward["float"],
             np.dtype(np.float64): _gru.gru_backward["double"]}

class GRU(RecurrentLayer, cell="GRU"):
    __doc__ = """Multi-layer GRU over a sequence, with torch.nn.GRU's maths and names.

    For each layer and direction, at each time step t (gate order r, z, n in
    the rows of W_ih and W_hh; the reset gate multiplies W_hn h + b_hn)::

        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    With ``reset_after=False``, the original formulation (Cho et al. 2014;
    Keras' reset_after=False, ONNX's linear_before_reset=0): the reset gate
    multiplies h_{t-1} before the product, same parameters::

        n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)

    Training forward saves r, z, n and W_hn h + b_hn of every step
    (r * h_{t-1} instead of the last with reset_after=False; 4 * T * B * H
    numbers per layer and direction, besides the layer's output), and
    backward allocates 6 * T * B * H more for the gate gradients (3 * T * B * H
    with reset_after=False, where both sides' gate gradients are equal) and
    T * B * (D + H) for the layer's input and previous outputs transposed (the
    weight gradients' operands; T * B * (D + 2H) with reset_after=False).
    """ + _docs.PARAMETERS + """    reset_after : bool, default True
        True: torch's GRU, r multiplies W_hn h + b_hn.  False: r multiplies
        h before W_hn (the equation above).
    """ + _docs.SHAPES.format(state="an array h", wshape="(3H, D)")

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, reverse=False,
                 reset_after=True, dtype=np.float32, seed=None):
        self.reset_after = check_bool(reset_after, "reset_after")
        super().__init__(input_size, hidden_size, num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         reverse=reverse, dtype=dtype, seed=seed)

    @classmethod
    def from_keras(cls, weights, reset_after=True, **config):
        """The GRU equivalent to a Keras 3 GRU layer, from its ``get_weights()`` list.

        Parameters
        ----------
        weights : list of array_like
            ``[kernel, recurrent_kernel, bias]`` or ``[kernel, recurrent_kernel]``; the
            bias is (2, 3H) with reset_after=True and (3H,) with reset_after=False.
        reset_after : bool, default True
            The Keras layer's ``reset_after`` (Keras's default is True, torch's maths).
        **config
            Other constructor arguments, as for RecurrentLayer.from_keras.

        Returns
        -------
        layer : fastrnn.GRU, single-layer, unidirectional, batch_first=True by default
        """
        return keras.from_keras(cls, weights, config, reset_after=bool(reset_after))

    def _run_direction(self, layer, direction, x, states0, y, states_n, training, active,
                       work=None):
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
        T, B = x.shape[:2]
        H = self.hidden_size
        plan = self._runtime.plan
        calls = T * B if plan is None else None   # a plan packs once for all its steps
        # b_hr and b_hz fold into the input side; b_hn too with reset_after=False,
        # else it sits inside r * (...).
        inside = 2 * H if self.reset_after else 3 * H
        if self.bias:
            bias_x = b_ih.copy()
            bias_x[:inside] += b_hh[:inside]
            b_hn = b_hh[2 * H:]
        else:
            bias_x = np.zeros(3 * H, self.dtype)
            b_hn = np.zeros(H, self.dtype)
        chunk = self._chunk_steps(T, B, 4 * H)
        # training keeps the activations for backward; inference works in a chunk
        gates = self._saved_array((T, B, 4 * H), work) if training else \
            self._work((chunk, B, 4 * H), work)
        gh = self._work((B, 3 * H), work)
        # reset-before packs W_h{r,z} and W_hn apart: at most one panel more
        whh_rows = 3 * H if self.reset_after else 3 * H + panel_width(self.dtype.itemsize)
        (wih_p, whh_p), packing = self._forward_packs(
            layer, direction, [(3 * H, x.shape[2]), (whh_rows, H)], calls, work)
        _FORWARD[self.dtype](x, w_ih, w_hh, bias_x, b_hn, states0[0], y, direction * H, gates, gh,
                         states_n[0], wih_p, whh_p, self._threads(T, B, x.shape[2]),
                         self._backwards_in_time(direction), active, self.reset_after,
                         plan=plan, plan_layer=layer, chunk=chunk, packing=packing)
        return gates if training else None

    def _backprop_direction(self, layer, direction, x, y, dy, saved, states0, carries, dx,
                            accumulate, active, work):
        w_ih, w_hh, _, _ = self._weights(layer, direction)
        dw_ih, dw_hh, db_ih, db_hh = self._weight_grads(layer, direction)
        T, B, D = x.shape
        H = self.hidden_size
        dgi = self._work((T, B, 3 * H), work)
        # reset-before: both sides' gradients are equal, and only the n block is packed
        # apart (for dW_hn)
        dgh = self._work((T, B, 3 * H), work) if self.reset_after else dgi
        _BACKWARD[self.dtype](x, w_ih, w_hh, states0[0], y, dy, direction * H, saved, carries[0],
                          dgi, dgh, dx, accumulate, dw_ih, dw_hh, db_ih, db_hh,
                          self._packed_weights(H, 3 * H, work=work),
                          self._packed_weights(D, 3 * H, work=work),
                          self._packed_weights(3 * H, T * B, work=work),
                          self._packed_weights(3 * H if self.reset_after else H, T * B,
                                               work=work),
                          self._transposed_operands(T * B, D, work,
                                                    with_hx=not self.reset_after),
                          self._threads(T, B, D), self._backwards_in_time(direction), active,
                          self.reset_after)

    def _config_repr(self):
        args = super()._config_repr()
        if not self.reset_after:
            args.insert(-1, "reset_after=False")
        return args
