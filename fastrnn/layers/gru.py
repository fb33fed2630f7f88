"""fastrnn.GRU: gated recurrent unit layers, torch.nn.GRU's maths."""

import numpy as np

from fastrnn.layers import docs as _docs
from fastrnn.interop import keras
from fastrnn.layers.base import RecurrentLayer
from fastrnn._validation import check_bool


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
    T * B * (D + H) for the layer's input and previous outputs packed (the
    weight gradients' operands, D and H rounded up to whole panels; T * B *
    (D + 2H) with reset_after=False).
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

    def _variant(self):
        return (False, self.reset_after, False)

    def _step_stages(self):
        return 1 if self.reset_after else 2

    def _config_repr(self):
        args = super()._config_repr()
        if not self.reset_after:
            args.insert(-1, "reset_after=False")
        return args
