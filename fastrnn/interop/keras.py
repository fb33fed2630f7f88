"""Weights of Keras 3 SimpleRNN, LSTM and GRU layers in and out of fastrnn layers.

A Keras recurrent layer's ``get_weights()`` is ``[kernel, recurrent_kernel, bias]`` (no bias
with ``use_bias=False``).  The kernels are the transposes of torch's weights, (D, G*H) and
(H, G*H), with the gates in Keras's order (LSTM i, f, c, o; GRU z, r, h), and there is one
bias (G*H,) -- except for GRU with ``reset_after=True`` (the default), whose bias is (2, G*H):
the input bias and the recurrent bias, the latter's h block inside the reset product exactly
like torch's b_hn.  So, for fastrnn's (torch's) parameters:

    weight_ih = reorder(kernel.T)      weight_hh = reorder(recurrent_kernel.T)
    bias_ih   = reorder(bias)          bias_hh   = 0
    (GRU reset_after=True: bias_ih = reorder(bias[0]), bias_hh = reorder(bias[1]))

A Keras layer with ``reset_after=False`` maps to ``fastrnn.GRU(..., reset_after=False)``.
Keras layers are single-layer and unidirectional: a stack of Keras layers becomes a list of
fastrnn layers, one per Keras layer.  Keras is not needed at run time, only its weight list.
"""

import numpy as np

from fastrnn.interop import gates as _gates
from fastrnn.layers.cell_kinds import kind_of
from fastrnn._validation import as_real_array, check_shape

# Arguments that the weights decide; a config giving them would contradict the weights.
_FROM_WEIGHTS = ("input_size", "hidden_size", "num_layers", "bias", "bidirectional", "reverse")


def from_keras(cls, weights, config, reset_after=True):
    """The fastrnn layer of class cls equivalent to a Keras layer with these weights.

    See fastrnn.RNN.from_keras, LSTM.from_keras and GRU.from_keras for the public docs.
    """
    kind = kind_of(cls)
    name = kind.name
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights: expected the list a Keras {name} layer's get_weights() "
                        f"returns, got {type(weights).__name__}")
    if len(weights) not in (2, 3):
        raise ValueError(f"weights: expected 2 arrays [kernel, recurrent_kernel] or 3 "
                         f"[kernel, recurrent_kernel, bias], got {len(weights)}")
    for key in _FROM_WEIGHTS:
        if key in config:
            raise ValueError(f"{key}: comes from the Keras weights (a Keras layer is one "
                             f"unidirectional layer); do not pass it")
    kernel = as_real_array(weights[0], "weights[0] (kernel)")
    recurrent = as_real_array(weights[1], "weights[1] (recurrent_kernel)")
    order = kind.keras_order
    G = len(order)
    if recurrent.ndim != 2 or recurrent.shape[1] != G * recurrent.shape[0]:
        raise ValueError(f"weights[1] (recurrent_kernel): expected shape (H, {G}*H) for a "
                         f"Keras {name}, got {recurrent.shape}")
    H = recurrent.shape[0]
    if kernel.ndim != 2:
        raise ValueError(f"weights[0] (kernel): expected shape (D, {G * H}), got "
                         f"{kernel.shape}")
    check_shape(kernel, "weights[0] (kernel)", (kernel.shape[0], G * H))
    has_bias = len(weights) == 3
    kwargs = dict(bias=has_bias, batch_first=True)
    if name == "GRU" and not reset_after:
        kwargs["reset_after"] = False
    kwargs.update(config)
    layer = cls(kernel.shape[0], H, **kwargs)
    params = {"weight_ih_l0": _gates.reorder(kernel.T, order),
              "weight_hh_l0": _gates.reorder(recurrent.T, order)}
    if has_bias:
        bias = as_real_array(weights[2], "weights[2] (bias)")
        split = name == "GRU" and reset_after
        check_shape(bias, "weights[2] (bias)", (2, G * H) if split else (G * H,))
        params["bias_ih_l0"] = _gates.reorder(bias[0] if split else bias, order)
        params["bias_hh_l0"] = (_gates.reorder(bias[1], order) if split
                                else np.zeros(G * H))
    layer.load_state_dict(params)
    return layer


def to_keras_weights(layer):
    """The get_weights() list of the Keras layer equivalent to a fastrnn layer.

    See RecurrentLayer.to_keras_weights for the public docs.
    """
    kind = kind_of(layer)
    name = kind.name
    for attr, ok in (("num_layers", layer.num_layers == 1),
                     ("bidirectional", not layer.bidirectional),
                     ("reverse", not layer.reverse),
                     ("peephole", not getattr(layer, "peephole", False))):
        if not ok:
            raise ValueError(f"{attr}: a Keras {name} layer has no equivalent of "
                             f"{attr}={getattr(layer, attr)!r}; convert single-layer, "
                             f"unidirectional, forward layers (one per Keras layer)")
    back = _gates.inverse(kind.keras_order)
    p = layer.params
    weights = [np.ascontiguousarray(_gates.reorder(p["weight_ih_l0"], back).T),
               np.ascontiguousarray(_gates.reorder(p["weight_hh_l0"], back).T)]
    if layer.bias:
        b_ih = _gates.reorder(p["bias_ih_l0"], back)
        b_hh = _gates.reorder(p["bias_hh_l0"], back)
        if name == "GRU" and getattr(layer, "reset_after", True):
            weights.append(np.stack([b_ih, b_hh]))
        else:
            # Every b_hh block is added outside any product here (reset-before GRU too:
            # its b_hn is outside r * ...), so one bias holds the sum.
            weights.append(b_ih + b_hh)
    return weights
