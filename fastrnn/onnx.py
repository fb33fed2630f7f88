"""ONNX RNN, LSTM and GRU nodes in and out of fastrnn layers.

``load`` reads an ONNX model and returns one fastrnn layer per RNN, LSTM or GRU node of its
main graph, in graph order, built from the node's attributes and initializer weights.
``export`` (``layer.to_onnx(path)``, fastrnn/interop/onnx_export.py) writes a model that runs a
fastrnn layer.  The ``onnx`` package is needed for both (``pip install "fastrnn[onnx]"``),
and only for them.

How a node maps to a layer (one layer, one direction or both):

- Weights: W (dirs, G*H, D), R (dirs, G*H, H) and B (dirs, 2*G*H) = [Wb, Rb] hold the gates in
  ONNX's order (LSTM i, o, f, c; GRU z, r, h); fastrnn's are torch's (i, f, g, o; r, z, n):
  ``weight_ih_l0[_reverse] = reorder(W[d])``, ``weight_hh = reorder(R[d])``,
  ``bias_ih = reorder(Wb[d])``, ``bias_hh = reorder(Rb[d])``.  No B input means bias=False.
  LSTM peepholes P (dirs, 3H) = [p_i, p_o, p_f] become ``weight_peephole_l0`` rows
  (p_i, p_f, p_o) of ``fastrnn.LSTM(..., peephole=True)``; an all-zero P is no peephole.
- direction: "forward", "reverse" (``reverse=True``) or "bidirectional".
- layout 0 is time-major, layout 1 is ``batch_first=True``.
- GRU linear_before_reset=1 is fastrnn's (torch's) GRU; 0, ONNX's default, is
  ``fastrnn.GRU(..., reset_after=False)``.  RNN activations Tanh or Relu set nonlinearity.
- Inputs: the node's X is the layer's x.  initial_h (and initial_c) are data, not weights:
  pass them as state0 (for layout 0 they have fastrnn's (dirs, B, H) shape; for layout 1,
  (B, dirs, H), transpose them to (dirs, B, H)).  sequence_lens is data too: pass it as
  ``lengths=`` (same semantics: outputs past a sequence's end are zero, its final state
  is taken at its last step, and the reverse direction starts there).
- Outputs: for layout 0, ONNX's Y is (T, dirs, B, H) and the layer's y is (T, B, dirs*H)::

      y == Y.transpose(0, 2, 1, 3).reshape(T, B, dirs * H)

  for layout 1, Y is (B, T, dirs, H) and ``y == Y.reshape(B, T, dirs * H)``.  Y_h and Y_c
  are the final states: (dirs, B, H) like fastrnn's for layout 0, (B, dirs, H) for layout 1.

Anything else -- other activations, activation_alpha or activation_beta, clip,
input_forget=1, weights that are not initializers -- raises a
ValueError naming the node and the attribute or input: it is never silently dropped.
"""

import os

import numpy as np

from fastrnn.interop import gates as _gates
from fastrnn.layers.cell_kinds import BY_NAME
from fastrnn.interop.onnx_export import _onnx, export  # noqa: F401  (export: layer.to_onnx)

_ATTRIBUTES = {"activation_alpha", "activation_beta", "activations", "clip", "direction",
               "hidden_size", "layout"}
_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------------- loading


def load(model):
    """The fastrnn layers of an ONNX model's RNN, LSTM and GRU nodes.

    Parameters
    ----------
    model : str, os.PathLike, bytes or onnx.ModelProto
        The model, as a file path, serialized bytes or a loaded ModelProto.

    Returns
    -------
    layers : list of fastrnn.RNN, fastrnn.LSTM or fastrnn.GRU
        One single-layer layer per RNN, LSTM or GRU node of the main graph, in graph order.
        See the module docstring for how inputs and outputs map.

    Raises
    ------
    ImportError
        If the onnx package is not installed.
    ValueError
        If a node uses what fastrnn cannot run exactly (the message names the node and the
        attribute or input).
    """
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(model))
    elif isinstance(model, (str, os.PathLike)):
        proto = onnx.load(os.fspath(model))
    else:
        raise TypeError(f"model: expected a path, bytes or an onnx.ModelProto, got "
                        f"{type(model).__name__}")
    graph = proto.graph
    initializers = {t.name: t for t in graph.initializer}
    layers = []
    for index, node in enumerate(graph.node):
        if node.op_type in BY_NAME and node.domain in ("", "ai.onnx"):
            where = f"model: node {node.name or index!r} ({node.op_type})"
            layers.append(_layer_from_node(node, initializers, where, onnx))
    return layers


def _attributes(node, where, onnx):
    op = node.op_type
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    for name in attrs:
        if name not in _ATTRIBUTES | BY_NAME[op].onnx_extra_attributes:
            raise ValueError(f"{where}: unknown attribute {name!r}")
    for name in ("activation_alpha", "activation_beta", "clip"):
        if name in attrs:
            raise ValueError(f"{where}: attribute {name}={attrs[name]!r} is not supported")
    if attrs.get("input_forget", 0) != 0:
        raise ValueError(f"{where}: attribute input_forget={attrs['input_forget']} is not "
                         f"supported (only 0, ONNX's default)")
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"{where}: attribute direction={direction!r}; expected 'forward', "
                         f"'reverse' or 'bidirectional'")
    layout = attrs.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"{where}: attribute layout={layout}; expected 0 or 1")
    attrs["direction"], attrs["layout"] = direction, layout
    return attrs


def _activation_config(op, attrs, dirs, where):
    """Constructor arguments that the activations attribute implies (RNN's nonlinearity)."""
    names = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
    lowered = [a.lower() for a in names]
    if op == "RNN":
        if not names:
            return {}
        if len(names) == dirs and len(set(lowered)) == 1 and lowered[0] in ("tanh", "relu"):
            return {"nonlinearity": lowered[0]}
        raise ValueError(f"{where}: attribute activations={names}; fastrnn runs Tanh or Relu, "
                         f"the same for every direction")
    defaults = list(BY_NAME[op].onnx_activations)
    if names and lowered != defaults * dirs:
        raise ValueError(f"{where}: attribute activations={names}; fastrnn runs only "
                         f"ONNX's default {op} activations {defaults}")
    return {}


def _layer_from_node(node, initializers, where, onnx):
    op = node.op_type
    attrs = _attributes(node, where, onnx)
    inputs = dict(zip(_INPUTS, list(node.input) + [""] * len(_INPUTS)))

    def weight(role):
        name = inputs[role]
        if not name:
            return None
        if name not in initializers:
            raise ValueError(f"{where}: input {role} ({name!r}) is not an initializer; "
                             f"fastrnn needs the weights stored in the model")
        return onnx.numpy_helper.to_array(initializers[name])

    W, R, B, P = weight("W"), weight("R"), weight("B"), weight("P") if op == "LSTM" else None
    if W is None or R is None:
        raise ValueError(f"{where}: inputs W and R are required")
    dirs = 2 if attrs["direction"] == "bidirectional" else 1
    kind = BY_NAME[op]
    order = kind.onnx_order
    G = len(order)
    if R.ndim != 3 or R.shape[0] != dirs or R.shape[1] != G * R.shape[2]:
        raise ValueError(f"{where}: input R has shape {R.shape}; expected ({dirs}, {G}*H, H)")
    H = R.shape[2]
    if attrs.get("hidden_size", H) != H:
        raise ValueError(f"{where}: attribute hidden_size={attrs['hidden_size']} but R has "
                         f"H = {H}")
    if W.ndim != 3 or W.shape[:2] != (dirs, G * H):
        raise ValueError(f"{where}: input W has shape {W.shape}; expected ({dirs}, {G * H}, D)")
    if W.dtype not in _DTYPES:
        raise ValueError(f"{where}: input W has dtype {W.dtype}; fastrnn runs float32 or "
                         f"float64")
    for role, value, shape in (("B", B, (dirs, 2 * G * H)), ("P", P, (dirs, 3 * H))):
        if value is not None and value.shape != shape:
            raise ValueError(f"{where}: input {role} has shape {value.shape}; expected {shape}")

    config = dict(bias=B is not None, batch_first=attrs["layout"] == 1,
                  bidirectional=dirs == 2, reverse=attrs["direction"] == "reverse",
                  dtype=W.dtype)
    config.update(_activation_config(op, attrs, dirs, where))
    if op == "GRU" and attrs.get("linear_before_reset", 0) == 0:
        config["reset_after"] = False     # ONNX's default GRU resets before the product
    peephole = P is not None and np.any(P)
    if peephole:
        config["peephole"] = True
    layer = kind.layer_class(W.shape[2], H, **config)

    params = {}
    for d in range(dirs):
        sfx = "_l0" + ("_reverse" if d else "")
        params["weight_ih" + sfx] = _gates.reorder(W[d], order)
        params["weight_hh" + sfx] = _gates.reorder(R[d], order)
        if B is not None:
            params["bias_ih" + sfx] = _gates.reorder(B[d, :G * H], order)
            params["bias_hh" + sfx] = _gates.reorder(B[d, G * H:], order)
        if peephole:     # ONNX rows p_i, p_o, p_f; fastrnn's p_i, p_f, p_o
            params["weight_peephole" + sfx] = P[d].reshape(3, H)[[0, 2, 1]]
    layer.load_state_dict(params)
    return layer
