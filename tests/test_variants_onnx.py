"""An independent oracle for the two cell variants: ONNX Runtime on hand-built ONNX graphs.

ONNX's GRU with linear_before_reset=0 is the reset-before GRU, and its LSTM with the P input is
the peephole LSTM.  The graphs are built here from the layer's parameters (no exporter), with
ONNX's own conventions: gate orders LSTM i, o, f, c and GRU z, r, h; W (dirs, G*H, D), R (dirs,
G*H, H), B (dirs, 2*G*H) = [Wb, Rb]; P (dirs, 3H) = [p_i, p_o, p_f]; Y (T, dirs, B, H).  Stacked
layers chain through Transpose and Reshape to (T, B, dirs*H).  Forward only (ONNX Runtime has
no backward); the gradients are checked against the reference, itself checked by finite
differences, in test_variants.py.

ONNX Runtime's CPU GRU and LSTM kernels are float32 only ("does not support double yet"), so
the graph is always float32: a float32 layer is compared on its own weights, a float64 layer
on its weights rounded to float32, both at float32 tolerance.
"""

import numpy as np
import pytest

import fastrnn
from conftest import as_parts, rng_for

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

D, H = 5, 6


def _blocks(a, order, H):
    """Rows of a (G*H, ...) array or (G*H,) vector regrouped by gate block index order."""
    return np.concatenate([a[k * H:(k + 1) * H] for k in order], axis=0)


# fastrnn block index of each ONNX block: LSTM fastrnn i,f,g,o -> ONNX i,o,f,c;
# GRU fastrnn r,z,n -> ONNX z,r,h
ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}


def _onnx_inputs(layer, l):
    """W, R, B, P (None without peepholes) of layer l, in ONNX's layout."""
    kind = type(layer).__name__
    G = layer._gate_count
    dirs = 2 if layer.bidirectional else 1
    Ws, Rs, Bs, Ps = [], [], [], []
    for d in range(dirs):
        sfx = f"_l{l}" + ("_reverse" if d else "")
        p = layer.params
        Ws.append(_blocks(p["weight_ih" + sfx], ORDER[kind], H))
        Rs.append(_blocks(p["weight_hh" + sfx], ORDER[kind], H))
        if layer.bias:
            Bs.append(np.concatenate([_blocks(p["bias_ih" + sfx], ORDER[kind], H),
                                      _blocks(p["bias_hh" + sfx], ORDER[kind], H)]))
        else:
            Bs.append(np.zeros(2 * G * H, layer.dtype))
        if getattr(layer, "peephole", False):
            pw = p["weight_peephole" + sfx]          # rows p_i, p_f, p_o
            Ps.append(np.concatenate([pw[0], pw[2], pw[1]]))   # ONNX: p_i, p_o, p_f
    stack = np.stack
    return stack(Ws), stack(Rs), stack(Bs), (stack(Ps) if Ps else None)


def _model(layer, T, B):
    """ONNX model of the whole stack: inputs X and the initial states of every layer;
    outputs Y (T, B, dirs*H) and each layer's Y_h (and Y_c)."""
    kind = type(layer).__name__
    is_lstm = kind == "LSTM"
    dirs = 2 if layer.bidirectional else 1
    elem = TensorProto.FLOAT
    nodes, inits, inputs, outputs = [], [], [], []
    inputs.append(helper.make_tensor_value_info("X", elem, [T, B, D]))
    x_name = "X"
    for l in range(layer.num_layers):
        W, R, Bb, P = _onnx_inputs(layer, l)
        for name, arr in (("W", W), ("R", R), ("B", Bb), ("P", P)):
            if arr is not None:
                inits.append(numpy_helper.from_array(arr.astype(np.float32), f"{name}{l}"))
        state_names = [f"h0_{l}"] + ([f"c0_{l}"] if is_lstm else [])
        for s in state_names:
            inputs.append(helper.make_tensor_value_info(s, elem, [dirs, B, H]))
        node_inputs = [x_name, f"W{l}", f"R{l}", f"B{l}", "", f"h0_{l}"]
        if is_lstm:
            node_inputs += [f"c0_{l}", f"P{l}" if P is not None else ""]
        node_outputs = [f"Y{l}", f"Yh{l}"] + ([f"Yc{l}"] if is_lstm else [])
        attrs = dict(hidden_size=H, direction="bidirectional" if dirs == 2 else "forward")
        if not is_lstm:
            attrs["linear_before_reset"] = 1 if layer.reset_after else 0
        nodes.append(helper.make_node(kind, node_inputs, node_outputs, **attrs))
        # (T, dirs, B, H) -> (T, B, dirs, H) -> (T, B, dirs * H)
        nodes.append(helper.make_node("Transpose", [f"Y{l}"], [f"Yt{l}"], perm=[0, 2, 1, 3]))
        inits.append(numpy_helper.from_array(np.array([T, B, dirs * H], np.int64), f"shape{l}"))
        nodes.append(helper.make_node("Reshape", [f"Yt{l}", f"shape{l}"], [f"Yr{l}"]))
        x_name = f"Yr{l}"
        for o in node_outputs[1:]:
            outputs.append(helper.make_tensor_value_info(o, elem, [dirs, B, H]))
    outputs.insert(0, helper.make_tensor_value_info(x_name, elem, [T, B, dirs * H]))
    graph = helper.make_graph(nodes, "variant", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run_onnx(layer, x_tm, state0):
    """ONNX Runtime's y (T, B, dirs*H) and state_n (like fastrnn's) for time-major x."""
    T, B, _ = x_tm.shape
    dirs = 2 if layer.bidirectional else 1
    model = _model(layer, T, B)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    parts = as_parts(state0)
    feed = {"X": x_tm.astype(np.float32)}
    for l in range(layer.num_layers):
        rows = slice(l * dirs, (l + 1) * dirs)
        feed[f"h0_{l}"] = parts[0][rows].astype(np.float32)
        if len(parts) == 2:
            feed[f"c0_{l}"] = parts[1][rows].astype(np.float32)
    out = sess.run(None, feed)
    y, rest = out[0], out[1:]
    per_layer = len(parts)
    states = [np.concatenate(rest[k::per_layer], axis=0) for k in range(per_layer)]
    return y, tuple(states) if per_layer == 2 else states[0]


CASES = [(L, bidir, bias, bf) for L, bidir, bias, bf in
         [(1, False, True, False), (1, True, False, True), (2, False, False, False),
          (2, True, True, True)]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T, B", [(1, 1), (5, 3)])
@pytest.mark.parametrize("L, bidir, bias, bf", CASES)
@pytest.mark.parametrize("kind", ["gru_reset_before", "lstm_peephole"])
def test_variant_matches_onnxruntime(kind, L, bidir, bias, bf, T, B, dtype):
    key = ("onnx", kind, L, bidir, bias, bf, T, B, np.dtype(dtype).name)
    rng = rng_for(*key)
    if kind == "gru_reset_before":
        layer = fastrnn.GRU(D, H, L, bias=bias, bidirectional=bidir, batch_first=bf,
                            reset_after=False, dtype=dtype, seed=1)
    else:
        layer = fastrnn.LSTM(D, H, L, bias=bias, bidirectional=bidir, batch_first=bf,
                             peephole=True, dtype=dtype, seed=1)
    for v in layer.params.values():       # larger than the init, so every term matters
        # float32 values, so both layers compute with exactly the graph's weights
        v[...] = rng.uniform(-0.8, 0.8, v.shape).astype(np.float32)
    dirs = 2 if bidir else 1
    x_tm = rng.standard_normal((T, B, D)).astype(np.float32)
    shape = (L * dirs, B, H)
    state0 = tuple(rng.standard_normal(shape).astype(np.float32)
                   for _ in range(2 if kind == "lstm_peephole" else 1))
    state0 = state0 if len(state0) == 2 else state0[0]
    y_ort, state_ort = _run_onnx(layer, x_tm, state0)
    x = x_tm.transpose(1, 0, 2).copy() if bf else x_tm
    y, state_n = layer(x, state0)
    if bf:
        y = y.transpose(1, 0, 2)
    # float32 in ONNX Runtime, with activation approximations of its own
    kw = dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(y, y_ort, **kw)
    for a, e in zip(as_parts(state_n), as_parts(state_ort)):
        np.testing.assert_allclose(a, e, **kw)


def test_onnx_graph_is_sensitive_to_the_variant():
    """The oracle itself tells the variants apart: linear_before_reset=1 (torch's GRU) and an
    LSTM without P give other outputs than the variant layers on the same weights."""
    rng = rng_for("onnx sensitivity")
    gru = fastrnn.GRU(D, H, reset_after=False, seed=2)
    torch_gru = fastrnn.GRU(D, H, seed=2)
    lstm = fastrnn.LSTM(D, H, peephole=True, seed=2)
    plain_lstm = fastrnn.LSTM(D, H, seed=2)
    plain_lstm.load_state_dict({k: v for k, v in lstm.params.items() if "peephole" not in k})
    x = rng.standard_normal((5, 2, D)).astype(np.float32)
    h0 = rng.standard_normal((1, 2, H)).astype(np.float32)
    c0 = rng.standard_normal((1, 2, H)).astype(np.float32)
    kw = dict(rtol=2e-5, atol=2e-5)
    y_rb, _ = _run_onnx(gru, x, h0)
    y_ra, _ = _run_onnx(torch_gru, x, h0)
    np.testing.assert_allclose(y_ra, torch_gru(x, h0)[0], **kw)
    assert np.abs(y_rb - y_ra).max() > 1e-3
    y_p, _ = _run_onnx(lstm, x, (h0, c0))
    y_np, _ = _run_onnx(plain_lstm, x, (h0, c0))
    np.testing.assert_allclose(y_np, plain_lstm(x, (h0, c0))[0], **kw)
    assert np.abs(y_p - y_np).max() > 1e-3
