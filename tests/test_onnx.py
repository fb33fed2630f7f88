"""fastrnn.onnx.load against ONNX Runtime.

Models come from two sources: torch.onnx.export of torch.nn.RNN/LSTM/GRU (what users have),
and single nodes built with onnx.helper for what torch does not export (reverse-only,
layout=1, no B input, linear_before_reset=0, peepholes).  ONNX Runtime runs each model; the
layers that load() returns, run on the same inputs, must give its outputs.  ONNX Runtime does
not run layout=1 nodes, so a layout=1 node is checked against ONNX Runtime on its layout=0
twin (same weights), through the transpositions that the ONNX operator spec defines.
"""

import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import fastrnn  # noqa: E402
from conftest import assert_close, ort_run, rng_for  # noqa: E402

F32 = np.float32
D, H, T, B = 3, 4, 5, 2
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
STATES = {"RNN": ("h",), "LSTM": ("h", "c"), "GRU": ("h",)}


def chain(layers, x, states0=None):
    """Run layers one after the other on time-major x; each takes its rows of states0."""
    finals = []
    y = x
    for i, layer in enumerate(layers):
        n = layer.num_directions
        s0 = None if states0 is None else tuple(s[i * n:(i + 1) * n] for s in states0)
        y, s_n = layer(y, None if s0 is None else s0 if len(s0) == 2 else s0[0])
        finals.append(s_n if isinstance(s_n, tuple) else (s_n,))
    return y, [np.concatenate(parts) for parts in zip(*finals)]


# ------------------------------------------------------------------------ torch-exported


TORCH_CONFIGS = [dict(num_layers=1, bidirectional=False, batch_first=False, state=False),
                 dict(num_layers=1, bidirectional=True, batch_first=True, state=True),
                 dict(num_layers=2, bidirectional=False, batch_first=True, state=False),
                 dict(num_layers=2, bidirectional=True, batch_first=False, state=True),
                 dict(num_layers=2, bidirectional=True, batch_first=True, state=False,
                      bias=False)]


@pytest.mark.parametrize("config", TORCH_CONFIGS,
                         ids=lambda c: "-".join(k if v is True else f"{k}{v}"
                                                for k, v in c.items() if v is not False))
@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_torch_exported_model(kind, config):
    torch = pytest.importorskip("torch")
    config = dict(config)
    with_state = config.pop("state")
    rng = rng_for("torch", kind, str(config))
    torch.manual_seed(int(rng.integers(1000)))
    if kind.startswith("rnn"):
        module = torch.nn.RNN(D, H, nonlinearity=kind[4:], **config)
    else:
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](D, H, **config)
    with torch.no_grad():
        for p in module.parameters():         # biases far from zero too
            p.uniform_(-0.7, 0.7)
    L, dirs = config["num_layers"], 2 if config["bidirectional"] else 1
    x = rng.standard_normal((B, T, D) if config["batch_first"] else (T, B, D)).astype(F32)
    states0 = [rng.standard_normal((L * dirs, B, H)).astype(F32)
               for _ in range(2 if kind == "lstm" else 1)]
    args = (torch.from_numpy(x),)
    names = ["x"]
    if with_state:
        s0 = tuple(torch.from_numpy(s) for s in states0)
        args += (s0 if kind == "lstm" else s0[0],)
        names += ["h0", "c0"][:len(states0)]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, input_names=names, dynamo=False)
    expected = ort_run(buf.getvalue(), dict(zip(names, (x, *states0))))

    layers = fastrnn.onnx.load(buf.getvalue())
    assert len(layers) == L
    assert all(not layer.batch_first for layer in layers)   # torch exports time-major nodes
    x_tm = x.transpose(1, 0, 2) if config["batch_first"] else x
    y, finals = chain(layers, x_tm, states0 if with_state else None)
    if config["batch_first"]:
        y = y.transpose(1, 0, 2)
    assert np.abs(y).max() > 0.1
    assert_close(y, expected[0], F32, "y")
    for i, final in enumerate(finals):
        assert_close(final, expected[1 + i], F32, f"final state {i}")


# ------------------------------------------------------------------------- hand-built nodes


def node_model(op, rng, *, direction="forward", layout=0, bias=True, state=True, attrs=None,
               peephole=None, dtype=F32):
    """A one-node model with random initializer weights; inputs x (+ h0, c0), outputs Y, Y_h
    (+ Y_c).  peephole: None (no P input), "zero" or "random"."""
    dirs = 2 if direction == "bidirectional" else 1
    G = GATES[op] * H
    inits = [numpy_helper.from_array(rng.uniform(-0.7, 0.7, shape).astype(dtype), name)
             for name, shape in (("W", (dirs, G, D)), ("R", (dirs, G, H)),
                                 ("B", (dirs, 2 * G))) if bias or name != "B"]
    inputs = ["x", "W", "R", "B" if bias else "", ""]
    elem = TensorProto.FLOAT if dtype == F32 else TensorProto.DOUBLE
    x_shape = [T, B, D] if layout == 0 else [B, T, D]
    s_shape = [dirs, B, H] if layout == 0 else [B, dirs, H]
    graph_inputs = [helper.make_tensor_value_info("x", elem, x_shape)]
    for s in STATES[op]:
        inputs.append(f"{s}0" if state else "")
        if state:
            graph_inputs.append(helper.make_tensor_value_info(f"{s}0", elem, s_shape))
    if peephole is not None:
        P = np.zeros((dirs, 3 * H)) if peephole == "zero" else rng.uniform(-1, 1, (dirs, 3 * H))
        inits.append(numpy_helper.from_array(P.astype(dtype), "P"))
        inputs.append("P")
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, inputs, outputs, hidden_size=H, direction=direction,
                            layout=layout, **(attrs or {}))
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, elem, None) for o in outputs],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def check_node(op, key, **kw):
    """Load a node model and compare the layer with ONNX Runtime on it (layout 0)."""
    rng = rng_for(op, key)
    model = node_model(op, rng, **kw)
    dirs = 2 if kw.get("direction") == "bidirectional" else 1
    x = rng.standard_normal((T, B, D)).astype(F32)
    states0 = [rng.standard_normal((dirs, B, H)).astype(F32) for _ in STATES[op]]
    feed = {"x": x}
    if kw.get("state", True):
        feed.update({f"{s}0": v for s, v in zip(STATES[op], states0)})
    else:
        states0 = [np.zeros_like(s) for s in states0]
    Y, *finals = ort_run(model, feed)
    (layer,) = fastrnn.onnx.load(model)
    y, state_n = layer(x, states0[0] if op != "LSTM" else tuple(states0))
    # ONNX's Y is (T, dirs, B, H); the layer's y is (T, B, dirs*H)
    assert np.abs(y).max() > 0.1
    assert_close(y, Y.transpose(0, 2, 1, 3).reshape(T, B, dirs * H), F32, "y")
    for got, want in zip(state_n if isinstance(state_n, tuple) else (state_n,), finals):
        assert_close(got, want, F32, "final state")
    return layer


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
def test_node_directions(op, direction):
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    layer = check_node(op, direction, direction=direction, attrs=attrs)
    assert layer.reverse == (direction == "reverse")
    assert layer.bidirectional == (direction == "bidirectional")


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
def test_node_without_bias(op):
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    layer = check_node(op, "nobias", bias=False, state=False, attrs=attrs)
    assert not layer.bias


@pytest.mark.parametrize("activation", ["Tanh", "Relu"])
def test_rnn_activations(activation):
    layer = check_node("RNN", activation, direction="bidirectional",
                       attrs={"activations": [activation, activation]})
    assert layer.nonlinearity == activation.lower()


def test_lstm_default_activations_written_out_and_zero_peepholes():
    layer = check_node("LSTM", "defaults", peephole="zero",
                       attrs={"activations": ["Sigmoid", "Tanh", "Tanh"], "input_forget": 0})
    assert not getattr(layer, "peephole", False)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
def test_layout_1_is_batch_first(op, direction):
    rng = rng_for("layout", op, direction)
    dirs = 2 if direction == "bidirectional" else 1
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    batchwise = node_model(op, rng_for("w", op, direction), direction=direction, layout=1,
                           attrs=attrs)
    twin = node_model(op, rng_for("w", op, direction), direction=direction, layout=0,
                      attrs=attrs)          # same weights, time-major
    x = rng.standard_normal((B, T, D)).astype(F32)
    states0 = [rng.standard_normal((B, dirs, H)).astype(F32) for _ in STATES[op]]
    Y, *finals = ort_run(twin, {"x": x.transpose(1, 0, 2),
                                **{f"{s}0": v.transpose(1, 0, 2)
                                   for s, v in zip(STATES[op], states0)}})
    (layer,) = fastrnn.onnx.load(batchwise)
    assert layer.batch_first
    s0 = [s.transpose(1, 0, 2) for s in states0]      # layout 1 states are (B, dirs, H)
    y, state_n = layer(x, tuple(s0) if op == "LSTM" else s0[0])
    # the layout 1 node's Y would be (B, T, dirs, H): the twin's (T, dirs, B, H) transposed
    Y_batchwise = Y.transpose(2, 0, 1, 3)
    assert_close(y, Y_batchwise.reshape(B, T, dirs * H), F32, "y")
    for got, want in zip(state_n if isinstance(state_n, tuple) else (state_n,), finals):
        assert_close(got, want, F32, "final state")


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_gru_linear_before_reset_0(direction):
    layer = check_node("GRU", "lbr0", direction=direction, attrs={"linear_before_reset": 0})
    assert layer.reset_after is False


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_lstm_peepholes(direction):
    layer = check_node("LSTM", "peephole", direction=direction, peephole="random")
    assert layer.peephole is True


def test_load_takes_path_bytes_and_proto(tmp_path):
    model = node_model("GRU", rng_for("forms"), attrs={"linear_before_reset": 1})
    path = tmp_path / "m.onnx"
    path.write_bytes(model)
    from_path, from_str = fastrnn.onnx.load(path), fastrnn.onnx.load(str(path))
    from_proto = fastrnn.onnx.load(onnx.load_from_string(model))
    for other in (from_path, from_str, from_proto):
        for k, v in fastrnn.onnx.load(model)[0].params.items():
            np.testing.assert_array_equal(other[0].params[k], v)
    with pytest.raises(TypeError, match="model"):
        fastrnn.onnx.load(12)


def test_float64_weights_give_a_float64_layer():
    (layer,) = fastrnn.onnx.load(node_model("LSTM", rng_for("f64"), dtype=np.float64))
    assert layer.dtype == np.float64


# ----------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("op, attrs, named", [
    ("LSTM", {"activations": ["Sigmoid", "Tanh", "Relu"]}, "activations"),
    ("GRU", {"activations": ["HardSigmoid", "Tanh"], "linear_before_reset": 1}, "activations"),
    ("RNN", {"activations": ["Sigmoid"]}, "activations"),
    ("RNN", {"activation_alpha": [0.5]}, "activation_alpha"),
    ("LSTM", {"activation_beta": [0.5]}, "activation_beta"),
    ("GRU", {"clip": 3.0, "linear_before_reset": 1}, "clip"),
    ("LSTM", {"input_forget": 1}, "input_forget"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_unsupported_attributes_are_rejected(op, attrs, named):
    model = node_model(op, rng_for("reject", named), attrs=attrs)
    with pytest.raises(ValueError, match=named):
        fastrnn.onnx.load(model)


def test_bidirectional_rnn_with_two_activations_is_rejected():
    model = node_model("RNN", rng_for("mixed"), direction="bidirectional",
                       attrs={"activations": ["Tanh", "Relu"]})
    with pytest.raises(ValueError, match="activations"):
        fastrnn.onnx.load(model)


def test_weights_that_are_not_initializers_are_rejected():
    proto = onnx.load_from_string(node_model("LSTM", rng_for("notinit")))
    weight = next(t for t in proto.graph.initializer if t.name == "R")
    proto.graph.initializer.remove(weight)
    proto.graph.input.append(helper.make_tensor_value_info("R", TensorProto.FLOAT,
                                                           list(weight.dims)))
    with pytest.raises(ValueError, match="input R"):
        fastrnn.onnx.load(proto)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
def test_sequence_lens_is_lengths(op, direction):
    """A node with a sequence_lens input loads; the layer called with lengths= gives ONNX
    Runtime's Y (zero past each end) and final states (each at its own last step)."""
    rng = rng_for("seqlens", op, direction)
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    proto = onnx.load_from_string(node_model(op, rng, direction=direction, attrs=attrs))
    proto.graph.node[0].input[4] = "lens"
    proto.graph.input.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [B]))
    model = proto.SerializeToString()
    dirs = 2 if direction == "bidirectional" else 1
    x = rng.standard_normal((T, B, D)).astype(F32)
    states0 = [rng.standard_normal((dirs, B, H)).astype(F32) for _ in STATES[op]]
    lengths = np.array([2, T], np.int32)[:B]
    feed = {"x": x, "lens": lengths, **{f"{s}0": v for s, v in zip(STATES[op], states0)}}
    Y, *finals = ort_run(model, feed)
    (layer,) = fastrnn.onnx.load(model)
    y, state_n = layer(x, states0[0] if op != "LSTM" else tuple(states0), lengths=lengths)
    assert np.all(y[2:, 0] == 0) and np.abs(y).max() > 0.1
    assert_close(y, Y.transpose(0, 2, 1, 3).reshape(T, B, dirs * H), F32, "y")
    for got, want in zip(state_n if isinstance(state_n, tuple) else (state_n,), finals):
        assert_close(got, want, F32, "final state")


def test_missing_onnx_package_is_a_clear_import_error(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)      # makes "import onnx" fail
    with pytest.raises(ImportError, match=r"pip install"):
        fastrnn.onnx.load(b"")
    with pytest.raises(ImportError, match=r"fastrnn\[onnx\]"):
        fastrnn.GRU(2, 3).to_onnx("unused.onnx")
