"""fastrnn.save / fastrnn.load (one .npz: JSON header and weights) and pickling of layers."""

import copyreg
import inspect
import io
import json
import os
import pathlib
import pickle
import time

import numpy as np
import pytest

import fastrnn
from fastrnn.layers.base import RecurrentLayer
from fastrnn.runtime.scratch import Scratch
from fastrnn.runtime.split_choice import SplitChoice
from conftest import CELLS, DTYPES, assert_close, cell_of, make_layer, make_state, make_x, rng_for

D, H = 5, 4
CONFIGS = [dict(num_layers=1), dict(num_layers=2, bidirectional=True),
           dict(num_layers=3, bias=False, batch_first=True),
           dict(num_layers=2, bidirectional=True, bias=False, batch_first=True),
           dict(num_layers=2, reverse=True)]
HEADER = "__fastrnn__"


def constructor_args(layer):
    """Every constructor argument except seed, read from the signature (not from fastrnn.deploy.io)."""
    sig = inspect.signature(type(layer).__init__)
    return [k for k in sig.parameters if k not in ("self", "seed")]


def assert_same_layer(loaded, layer):
    assert type(loaded) is type(layer)
    for key in constructor_args(layer):
        assert getattr(loaded, key, None) == getattr(layer, key, None), key
    assert loaded.dtype == layer.dtype
    assert list(loaded.params) == list(layer.params)
    for k, v in layer.params.items():
        assert loaded.params[k].dtype == v.dtype, k
        np.testing.assert_array_equal(loaded.params[k], v, err_msg=k)
        assert not np.shares_memory(loaded.params[k], v), k
    for g in loaded.grads.values():
        assert not np.any(g)


def random_layer(cell, dtype, seed, **config):
    """A layer whose parameters (biases too) are far from the defaults of a fresh one."""
    layer = make_layer(cell, D, H, dtype=dtype, seed=seed, **config)
    rng = rng_for("params", cell, seed)
    for v in layer.params.values():
        v[...] = rng.standard_normal(v.shape)
    return layer


def read_raw(path):
    """All arrays of an .npz and its parsed header, read independently of fastrnn.deploy.io."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(str(arrays.pop(HEADER))), arrays


def write_raw(path, header, arrays):
    with open(path, "wb") as f:
        np.savez(f, **{HEADER: np.array(json.dumps(header))}, **arrays)


def rewrite(path, edit_header=None, edit_arrays=None):
    header, arrays = read_raw(path)
    if edit_header:
        edit_header(header)
    if edit_arrays:
        edit_arrays(arrays)
    write_raw(path, header, arrays)


def expect_error(path, *phrases):
    with pytest.raises(ValueError) as info:
        fastrnn.load(path)
    message = str(info.value)
    assert str(path) in message
    for phrase in phrases:
        assert phrase in message, message
    return message


@pytest.fixture
def saved(tmp_path):
    """A saved 2-layer LSTM and its path."""
    layer = random_layer("lstm", np.float32, 3, num_layers=2)
    path = tmp_path / "lstm.npz"
    fastrnn.save(path, layer)
    return path, layer


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in
                                                                   c.items()))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_layer_round_trip(tmp_path, cell, dtype, config):
    layer = random_layer(cell, dtype, 1, **config)
    path = tmp_path / "layer.npz"
    fastrnn.save(path, layer)
    loaded = fastrnn.load(path)
    assert_same_layer(loaded, layer)
    rng = rng_for(cell, dtype, str(config))
    x, s0 = make_x(rng, layer, 4, 3), make_state(rng, layer, 3)
    y, s = layer(x, s0)
    y2, s2 = loaded(x, s0)
    assert_close(y2, y, dtype, "y", rtol=0, atol=0)
    assert_close(s2, s, dtype, "state_n", rtol=0, atol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_header_holds_every_constructor_argument(tmp_path, cell):
    layer = make_layer(cell, D, H, 2, bias=False, batch_first=True, bidirectional=True,
                       dtype=np.float64, seed=0)
    fastrnn.save(tmp_path / "m.npz", layer)
    header, arrays = read_raw(tmp_path / "m.npz")
    assert header["format"] == "fastrnn"
    assert header["format_version"] == fastrnn.deploy.io.FORMAT_VERSION == 1
    assert header["kind"] == "layer"
    (entry,) = header["layers"]
    assert entry["class"] == type(layer).__name__
    assert set(entry["config"]) == set(constructor_args(layer))
    expected = dict(input_size=D, hidden_size=H, num_layers=2, bias=False, batch_first=True,
                    bidirectional=True, dtype="float64")
    for k, v in expected.items():
        assert entry["config"][k] == v, k
    if cell.startswith("rnn"):
        assert entry["config"]["nonlinearity"] == cell[4:]
    assert set(arrays) == {f"0.{k}" for k in layer.params}
    for k, v in layer.params.items():
        np.testing.assert_array_equal(arrays[f"0.{k}"], v)


def test_dict_round_trip_keeps_names_and_order(tmp_path):
    models = {"encoder": random_layer("gru", np.float32, 1, num_layers=2),
              "decoder": random_layer("lstm", np.float64, 2, bidirectional=True),
              "a head": random_layer("rnn_relu", np.float32, 3, bias=False)}
    fastrnn.save(tmp_path / "models.npz", models)
    loaded = fastrnn.load(tmp_path / "models.npz")
    assert isinstance(loaded, dict) and list(loaded) == list(models)
    for name, layer in models.items():
        assert_same_layer(loaded[name], layer)
    fastrnn.save(tmp_path / "empty.npz", {})
    assert fastrnn.load(tmp_path / "empty.npz") == {}


def test_path_is_used_as_given_and_overwritten_atomically(tmp_path):
    a, b = fastrnn.GRU(3, 2, seed=0), fastrnn.LSTM(2, 3, seed=1)
    target = tmp_path / "model.bin"        # no .npz appended
    fastrnn.save(str(target), a)
    fastrnn.save(target, b)                # pathlib, overwriting
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]   # no temporary file left
    assert_same_layer(fastrnn.load(str(target)), b)
    assert_same_layer(fastrnn.load(pathlib.Path(target)), b)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_round_trip(tmp_path, cell):
    layer = make_layer(cell, D, H, 2, dropout=0.25, seed=0)
    fastrnn.save(tmp_path / "m.npz", layer)
    header, _ = read_raw(tmp_path / "m.npz")
    assert header["layers"][0]["config"]["dropout"] == 0.25
    loaded = fastrnn.load(tmp_path / "m.npz")
    assert loaded.dropout == 0.25
    assert_same_layer(loaded, layer)


# ----------------------------------------------------------------------------- save errors


def test_save_rejects_what_it_cannot_save(tmp_path):
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError, match="obj\\['weight_ih_l0'\\]: expected a fastrnn"):
        fastrnn.save(path, {"weight_ih_l0": np.zeros((4, 3))})    # a state_dict is not a layer
    with pytest.raises(TypeError, match="obj: expected a fastrnn"):
        fastrnn.save(path, [fastrnn.GRU(3, 2)])
    with pytest.raises(TypeError, match="obj: dict keys must be str"):
        fastrnn.save(path, {0: fastrnn.GRU(3, 2)})

    class MyGRU(fastrnn.GRU):
        pass

    with pytest.raises(TypeError, match="obj\\['x'\\]: expected a fastrnn"):
        fastrnn.save(path, {"x": MyGRU(3, 2)})
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------- load errors


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastrnn.load(tmp_path / "nothing.npz")


def test_empty_and_non_npz_files(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    expect_error(empty, "empty file")
    text = tmp_path / "text.npz"
    text.write_text("input_size=3\n")
    expect_error(text, "not an .npz")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    expect_error(npy, "not an .npz")


def test_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    with open(path, "wb") as f:
        np.savez(f, weight_ih_l0=np.zeros((4, 3)), weight_hh_l0=np.zeros((4, 4)))
    expect_error(path, "not a fastrnn file", HEADER)
    write_raw(path, {"format": "something-else", "format_version": 1}, {})
    expect_error(path, "not a fastrnn file", "format='fastrnn'")
    with open(path, "wb") as f:
        np.savez(f, **{HEADER: np.arange(3)})
    expect_error(path, "not a fastrnn file", "not a string")


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.6, 0.97])
def test_truncated(saved, fraction):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    expect_error(path, "truncated or corrupted")


@pytest.mark.parametrize("param", ["weight_ih_l0", "bias_hh_l1"])
def test_corrupted_weights_fail_the_checksum(saved, param):
    path, layer = saved
    data = bytearray(path.read_bytes())
    at = bytes(data).find(layer.params[param].tobytes())
    assert at > 0
    data[at + 5] ^= 0x40
    path.write_bytes(bytes(data))
    expect_error(path, "truncated or corrupted", f"0.{param}")


def test_corrupted_header_text(saved):
    path, _ = saved
    _, arrays = read_raw(path)
    with open(path, "wb") as f:
        np.savez(f, **{HEADER: np.array('{"format": "fastrnn", "format_vers')}, **arrays)
    expect_error(path, "not valid JSON")


@pytest.mark.parametrize("version, hint", [(2, "upgrade fastrnn"), (0, ""), ("1", ""),
                                           (None, "")])
def test_version_mismatch(saved, version, hint):
    path, _ = saved
    rewrite(path, lambda h: h.update(format_version=version))
    message = expect_error(path, f"format version {version!r}", "reads version 1")
    assert (hint in message) if hint else ("upgrade" not in message)


def test_arrays_must_match_the_header(saved):
    path, layer = saved
    rewrite(path, edit_arrays=lambda a: a.pop("0.bias_hh_l1"))
    expect_error(path, "missing ['0.bias_hh_l1']")
    fastrnn.save(path, layer)
    rewrite(path, edit_arrays=lambda a: a.update({"0.extra": np.zeros(2, np.float32)}))
    expect_error(path, "unexpected ['0.extra']")
    fastrnn.save(path, layer)
    rewrite(path, edit_arrays=lambda a: a.update({"0.weight_hh_l0": np.zeros((16, 3),
                                                                             np.float32)}))
    expect_error(path, "'0.weight_hh_l0'", "shape (16, 3)", "needs shape (16, 4)")
    fastrnn.save(path, layer)
    rewrite(path, edit_arrays=lambda a: a.update({"0.bias_ih_l0": a["0.bias_ih_l0"]
                                                  .astype(np.float64)}))
    expect_error(path, "'0.bias_ih_l0'", "dtype float64", "dtype float32")
    fastrnn.save(path, layer)
    rewrite(path, edit_arrays=lambda a: a.update({"0.weight_hh_l0": np.zeros((16, 2000),
                                                                             np.float32)}))
    expect_error(path, "'0.weight_hh_l0'", "too large for shape (16, 4)")


@pytest.mark.parametrize("key, value, phrase", [
    ("hidden_size", 0, "expected an integer >= 1"),
    ("num_layers", 2.5, "expected an integer >= 1"),
    ("input_size", True, "expected an integer >= 1"),
    ("bias", "yes", "expected true or false"),
    ("dtype", "int8", "expected 'float32' or 'float64'"),
    ("dtype", "object", "expected 'float32' or 'float64'"),
    ("bidirectional", [1], "a number, bool or str"),
    ("seed", 3, "does not take"),
    ("__class__", "os.system", "does not take"),
])
def test_bad_configuration(saved, key, value, phrase):
    path, _ = saved
    rewrite(path, lambda h: h["layers"][0]["config"].update({key: value}))
    expect_error(path, phrase)


def test_bad_nonlinearity_is_reported_with_the_path(tmp_path):
    path = tmp_path / "rnn.npz"
    fastrnn.save(path, fastrnn.RNN(3, 2))
    rewrite(path, lambda h: h["layers"][0]["config"].update(nonlinearity="sigmoid"))
    expect_error(path, "invalid configuration", "nonlinearity")


@pytest.mark.parametrize("cls_name", ["Adam", "os.system", "RecurrentLayer", None])
def test_only_the_layer_classes_are_built(saved, cls_name):
    path, _ = saved
    rewrite(path, lambda h: h["layers"][0].update({"class": cls_name}))
    expect_error(path, f"class {cls_name!r}",
                 "expected one of ['Embedding', 'GRU', 'LSTM', 'Linear', 'RNN']")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_whole_model_round_trip(tmp_path, dtype):
    """Embedding, a recurrent stack and an output layer in one file, as a character
    model keeps them: the loaded model computes the same logits."""
    rng = np.random.default_rng(4)
    model = {"embed": fastrnn.Embedding(11, 5, dtype=dtype, seed=1),
             "rnn": fastrnn.GRU(5, 7, num_layers=2, batch_first=True, dtype=dtype, seed=2),
             "head": fastrnn.Linear(7, 11, dtype=dtype, seed=3),
             "head_nobias": fastrnn.Linear(7, 3, bias=False, dtype=dtype, seed=4)}
    for layer in model.values():          # not the initial values: trained ones
        for v in layer.params.values():
            v += rng.standard_normal(v.shape).astype(dtype)
    path = tmp_path / "model.npz"
    fastrnn.save(path, model)
    loaded = fastrnn.load(path)
    assert list(loaded) == list(model)

    def logits(m):
        tokens = np.array([[1, 4, 10, 0]])
        h, _ = m["rnn"](m["embed"](tokens))
        return m["head"](h), m["head_nobias"](h)

    for got, want in zip(logits(loaded), logits(model)):
        np.testing.assert_array_equal(got, want)
    for name, layer in model.items():
        assert type(loaded[name]) is type(layer)
        for k, v in layer.params.items():
            np.testing.assert_array_equal(loaded[name].params[k], v)
            assert loaded[name].params[k].dtype == np.dtype(dtype)


@pytest.mark.parametrize("cls, args, key, value, phrase", [
    ("Linear", (4, 3), "out_features", 0, "expected an integer >= 1"),
    ("Linear", (4, 3), "in_features", None, "expected an integer >= 1"),
    ("Linear", (4, 3), "bias", "no", "expected true or false"),
    ("Embedding", (9, 2), "embedding_dim", -1, "expected an integer >= 1"),
    ("Embedding", (9, 2), "num_embeddings", 2**40, "needs shape (1099511627776, 2)"),
])
def test_bad_linear_and_embedding_configuration(tmp_path, cls, args, key, value, phrase):
    path = tmp_path / "layer.npz"
    fastrnn.save(path, getattr(fastrnn, cls)(*args))
    rewrite(path, lambda h: h["layers"][0]["config"].update({key: value}))
    expect_error(path, phrase)


def test_malformed_header_structure(saved):
    path, layer = saved
    rewrite(path, lambda h: h.update(kind="module"))
    expect_error(path, "corrupted fastrnn header")
    fastrnn.save(path, layer)
    rewrite(path, lambda h: h["layers"].append(h["layers"][0]))   # two layers, kind "layer"
    expect_error(path, "corrupted fastrnn header")
    fastrnn.save(path, {"a": layer})
    rewrite(path, lambda h: h["layers"][0].update(name=None))
    expect_error(path, "layer 0 has no name")


def test_huge_declared_size_is_refused_before_allocating(saved):
    """A tiny file that claims a huge layer is refused fast, without building the layer."""
    path, _ = saved
    rewrite(path, lambda h: h["layers"][0]["config"].update(hidden_size=2**28))
    start = time.perf_counter()
    expect_error(path, "needs shape (1073741824, 5)")
    assert time.perf_counter() - start < 5


EXECUTED = []


def _side_effect():
    EXECUTED.append(True)
    return np.zeros(3)


class Payload:
    def __reduce__(self):
        return (_side_effect, ())


def test_nothing_executes_from_a_file(saved):
    """An object array (which would unpickle Payload and run _side_effect) is refused."""
    path, _ = saved
    header, arrays = read_raw(path)
    arrays["0.bias_ih_l0"] = np.array([Payload()] * 16, dtype=object)
    with open(path, "wb") as f:
        np.savez(f, **{HEADER: np.array(json.dumps(header))}, **arrays)
    expect_error(path, "'0.bias_ih_l0'", "cannot be read")
    assert EXECUTED == []


# --------------------------------------------------------------------------------- pickle


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("cell", CELLS)
def test_pickle_round_trip(cell, protocol):
    layer = random_layer(cell, np.float64, 5, num_layers=2, bidirectional=True,
                         batch_first=True, bias=cell != "gru")
    rng = rng_for("pickle", cell)
    x = make_x(rng, layer, 3, 2)
    y, _, cache = layer.forward(x)       # a used layer, with gradients
    layer.backward(y, cache)
    loaded = pickle.loads(pickle.dumps(layer, protocol=protocol))
    assert type(loaded) is type(layer)
    for key in constructor_args(layer):
        assert getattr(loaded, key) == getattr(layer, key), key
    assert loaded.dtype == np.dtype(np.float64)
    for k, v in layer.params.items():
        assert loaded.params[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded.params[k], v)
        np.testing.assert_array_equal(loaded.grads[k], layer.grads[k])
        assert not np.shares_memory(loaded.params[k], v)
    assert_close(loaded(x)[0], layer(x)[0], np.float64, "y", rtol=0, atol=0)
    assert cell_of(loaded) == cell


class _OldLayerPickler(pickle.Pickler):
    """Pickles a layer as the code before the runtime split did: its execution state in
    private attributes of its own (a Scratch, a SplitChoice), no _runtime."""

    def reducer_override(self, obj):
        if isinstance(obj, RecurrentLayer):
            state = {k: v for k, v in obj.__dict__.items() if k != "_runtime"}
            state.update(_scratch=Scratch(), _split_choice=SplitChoice(), _split_now=None,
                         _reused=None, _kept_packs={})
            return copyreg.__newobj__, (type(obj),), state
        return NotImplemented


# where the classes of such a pickle lived before the subpackages
_OLD_PATHS = {b"fastrnn.layers.": b"fastrnn.", b"fastrnn.runtime.scratch": b"fastrnn._scratch",
              b"fastrnn.runtime.split_choice": b"fastrnn._split_choice"}


@pytest.mark.parametrize("cell", CELLS)
def test_a_layer_pickled_before_the_runtime_split_still_runs(cell):
    layer = random_layer(cell, np.float32, 4, num_layers=2)
    x = make_x(rng_for("old pickle", cell), layer, 6, 3)
    buf = io.BytesIO()
    _OldLayerPickler(buf, protocol=0).dump(layer)   # protocol 0 names classes in plain text
    data = buf.getvalue()
    for new, old in _OLD_PATHS.items():
        assert new in data
        data = data.replace(new, old)
    loaded = pickle.loads(data)
    assert type(loaded) is type(layer)
    assert not any(hasattr(loaded, name) for name in ("_scratch", "_reused", "_kept_packs"))
    np.testing.assert_array_equal(loaded(x)[0], layer(x)[0])
    np.testing.assert_array_equal(loaded.frozen()(x)[0], layer(x)[0])
