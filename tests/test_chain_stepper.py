"""fastrnn.ChainStepper (Chain.stepper()): a chain run one position per call equals the
chain on the whole sequence, for token and vector inputs, batched or not."""

import numpy as np
import pytest

import fastrnn
from conftest import tol


def language_model(cell, dtype, layers=1):
    return fastrnn.Chain(fastrnn.Embedding(30, 8, dtype=dtype, seed=1),
                         getattr(fastrnn, cell)(8, 12, num_layers=layers, dtype=dtype, seed=2),
                         fastrnn.Linear(12, 30, dtype=dtype, seed=3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell, layers", [("LSTM", 1), ("LSTM", 2), ("GRU", 1), ("RNN", 2)])
@pytest.mark.parametrize("batch", [None, 3])
def test_positions_equal_the_whole_sequence(dtype, cell, layers, batch):
    net = language_model(cell, dtype, layers)
    tokens = np.random.default_rng(0).integers(0, 30, (6, batch or 1))
    expected, _ = net(tokens)
    step = net.stepper(batch_size=batch)
    got = np.stack([step(t if batch else int(t[0])) for t in tokens])
    assert got.shape == (6, batch, 30) if batch else got.shape == (6, 30)
    np.testing.assert_allclose(got.reshape(expected.shape), expected, **tol(dtype))
    step.reset()                          # zero states again: the same outputs
    np.testing.assert_allclose(step(tokens[0] if batch else int(tokens[0, 0])),
                               expected[0] if batch else expected[0, 0], **tol(dtype))


def test_vector_inputs_and_two_recurrent_layers():
    net = fastrnn.Chain(fastrnn.LSTM(5, 7, seed=0), fastrnn.GRU(7, 4, seed=1),
                        fastrnn.Linear(4, 2, seed=2))
    x = np.random.default_rng(1).standard_normal((4, 1, 5)).astype(np.float32)
    expected, _ = net(x)
    step = net.stepper()
    np.testing.assert_allclose(np.stack([step(v[0]) for v in x]), expected[:, 0], atol=1e-6)


def test_a_copy_of_the_weights_and_bad_chains():
    net = language_model("LSTM", np.float32)
    step = net.stepper()
    before = step(3)
    net.layers[1].params["weight_hh_l0"][...] = 0       # the stepper keeps its own copy
    step.reset()
    np.testing.assert_array_equal(step(3), before)
    with pytest.raises(TypeError, match="chain"):
        fastrnn.ChainStepper(net.layers[1])
    bidir = fastrnn.Chain(fastrnn.LSTM(3, 4, bidirectional=True), fastrnn.Linear(8, 2))
    with pytest.raises(ValueError, match="bidirectional"):
        bidir.stepper()
