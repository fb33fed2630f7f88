"""fastrnn.RNN: Elman recurrent layers with tanh or relu, torch.nn.RNN's maths."""

import numpy as np

from fastrnn.layers import docs as _docs
from fastrnn.layers.base import RecurrentLayer

_NONLINEARITIES = ("tanh", "relu")


class RNN(RecurrentLayer, cell="RNN"):
    __doc__ = """Multi-layer Elman RNN over a sequence, with torch.nn.RNN's maths and names.

    For each layer and direction, at each time step t::

        h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu

    Training forward saves nothing beyond each layer's output (act' is
    computed from h_t), and backward allocates T * B * H for the gradients and
    T * B * (D + H) for the layer's input and previous outputs packed (the
    weight gradients' operands; D and H rounded up to whole panels).
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

    def _variant(self):
        return (self.nonlinearity == "relu", True, False)

    def _config_repr(self):
        args = super()._config_repr()
        if self.nonlinearity != "tanh":
            args.insert(2, f"nonlinearity={self.nonlinearity!r}")
        return args
