"""fastrnn.onnx.load on models with control flow, and on models it must refuse.

Models are built with onnx.helper: RNN, LSTM and GRU nodes inside If branches, a Loop body
(carrying the hidden state from one iteration to the next) and a Scan body, some using the
main graph's initializers and some their own.  ONNX Runtime runs each model; the layers that
load() returns, run as the control flow says, must give its outputs.  The refusals are
ValueErrors naming the model and the reason, never an onnx or protobuf exception.
"""

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
FLOAT = TensorProto.FLOAT


def recurrent_node(op, name, rng, inits, *, x="x", h0="", outputs=None):
    """A one-direction node named name, its random weights appended to inits."""
    G = GATES[op] * H
    for role, shape in (("W", (1, G, D)), ("R", (1, G, H)), ("B", (1, 2 * G))):
        inits.append(numpy_helper.from_array(rng.uniform(-0.7, 0.7, shape).astype(F32),
                                             f"{name}_{role}"))
    inputs = [x, f"{name}_W", f"{name}_R", f"{name}_B", "", h0]
    while inputs[-1] == "":
        inputs.pop()
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    outputs = outputs or [f"{name}_Y", f"{name}_Yh"]
    return helper.make_node(op, inputs, outputs, name=name, hidden_size=H, **attrs)


def value(name, shape, elem=FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def model_of(graph):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def if_model(rng):
    """top RNN, then If(cond) with an LSTM in then_branch (main-graph weights) and a GRU in
    else_branch (its own weights), then a GRU after the If.  Outputs the three final states
    that the cond picks between and around."""
    main_inits, else_inits = [], []
    top = recurrent_node("RNN", "top", rng, main_inits, outputs=["top_Y", "top_Yh"])
    then_node = recurrent_node("LSTM", "enc", rng, main_inits,
                               outputs=["enc_Y", "branch_h", "enc_Yc"])
    else_node = recurrent_node("GRU", "alt", rng, else_inits, outputs=["alt_Y", "branch_h"])
    then_graph = helper.make_graph([then_node], "then", [], [value("branch_h", None)])
    else_graph = helper.make_graph([else_node], "else", [], [value("branch_h", None)],
                                   else_inits)
    branch = helper.make_node("If", ["cond"], ["h_branch"], name="switch",
                              then_branch=then_graph, else_branch=else_graph)
    after = recurrent_node("GRU", "after", rng, main_inits, outputs=["after_Y", "after_Yh"])
    graph = helper.make_graph([top, branch, after], "main",
                              [value("x", [T, B, D]), value("cond", [], TensorProto.BOOL)],
                              [value("top_Yh", None), value("h_branch", None),
                               value("after_Yh", None)], main_inits)
    return model_of(graph)


def test_if_branches_load_in_order_and_match_onnx_runtime():
    rng = rng_for("if")
    model = if_model(rng)
    x = rng.standard_normal((T, B, D)).astype(F32)
    layers = fastrnn.onnx.load(model)
    assert [type(layer).__name__ for layer in layers] == ["RNN", "LSTM", "GRU", "GRU"]
    assert [str(layer.onnx_source) for layer in layers] == [
        "top", "switch.then_branch/enc", "switch.else_branch/alt", "after"]
    assert layers[1].onnx_source.graph_path == ("switch.then_branch",)
    assert layers[1].onnx_source.node == "enc" and layers[1].onnx_source.op_type == "LSTM"
    top, enc, alt, after = layers
    for cond, branch in ((True, enc), (False, alt)):
        want_top, want_branch, want_after = ort_run(model, {"x": x, "cond": np.array(cond)})
        state = branch(x)[1]
        assert_close(top(x)[1], want_top, F32, "top")
        assert_close(state[0] if isinstance(state, tuple) else state, want_branch, F32,
                     f"branch cond={cond}")
        assert_close(after(x)[1], want_after, F32, "after")


def loop_model(rng, trips):
    """Loop(trips) whose body runs a GRU over the outer x from the carried state, carrying
    its final state and stacking it as the scan output."""
    body_inits = []
    gru = recurrent_node("GRU", "step_gru", rng, body_inits, h0="h_in",
                         outputs=["body_Y", "h_out"])
    keep = helper.make_node("Identity", ["cond_in"], ["cond_out"])
    stack = helper.make_node("Identity", ["h_out"], ["h_scan"])
    body = helper.make_graph([gru, keep, stack], "body",
                             [value("i", [], TensorProto.INT64),
                              value("cond_in", [], TensorProto.BOOL), value("h_in", None)],
                             [value("cond_out", [], TensorProto.BOOL), value("h_out", None),
                              value("h_scan", None)], body_inits)
    loop = helper.make_node("Loop", ["trips", "", "h0"], ["h_final", "h_all"], name="repeat",
                            body=body)
    graph = helper.make_graph(
        [loop], "main", [value("x", [T, B, D]), value("h0", [1, B, H])],
        [value("h_final", None), value("h_all", None)],
        [numpy_helper.from_array(np.array(trips, np.int64), "trips")])
    return model_of(graph)


@pytest.mark.parametrize("trips", [1, 3])
def test_loop_body_gru_carries_its_state_like_onnx_runtime(trips):
    rng = rng_for("loop", trips)
    model = loop_model(rng, trips)
    x = rng.standard_normal((T, B, D)).astype(F32)
    h0 = rng.standard_normal((1, B, H)).astype(F32)
    want_final, want_all = ort_run(model, {"x": x, "h0": h0})
    (gru,) = fastrnn.onnx.load(model)
    assert str(gru.onnx_source) == "repeat.body/step_gru"
    h, states = h0, []
    for _ in range(trips):
        h = gru(x, h)[1]
        states.append(h)
    assert np.abs(h).max() > 0.1
    assert_close(h, want_final, F32, "final")
    assert_close(np.stack(states), want_all, F32, "stacked")


def test_scan_body_and_nested_control_flow_give_the_path():
    """An LSTM in a Scan body inside a Loop body inside an If branch, an unnamed GRU in the
    other branch: the path names each level, #i an unnamed node by its index."""
    rng = rng_for("nested")
    inits = []
    lstm = recurrent_node("LSTM", "deep", rng, inits, x="xs")
    scan_body = helper.make_graph([lstm, helper.make_node("Identity", ["s"], ["s_out"]),
                                   helper.make_node("Identity", ["xt"], ["y_t"])], "scan_body",
                                  [value("s", None), value("xt", None)],
                                  [value("s_out", None), value("y_t", None)])
    scan = helper.make_node("Scan", ["s0", "x"], ["s_n", "ys"], name="scanner", body=scan_body,
                            num_scan_inputs=1)
    loop_body = helper.make_graph([scan], "loop_body", [value("i", [], TensorProto.INT64),
                                                        value("c", [], TensorProto.BOOL)],
                                  [value("c", [], TensorProto.BOOL)])
    loop = helper.make_node("Loop", ["", "flag"], [], name="outer", body=loop_body)
    gru = recurrent_node("GRU", "", rng, inits, outputs=["g_Y", "g_Yh"])
    branches = helper.make_node(
        "If", ["flag"], ["out"], name="pick",
        then_branch=helper.make_graph([loop, helper.make_node("Identity", ["x"], ["o"])], "t",
                                      [], [value("o", None)]),
        else_branch=helper.make_graph([gru, helper.make_node("Identity", ["x"], ["o"])], "e",
                                      [], [value("o", None)]))
    graph = helper.make_graph([branches], "main", [value("x", [T, B, D]),
                                                   value("flag", [], TensorProto.BOOL),
                                                   value("s0", [1])],
                              [value("out", None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    layers = fastrnn.onnx.load(model)
    assert [str(layer.onnx_source) for layer in layers] == [
        "pick.then_branch/outer.body/scanner.body/deep", "pick.else_branch/#0"]
    np.testing.assert_array_equal(layers[0].params["weight_hh_l0"],
                                  numpy_helper.to_array(inits[1])[0][np.r_[0:4, 8:16, 4:8]])


# ----------------------------------------------------------------------------- refusals


def single_node_proto(rng, op="LSTM"):
    inits = []
    node = recurrent_node(op, "n", rng, inits)
    graph = helper.make_graph([node], "g", [value("x", [T, B, D])], [value("n_Yh", None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_model_without_recurrent_node_is_a_value_error(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [value("x", [2])], [value("y", [2])])
    path = tmp_path / "relu.onnx"
    path.write_bytes(model_of(graph))
    with pytest.raises(ValueError, match=r"relu\.onnx: no RNN, LSTM or GRU node"):
        fastrnn.onnx.load(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip"])
def test_unparseable_bytes_are_a_value_error_naming_the_file(tmp_path, damage):
    data = fastrnn.LSTM(D, H, seed=1)
    path = tmp_path / "good.onnx"
    data.to_onnx(path)
    raw = bytearray(path.read_bytes())
    bad = {"truncate": raw[:len(raw) // 3], "garbage": b"\xff\xfe not a model \x00" * 5,
           "empty": b"", "flip": raw[:8] + bytes(b ^ 0xFF for b in raw[8:40]) + raw[40:]}
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(bytes(bad[damage]))
    with pytest.raises(ValueError, match=r"broken\.onnx: "):
        fastrnn.onnx.load(broken)
    with pytest.raises(ValueError, match=r"model \(bytes\): "):
        fastrnn.onnx.load(bytes(bad[damage]))


def weight(proto, role):
    return next(t for t in proto.graph.initializer if t.name == f"n_{role}")


def declare_huge(proto):
    weight(proto, "R").dims[2] = 10 ** 9


def wrong_data_type(proto):
    weight(proto, "W").data_type = TensorProto.INT32


def external_data(proto):
    weight(proto, "W").data_location = TensorProto.EXTERNAL


def attribute_of_wrong_type(proto):
    node = proto.graph.node[0]
    del node.attribute[:]
    node.attribute.append(helper.make_attribute("hidden_size", "four"))


def zero_hidden_size(proto):
    for role in "WRB":
        t = weight(proto, role)
        t.raw_data = b""
        del t.float_data[:]
        t.dims[1] = 0
    weight(proto, "R").dims[2] = 0
    weight(proto, "B").dims[1] = 0
    del proto.graph.node[0].attribute[:]


@pytest.mark.parametrize("damage, reason", [
    (declare_huge, "declares dims"), (wrong_data_type, "data type INT32"),
    (external_data, "external data"), (attribute_of_wrong_type, "'hidden_size' has type"),
    (zero_hidden_size, "no valid layer")], ids=lambda v: getattr(v, "__name__", ""))
def test_damaged_weights_and_attributes_are_value_errors(damage, reason):
    proto = single_node_proto(rng_for("damage", damage.__name__))
    damage(proto)
    with pytest.raises(ValueError, match=rf"model \(bytes\): node 'n' \(LSTM\): .*{reason}"):
        fastrnn.onnx.load(proto.SerializeToString())
