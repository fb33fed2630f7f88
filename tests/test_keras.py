"""fastrnn layers against Keras 3 (torch backend) SimpleRNN, LSTM and GRU.

Keras is the oracle: a Keras layer with random weights (biases too) runs on random input and
initial state with return_sequences=True and return_state=True, and the fastrnn layer built by
from_keras from its get_weights() must give the same sequence and final states.  The other way,
a random fastrnn layer's to_keras_weights() set into a Keras layer must give fastrnn's outputs.
"""

import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"     # before keras is imported: no tensorflow or jax
keras = pytest.importorskip("keras")

import fastrnn  # noqa: E402
from conftest import TOL, assert_close, rng_for  # noqa: E402

# Keras's torch backend converts its tensors with np.array(x), which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

D, H, T, B = 5, 4, 6, 3
F32 = np.float32

# (fastrnn class, Keras layer, fixed keyword arguments of both)
KINDS = {
    "rnn_tanh": (fastrnn.RNN, keras.layers.SimpleRNN, {}, {}),
    "rnn_relu": (fastrnn.RNN, keras.layers.SimpleRNN, {"activation": "relu"},
                 {"nonlinearity": "relu"}),
    "lstm": (fastrnn.LSTM, keras.layers.LSTM, {}, {}),
    "gru": (fastrnn.GRU, keras.layers.GRU, {}, {}),
}


def keras_layer(kind, use_bias=True, **kw):
    """A built Keras layer of this kind returning (sequence, *states)."""
    _, klass, keras_kw, _ = KINDS[kind]
    layer = klass(H, use_bias=use_bias, return_sequences=True, return_state=True,
                  **keras_kw, **kw)
    layer(np.zeros((B, T, D), F32))
    return layer


def randomise(klayer, rng):
    klayer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(F32)
                        for w in klayer.get_weights()])


def keras_run(klayer, x, state0):
    """(y, state_n) of a Keras layer, state0 and state_n in fastrnn's (1, B, H) shape."""
    initial = [s[0] for s in state0] if isinstance(state0, tuple) else [state0[0]]
    out = [keras.ops.convert_to_numpy(o) for o in klayer(x, initial_state=initial)]
    states = tuple(s[np.newaxis] for s in out[1:])
    return out[0], states if len(states) == 2 else states[0]


def random_io(kind, key):
    rng = rng_for(*key)
    x = rng.standard_normal((B, T, D)).astype(F32)
    h0 = rng.standard_normal((1, B, H)).astype(F32)
    state0 = (h0, rng.standard_normal((1, B, H)).astype(F32)) if kind == "lstm" else h0
    return rng, x, state0


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_from_keras_matches_keras(kind, use_bias):
    rng, x, state0 = random_io(kind, ("from", kind, use_bias))
    klayer = keras_layer(kind, use_bias)
    randomise(klayer, rng)
    cls, _, _, config = KINDS[kind]
    layer = cls.from_keras(klayer.get_weights(), **config)
    assert layer.batch_first and layer.bias == use_bias and layer.dtype == F32
    y, state_n = layer(x, state0)
    y_k, state_k = keras_run(klayer, x, state0)
    assert_close(y, y_k, F32, "y")
    assert_close(state_n, state_k, F32, "state_n")


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_to_keras_weights_matches_keras(kind, use_bias):
    rng, x, state0 = random_io(kind, ("to", kind, use_bias))
    cls, _, _, config = KINDS[kind]
    layer = cls(D, H, bias=use_bias, batch_first=True, seed=rng.integers(1000), **config)
    for p in layer.params.values():      # biases far from zero, so a lost bias shows
        p[...] = rng.uniform(-0.6, 0.6, p.shape)
    klayer = keras_layer(kind, use_bias)
    klayer.set_weights(layer.to_keras_weights())
    y, state_n = layer(x, state0)
    y_k, state_k = keras_run(klayer, x, state0)
    assert_close(y, y_k, F32, "y")
    assert_close(state_n, state_k, F32, "state_n")
    # and back: the same function, whatever the split of the biases
    again = cls.from_keras(layer.to_keras_weights(), **config)
    y2, state2 = again(x, state0)
    assert_close(y2, y, F32, "y after from_keras(to_keras_weights())")
    assert_close(state2, state_n, F32, "state_n after from_keras(to_keras_weights())")


def test_keras_stack_is_a_list_of_layers():
    """A Keras model of two recurrent layers runs as two fastrnn layers, one after the other."""
    rng = rng_for("stack")
    x = rng.standard_normal((B, T, D)).astype(F32)
    first = keras.layers.LSTM(H, return_sequences=True)
    second = keras.layers.GRU(3, return_sequences=True)
    model = keras.Sequential([keras.Input((T, D)), first, second])
    for layer in (first, second):
        randomise(layer, rng)
    expected = keras.ops.convert_to_numpy(model(x))
    layers = [fastrnn.LSTM.from_keras(first.get_weights()),
              fastrnn.GRU.from_keras(second.get_weights())]
    y = x
    for layer in layers:
        y, _ = layer(y)
    assert_close(y, expected, F32, "stack output")


def test_config_overrides_and_float64():
    klayer = keras_layer("gru")
    randomise(klayer, rng_for("f64"))
    layer = fastrnn.GRU.from_keras(klayer.get_weights(), dtype=np.float64, batch_first=False)
    assert layer.dtype == np.float64 and not layer.batch_first
    rng, x, state0 = random_io("gru", ("f64",))
    y, _ = layer(x.transpose(1, 0, 2).astype(np.float64))
    y_k, _ = keras_run(klayer, x, np.zeros_like(state0))
    np.testing.assert_allclose(y.transpose(1, 0, 2), y_k, **TOL[F32])


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
def test_gru_reset_before_matches_keras(use_bias):
    rng, x, state0 = random_io("gru", ("reset_before", use_bias))
    klayer = keras_layer("gru", use_bias, reset_after=False)
    randomise(klayer, rng)
    layer = fastrnn.GRU.from_keras(klayer.get_weights(), reset_after=False)
    assert layer.reset_after is False
    y, state_n = layer(x, state0)
    y_k, state_k = keras_run(klayer, x, state0)
    assert_close(y, y_k, F32, "y")
    assert_close(state_n, state_k, F32, "state_n")
    fresh = keras_layer("gru", use_bias, reset_after=False)
    fresh.set_weights(layer.to_keras_weights())
    assert_close(keras_run(fresh, x, state0)[0], y, F32, "y via to_keras_weights")


def test_bad_weights_are_rejected():
    kernel, rec, bias = (np.zeros((D, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H))
    with pytest.raises(TypeError, match="weights"):
        fastrnn.LSTM.from_keras(kernel)
    with pytest.raises(ValueError, match="weights: expected 2 arrays"):
        fastrnn.LSTM.from_keras([kernel])
    with pytest.raises(ValueError, match=r"weights\[1\] \(recurrent_kernel\)"):
        fastrnn.GRU.from_keras([kernel, rec, bias])
    with pytest.raises(ValueError, match=r"weights\[0\] \(kernel\)"):
        fastrnn.LSTM.from_keras([np.zeros((D, 3 * H)), rec, bias])
    with pytest.raises(ValueError, match=r"weights\[2\] \(bias\)"):
        fastrnn.LSTM.from_keras([kernel, rec, np.zeros(3 * H)])
    with pytest.raises(ValueError, match=r"weights\[2\] \(bias\)"):   # reset_after: (2, 3H)
        fastrnn.GRU.from_keras([np.zeros((D, 3 * H)), np.zeros((H, 3 * H)), np.zeros(3 * H)])
    with pytest.raises(ValueError, match="hidden_size"):
        fastrnn.LSTM.from_keras([kernel, rec, bias], hidden_size=7)


@pytest.mark.parametrize("config", [dict(num_layers=2), dict(bidirectional=True),
                                    dict(reverse=True)], ids=lambda c: next(iter(c)))
def test_to_keras_weights_rejects_what_keras_cannot_hold(config):
    layer = fastrnn.LSTM(D, H, **config)
    with pytest.raises(ValueError, match=next(iter(config))):
        layer.to_keras_weights()
