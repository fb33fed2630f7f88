"""fastrnn.LSTM: long short-term memory layers, torch.nn.LSTM's maths."""

import numpy as np

from fastrnn.layers import docs as _docs
from fastrnn.layers.base import RecurrentLayer
from fastrnn._validation import check_bool


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
    and T * B * (D + H) for the layer's input and previous outputs packed
    (the weight gradients' operands; D and H rounded up to whole panels).
    """ + _docs.PARAMETERS + """    peephole : bool, default False
        Add the peepholes above.  Their parameters are drawn like the others
        and follow the four torch-named ones of their layer and direction in
        params, grads and state_dict (``weight_peephole_l0``,
        ``weight_peephole_l0_reverse``, ...).
    """ + _docs.SHAPES.format(state="a pair (h, c) of arrays,", wshape="(4H, D)")

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

    def _variant(self):
        return (False, True, self.peephole)

    def _extra(self, layer, direction, table):
        return self._peephole(layer, direction, table)

    def _config_repr(self):
        args = super()._config_repr()
        if self.peephole:
            args.insert(-1, "peephole=True")
        return args
