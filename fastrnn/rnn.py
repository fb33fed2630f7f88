"""fastrnn.RNN: Elman recurrent layers with tanh or relu, torch.nn.RNN's maths."""

import numpy as np

from fastrnn import _docs, _rnn
from fastrnn._base import RecurrentLayer

_NONLINEARITIES = ("tanh", "relu")


# The float and double instances of the kernels, chosen once per dtype: a
# fused Cython function called directly re-dispatches on its argument types
# on every call, which a one-step stream pays each step.
_FORWARD = {np.dtype(np.float32): _rnn.rnn_forward["float"],
            np.dtype(np.float64): _rnn.rnn_forward["double"]}
_BACKWARD = {np.dtype(np.float32): _rnn.rnn_backward["float"],
             np.dtype(np.float64): _rnn.rnn_backward["double"]}

class RNN(RecurrentLayer, cell="RNN"):
    __doc__ = """Multi-layer Elman RNN over a sequence, with torch.nn.RNN's maths and names.

    For each layer and direction, at each time step t::

        h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu

    Training forward saves nothing beyond each layer's output (act' is
    computed from h_t), and backward allocates T * B * H for the gradients and
    T * B * (D + H) for the layer's input and previous outputs transposed (the
    weight gradients' operands).
    """ + _docs.PARAMETERS + """    nonlinearity : {"tanh", "relu"}, default "tanh"
    """ + _docs.SHAPES.format(state="an array h", wshape="(H, D)")

    def __init__(self, input_size, hidden_size, num_layers=1, *, nonlinearity="tanh",
                 bias=True, batch_first=False, dropout=0.0, bidirectional=False,
                 reverse=False, dtype=np.float32, seed=None):
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         reverse=reverse, dtype=dtype, seed=seed)

    def _run_direction(self, layer, direction, x, states0, y, states_n, training, active,
                       work=None):
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
        T, B = x.shape[:2]
        H = self.hidden_size
        plan = self._runtime.plan
        calls = T * B if plan is None else None   # a plan packs once for all its steps
        bias = b_ih + b_hh if self.bias else np.zeros(H, self.dtype)
        pre = self._work((self._chunk_steps(T, B, H), B, H), work)
        (wih_p, whh_p), packing = self._forward_packs(
            layer, direction, [(H, x.shape[2]), (H, H)], calls, work)
        _FORWARD[self.dtype](x, w_ih, w_hh, bias, states0[0], y, direction * H, pre, states_n[0],
                         wih_p, whh_p, self._threads(T, B, x.shape[2]),
                         self.nonlinearity == "relu", self._backwards_in_time(direction),
                         active, plan=plan, plan_layer=layer, packing=packing)
        return None     # backward needs only y

    def _backprop_direction(self, layer, direction, x, y, dy, saved, states0, carries, dx,
                            accumulate, active, work):
        w_ih, w_hh, _, _ = self._weights(layer, direction)
        dw_ih, dw_hh, db_ih, db_hh = self._weight_grads(layer, direction)
        T, B, D = x.shape
        H = self.hidden_size
        dpre = self._work((T, B, H), work)
        _BACKWARD[self.dtype](x, w_ih, w_hh, states0[0], y, dy, direction * H,
                          carries[0], dpre, dx, accumulate, dw_ih, dw_hh, db_ih, db_hh,
                          self._packed_weights(H, H, work=work),
                          self._packed_weights(D, H, work=work),
                          self._packed_weights(H, T * B, work=work),
                          self._transposed_operands(T * B, D, work), self._threads(T, B, D),
                          self.nonlinearity == "relu", self._backwards_in_time(direction), active)

    def _config_repr(self):
        args = super()._config_repr()
        if self.nonlinearity != "tanh":
            args.insert(2, f"nonlinearity={self.nonlinearity!r}")
        return args
