"""ONNX RNN, LSTM and GRU nodes in and out of fastrnn layers.

``load`` reads an ONNX model and returns one fastrnn layer per RNN, LSTM or GRU node, those
of the main graph and those inside control flow (If, Loop, Scan subgraphs), depth first in
graph order, built from the node's attributes and initializer weights; ``layer.onnx_source``
says which node it came from.
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
ValueError naming the node and the attribute or input: it is never silently dropped.  So is
a model that cannot be parsed, or whose weights' data do not match their declared dims: the
message names the file (or "model") and the reason, and no exception of the onnx or protobuf
packages gets out.
"""

import os
from dataclasses import dataclass

import numpy as np

from fastrnn.interop import gates as _gates
from fastrnn.layers.cell_kinds import BY_NAME
from fastrnn.interop.onnx_export import _onnx, export  # noqa: F401  (export: layer.to_onnx)

_ATTRIBUTES = {"activation_alpha", "activation_beta", "activations", "clip", "direction",
               "hidden_size", "layout"}
_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------------- loading

# The type each attribute of a recurrent node must have (onnx.AttributeProto's enum values:
# FLOAT 1, INT 2, STRING 3, FLOATS 6, STRINGS 8), checked before any value is read.
_ATTRIBUTE_TYPES = {"activation_alpha": 6, "activation_beta": 6, "activations": 8, "clip": 1,
                    "direction": 3, "hidden_size": 2, "layout": 2, "input_forget": 2,
                    "linear_before_reset": 2}
_GRAPH, _GRAPHS = 5, 10          # AttributeProto types of subgraph attributes
_FLOAT, _DOUBLE = 1, 11          # TensorProto data types of the weights fastrnn runs
_EXTERNAL = 1                    # TensorProto.DataLocation of data kept outside the file


@dataclass(frozen=True)
class OnnxSource:
    """Where in an ONNX model a loaded layer's node is (``layer.onnx_source``).

    Attributes
    ----------
    node : str
        The node's name, or ``"#i"`` for an unnamed node, i its index in its graph.
    op_type : str
        "RNN", "LSTM" or "GRU".
    graph_path : tuple of str
        The subgraphs that hold the node, outermost first, each as
        ``"<control-flow node>.<attribute>"`` (``("cond.then_branch", "loop.body")``); empty
        for a node of the main graph.
    """

    node: str
    op_type: str
    graph_path: tuple = ()

    def __str__(self):
        return "/".join(self.graph_path + (self.node,))


def _subgraphs(node):
    """(attribute name, graph) of a node's subgraphs: If's then_branch before its else_branch,
    any other attributes in name order (Loop's and Scan's body)."""
    rank = {"then_branch": 0, "else_branch": 1}
    out = []
    for attr in sorted(node.attribute, key=lambda a: (rank.get(a.name, 2), a.name)):
        if attr.type == _GRAPH:
            out.append((attr.name, attr.g))
        elif attr.type == _GRAPHS:
            out.extend((f"{attr.name}[{i}]", g) for i, g in enumerate(attr.graphs))
    return out


def _walk(graph, scope, path):
    """(node, initializers in scope, path) of every recurrent node, depth first: a graph's
    nodes in order, each node's subgraphs right after it.  A subgraph sees the initializers
    of the graphs around it, its own shadowing theirs (ONNX's scoping)."""
    scope = dict(scope)
    scope.update((t.name, t) for t in graph.initializer)
    for index, node in enumerate(graph.node):
        name = node.name or f"#{index}"
        if node.op_type in BY_NAME and node.domain in ("", "ai.onnx"):
            yield node, scope, OnnxSource(name, node.op_type, path)
        for attr_name, sub in _subgraphs(node):
            yield from _walk(sub, scope, path + (f"{name}.{attr_name}",))


def _parse(model, onnx):
    """(ModelProto, the name messages give the model).  Reads a file's bytes itself, so
    that a parse error is one ValueError and no external data file is ever opened."""
    if isinstance(model, onnx.ModelProto):
        return model, "model"
    if isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        with open(source, "rb") as f:
            data = f.read()
    elif isinstance(model, (bytes, bytearray, memoryview)):
        source, data = "model (bytes)", bytes(model)
    else:
        raise TypeError(f"model: expected a path, bytes or an onnx.ModelProto, got "
                        f"{type(model).__name__}")
    if not data:
        raise ValueError(f"{source}: not an ONNX model: empty")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:     # protobuf's DecodeError and whatever else its parser raises
        raise ValueError(f"{source}: not a readable ONNX model, it is truncated or corrupted "
                         f"({type(exc).__name__}: {exc})") from exc
    return proto, source


def load(model):
    """The fastrnn layers of an ONNX model's RNN, LSTM and GRU nodes, subgraphs included.

    Nodes are taken depth first: the main graph's nodes in graph order, and right after a
    control-flow node (If, Loop, Scan) the recurrent nodes of its subgraphs, If's
    ``then_branch`` before its ``else_branch``.  A node in a subgraph may use the
    initializers of the graphs around it.  Each layer's ``onnx_source`` (an `OnnxSource`)
    names its node and the path of subgraphs that holds it.

    Parameters
    ----------
    model : str, os.PathLike, bytes or onnx.ModelProto
        The model, as a file path, serialized bytes or a loaded ModelProto.  Weights must be
        stored in the model (not as external data).

    Returns
    -------
    layers : list of fastrnn.RNN, fastrnn.LSTM or fastrnn.GRU
        One single-layer layer per RNN, LSTM or GRU node, in the order above, with
        ``layer.onnx_source`` set.  See the module docstring for how inputs and outputs map.

    Raises
    ------
    ImportError
        If the onnx package is not installed.
    FileNotFoundError
        If model is a path with no file.
    ValueError
        If the model cannot be parsed (truncated or corrupted), has no RNN, LSTM or GRU
        node, or a node uses what fastrnn cannot run exactly.  The message names the model
        (its path) and, for a node, the node, its subgraph and the attribute or input.
    """
    onnx = _onnx()
    proto, source = _parse(model, onnx)
    layers = []
    for node, scope, where in _walk(proto.graph, {}, ()):
        inside = f" in {'/'.join(where.graph_path)}" if where.graph_path else ""
        layer = _layer_from_node(node, scope, f"{source}: node {where.node!r} "
                                 f"({node.op_type}){inside}", onnx)
        layer.onnx_source = where
        layers.append(layer)
    if not layers:
        raise ValueError(f"{source}: no RNN, LSTM or GRU node in the model's graph or its "
                         f"subgraphs: nothing for fastrnn to load")
    return layers


def _attributes(node, where, onnx):
    op = node.op_type
    for a in node.attribute:
        if a.name not in _ATTRIBUTES | BY_NAME[op].onnx_extra_attributes:
            raise ValueError(f"{where}: unknown attribute {a.name!r}")
        if a.type != _ATTRIBUTE_TYPES[a.name]:
            raise ValueError(f"{where}: attribute {a.name!r} has type "
                             f"{onnx.AttributeProto.AttributeType.Name(a.type)}; expected "
                             f"{onnx.AttributeProto.AttributeType.Name(_ATTRIBUTE_TYPES[a.name])}")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    for name in ("activation_alpha", "activation_beta", "clip"):
        if name in attrs:
            raise ValueError(f"{where}: attribute {name}={attrs[name]!r} is not supported")
    if attrs.get("input_forget", 0) != 0:
        raise ValueError(f"{where}: attribute input_forget={attrs['input_forget']} is not "
                         f"supported (only 0, ONNX's default)")
    direction = attrs.get("direction", b"forward")
    direction = direction.decode("utf-8", "replace")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"{where}: attribute direction={direction!r}; expected 'forward', "
                         f"'reverse' or 'bidirectional'")
    layout = attrs.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"{where}: attribute layout={layout}; expected 0 or 1")
    attrs["direction"], attrs["layout"] = direction, layout
    attrs["activations"] = [a.decode("utf-8", "replace") for a in attrs.get("activations", [])]
    return attrs


def _activation_config(op, attrs, dirs, where):
    """Constructor arguments that the activations attribute implies (RNN's nonlinearity)."""
    names = attrs["activations"]
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
        return _weight_array(initializers[name], f"{where}: input {role} ({name!r})", onnx)

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
    try:
        layer = kind.layer_class(W.shape[2], H, **config)
    except (TypeError, ValueError) as exc:       # sizes of 0 from a corrupted model
        raise ValueError(f"{where}: the weights give no valid layer ({exc})") from exc

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


def _weight_array(tensor, where, onnx):
    """The array of an initializer, after checking that its data type is float32 or float64
    and that the data it holds is exactly what its dims declare (so that a corrupted file
    cannot make the conversion allocate, or misread, more than the file holds)."""
    if tensor.data_location == _EXTERNAL:
        raise ValueError(f"{where} is stored as external data; fastrnn reads weights stored "
                         f"in the model only")
    if tensor.data_type not in (_FLOAT, _DOUBLE):
        name = onnx.TensorProto.DataType.Name(tensor.data_type) \
            if tensor.data_type in onnx.TensorProto.DataType.values() else tensor.data_type
        raise ValueError(f"{where} has data type {name}; fastrnn runs FLOAT or DOUBLE weights")
    dims = list(tensor.dims)
    if len(dims) > 3 or any(d < 0 for d in dims):
        raise ValueError(f"{where} has dims {dims}; expected at most 3 sizes >= 0")
    count = int(np.prod(dims, dtype=object)) if dims else 1
    itemsize = 4 if tensor.data_type == _FLOAT else 8
    if tensor.raw_data:
        held, what = len(tensor.raw_data), count * itemsize
    else:
        held = len(tensor.float_data if tensor.data_type == _FLOAT else tensor.double_data)
        what = count
    if held != what:
        raise ValueError(f"{where} declares dims {dims} but holds data for "
                         f"{held // itemsize if tensor.raw_data else held} numbers: "
                         f"corrupted model")
    try:
        return onnx.numpy_helper.to_array(tensor)
    except Exception as exc:      # the checks above leave nothing known; never leak onnx's
        raise ValueError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from exc
