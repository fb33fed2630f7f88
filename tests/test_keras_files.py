"""fastrnn.keras.load on .keras (and legacy .h5) files that Keras 3 (torch backend) saved.

Keras is the oracle: each model gets random weights (biases too), is saved with
model.save, and every recurrent layer that load() returns, run on the input that Keras's
layer of the same place receives, must give that layer's Keras output.  What fastrnn
cannot run, and damaged files, are ValueErrors naming the file and the layer.
"""

import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"     # before keras is imported: no tensorflow or jax
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

import fastrnn  # noqa: E402
import fastrnn.keras  # noqa: E402
from conftest import assert_close, rng_for  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

T, B, D = 5, 2, 3
F32 = np.float32
L = keras.layers


def saved(model, tmp_path, key):
    """model with random weights, saved; (path, model)."""
    rng = rng_for("keras file", key)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    path = tmp_path / f"{key}.keras"
    model.save(path)
    return path, model


def per_layer_io(model, x):
    """[(keras layer, its input, its output)] of a Sequential model run on x."""
    out = []
    for layer in model.layers:
        y = keras.ops.convert_to_numpy(layer(x))
        out.append((layer, x, y))
        x = y
    return out


def test_sequential_model_layers_match_keras(tmp_path):
    model = keras.Sequential([
        keras.Input((T, D)),
        L.LSTM(4, return_sequences=True),
        L.Bidirectional(L.GRU(3, return_sequences=True)),
        L.Dense(5),
        L.SimpleRNN(3, activation="relu", return_sequences=True),
        L.GRU(2, reset_after=False, dropout=0.3, recurrent_dropout=0.2),
        L.Dense(1)])
    path, model = saved(model, tmp_path, "sequential")
    layers = fastrnn.keras.load(path)
    assert [type(layer).__name__ for layer in layers] == ["LSTM", "GRU", "RNN", "GRU"]
    assert [layer.keras_source.class_name for layer in layers] == [
        "LSTM", "Bidirectional", "SimpleRNN", "GRU"]
    assert layers[1].bidirectional and layers[2].nonlinearity == "relu"
    assert layers[3].reset_after is False
    assert [layer.keras_source.return_sequences for layer in layers] == [True] * 3 + [False]
    x = rng_for("seq x").standard_normal((B, T, D)).astype(F32)
    recurrent = [io for io in per_layer_io(model, x) if not isinstance(io[0], L.Dense)]
    for layer, (klayer, kin, kout) in zip(layers, recurrent):
        assert layer.batch_first and layer.keras_source.name == klayer.name
        y, h = layer(kin)
        got = y if layer.keras_source.return_sequences else \
            (h[0] if isinstance(h, tuple) else h)[0]
        assert np.abs(kout).max() > 0.1
        assert_close(got, kout, F32, klayer.name)


def test_legacy_h5_model_file_matches_keras(tmp_path):
    model = keras.Sequential([
        keras.Input((T, D)), L.Bidirectional(L.LSTM(3, return_sequences=True)),
        L.Dense(4), L.GRU(2, return_sequences=True), L.SimpleRNN(3)])
    rng = rng_for("legacy h5")
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    path = tmp_path / "legacy.h5"
    model.save(path)
    layers = fastrnn.keras.load(path)
    assert [layer.keras_source.name for layer in layers] == [
        klayer.name for klayer in model.layers if not isinstance(klayer, L.Dense)]
    x = rng.standard_normal((B, T, D)).astype(F32)
    recurrent = [io for io in per_layer_io(model, x) if not isinstance(io[0], L.Dense)]
    for layer, (klayer, kin, kout) in zip(layers, recurrent):
        y, h = layer(kin)
        assert_close(y if layer.keras_source.return_sequences else h[0], kout, F32,
                     klayer.name)


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_go_backwards_is_reverse(cell, tmp_path):
    model = keras.Sequential([keras.Input((T, D)),
                              getattr(L, cell)(4, go_backwards=True, return_sequences=True)])
    path, model = saved(model, tmp_path, f"backwards {cell}")
    (layer,) = fastrnn.keras.load(path)
    assert layer.reverse and layer.keras_source.go_backwards
    x = rng_for("back x", cell).standard_normal((B, T, D)).astype(F32)
    want = keras.ops.convert_to_numpy(model(x))
    assert_close(layer(x)[0][:, ::-1], want, F32, "reversed sequence")


def test_functional_model_with_a_nested_model_and_repeated_names(tmp_path):
    inp = keras.Input((T, D))
    inner = keras.Sequential([L.GRU(3, return_sequences=True, name="inner_gru")],
                             name="block")
    a = L.LSTM(4, return_sequences=True, name="first")(inp)
    b = inner(a)
    c = L.LSTM(2, name="second")(b)
    path, model = saved(keras.Model(inp, c), tmp_path, "functional")
    layers = fastrnn.keras.load(path)
    assert [(s.name, s.path) for s in (layer.keras_source for layer in layers)] == [
        ("first", ()), ("inner_gru", ("block",)), ("second", ())]
    x = rng_for("functional x").standard_normal((B, T, D)).astype(F32)
    y = x
    for layer in layers:
        y, state = layer(y)
    assert_close(state[0][0], keras.ops.convert_to_numpy(model(x)), F32, "model output")


@pytest.mark.parametrize("make, named, reason", [
    (lambda: L.LSTM(3, activation="relu"), "lstm", "activation='relu'"),
    (lambda: L.SimpleRNN(3, activation="sigmoid"), "simple_rnn", "activation='sigmoid'"),
    (lambda: L.Bidirectional(L.GRU(3), merge_mode="sum"), "bidirectional", "merge_mode='sum'"),
    (lambda: L.RNN(L.LSTMCell(3)), "rnn", "not RNN"),
], ids=["lstm-relu", "rnn-sigmoid", "merge-sum", "generic-rnn"])
def test_what_fastrnn_cannot_run_is_a_value_error_naming_the_layer(make, named, reason,
                                                                     tmp_path):
    model = keras.Sequential([keras.Input((T, D)), make()])
    path, _ = saved(model, tmp_path, named)
    with pytest.raises(ValueError, match=rf"\.keras: layer '{named}\w*' .*{reason}"):
        fastrnn.keras.load(path)


def test_no_recurrent_layer_and_damaged_files_are_value_errors(tmp_path):
    path, _ = saved(keras.Sequential([keras.Input((D,)), L.Dense(2)]), tmp_path, "dense")
    with pytest.raises(ValueError, match=r"dense\.keras: no SimpleRNN, LSTM, GRU"):
        fastrnn.keras.load(path)
    good, _ = saved(keras.Sequential([keras.Input((T, D)), L.GRU(2)]), tmp_path, "good")
    raw = good.read_bytes()
    for i, data in enumerate([raw[:len(raw) // 2], b"not a zip", raw[:40] + b"\0" * 64]):
        bad = tmp_path / f"bad{i}.keras"
        bad.write_bytes(data)
        with pytest.raises(ValueError, match=rf"bad{i}\.keras: "):
            fastrnn.keras.load(bad)
