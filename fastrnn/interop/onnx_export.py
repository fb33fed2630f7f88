"""Writing an ONNX model that runs a fastrnn layer (``layer.to_onnx(path)``).

One RNN, LSTM or GRU node per stacked layer, its weights as initializers in ONNX's gate
order and layout (see fastrnn.onnx for how a node maps to a layer, both ways).  This module
sits below the layers, which call it, and reaches a layer only through its public
attributes and its cell kind (fastrnn/layers/cell_kinds.py); reading models, which builds layers,
is fastrnn.onnx.  The ``onnx`` package is imported only when a model is written.
"""

import os

import numpy as np

from fastrnn.interop import gates as _gates
from fastrnn.layers.cell_kinds import kind_of

# The opset the exported models declare (layout and every attribute used exist since 14), and
# the IR version that goes with it, so that older ONNX Runtimes read the files too.
_OPSET = 17
_IR_VERSION = 8


def _onnx():
    """The onnx package, imported only when a conversion needs it."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("fastrnn.onnx needs the onnx package: pip install \"fastrnn[onnx]\" "
                          "(or pip install onnx)") from exc
    return onnx



class _GraphBuilder:
    """Nodes and initializers of the graph being written, with fresh names."""

    def __init__(self, onnx, dtype):
        self.onnx, self.dtype = onnx, dtype
        self.nodes, self.initializers = [], []

    def constant(self, name, value, dtype=None):
        array = np.ascontiguousarray(value, dtype=dtype or self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, outputs, **attrs):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs


def _layer_weights(builder, layer, index):
    """Initializer names [W, R, B or "", P or ""] of stacked layer index, in ONNX's layout."""
    back = _gates.inverse(kind_of(layer).onnx_order)
    p = layer.params
    sfxs = [f"_l{index}"] + ([f"_l{index}_reverse"] if layer.bidirectional else [])
    names = [builder.constant(f"W_l{index}",
                              [_gates.reorder(p["weight_ih" + s], back) for s in sfxs]),
             builder.constant(f"R_l{index}",
                              [_gates.reorder(p["weight_hh" + s], back) for s in sfxs])]
    if layer.bias:
        names.append(builder.constant(f"B_l{index}", [
            np.concatenate([_gates.reorder(p["bias_ih" + s], back),
                            _gates.reorder(p["bias_hh" + s], back)]) for s in sfxs]))
    else:
        names.append("")
    if getattr(layer, "peephole", False):
        names.append(builder.constant(f"P_l{index}", [
            p["weight_peephole" + s][[0, 2, 1]].reshape(-1) for s in sfxs]))
    else:
        names.append("")
    return names


def _node_attributes(layer):
    op = kind_of(layer).name
    dirs = layer.num_directions
    attrs = dict(hidden_size=layer.hidden_size,
                 direction="bidirectional" if layer.bidirectional
                 else "reverse" if layer.reverse else "forward")
    if op == "RNN":
        attrs["activations"] = [layer.nonlinearity.capitalize()] * dirs
    if op == "GRU":
        attrs["linear_before_reset"] = 1 if getattr(layer, "reset_after", True) else 0
    return attrs


def export(layer, path, initial_state=False, lengths=False):
    """Write an ONNX model running layer; see RecurrentLayer.to_onnx for the public docs."""
    onnx = _onnx()
    from onnx import TensorProto, helper
    kind = kind_of(layer)
    op = kind.name
    dtype = np.dtype(layer.dtype)
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    b = _GraphBuilder(onnx, dtype)
    L, dirs, H, D = layer.num_layers, layer.num_directions, layer.hidden_size, layer.input_size
    state_names = ("h", "c")[:kind.state_arity]

    x_dims = ["B", "T", D] if layer.batch_first else ["T", "B", D]
    y_dims = ["B", "T", dirs * H] if layer.batch_first else ["T", "B", dirs * H]
    state_dims = [L * dirs, "B", H]
    inputs = [helper.make_tensor_value_info("x", elem, x_dims)]
    if initial_state:
        inputs += [helper.make_tensor_value_info(f"{s}0", elem, state_dims) for s in state_names]
    if lengths:           # every node's sequence_lens: fastrnn's lengths=
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"]))
    # ONNX Runtime's kernels run time-major nodes only (layout 0), so batch-first layers
    # transpose around the chain.
    seq = "x"
    if layer.batch_first:
        seq = b.node("Transpose", ["x"], ["x_time_major"], perm=[1, 0, 2])
    flat = b.constant("flat_shape", [0, 0, -1], np.int64)
    axis0 = b.constant("axis_0", [0], np.int64)
    finals = {s: [] for s in state_names}
    for index in range(L):
        W, R, B, P = _layer_weights(b, layer, index)
        node_inputs = [seq, W, R, B, "lengths" if lengths else ""]
        if initial_state:     # this layer's rows index*dirs .. (index+1)*dirs of h0 (c0)
            rows = [b.constant(f"start_l{index}", [index * dirs], np.int64),
                    b.constant(f"end_l{index}", [(index + 1) * dirs], np.int64), axis0]
            node_inputs += [b.node("Slice", [f"{s}0", *rows], [f"{s}0_l{index}"])
                            for s in state_names]
        else:
            node_inputs += [""] * len(state_names)
        node_inputs.append(P)             # LSTM's peepholes (always "" for the others)
        while node_inputs[-1] == "":      # trailing optional inputs are left out
            node_inputs.pop()
        outs = [f"Y_l{index}"] + [f"Y_{s}_l{index}" for s in state_names]
        b.node(op, node_inputs, outs, name=f"{op.lower()}_l{index}", **_node_attributes(layer))
        for s, out in zip(state_names, outs[1:]):
            finals[s].append(out)
        # (T, dirs, B, H) -> (T, B, dirs*H): the next layer's input, as in fastrnn
        seq = b.node("Reshape", [b.node("Transpose", [outs[0]], [f"Y_l{index}_t"],
                                        perm=[0, 2, 1, 3]), flat], [f"y_l{index}"])
    if layer.batch_first:
        b.node("Transpose", [seq], ["y"], perm=[1, 0, 2])
    else:
        b.node("Identity", [seq], ["y"])
    outputs = [helper.make_tensor_value_info("y", elem, y_dims)]
    for s in state_names:
        b.node("Concat", finals[s], [f"{s}_n"], axis=0)
        outputs.append(helper.make_tensor_value_info(f"{s}_n", elem, state_dims))
    graph = helper.make_graph(b.nodes, f"fastrnn_{op.lower()}", inputs, outputs,
                              b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)],
                              producer_name="fastrnn")
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(path))
