"""Reordering the gate blocks of weights between fastrnn and the frameworks it converts from.

fastrnn stores gates in torch's order: LSTM i, f, g, o and GRU r, z, n (one block for RNN).
Keras uses i, f, c, o and z, r, h; ONNX uses i, o, f, c and z, r, h.  Each cell kind's
keras_order and onnx_order (fastrnn/layers/cell_kinds.py) give, for every fastrnn gate in turn, the
index of that gate's block in the other framework, so that ``reorder(theirs, order)`` is in
fastrnn's order and ``reorder(ours, inverse(order))`` in theirs.
"""

import numpy as np


def reorder(a, order, axis=0):
    """a with its len(order) equal gate blocks along axis taken in the given order."""
    blocks = np.split(np.asarray(a), len(order), axis=axis)
    return np.concatenate([blocks[k] for k in order], axis=axis)


def inverse(order):
    """The order that undoes reorder(., order)."""
    return tuple(int(k) for k in np.argsort(order))
