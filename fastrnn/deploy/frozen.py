"""fastrnn.FrozenLayer: a recurrent stack for inference, its weights packed once.

Before its products a layer call packs W_ih and W_hh into the panels that
the GEMM streams, since an optimiser may have changed them since the last
call.  A model that only runs inference (a service, a batch job, an edge
box) pays that at every call for nothing, most in short calls (measured:
docs/DECISIONS.md).
A FrozenLayer takes a copy of the parameters, packs them once, and reuses
them, as an inference session does.
"""

import numpy as np

from fastrnn.runtime.runtime import Runtime, check_weights, serving_copy


def _of_layer(name, doc):
    """A read-only attribute: the frozen copy's layer's attribute `name`."""
    return property(lambda self: getattr(self._layer, name), doc=doc)


class FrozenLayer:
    """A copy of a recurrent layer stack for inference only, its weights packed once.

    ``frozen = layer.frozen()`` (or ``fastrnn.FrozenLayer(layer)``) then
    ``y, state_n = frozen(x, state0, lengths)``: the same arguments and
    outputs as ``layer(x, state0, lengths)``, without repacking the weights
    at every call.  The numbers are bitwise the layer's when T * B is at least
    4; shorter layer calls multiply from the unpacked weights, and differ in
    rounding only.  Every layer and direction computes, as a layer call does::

        y_t = cell(x_t, h_{t-1})   (the cell's equations: fastrnn.RNN, LSTM, GRU)

    The frozen layer works on a copy of the parameters taken when it is
    made: later changes to ``layer.params`` do not reach it, so make a new one
    after training the layer further.  It has no ``forward`` or ``backward``:
    train the layer, freeze it to deploy (to store one, save the layer
    with fastrnn.save and freeze it after loading).  Like a layer, it may be
    called from several threads at once (the packed weights are only read
    after it is made).

    With ``weights="int8"`` (float32 layers), W_ih and W_hh are quantized
    when the copy is made, symmetrically per output row, and each product's
    activations (the layer's input, h_{t-1}) dynamically per row of the batch::

        s_w[n] = max_k |W[n, k]| / 127,   q_w[n, k] = rint(W[n, k] / s_w[n])
        s_a[m] = max_k |a[m, k]| / 127,   q_a[m, k] = rint(a[m, k] / s_a[m])
        (a W^T)[m, n] ~ s_a[m] s_w[n] sum_k q_a[m, k] q_w[n, k]

    with the sums exact in int32 and the gates, cell state and outputs in
    float32.  It reads a quarter of the bytes of the float weights at every
    step, which is what a small batch's step costs at large hidden sizes.  With
    ``weights="bfloat16"`` the weights and each product's activations are
    rounded to bfloat16 (8 bits of mantissa), the products summed in float32:
    half the bytes, and about three times int8's accuracy.  The outputs differ
    from float32 by these roundings (the README's "Reduced precision" section
    says how much).  Each has paths for AMX, AVX-512 (VNNI, BF16, and bfloat16
    widened to float32), AVX-VNNI (int8), AVX2 and portable C that give the
    same numbers, but for AMX-BF16, whose tiles round the sums in an order of
    their own; ``python -m fastrnn info`` says which run.

    Parameters
    ----------
    layer : fastrnn.RNN, fastrnn.LSTM or fastrnn.GRU
        The layer stack to copy, any configuration (stacked, bidirectional,
        batch_first, either dtype).
    weights : {"float", "int8", "bfloat16"}, default "float"
        What the copy multiplies by: the weights in the layer's dtype, quantized
        to int8, or rounded to bfloat16 (float32 layers, finite weights).

    Examples
    --------
    >>> import numpy as np, fastrnn
    >>> lstm = fastrnn.LSTM(4, 8, num_layers=2, seed=0)
    >>> frozen = lstm.frozen()
    >>> x = np.ones((5, 4), np.float32)
    >>> np.array_equal(frozen(x)[0], lstm(x)[0])
    True
    """

    def __init__(self, layer, *, weights="float"):
        # the parameters as they are now, on a runtime that keeps each layer and
        # direction's packed weights (see RecurrentLayer._packs)
        own = serving_copy(layer, Runtime(keep_packs=True,
                                          weights=check_weights(weights, layer)))
        # a one-step call fills them all, so that a failure shows here rather than
        # leaving some unpacked
        own(np.zeros((1, own.input_size), own.dtype))
        self._layer = own

    def __call__(self, x, state0=None, lengths=None):
        """Inference over x: (y, state_n), as layer(x, state0, lengths) returns them.

        See the layer's class docstring for the shapes of x, state0, lengths,
        y and state_n.
        """
        return self._layer(x, state0, lengths)

    dtype = _of_layer("dtype", "The floating-point type the stack computes in.")
    weights = property(lambda self: self._layer._runtime.weights,
                       doc='What the stack multiplies by: "float", "int8" or "bfloat16".')
    input_size = _of_layer("input_size", "D, the features of each step of x.")
    hidden_size = _of_layer("hidden_size", "H, the features of each direction's state.")
    num_layers = _of_layer("num_layers", "Layers in the stack.")
    bidirectional = _of_layer("bidirectional", "Whether each layer also runs backwards in time.")
    batch_first = _of_layer("batch_first",
                            "Whether x and y are (B, T, features) rather than (T, B, features).")

    def __reduce__(self):
        # A copy or a pickle is made anew from the parameters (the layer's runtime
        # is not copied): its packs then start on a cache line (a copied array need
        # not), and a pickle does not carry them.
        return (_frozen, (self._layer, self.weights))

    def __repr__(self):
        kind = "" if self.weights == "float" else f", weights={self.weights!r}"
        return f"FrozenLayer({self._layer!r}{kind})"


def _frozen(layer, weights):
    """FrozenLayer(layer, weights=weights), for pickles."""
    return FrozenLayer(layer, weights=weights)
