"""fastrnn.LSTM: long short-term memory layers, torch.nn.LSTM's maths."""

import numpy as np

from fastrnn import _docs, _lstm
from fastrnn._base import RecurrentLayer
from fastrnn._validation import check_bool


# The float and double instances of the kernels, chosen once per dtype: a
# fused Cython function called directly re-dispatches on its argument types
# on every call, which a one-step stream pays each step.
_FORWARD = {np.dtype(np.float32): _lstm.lstm_forward["float"],
            np.dtype(np.float64): _lstm.lstm_forward["double"]}
_BACKWARD = {np.dtype(np.float32): _lstm.lstm_backward["float"],
             np.dtype(np.float64): _lstm.lstm_backward["double"]}

class LSTM(RecurrentLayer, cell="LSTM"):
    __doc__ = """Multi-layer LSTM over a sequence, with torch.nn.LSTM's maths and names.

    For each layer and direction, at each time step t (gate order i, f, g, o
    in the rows of W_ih and W_hh)::

        i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    With ``peephole=True`` (ONNX's LSTM with its P input; Gers and
    Schmidhuber), the gates also see the cell through one more parameter per
    layer and direction, ``weight_peephole_l{layer}`` (3, H), rows p_i, p_f,
    p_o::

        i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi + p_i * c_{t-1})
        f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf + p_f * c_{t-1})
        c_t = f_t * c_{t-1} + i_t * g_t
        o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho + p_o * c_t)

    Training forward saves the activations i, f, g, o and c of every step
    (5 * T * B * H numbers per layer and direction, besides the layer's
    output), and backward allocates 4 * T * B * H more for the gate gradients
    and T * B * (D + H) for the layer's input and previous outputs transposed
    (the weight gradients' operands).
    """ + _docs.PARAMETERS + """    peephole : bool, default False
        Add the peepholes above.  Their parameters are drawn like the others
        and follow the four torch-named ones of their layer and direction in
        params, grads and state_dict (``weight_peephole_l0``,
        ``weight_peephole_l0_reverse``, ...).
    """ + _docs.SHAPES.format(state="a pair (h, c) of arrays,", wshape="(4H, D)")

    _splits_backward = True

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, reverse=False,
                 peephole=False, dtype=np.float32, seed=None):
        self.peephole = check_bool(peephole, "peephole")
        super().__init__(input_size, hidden_size, num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         reverse=reverse, dtype=dtype, seed=seed)

    def _extra_param_shapes(self, sfx):
        if self.peephole:
            yield "weight_peephole" + sfx, (3, self.hidden_size)

    def _peephole(self, layer, direction, table):
        """[p_i p_f p_o] (3, H) of params or grads (table), or None without peepholes."""
        return table["weight_peephole" + self._suffix(layer, direction)] if self.peephole \
            else None

    def _run_direction(self, layer, direction, x, states0, y, states_n, training, active,
                       work=None):
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
        T, B = x.shape[:2]
        H = self.hidden_size
        plan = self._runtime.plan
        calls = T * B if plan is None else None   # a plan packs once for all its steps
        bias = b_ih + b_hh if self.bias else np.zeros(4 * H, self.dtype)
        chunk = self._chunk_steps(T, B, 4 * H)
        if training:     # keep every step's activations and cell for backward
            gates = self._saved_array((T, B, 4 * H), work)
            cells = self._saved_array((T, B, H), work)
        else:            # a bounded projection chunk and one cell updated in place
            gates = self._work((chunk, B, 4 * H), work)
            cells = self._work((1, B, H), work)
        (h0, c0), (h_n, c_n) = states0, states_n
        (wih_p, whh_p), packing = self._forward_packs(
            layer, direction, [(4 * H, x.shape[2]), (4 * H, H)], calls, work)
        _FORWARD[self.dtype](x, w_ih, w_hh, bias, h0, c0, y, direction * H, gates, cells,
                           h_n, c_n, wih_p, whh_p, self._threads(T, B, x.shape[2]),
                           self._backwards_in_time(direction), active,
                           self._peephole(layer, direction, self.params), plan=plan,
                           plan_layer=layer, chunk=chunk, packing=packing)
        return (gates, cells) if training else None

    def _backprop_direction(self, layer, direction, x, y, dy, saved, states0, carries, dx,
                            accumulate, active, work):
        w_ih, w_hh, _, _ = self._weights(layer, direction)
        dw_ih, dw_hh, db_ih, db_hh = self._weight_grads(layer, direction)
        gates, cells = saved
        (h0, c0), (dh, dc) = states0, carries
        T, B, D = x.shape
        H = self.hidden_size
        dgates = self._work(gates.shape, work)
        _BACKWARD[self.dtype](x, w_ih, w_hh, h0, c0, y, dy, direction * H,
                            gates, cells, dh, dc, dgates, dx, accumulate,
                            dw_ih, dw_hh, db_ih, db_hh, self._packed_weights(H, 4 * H, work=work),
                            self._packed_weights(D, 4 * H, work=work),
                            self._packed_weights(4 * H, T * B, work=work),
                            self._transposed_operands(T * B, D, work),
                            self._threads(T, B, D), self._backwards_in_time(direction), active,
                            self._peephole(layer, direction, self.params),
                            self._peephole(layer, direction, self.grads),
                            self._runtime.backward_way is not False)

    def _config_repr(self):
        args = super()._config_repr()
        if self.peephole:
            args.insert(-1, "peephole=True")
        return args
